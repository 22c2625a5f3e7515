//! Sending a batch as one e-mail over SMTP (lettre): the channel's server,
//! or the process's; STARTTLS, implicit TLS or plain as its URL says (with
//! an extra root from the channel's `ca_file`); AUTH when a password is
//! given; a `Message-ID` derived from the channel and the batch's key, so a
//! message sent again is recognisable as the same one.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest as _, Sha256};

use crate::channel::{Channel, Email, percent_decode, split_smtp_password};
use crate::event::Batch;
use crate::message;
use crate::send::{ANSWER_MAX, Answer, Refusal, Settings, chain, cut};

/// How long one SMTP command may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `Message-ID` of `batch` sent through the channel `channel`:
/// `<` hex SHA-256 of the channel name, a NUL byte and the key `@gale>`.
pub fn message_id(channel: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(channel.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    format!("<{}@gale>", hex::encode(h.finalize()))
}

pub(crate) async fn send(
    channel: &Channel,
    email: &Email,
    settings: &Settings,
    batch: &Batch,
) -> Result<Answer, Refusal> {
    let from = match (&email.from, &settings.smtp_from) {
        (Some(f), _) => f.clone(),
        (None, Some(f)) => f.parse::<Mailbox>().map_err(|e| {
            Refusal::Temporary(format!(
                "the sender GALE_SMTP_FROM {f:?} is not an address: {e}"
            ))
        })?,
        // This process's settings may lack what another's has: tried again.
        (None, None) => {
            return Err(Refusal::Temporary(
                "no sender: set from on the channel, or GALE_SMTP_FROM for every process".into(),
            ));
        }
    };
    // The channel's server and password, or the process's server with the
    // channel's password if it has one.
    let (url, password) = match &email.smtp {
        Some(url) => (url.clone(), email.password.clone()),
        None => match &settings.smtp_url {
            Some(url) => {
                let (url, password) = split_smtp_password(url)
                    .map_err(|e| Refusal::Temporary(format!("GALE_SMTP_URL: {e}")))?;
                (url, email.password.clone().or(password))
            }
            None => {
                return Err(Refusal::Temporary(
                    "no SMTP server: set smtp on the channel, or GALE_SMTP_URL for every process"
                        .into(),
                ));
            }
        },
    };
    let transport = transport(&url, password, email)?;
    let mut builder = Message::builder()
        .from(from)
        .subject(message::subject(&email.subject_prefix, batch))
        .message_id(Some(message_id(&channel.name, &batch.key())))
        .date_now()
        .user_agent(concat!("gale/", env!("CARGO_PKG_VERSION")).to_owned());
    for to in &email.to {
        builder = builder.to(to.clone());
    }
    let msg = builder
        .header(ContentType::TEXT_PLAIN)
        .body(message::text(batch))
        .map_err(|e| Refusal::Permanent(format!("cannot make the message: {e}")))?;
    match transport.send(msg).await {
        Ok(res) => {
            let said = res.message().collect::<Vec<_>>().join(" ");
            Ok(Answer {
                text: cut(&format!("{} {said}", res.code()), ANSWER_MAX).to_owned(),
            })
        }
        Err(e) => Err(smtp_error(&url, &e)),
    }
}

fn smtp_error(url: &str, e: &lettre::transport::smtp::Error) -> Refusal {
    let text = format!("{}: {}", server_of(url), smtp_text(url, e));
    if e.is_permanent() || e.is_client() {
        Refusal::Permanent(text)
    } else if e.is_tls() && text.contains("certificate") {
        // A certificate refused stays refused until someone changes it.
        Refusal::Permanent(text)
    } else {
        Refusal::Temporary(text)
    }
}

/// What went wrong, in words a user can act on: lettre's own failures (no
/// login method offered, no STARTTLS) said with what to change, without
/// its `internal client error:` prefix.
fn smtp_text(url: &str, e: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let said = chain(e);
    if !e.is_client() {
        return said;
    }
    let inner = e.source().map_or_else(
        || {
            said.trim_start_matches("internal client error")
                .trim_start_matches(": ")
                .to_owned()
        },
        chain,
    );
    let plain = reqwest::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "smtp" && !u.query_pairs().any(|(k, v)| k == "tls" && v == "required")
    });
    if inner.contains("No compatible authentication mechanism") {
        if plain {
            return "the server offers no way to log in over this connection (many offer it \
                    only over TLS): use smtp://user@host:587?tls=required (STARTTLS) or \
                    smtps://user@host"
                .into();
        }
        return "the server offers no way to log in that Gale knows (PLAIN or LOGIN)".into();
    }
    if inner.contains("STARTTLS is not supported") {
        return "the server does not offer STARTTLS, which tls=required needs: use smtps:// if \
                it takes TLS from the start (port 465)"
            .into();
    }
    inner
}

/// `scheme://host:port` of an SMTP URL, for messages.
fn server_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "the SMTP server".into(),
    }
}

/// The transport lettre's URL rules describe, with the channel's extra
/// root and the password given apart from the URL.
fn transport(
    url: &str,
    password: Option<String>,
    email: &Email,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, Refusal> {
    let bad = |m: String| Refusal::Permanent(format!("{}: {m}", server_of(url)));
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("the URL has no host".into()))?;
    // An IPv6 literal is bracketed in URLs, not in TLS server names.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls_mode = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let params = || -> Result<TlsParameters, Refusal> {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(path) = &email.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Refusal::Temporary(format!("ca_file {} on this host: {e}", path.display()))
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| Refusal::Permanent(format!("ca_file {}: {e}", path.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| Refusal::Permanent(format!("TLS settings: {}", chain(&e))))
    };
    if password.is_some() && !crate::channel::password_safe(url) {
        return Err(bad(crate::channel::PASSWORD_IN_CLEAR.into()));
    }
    let (tls, default_port) = match (parsed.scheme(), tls_mode.as_deref()) {
        ("smtps", _) => (Tls::Wrapper(params()?), 465),
        ("smtp", Some("required")) => (Tls::Required(params()?), 587),
        ("smtp", Some("opportunistic")) => (Tls::Opportunistic(params()?), 587),
        ("smtp", None) => (Tls::None, 25),
        (scheme, t) => {
            return Err(bad(format!(
                "scheme {scheme} with tls={t:?} is not an SMTP URL Gale knows"
            )));
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(parsed.port().unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if parsed.path().len() > 1 {
        b = b.hello_name(ClientId::Domain(parsed.path().trim_matches('/').to_owned()));
    }
    let user = percent_decode(parsed.username())
        .ok_or_else(|| bad("the user name is not valid percent-encoded UTF-8".into()))?;
    match (user.is_empty(), password) {
        (false, Some(p)) => b = b.credentials(Credentials::new(user, p)),
        (false, None) => {
            return Err(bad(format!(
                "the URL names the user {user} but there is no password for it"
            )));
        }
        (true, Some(_)) => {
            return Err(bad(
                "a password is given but the URL names no user (smtp://user@host)".into(),
            ));
        }
        (true, None) => {}
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests;
