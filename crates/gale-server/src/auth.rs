//! Who is asking, and may they: users with argon2id passwords and a role,
//! browser sessions (an HttpOnly, SameSite=Strict cookie whose SHA-256 is the
//! key of a row in the store, so any webserver accepts it; a new one at every
//! login, ended after an idle time), API tokens for `Authorization: Bearer`
//! (shown once, stored hashed, with a lifetime), and CSRF protection on every
//! state-changing request a session makes.
//!
//! Password checks ([`check_password`]) are throttled per address and per
//! user name (`throttle`) and run off the async runtime, a bounded number at
//! once. One middleware ([`authenticate`]) decides for every request: public
//! paths pass; the rest need a session or a token, and the role the method
//! needs (reading: viewer; changing: operator; users, tokens and the audit
//! log, and changing variables, connections and alert channels: admin).
//! With authentication off, it still refuses what another site's page could
//! send.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::http::LocalAddr;
use crate::throttle::{self, Refused};

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "gale_session";
/// Its name when browsers come over HTTPS: the prefix makes them refuse it
/// unless it is `Secure`, has `Path=/` and no `Domain` (so no other host or
/// plain-HTTP page can plant one).
pub const SECURE_SESSION_COOKIE: &str = "__Host-gale_session";
/// The longest a login lasts, however much it is used.
pub const SESSION_LIFETIME: SignedDuration = SignedDuration::from_hours(7 * 24);
/// How long an unused login lasts (the default of `--session-idle-timeout`).
pub const SESSION_IDLE: SignedDuration = SignedDuration::from_hours(12);
/// How long an API token lasts unless its maker says otherwise.
pub const TOKEN_LIFETIME: SignedDuration = SignedDuration::from_hours(90 * 24);
/// Form field and header that carry a session's CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub use gale_store::Role;

/// How a request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
    /// Authentication is turned off (`--no-auth`, loopback only).
    Open,
}

/// The caller of a request, in its extensions once [`authenticate`] let it in.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user: String,
    pub role: Role,
    /// The session's CSRF token (pages put it in forms and a meta tag).
    pub csrf: Option<String>,
    pub via: Via,
}

impl Identity {
    pub fn can(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match argon2::password_hash::phc::PasswordHash::new(phc) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// 32 random bytes, URL-safe base64 without padding.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A password people can type: 20 characters from an unambiguous alphabet.
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

/// Why a login opened no session.
#[derive(Debug)]
pub enum LoginError {
    /// Throttled (429 with `Retry-After`) or every check busy (503).
    Refused(Refused),
    /// A wrong user name or password (they look the same).
    Wrong,
    Store(gale_store::Error),
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> ApiError {
        match e {
            LoginError::Refused(Refused::Throttled(_)) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins: try again after the time in Retry-After",
            ),
            LoginError::Refused(Refused::Busy) => {
                ApiError::unavailable("too many logins at once: try again shortly")
            }
            LoginError::Wrong => ApiError::unauthorized("wrong user name or password"),
            LoginError::Store(e) => e.into(),
        }
    }
}

impl LoginError {
    /// The `Retry-After` seconds of a refusal.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            LoginError::Refused(Refused::Throttled(d)) => Some(throttle::retry_after_secs(*d)),
            LoginError::Refused(Refused::Busy) => Some(2),
            _ => None,
        }
    }

    /// Its problem+json answer, with `Retry-After` when it has one.
    pub fn into_response(self) -> Response {
        let retry = self.retry_after();
        let mut res = ApiError::from(self).into_response();
        if let Some(secs) = retry {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Checks a user's password, as every login does (the form and the API):
/// refused while the address or the name is locked out, else checked on a
/// blocking thread (at most `LoginPolicy::max_checks` at once). Every check
/// ends in [`login_succeeded`] or [`login_failed`].
pub async fn check_password(
    state: &AppState,
    addr: Option<IpAddr>,
    user: &str,
    password: &str,
) -> Result<gale_store::UserRow, LoginError> {
    if let Err(refused) = state.logins.admit(addr, user) {
        tracing::warn!(user = ?user, address = ?addr, "login refused: locked out after failed logins");
        return Err(LoginError::Refused(refused));
    }
    let slot = state
        .logins
        .check_slot()
        .await
        .map_err(LoginError::Refused)?;
    // Again: logins that waited for the slot may have locked it out since.
    if let Err(refused) = state.logins.admit(addr, user) {
        return Err(LoginError::Refused(refused));
    }
    let row = state
        .store
        .get_user(user)
        .await
        .map_err(LoginError::Store)?;
    let phc = row.as_ref().map(|r| r.password_hash.clone());
    let password = password.to_owned();
    let verified = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        match phc {
            Some(phc) => verify_password(&password, &phc),
            None => {
                // Spend the time a real check takes, so timing does not tell
                // which names exist.
                let _ = verify_password(&password, &DUMMY_HASH);
                false
            }
        }
    })
    .await
    .unwrap_or(false);
    match row {
        Some(row) if verified => {
            login_succeeded(state, addr, &row.name);
            Ok(row)
        }
        _ => {
            login_failed(state, addr, user);
            Err(LoginError::Wrong)
        }
    }
}

