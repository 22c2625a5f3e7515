//! Logging in and out. The login page and its POST are public (the auth
//! middleware lets `/login` through); they refuse a cross-site POST themselves,
//! so another site cannot log a browser into someone else's account. Logins
//! are throttled (`auth::check_password`): a locked-out address or name gets
//! the form again with 429 and `Retry-After`.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gale_store::AuditOutcome;
use serde::Deserialize;

use super::{Ctx, assets, html, is_local_path, see_other};
use crate::AppState;
use crate::audit;
use crate::auth::{self, LoginError, Peer};
use crate::throttle::Refused;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    asset_v: &'static str,
    next: String,
    user: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// Where to go after logging in: `next` if it is a path on this server, else `/`.
pub(crate) fn next_target(next: Option<&str>) -> &str {
    next.filter(|n| is_local_path(n)).unwrap_or("/")
}

/// The login form; someone already logged in goes straight on.
pub async fn page(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = next_target(q.next.as_deref()).to_owned();
    if !s.auth {
        return see_other(&next, None, s.secure_cookies);
    }
    if let Some(cookie) = auth::cookie(&headers, auth::session_cookie_name(s.secure_cookies)) {
        // A store error here just shows the form.
        if let Ok(Some(_)) = s
            .store
            .get_session(&auth::sha256_hex(cookie), s.session_idle)
            .await
        {
            return see_other(&next, None, s.secure_cookies);
        }
    }
    html(&LoginPage {
        asset_v: assets::version(),
        next,
        user: String::new(),
        error: None,
    })
}

/// Checks the password; on success opens a new session (ending the one the
/// browser had, if any), sets its cookie and goes to `next`.
pub async fn submit(
    State(s): State<Arc<AppState>>,
    Peer(addr): Peer,
    audit::Peer(peer): audit::Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = next_target(form.next.as_deref()).to_owned();
    let form_again = |status: StatusCode, error: &str| {
        let page = LoginPage {
            asset_v: assets::version(),
            next: next.clone(),
            user: form.user.clone(),
            error: Some(error.to_owned()),
        };
        (status, html(&page)).into_response()
    };
    if !auth::same_origin(&headers) {
        return form_again(
            StatusCode::FORBIDDEN,
            "this login came from another site and was refused",
        );
    }
    let user = form.user.trim();
    let opened = match auth::check_password(&s, addr, user, &form.password).await {
        Ok(row) => {
            let old = auth::cookie(&headers, auth::session_cookie_name(s.secure_cookies));
            auth::open_session(&*s.store, &row.name, old)
                .await
                .map_err(LoginError::Store)
        }
        Err(e) => Err(e),
    };
    match opened {
        Ok((cookie, _csrf)) => {
            audit::form_login(&*s.store, user, &peer, true).await;
            let mut res = see_other(&next, None, s.secure_cookies);
            res.headers_mut().append(
                header::SET_COOKIE,
                auth::session_cookie(Some(&cookie), s.secure_cookies),
            );
            res
        }
        Err(LoginError::Wrong) => {
            audit::form_login(&*s.store, user, &peer, false).await;
            form_again(StatusCode::UNAUTHORIZED, "wrong user name or password")
        }
        // Not audited: throttled attempts are counted in /metrics and logged;
        // a row each would let a flood write without bound.
        Err(e @ LoginError::Refused(_)) => {
            let secs = e.retry_after().unwrap_or(1);
            let (status, text) = match e {
                LoginError::Refused(Refused::Busy) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("too many logins at once: try again in {secs} s"),
                ),
                _ => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many failed logins: try again in {secs} s"),
                ),
            };
            let mut res = form_again(status, &text);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            res
        }
        Err(LoginError::Store(e)) => {
            tracing::warn!(error = %e, "login failed: store error");
            form_again(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable: try again in a few seconds",
            )
        }
    }
}

/// Ends the session (in the store, so no webserver accepts it any more) and
/// clears the cookie.
pub async fn logout(State(s): State<Arc<AppState>>, ctx: Ctx, headers: HeaderMap) -> Response {
    if let Some(cookie) = auth::cookie(&headers, auth::session_cookie_name(s.secure_cookies)) {
        if let Err(e) = s.store.delete_session(&auth::sha256_hex(cookie)).await {
            tracing::warn!(error = %e, user = %ctx.identity.user, "logout: deleting the session failed");
            return ctx.error(e.into());
        }
        let target = format!("user/{}", ctx.identity.user);
        let none = serde_json::Map::new();
        gale_actions::audit::record(
            &*s.store,
            &ctx.actor(),
            gale_store::AuditAction::Logout,
            &target,
            none,
            AuditOutcome::Success,
        )
        .await;
    }
    let mut res = see_other("/login", None, s.secure_cookies);
    res.headers_mut().append(
        header::SET_COOKIE,
        auth::session_cookie(None, s.secure_cookies),
    );
    res
}
