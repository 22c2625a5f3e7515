//! Alert channels: what a user gives to define one ([`ChannelSpec`]),
//! checked field by field and split into settings kept in clear and a
//! secret part kept sealed; a channel as opened from the store
//! ([`Channel`]), checked again and ready to send through; and the masked
//! view listings show ([`MaskedChannel`]). No I/O here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use gale_secrets::OpenedChannel;
use gale_store::ChannelKind;
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The longest channel name.
pub const NAME_MAX: usize = 100;
/// The longest URL, header value, argument, address or other setting.
pub const TEXT_MAX: usize = 2_000;
/// The most recipients, headers or command arguments.
pub const LIST_MAX: usize = 100;
/// The longest description.
pub const DESCRIPTION_MAX: usize = 1_000;
/// The longest timeout a channel may set.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(300);

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const SUBJECT_PREFIX: &str = "[gale]";

/// Headers Gale sets itself on a webhook's request, which a channel cannot.
const OWN_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-gale-event",
    "x-gale-timestamp",
    "x-gale-signature",
];

/// What a user gives to define a channel: its name and kind, and every
/// setting of that kind, secret or not, in one map (`{"url": ..., "headers":
/// {...}}`). [`ChannelSpec::check`] tells which go where.
#[derive(Clone, Debug, Deserialize)]
pub struct ChannelSpec {
    pub name: String,
    /// `email`, `webhook`, `slack` or `command`.
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

/// The settings of each kind: (clear ones, secret ones).
fn fields(kind: ChannelKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        ChannelKind::Email => (
            &[
                "to",
                "from",
                "smtp",
                "ca_file",
                "subject_prefix",
                "defaults",
            ],
            &["password"],
        ),
        ChannelKind::Webhook => (
            &["headers", "timeout", "defaults"],
            &["url", "signing_secret"],
        ),
        ChannelKind::Slack => (&["defaults"], &["url"]),
        ChannelKind::Command => (&["argv", "timeout", "defaults"], &[]),
    }
}

