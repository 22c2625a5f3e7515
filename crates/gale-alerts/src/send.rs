//! Sending one batch through one channel, and telling how it went: what the
//! server answered ([`Answer`]), or a refusal that is worth trying again
//! later or not ([`Refusal`]). Webhooks and Slack are posted here; e-mail
//! and commands have files of their own.
//!
//! What is temporary: a connection refused, reset or timed out, HTTP 408,
//! 429 and 5xx, SMTP 4xx, a command that failed with any exit status outside
//! 64..=78 or was killed (by its timeout too). What is permanent: HTTP 4xx
//! (but 408, 429) and 3xx (redirects are not followed), SMTP 5xx (a refused
//! password or address too), a TLS certificate refused, a bad address, a
//! command that cannot be started or exits 64..=78 (sysexits: usage, data,
//! configuration errors).

use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use serde::Serialize;

use crate::channel::{Channel, Target, Webhook};
use crate::event::Batch;
use crate::message;

/// How much of a server's or command's answer is kept.
pub const ANSWER_MAX: usize = 2 * 1024;

/// How long a Slack post may take.
const SLACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's alert settings, for what a channel leaves to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// The web UI's address, for links (`GALE_BASE_URL`); no links without.
    pub base_url: Option<String>,
    /// The SMTP server for e-mail channels without one of their own
    /// (`GALE_SMTP_URL`); it may hold a password.
    pub smtp_url: Option<String>,
    /// The sender for e-mail channels without one of their own
    /// (`GALE_SMTP_FROM`).
    pub smtp_from: Option<String>,
}

impl Settings {
    /// Every problem with the settings, each naming its variable, so a
    /// process can refuse to start with them.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(base) = &self.base_url {
            match reqwest::Url::parse(base) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => errors.push(format!(
                    "GALE_BASE_URL: {base:?} is not an http:// or https:// URL"
                )),
            }
        }
        if let Some(url) = &self.smtp_url {
            match crate::channel::split_smtp_password(url) {
                Err(e) => errors.push(format!("GALE_SMTP_URL: {e}")),
                Ok((bare, Some(_))) if !crate::channel::password_safe(&bare) => errors.push(
                    format!("GALE_SMTP_URL: {}", crate::channel::PASSWORD_IN_CLEAR),
                ),
                Ok(_) => {}
            }
        }
        if let Some(from) = &self.smtp_from
            && let Err(e) = from.parse::<lettre::message::Mailbox>()
        {
            errors.push(format!("GALE_SMTP_FROM: {from:?} is not an address: {e}"));
        }
        errors
    }
}

/// What the receiving end answered, e.g. `250 2.0.0 Ok` or `HTTP 200: ok`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub text: String,
}

/// Why a batch was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Worth trying again later.
    #[error("{0}")]
    Temporary(String),
    /// Trying again would fail the same way.
    #[error("{0}")]
    Permanent(String),
}

impl Refusal {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Refusal::Permanent(_))
    }

    pub fn text(&self) -> &str {
        match self {
            Refusal::Temporary(s) | Refusal::Permanent(s) => s,
        }
    }
}

/// Sends `batch` through `channel` within `bound`: a webhook's or a
/// command's own timeout is cut to fit (a command keeps a few seconds of it
/// to be stopped in, so its process group is always killed at its
/// timeout). No answer within `bound` is a temporary refusal.
pub async fn send(
    channel: &Channel,
    settings: &Settings,
    batch: &Batch,
    bound: Duration,
) -> Result<Answer, Refusal> {
    let work = async {
        match &channel.target {
            Target::Email(email) => crate::email::send(channel, email, settings, batch).await,
            Target::Webhook(hook) => webhook(hook, hook.timeout.min(bound), batch).await,
            Target::Slack { url } => slack(url, SLACK_TIMEOUT.min(bound), batch).await,
            Target::Command { argv, timeout } => {
                let room = bound.saturating_sub(crate::command::GRACE + Duration::from_secs(1));
                let timeout = (*timeout).min(room).max(Duration::from_secs(1));
                crate::command::run(argv, timeout, batch).await
            }
        }
    };
    tokio::time::timeout(bound, work).await.unwrap_or_else(|_| {
        Err(Refusal::Temporary(format!(
            "no answer within {}s",
            bound.as_secs()
        )))
    })
}

