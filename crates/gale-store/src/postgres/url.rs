//! Reading a database URL (`postgres://...` or `host=... dbname=...`): libpq's
//! TLS settings are taken off it first, since tokio-postgres knows only
//! `sslmode=disable|prefer|require` and no certificate files; the rest goes to
//! tokio-postgres, and Gale's defaults fill in what it leaves unsaid.
//!
//! The TLS settings, as libpq reads them:
//! - `sslmode`: `disable`, `prefer` (the default: TLS when the server offers
//!   it, the certificate not checked), `require` (TLS or nothing; the
//!   certificate checked as in `verify-ca` when `sslrootcert` is given, as
//!   libpq does), `verify-ca` (the chain checked against `sslrootcert`, not
//!   the name), `verify-full` (the chain, and the host connected to among the
//!   certificate's names). `allow` is refused: it would try plaintext first.
//! - `sslrootcert`: the CA file (PEM) the server's chain must end in, or
//!   `system` (the machine's trusted CAs, which implies `verify-full` and
//!   refuses anything weaker, as libpq 16 does).
//! - `sslcert`, `sslkey`: the client certificate (PEM chain) and its key, for
//!   servers that ask for one (`hostssl ... cert` in pg_hba.conf).
//!
//! Gale reads no default files (`~/.postgresql/root.crt` and the like): a
//! setting that matters is in the URL.

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::config::{Host, TargetSessionAttrs};

use crate::{Error, Result};

/// libpq's `sslmode`: how much TLS a connection must have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext, never TLS.
    Disable,
    /// TLS when the server offers it, plaintext when it does not; the
    /// certificate is not checked (TLS here only hides the traffic from a
    /// passive listener). libpq's default, and Gale's.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is checked only when
    /// `sslrootcert` is given (then as [`SslMode::VerifyCa`]).
    Require,
    /// TLS with a chain that ends in `sslrootcert`; any host name.
    VerifyCa,
    /// TLS with a chain that ends in `sslrootcert`, issued for the host
    /// being connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the CAs that a server's certificate must chain to come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The machine's trusted CAs (`sslrootcert=system`).
    System,
}

/// The TLS settings of a database URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
    /// Client certificate chain (PEM), sent when the server asks for one.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
}

impl TlsSettings {
    /// Whether the server's certificate is checked against a CA.
    pub fn verifies(&self) -> bool {
        match self.mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => self.root_cert.is_some(),
            SslMode::Disable | SslMode::Prefer => false,
        }
    }

    /// Whether the host name is checked against the certificate.
    pub fn verifies_name(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }
}

/// A database URL, read: tokio-postgres's part and the TLS settings.
#[derive(Clone, Debug)]
pub struct PgUrl {
    pub config: tokio_postgres::Config,
    pub tls: TlsSettings,
}

/// The settings taken off the URL before tokio-postgres reads it.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Parses a database URL (`postgres://user@h1:5432,h2:5432/gale?...` or
/// `host=h1,h2 dbname=gale ...`) and adds Gale's defaults where it says nothing.
pub fn parse_url(url: &str) -> Result<PgUrl> {
    let (rest, pairs) = split_tls(url)?;
    let tls = tls_settings(&pairs)?;
    let mut cfg: tokio_postgres::Config = rest.parse().map_err(|e| {
        Error::Invalid(format!(
            "invalid PostgreSQL URL (expected postgres://user@host:port[,host:port...]/dbname): {e}"
        ))
    })?;
    if cfg.get_hosts().is_empty() {
        return Err(Error::Invalid(
            "the PostgreSQL URL names no host (e.g. postgres://gale@127.0.0.1:5432/gale)".into(),
        ));
    }
    cfg.ssl_mode(match tls.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    // Gale writes: a standby is never the right server.
    cfg.target_session_attrs(TargetSessionAttrs::ReadWrite);
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(3));
    }
    if cfg.get_tcp_user_timeout().is_none() {
        cfg.tcp_user_timeout(Duration::from_secs(8));
    }
    cfg.keepalives(true);
    if cfg.get_keepalives_idle() >= Duration::from_secs(7200) {
        cfg.keepalives_idle(Duration::from_secs(3));
    }
    if cfg.get_keepalives_interval().is_none() {
        cfg.keepalives_interval(Duration::from_secs(1));
    }
    if cfg.get_keepalives_retries().is_none() {
        cfg.keepalives_retries(3);
    }
    if cfg.get_options().is_none() {
        cfg.options(
            "-c statement_timeout=10000 -c lock_timeout=5000 \
             -c idle_in_transaction_session_timeout=30000",
        );
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("gale");
    }
    Ok(PgUrl { config: cfg, tls })
}

/// Hosts, ports, database and user of a config: never the password.
pub fn endpoint_of(cfg: &tokio_postgres::Config) -> String {
    let ports = cfg.get_ports();
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        cfg.get_user().unwrap_or("postgres"),
        hosts.join(","),
        cfg.get_dbname().or(cfg.get_user()).unwrap_or("postgres")
    )
}