impl ChannelSpec {
    /// Checks every setting and splits them into the clear and the secret
    /// part. An SMTP URL given with a password has it moved to the secret
    /// part.
    pub fn check(&self) -> Result<Channel> {
        check_name(&self.name)?;
        let kind = ChannelKind::parse(&self.kind).ok_or_else(|| {
            invalid(format!(
                "kind: {:?} is not a channel kind (email, webhook, slack or command)",
                self.kind
            ))
        })?;
        let (clear, secret_fields) = fields(kind);
        let mut config = Map::new();
        let mut secret = BTreeMap::new();
        for (key, value) in &self.settings {
            if secret_fields.contains(&key.as_str()) {
                secret.insert(key.clone(), string(key, value)?.to_owned());
            } else if clear.contains(&key.as_str()) {
                config.insert(key.clone(), value.clone());
            } else {
                let known: Vec<&str> = clear.iter().chain(secret_fields).copied().collect();
                return Err(invalid(format!(
                    "{key}: not a setting of {kind} channels (they have: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        if kind == ChannelKind::Email
            && let Some(Value::String(smtp)) = config.get("smtp").cloned()
        {
            let (bare, password) = split_smtp_password(&smtp)?;
            if let Some(password) = password {
                if secret.contains_key("password") {
                    return Err(invalid(
                        "smtp: the URL has a password and password is given too: give it once",
                    ));
                }
                secret.insert("password".into(), password);
                config.insert("smtp".into(), Value::String(bare));
            }
        }
        Channel::new(&self.name, kind, config, secret, self.description.clone())
    }
}

/// A checked channel, its secret part in clear: what is stored (through
/// [`Channel::to_opened`]) and what is sent through.
#[derive(Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// The settings kept in clear.
    pub config: Map<String, Value>,
    /// The settings kept sealed.
    pub secret: BTreeMap<String, String>,
    pub description: Option<String>,
    pub(crate) target: Target,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The masked view: never a secret.
        self.masked().fmt(f)
    }
}

/// Where a channel sends, as checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Target {
    Email(Email),
    Webhook(Webhook),
    Slack {
        url: reqwest::Url,
    },
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Email {
    pub to: Vec<Mailbox>,
    pub from: Option<Mailbox>,
    /// Without a password.
    pub smtp: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub subject_prefix: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Webhook {
    pub url: reqwest::Url,
    pub signing_secret: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Channel {
    /// Checks a channel's parts (as stored, or as split by
    /// [`ChannelSpec::check`]).
    pub fn new(
        name: &str,
        kind: ChannelKind,
        config: Map<String, Value>,
        secret: BTreeMap<String, String>,
        description: Option<String>,
    ) -> Result<Channel> {
        check_name(name)?;
        if let Some(d) = &description {
            bounded("description", d, DESCRIPTION_MAX)?;
        }
        let (clear, secret_fields) = fields(kind);
        if let Some(k) = config.keys().find(|k| !clear.contains(&k.as_str())) {
            return Err(invalid(format!("{k}: not a setting of {kind} channels")));
        }
        if let Some(k) = secret.keys().find(|k| !secret_fields.contains(&k.as_str())) {
            return Err(invalid(format!("{k}: not a secret of {kind} channels")));
        }
        for (k, v) in &secret {
            bounded(k, v, TEXT_MAX)?;
        }
        defaults(config.get("defaults"))?;
        let target = match kind {
            ChannelKind::Email => Target::Email(email(&config, &secret)?),
            ChannelKind::Webhook => Target::Webhook(Webhook {
                url: http_url("url", secret.get("url"))?,
                signing_secret: match secret.get("signing_secret") {
                    Some(s) if s.is_empty() => {
                        return Err(invalid("signing_secret: must not be empty"));
                    }
                    s => s.cloned(),
                },
                headers: headers(config.get("headers"))?,
                timeout: timeout(config.get("timeout"), WEBHOOK_TIMEOUT)?,
            }),
            ChannelKind::Slack => Target::Slack {
                url: http_url("url", secret.get("url"))?,
            },
            ChannelKind::Command => Target::Command {
                argv: argv(config.get("argv"))?,
                timeout: timeout(config.get("timeout"), COMMAND_TIMEOUT)?,
            },
        };
        Ok(Channel {
            name: name.to_owned(),
            kind,
            config,
            secret,
            description,
            target,
        })
    }

    /// A channel as the vault opened it, checked again.
    pub fn from_opened(c: OpenedChannel) -> Result<Channel> {
        Channel::new(&c.name, c.kind, c.config, c.secret, c.description)
            .map_err(|e| invalid(format!("alert channel {}: {e}", c.name)))
    }

    /// What the vault stores.
    pub fn to_opened(&self) -> OpenedChannel {
        OpenedChannel {
            name: self.name.clone(),
            kind: self.kind,
            config: self.config.clone(),
            secret: self.secret.clone(),
            description: self.description.clone(),
            updated_at: None,
        }
    }

    /// The view for listings: every secret `***`, except a URL, shown as
    /// its scheme and host only.
    pub fn masked(&self) -> MaskedChannel {
        MaskedChannel {
            name: self.name.clone(),
            kind: self.kind,
            description: self.description.clone(),
            config: mask_config(&self.config),
            secret: self
                .secret
                .iter()
                .map(|(k, v)| (k.clone(), mask(k, v)))
                .collect(),
        }
    }
}

/// A channel as listings show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MaskedChannel {
    pub name: String,
    pub kind: ChannelKind,
    pub description: Option<String>,
    pub config: Map<String, Value>,
    pub secret: BTreeMap<String, String>,
}

/// The clear settings as listings show them: a webhook's header values
/// (often a token) as `***`, and a command's arguments that look secret
/// (`--token X`, `--password=X`, `api_key=X`) with the value `***`.
pub fn mask_config(config: &Map<String, Value>) -> Map<String, Value> {
    let mut out = config.clone();
    if let Some(Value::Object(headers)) = out.get_mut("headers") {
        for v in headers.values_mut() {
            *v = Value::String("***".into());
        }
    }
    if let Some(Value::Array(argv)) = out.get_mut("argv") {
        let mut after_secret_flag = false;
        for v in argv.iter_mut() {
            let Some(arg) = v.as_str() else { continue };
            if after_secret_flag {
                after_secret_flag = false;
                *v = Value::String("***".into());
                continue;
            }
            let flag = arg.trim_start_matches('-');
            match flag.split_once('=') {
                Some((key, _)) if gale_model::mask::is_secret_key(key) => {
                    let keep = arg.len() - flag.len() + key.len() + 1;
                    *v = Value::String(format!("{}***", &arg[..keep]));
                }
                None if arg.starts_with('-') && gale_model::mask::is_secret_key(flag) => {
                    after_secret_flag = true;
                }
                _ => {}
            }
        }
    }
    out
}

fn mask(key: &str, value: &str) -> String {
    if key == "url"
        && let Ok(url) = reqwest::Url::parse(value)
        && url.host_str().is_some()
    {
        return format!("{}/***", origin(&url));
    }
    "***".into()
}

/// `scheme://host[:port]` of a URL: what of a secret URL may be shown.
pub(crate) fn origin(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// `defaults`: a list of the events this channel is a default for.
fn defaults(v: Option<&Value>) -> Result<()> {
    let Some(v) = v else { return Ok(()) };
    let list = v
        .as_array()
        .ok_or_else(|| invalid("defaults: must be a list of events"))?;
    for e in list {
        let name = e.as_str().unwrap_or("");
        if !gale_model::alerts::DEFAULT_EVENTS.contains(&name) {
            return Err(invalid(format!(
                "defaults: {e} is not an event a channel can be a default for ({})",
                gale_model::alerts::DEFAULT_EVENTS.join(", ")
            )));
        }
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(invalid(format!(
            "name: must be 1 to {NAME_MAX} characters, got {}",
            name.chars().count()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(format!(
            "name: {c:?} is not allowed in {name:?} (letters, digits, '_', '.' and '-' only)"
        )));
    }
    Ok(())
}

fn bounded(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(invalid(format!(
            "{field}: longer than {max} bytes ({})",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(invalid(format!(
            "{field}: must not contain a NUL character"
        )));
    }
    Ok(())
}

fn string<'a>(field: &str, v: &'a Value) -> Result<&'a str> {
    match v {
        Value::String(s) => {
            bounded(field, s, TEXT_MAX)?;
            Ok(s)
        }
        other => Err(invalid(format!(
            "{field}: must be a string, got {}",
            type_name(other)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn opt_string<'a>(config: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(field, v).map(Some),
    }
}

fn list<'a>(field: &str, v: Option<&'a Value>) -> Result<Vec<&'a str>> {
    let items = match v {
        Some(Value::Array(items)) => items,
        // One address or argument alone is a list of one.
        Some(one @ Value::String(_)) => std::slice::from_ref(one),
        None | Some(Value::Null) => return Err(invalid(format!("{field}: is required"))),
        Some(other) => {
            return Err(invalid(format!(
                "{field}: must be a list of strings, got {}",
                type_name(other)
            )));
        }
    };
    if items.is_empty() {
        return Err(invalid(format!("{field}: must not be empty")));
    }
    if items.len() > LIST_MAX {
        return Err(invalid(format!(
            "{field}: at most {LIST_MAX} entries, got {}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| string(&format!("{field}[{i}]"), v))
        .collect()
}

fn mailbox(field: &str, s: &str) -> Result<Mailbox> {
    s.parse::<Mailbox>()
        .map_err(|e| invalid(format!("{field}: {s:?} is not an e-mail address: {e}")))
}

fn email(config: &Map<String, Value>, secret: &BTreeMap<String, String>) -> Result<Email> {
    let to = list("to", config.get("to"))?
        .into_iter()
        .enumerate()
        .map(|(i, s)| mailbox(&format!("to[{i}]"), s))
        .collect::<Result<Vec<_>>>()?;
    let from = opt_string(config, "from")?
        .map(|s| mailbox("from", s))
        .transpose()?;
    let smtp = match opt_string(config, "smtp")? {
        Some(s) => {
            let (bare, password) = split_smtp_password(s)?;
            if password.is_some() {
                return Err(invalid(
                    "smtp: the stored URL has a password: it belongs in the secret part",
                ));
            }
            if secret.contains_key("password") && !password_safe(&bare) {
                return Err(invalid(PASSWORD_IN_CLEAR));
            }
            Some(bare)
        }
        None => None,
    };
    let ca_file = opt_string(config, "ca_file")?.map(PathBuf::from);
    if let Some(p) = &ca_file
        && !p.is_absolute()
    {
        return Err(invalid(format!(
            "ca_file: {} must be an absolute path",
            p.display()
        )));
    }
    let subject_prefix = opt_string(config, "subject_prefix")?
        .unwrap_or(SUBJECT_PREFIX)
        .to_owned();
    if subject_prefix.chars().count() > 50 || subject_prefix.contains(['\r', '\n']) {
        return Err(invalid("subject_prefix: at most 50 characters on one line"));
    }
    Ok(Email {
        to,
        from,
        smtp,
        password: secret.get("password").cloned(),
        ca_file,
        subject_prefix,
    })
}

/// Why a password is not sent over a connection without TLS.
pub const PASSWORD_IN_CLEAR: &str = "smtp: a password is sent only over TLS (or to this host): \
     use smtp://user@host:587?tls=required (STARTTLS) or smtps://user@host";

/// Whether a password may go to the server of `url`: over TLS from the
/// start (`smtps`), after a STARTTLS that must succeed (`tls=required`), or
/// to this host.
pub fn password_safe(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let tls = u
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let host = u
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    u.scheme() == "smtps" || tls.as_deref() == Some("required") || loopback
}

/// An SMTP URL (lettre's: `smtp://user@host:port?tls=required`,
/// `smtps://host`, `smtp://host`) checked, and split into the URL without
/// its password and the password, percent-decoded.
pub fn split_smtp_password(s: &str) -> Result<(String, Option<String>)> {
    bounded("smtp", s, TEXT_MAX)?;
    let mut url = reqwest::Url::parse(s).map_err(|e| {
        invalid(format!(
            "smtp: not a URL ({e}), e.g. smtp://user@host:587?tls=required"
        ))
    })?;
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None) => {}
        (scheme @ ("smtp" | "smtps"), Some(t)) => {
            return Err(invalid(format!(
                "smtp: tls={t} is not valid for {scheme}:// (smtp:// takes tls=required or tls=opportunistic)"
            )));
        }
        (scheme, _) => {
            return Err(invalid(format!(
                "smtp: the scheme must be smtp or smtps, not {scheme}"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("smtp: the URL has no host"));
    }
    let password = match url.password() {
        Some(p) => {
            let decoded = percent_decode(p)
                .ok_or_else(|| invalid("smtp: the password is not valid percent-encoded UTF-8"))?;
            url.set_password(None)
                .map_err(|()| invalid("smtp: the URL cannot hold a password"))?;
            Some(decoded)
        }
        None => None,
    };
    Ok((url.to_string(), password))
}

pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn http_url(field: &str, v: Option<&String>) -> Result<reqwest::Url> {
    let Some(s) = v else {
        return Err(invalid(format!("{field}: is required")));
    };
    let url = reqwest::Url::parse(s).map_err(|e| invalid(format!("{field}: not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "{field}: must be an http or https URL, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("{field}: the URL has no host")));
    }
    Ok(url)
}

fn headers(v: Option<&Value>) -> Result<Vec<(String, String)>> {
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(invalid(format!(
                "headers: must be a map of header names to strings, got {}",
                type_name(other)
            )));
        }
    };
    if map.len() > LIST_MAX {
        return Err(invalid(format!("headers: at most {LIST_MAX}")));
    }
    map.iter()
        .map(|(k, v)| {
            let field = format!("headers.{k}");
            let value = string(&field, v)?;
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| invalid(format!("{field}: not a valid header name")))?;
            if OWN_HEADERS.contains(&name.as_str()) {
                return Err(invalid(format!("{field}: Gale sets this header itself")));
            }
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("{field}: not a valid header value")))?;
            Ok((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

fn timeout(v: Option<&Value>, default: Duration) -> Result<Duration> {
    let d = match v {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(secs) => Duration::from_secs(secs),
            None => return Err(invalid("timeout: must be a whole number of seconds")),
        },
        Some(Value::String(s)) => {
            gale_model::duration::parse(s)
                .map_err(|e| invalid(format!("timeout: {e}")))?
                .0
        }
        Some(other) => {
            return Err(invalid(format!(
                "timeout: must be a duration such as \"10s\", got {}",
                type_name(other)
            )));
        }
    };
    if d.is_zero() || d > TIMEOUT_MAX {
        return Err(invalid(format!(
            "timeout: must be more than 0 and at most {}s",
            TIMEOUT_MAX.as_secs()
        )));
    }
    Ok(d)
}

fn argv(v: Option<&Value>) -> Result<Vec<String>> {
    let argv: Vec<String> = list("argv", v)?.into_iter().map(str::to_owned).collect();
    if argv[0].is_empty() {
        return Err(invalid("argv[0]: the program must not be empty"));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests;