fn client(timeout: Duration) -> Result<reqwest::Client, Refusal> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("gale/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Refusal::Temporary(format!("cannot make an HTTP client: {e}")))
}

/// The hex HMAC-SHA256 of `timestamp.body` under `secret`: what
/// `X-Gale-Signature` carries after `sha256=`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn webhook(hook: &Webhook, timeout: Duration, batch: &Batch) -> Result<Answer, Refusal> {
    let body = serde_json::to_vec(&batch.document())
        .map_err(|e| Refusal::Permanent(format!("cannot encode the event: {e}")))?;
    let mut req = client(timeout)?
        .post(hook.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", batch.key())
        .header("X-Gale-Event", batch.kind());
    for (name, value) in &hook.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if let Some(secret) = &hook.signing_secret {
        let ts = jiff::Timestamp::now().as_second();
        req = req.header("X-Gale-Timestamp", ts.to_string()).header(
            "X-Gale-Signature",
            format!("sha256={}", signature(secret, ts, &body)),
        );
    }
    post(req.body(body), &hook.url).await
}

async fn slack(url: &reqwest::Url, timeout: Duration, batch: &Batch) -> Result<Answer, Refusal> {
    let body = serde_json::json!({ "text": message::slack(batch) }).to_string();
    let req = client(timeout)?
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    post(req, url).await
}

/// Sends the request; the status decides, the first [`ANSWER_MAX`] bytes
/// of the body are kept.
async fn post(req: reqwest::RequestBuilder, url: &reqwest::Url) -> Result<Answer, Refusal> {
    let where_ = crate::channel::origin(url);
    let mut res = req
        .send()
        .await
        .map_err(|e| http_error(&where_, &e.without_url()))?;
    let status = res.status();
    let mut body = Vec::new();
    // The body, bounded: a receiver that streams forever is cut off.
    while body.len() < ANSWER_MAX {
        match res.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) if !body.is_empty() => break,
            Err(e) => {
                if status.is_success() {
                    // Delivered; only the answer's body was lost.
                    break;
                }
                return Err(http_error(&where_, &e.without_url()));
            }
        }
    }
    body.truncate(ANSWER_MAX);
    let said = String::from_utf8_lossy(&body).trim().to_owned();
    let text = if said.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {said}", status.as_u16())
    };
    let code = status.as_u16();
    if status.is_success() {
        Ok(Answer { text })
    } else if code == 408 || code == 429 || status.is_server_error() {
        Err(Refusal::Temporary(format!("{where_} answered {text}")))
    } else if status.is_redirection() {
        Err(Refusal::Permanent(format!(
            "{where_} answered {text} (redirects are not followed: give the final URL)"
        )))
    } else {
        Err(Refusal::Permanent(format!("{where_} answered {text}")))
    }
}

/// An error's whole chain of causes, on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// An HTTP client's error on one line, the innermost cause first (`Connection
/// refused (os error 111)`), then what it happened in; hyper's generic
/// `client error (Connect)` is left out.
pub(crate) fn http_chain(e: &dyn std::error::Error) -> String {
    let mut causes = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        causes.push(c.to_string());
        cur = c.source();
    }
    causes.retain(|c| !c.starts_with("client error (") && !c.is_empty());
    let Some(innermost) = causes.pop() else {
        return e.to_string();
    };
    let outer: Vec<&str> = causes
        .iter()
        .map(String::as_str)
        .filter(|c| !innermost.contains(c))
        .collect();
    if outer.is_empty() {
        innermost
    } else {
        format!("{innermost} ({})", outer.join(": "))
    }
}

/// `e` must be without its URL (`reqwest::Error::without_url`): a webhook's
/// or Slack's URL is a secret, and the error is kept and shown.
fn http_error(where_: &str, e: &reqwest::Error) -> Refusal {
    let text = format!("{where_}: {}", http_chain(e));
    if e.is_builder() || e.is_redirect() {
        return Refusal::Permanent(text);
    }
    // A certificate refused stays refused until someone changes it.
    if text.contains("certificate") {
        return Refusal::Permanent(text);
    }
    Refusal::Temporary(text)
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