/// The TLS settings of the pairs taken off a URL (the last of a key counts,
/// as in libpq).
fn tls_settings(pairs: &[(String, String)]) -> Result<TlsSettings> {
    let last = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mode = match last("sslmode") {
        None => None,
        Some("disable") => Some(SslMode::Disable),
        Some("prefer") => Some(SslMode::Prefer),
        Some("require") => Some(SslMode::Require),
        Some("verify-ca") => Some(SslMode::VerifyCa),
        Some("verify-full") => Some(SslMode::VerifyFull),
        Some("allow") => {
            return Err(Error::Invalid(
                "sslmode=allow is not supported (it tries plaintext first): use prefer, \
                 require, verify-ca or verify-full"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(Error::Invalid(format!(
                "invalid sslmode {other:?} in the PostgreSQL URL: use disable, prefer, require, \
                 verify-ca or verify-full"
            )));
        }
    };
    let path = |key: &str| -> Result<Option<PathBuf>> {
        match last(key) {
            None => Ok(None),
            Some("") => Err(Error::Invalid(format!(
                "{key} in the PostgreSQL URL is empty: give a file"
            ))),
            Some(v) => Ok(Some(PathBuf::from(v))),
        }
    };
    let root_cert = match last("sslrootcert") {
        Some("system") => Some(RootCert::System),
        _ => path("sslrootcert")?.map(RootCert::File),
    };
    let mode = match (mode, &root_cert) {
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (Some(m), Some(RootCert::System)) if m != SslMode::VerifyFull => {
            return Err(Error::Invalid(format!(
                "sslrootcert=system needs sslmode=verify-full (the machine's CAs vouch for \
                 names, so checking only the chain would trust any of their certificates), \
                 not sslmode={}",
                m.as_str()
            )));
        }
        (m, _) => m.unwrap_or_default(),
    };
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(Error::Invalid(format!(
            "sslmode={} needs the CA to check the server's certificate against: add \
             sslrootcert=/path/to/ca.crt (or sslrootcert=system for the machine's trusted CAs)",
            mode.as_str()
        )));
    }
    let (client_cert, client_key) = (path("sslcert")?, path("sslkey")?);
    match (&client_cert, &client_key) {
        (Some(_), None) => {
            return Err(Error::Invalid(
                "sslcert without sslkey in the PostgreSQL URL: give the client key too".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(Error::Invalid(
                "sslkey without sslcert in the PostgreSQL URL: give the client certificate too"
                    .into(),
            ));
        }
        _ => {}
    }
    Ok(TlsSettings {
        mode,
        root_cert,
        client_cert,
        client_key,
    })
}

/// Takes libpq's TLS settings ([`TLS_KEYS`]) off a URL or a key=value
/// string; returns the rest, as tokio-postgres will read it, and the pairs
/// taken (values decoded).
pub(super) fn split_tls(url: &str) -> Result<(String, Vec<(String, String)>)> {
    let prefix = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|p| url.starts_with(p));
    match prefix {
        Some(prefix) => split_url(url, prefix.len()),
        None => split_keywords(url),
    }
}

/// The URL form: `?k=v&k=v` after the credentials (which may hold a `?`).
fn split_url(url: &str, prefix: usize) -> Result<(String, Vec<(String, String)>)> {
    let after_prefix = &url[prefix..];
    let creds = after_prefix.find('@').map_or(0, |at| at + 1);
    let Some(q) = after_prefix[creds..].find('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let query_at = prefix + creds + q;
    let (head, query) = (&url[..query_at], &url[query_at + 1..]);
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let key = percent_decode(key)?;
        if TLS_KEYS.contains(&key.as_str()) {
            taken.push((key, percent_decode(value)?));
        } else {
            kept.push(param);
        }
    }
    let rest = match kept.is_empty() {
        true => head.to_owned(),
        false => format!("{head}?{}", kept.join("&")),
    };
    Ok((rest, taken))
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        Error::Invalid(format!(
            "the PostgreSQL URL's {s:?} is not UTF-8 once decoded"
        ))
    })
}

/// The key=value form, tokenised as tokio-postgres does (a value is
/// `'quoted'` or runs to the next whitespace; `\` escapes the next character):
/// the pairs kept stay as written.
fn split_keywords(s: &str) -> Result<(String, Vec<(String, String)>)> {
    let mut it = s.char_indices().peekable();
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    let bad = |what: &str| Error::Invalid(format!("invalid PostgreSQL connection string: {what}"));
    loop {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut key_end = start;
        while let Some((i, c)) = it.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key_end = i + c.len_utf8();
        }
        let key = &s[start..key_end];
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if it.next_if(|(_, c)| *c == '=').is_none() {
            return Err(bad(&format!("expected `=` after {key:?}")));
        }
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let mut end = s.len();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            let mut closed = false;
            while let Some((i, c)) = it.next() {
                match c {
                    '\'' => {
                        closed = true;
                        end = i + 1;
                        break;
                    }
                    '\\' => value.extend(it.next().map(|(_, c)| c)),
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad(&format!("the value of {key:?} has no closing quote")));
            }
        } else {
            while let Some((i, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                end = i + c.len_utf8();
                match c {
                    '\\' => {
                        if let Some((j, c)) = it.next() {
                            value.push(c);
                            end = j + c.len_utf8();
                        }
                    }
                    c => value.push(c),
                }
            }
        }
        if TLS_KEYS.contains(&key) {
            taken.push((key.to_owned(), value));
        } else {
            kept.push(&s[start..end.min(s.len())]);
        }
    }
    Ok((kept.join(" "), taken))
}