/// A correct password: the user's failures are forgotten.
fn login_succeeded(state: &AppState, addr: Option<IpAddr>, user: &str) {
    state.logins.succeeded(user);
    tracing::info!(user = ?user, address = ?addr, "login");
}

/// A wrong user name or password: counted (and maybe locked out), logged
/// (never the password) and in `gale_login_failures_total`.
fn login_failed(state: &AppState, addr: Option<IpAddr>, user: &str) {
    let lockout = state.logins.failed(addr, user);
    tracing::warn!(
        user = ?user,
        address = ?addr,
        lockout_s = lockout.map(|d| d.as_secs_f64()),
        "login failed: wrong user name or password"
    );
}

/// Opens a session for `user` (a new id at every login); ends the session
/// of `replaces`, the cookie the browser sent, if any, so an id from before
/// the login is never used after it. Returns the cookie value and the CSRF
/// token.
pub async fn open_session(
    store: &dyn gale_store::Store,
    user: &str,
    replaces: Option<&str>,
) -> Result<(String, String), gale_store::Error> {
    if let Some(old) = replaces {
        store.delete_session(&sha256_hex(old)).await?;
    }
    let (id, csrf) = (new_secret(), new_secret());
    // On the store's clock, which the session is checked against: a
    // webserver whose own clock is off must not shorten or stretch it.
    let expires = store
        .now()
        .await?
        .checked_add(SESSION_LIFETIME)
        .unwrap_or(Timestamp::MAX);
    store
        .create_session(&sha256_hex(&id), user, &csrf, expires)
        .await?;
    store.record_login(user).await?;
    Ok((id, csrf))
}

/// The client's address, when the request came over a socket.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The argon2id hash of a random password nobody knows (made once, at the
/// first login attempt).
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&new_secret()).unwrap_or_default());

/// Creates an API token for `user`; returns its id and the secret (shown once).
pub async fn create_token(
    store: &dyn gale_store::Store,
    user: &str,
    name: &str,
    expires_at: Option<Timestamp>,
) -> Result<(i64, String), gale_store::Error> {
    let secret = format!("gale_{}", new_secret());
    let id = store
        .create_token(name, user, &sha256_hex(&secret), expires_at)
        .await?;
    Ok((id, secret))
}

/// The session cookie's name: `__Host-` prefixed when browsers come over HTTPS.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The `Set-Cookie` value of a new session (or, with `None`, of its removal).
pub fn session_cookie(value: Option<&str>, secure: bool) -> HeaderValue {
    let name = session_cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!(
            "{name}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_LIFETIME.as_secs()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Paths anyone may fetch: the login page, health checks, metrics, static
/// assets and the API's description.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/login"
            | "/api/v1/tokens"
            | "/health"
            | "/health/live"
            | "/health/ready"
            | "/metrics"
            | "/favicon.svg"
    ) || path.starts_with("/assets/")
        || path == "/api/v1/openapi.json"
        || path.starts_with("/api/docs")
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The role a request needs.
fn required_role(method: &Method, path: &str) -> Role {
    if path.starts_with("/api/v1/users")
        || path.starts_with("/users")
        || path.starts_with("/api/v1/audit")
        || path.starts_with("/audit")
        // The UI's token and pool pages (not the API's `/api/v1/tokens`,
        // a token by password, nor `/api/v1/pools`, which everyone reads).
        || under(path, &["/tokens", "/pools"])
    {
        return Role::Admin;
    }
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !reads && is_vault_path(path) {
        return Role::Admin;
    }
    if reads || path == "/logout" {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// Variables, connections and alert channels, in the API and the UI:
/// anyone reads them (secrets masked), only admins change them (and reveal
/// or test, which their handlers check).
fn is_vault_path(path: &str) -> bool {
    under(
        path,
        &[
            "/api/v1/variables",
            "/api/v1/connections",
            "/api/v1/alerts",
            "/variables",
            "/connections",
            "/alerts",
        ],
    )
}

/// Whether `path` is one of `prefixes` or below one (`/pools/x`, not `/poolside`).
fn under(path: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The most a form body may be (it is read here to find the CSRF token).
const FORM_LIMIT: usize = 1 << 20;

/// Decides every request: lets public paths through, finds the caller from a
/// bearer token or the session cookie, enforces roles and, for session
/// requests that change something, the CSRF token and same-origin rule.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let api = is_api(&path);
    if !state.auth
        && let Some(why) = open_request_refused(&req)
    {
        tracing::warn!(path = %path, reason = why, "request refused (authentication is off)");
        return ApiError::forbidden(why).into_response();
    }
    if is_public(&path) {
        return next.run(req).await;
    }
    let deny = |e: ApiError| -> Response {
        if api || e.status != StatusCode::UNAUTHORIZED {
            let mut r = e.into_response();
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            r
        } else {
            e.into_response()
        }
    };
    let identity = if !state.auth {
        Identity {
            user: "anonymous".into(),
            role: Role::Admin,
            csrf: None,
            via: Via::Open,
        }
    } else {
        match identify(&state, req.headers()).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                if !api && matches!(*req.method(), Method::GET | Method::HEAD) {
                    let next_path = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/");
                    return Redirect::to(&format!("/login?next={}", url_escape(next_path)))
                        .into_response();
                }
                return deny(ApiError::unauthorized(
                    "log in, or send an API token as `Authorization: Bearer <token>`",
                ));
            }
            Err(e) => {
                if e.status == StatusCode::UNAUTHORIZED {
                    crate::audit::token_refused(&*state.store, req.extensions(), &e.detail).await;
                }
                return deny(e);
            }
        }
    };
    let needed = required_role(req.method(), &path);
    if !identity.can(needed) {
        return deny(ApiError::forbidden(format!(
            "{} is a {}; this needs the {} role",
            identity.user,
            identity.role.as_str(),
            needed.as_str()
        )));
    }
    let mut req = req;
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && identity.via == Via::Session {
        if !same_origin(req.headers()) {
            return deny(ApiError::forbidden(
                "cross-site request refused (its Origin is not this server)",
            ));
        }
        let expected = identity.csrf.clone().unwrap_or_default();
        let header_token = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ok = match header_token {
            Some(t) => constant_time_eq(&t, &expected),
            None if is_form(req.headers()) => {
                let (parts, body) = req.into_parts();
                let bytes = match axum::body::to_bytes(body, FORM_LIMIT).await {
                    Ok(b) => b,
                    Err(_) => {
                        return deny(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "the form is larger than 1 MiB",
                        ));
                    }
                };
                let ok =
                    form_field(&bytes, CSRF_FIELD).is_some_and(|t| constant_time_eq(&t, &expected));
                req = Request::from_parts(parts, Body::from(bytes));
                ok
            }
            None => false,
        };
        if !ok {
            return deny(ApiError::forbidden(
                "missing or wrong CSRF token: reload the page and try again",
            ));
        }
    }
    req.extensions_mut().insert(identity);
    next.run(req).await
}

