//! Who is asking, and may they: users with argon2id passwords and a role,
//! browser sessions (an HttpOnly, SameSite=Strict cookie whose SHA-256 is the
//! key of a row in the store, so any webserver accepts it), API tokens for
//! `Authorization: Bearer` (shown once, stored hashed), and CSRF protection on
//! every state-changing request a session makes.
//!
//! One middleware ([`authenticate`]) decides for every request: public paths
//! pass; the rest need a session or a token, and the role the method needs
//! (reading: viewer; changing: operator; users, tokens and the audit log:
//! admin).

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "gale_session";
/// How long a login lasts.
pub const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);
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

/// Checks a user's password; on success opens a session and returns its cookie
/// value and CSRF token. A wrong name and a wrong password look the same.
pub async fn login(
    store: &dyn gale_store::Store,
    user: &str,
    password: &str,
) -> Result<Option<(String, String)>, gale_store::Error> {
    let Some(row) = store.get_user(user).await? else {
        // Spend the time a real check takes, so timing does not tell which
        // names exist.
        let _ = verify_password(password, &DUMMY_HASH);
        return Ok(None);
    };
    if !verify_password(password, &row.password_hash) {
        return Ok(None);
    }
    let (id, csrf) = (new_secret(), new_secret());
    // On the store's clock, which the session is checked against: a
    // webserver whose own clock is off must not shorten or stretch it.
    let expires = store
        .now()
        .await?
        .checked_add(SESSION_TTL)
        .unwrap_or(Timestamp::MAX);
    store
        .create_session(&sha256_hex(&id), &row.name, &csrf, expires)
        .await?;
    Ok(Some((id, csrf)))
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

/// The `Set-Cookie` value of a new session (or, with `None`, of its removal).
pub fn session_cookie(value: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!(
            "{SESSION_COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
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
        "/login" | "/health" | "/health/live" | "/health/ready" | "/metrics" | "/favicon.svg"
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
    {
        return Role::Admin;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || path == "/logout" {
        Role::Viewer
    } else {
        Role::Operator
    }
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
    if is_public(&path) {
        return next.run(req).await;
    }
    let api = is_api(&path);
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
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .store
        .get_session(&sha256_hex(value))
        .await?
        .map(|s| Identity {
            user: s.user,
            role: s.role,
            csrf: Some(s.csrf_token),
            via: Via::Session,
        }))
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
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn form_fields_are_decoded() {
        let body = b"a=1&csrf_token=ab%2Fc+d&x=";
        assert_eq!(form_field(body, "csrf_token").as_deref(), Some("ab/c d"));
        assert_eq!(form_field(body, "x").as_deref(), Some(""));
        assert_eq!(form_field(body, "missing"), None);
        assert_eq!(form_field(b"t=%zz%4", "t").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin header is same-origin");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
    }

    #[test]
    fn roles_by_method_and_path() {
        assert_eq!(required_role(&Method::GET, "/api/v1/dags"), Role::Viewer);
        assert_eq!(
            required_role(&Method::POST, "/api/v1/dags/x/runs"),
            Role::Operator
        );
        assert_eq!(required_role(&Method::POST, "/logout"), Role::Viewer);
        assert_eq!(required_role(&Method::GET, "/api/v1/users"), Role::Admin);
        assert_eq!(required_role(&Method::GET, "/api/v1/audit"), Role::Admin);
        assert_eq!(required_role(&Method::GET, "/audit"), Role::Admin);
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }

    #[test]
    fn unknown_users_cost_a_real_password_check() {
        assert!(DUMMY_HASH.starts_with("$argon2id$"), "{}", *DUMMY_HASH);
        assert!(argon2::password_hash::phc::PasswordHash::new(&DUMMY_HASH).is_ok());
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(new_secret(), new_secret());
        let p = new_password();
        assert_eq!(p.len(), 20);
    }
}