async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Option<Identity>, ApiError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let text = auth.to_str().unwrap_or("");
        let Some(secret) = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
        else {
            return Err(ApiError::unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        };
        return match state.store.get_token(&sha256_hex(secret.trim())).await? {
            Some(t) => Ok(Some(Identity {
                user: t.user,
                role: t.role,
                csrf: None,
                via: Via::Token,
            })),
            None => Err(ApiError::unauthorized(
                "the API token is unknown, revoked or expired",
            )),
        };
    }
    let Some(value) = cookie(headers, session_cookie_name(state.secure_cookies)) else {
        return Ok(None);
    };
    Ok(state
        .store
        .get_session(&sha256_hex(value), state.session_idle)
        .await?
        .map(|s| Identity {
            user: s.user,
            role: s.role,
            csrf: Some(s.csrf_token),
            via: Via::Session,
        }))
}

/// With authentication off (loopback only), what a page of another site
/// could make a browser send: a request whose `Host` is not a loopback name
/// or address with this server's port (DNS rebinding: a name of the
/// attacker's that resolves to 127.0.0.1), or a change sent from another
/// origin (`Origin` not this `Host`, or `Sec-Fetch-Site` cross-site or
/// same-site). Returns why it is refused.
fn open_request_refused(req: &Request) -> Option<&'static str> {
    let headers = req.headers();
    let port = req.extensions().get::<LocalAddr>().map(|a| a.0.port());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| loopback_host(h, port)) {
        return Some(
            "the Host header is not this server's loopback address and port \
             (authentication is off, so only http://127.0.0.1:PORT or http://localhost:PORT is served)",
        );
    }
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if fetch_site.eq_ignore_ascii_case("cross-site")
        || fetch_site.eq_ignore_ascii_case("same-site")
        || !same_origin(headers)
    {
        return Some("cross-site request refused (its Origin is not this server)");
    }
    None
}

/// `localhost`, or a loopback address, with `port` (when known; no port in
/// the header means 80).
fn loopback_host(host: &str, port: Option<u16>) -> bool {
    let (name, given) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, after)) => (name, after.strip_prefix(':')),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, p)) => (name, Some(p)),
            None => (host, None),
        },
    };
    let given = match given {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => return false,
        },
        None => 80,
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback && port.is_none_or(|p| p == given)
}

/// No `Origin` (same-origin GET navigations, old browsers) or one whose host is
/// this request's `Host`.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// A field of a URL-encoded form.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| url_unescape(k) == name)
        .map(|(_, v)| url_unescape(v))
}

fn url_unescape(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).and_then(|b| hex(*b)),
                    bytes.get(i + 2).and_then(|b| hex(*b)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
