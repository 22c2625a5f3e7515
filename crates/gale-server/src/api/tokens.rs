//! API tokens by password: a script logs in once and gets a token for
//! `Authorization: Bearer` (throttled like the login form).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Shared;
use crate::audit::{self, LoginVia};
use crate::auth::{self, Peer};
use crate::error::{ApiError, Json, Problem};
use gale_store::AuditOutcome;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub user: String,
    pub password: String,
    /// A label, e.g. the script that uses it.
    pub name: String,
    /// How long it lasts, e.g. `30d` or `12h` (default 90 days).
    pub expires_in: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: i64,
    /// The secret, shown only now: send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// Create an API token for a user by their password. Failed attempts are
/// throttled per address and per user: past a few, the answer is 429 with
/// `Retry-After` until the lockout ends. A new password revokes the user's
/// tokens.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenRequest,
    security(()),
    responses((status = 201, body = TokenCreated), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
pub(super) async fn create_token(
    axum::extract::State(s): Shared,
    Peer(addr): Peer,
    audit::Peer(peer): audit::Peer,
    Json(req): Json<TokenRequest>,
) -> Response {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 200 {
        return ApiError::bad_request("name must have 1–200 characters").into_response();
    }
    let lifetime = match req.expires_in.as_deref().map(str::trim) {
        None => auth::TOKEN_LIFETIME,
        Some(text) => match lifetime_of(text) {
            Ok(d) => d,
            Err(e) => return e.into_response(),
        },
    };
    let given = req.user.trim();
    let user = match auth::check_password(&s, addr, given, &req.password).await {
        Ok(row) => row,
        Err(e) => {
            // A wrong password is audited; a throttled attempt only counted
            // (a row each would let a flood write without bound).
            if matches!(e, auth::LoginError::Wrong) {
                let failure = AuditOutcome::Failure;
                let why = Some("wrong user name or password");
                audit::record_login(&*s.store, given, &peer, LoginVia::Password, failure, why)
                    .await;
            }
            return e.into_response();
        }
    };
    let created = async {
        let expires = s
            .store
            .now()
            .await?
            .checked_add(lifetime)
            .map_err(|_| ApiError::bad_request("expires_in is too far in the future"))?;
        let (id, token) = auth::create_token(&*s.store, &user.name, name, Some(expires)).await?;
        let success = AuditOutcome::Success;
        audit::record_login(
            &*s.store,
            &user.name,
            &peer,
            LoginVia::Password,
            success,
            None,
        )
        .await;
        let actor = gale_actions::Actor::new(user.name.clone(), &peer);
        let about = gale_actions::audit::detail([
            ("name", serde_json::json!(name)),
            ("id", serde_json::json!(id)),
        ]);
        gale_actions::audit::record(
            &*s.store,
            &actor,
            gale_store::AuditAction::TokenCreate,
            &format!("user/{}", user.name),
            about,
            success,
        )
        .await;
        Ok::<_, ApiError>(TokenCreated {
            id,
            token,
            user: user.name.clone(),
            name: name.to_owned(),
            expires_at: expires,
        })
    };
    match created.await {
        Ok(t) => {
            let mut res = (StatusCode::CREATED, Json(t)).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => e.into_response(),
    }
}

/// A token lifetime: a positive span.
fn lifetime_of(text: &str) -> Result<SignedDuration, ApiError> {
    let span = gale_model::duration::parse(text)
        .map_err(|e| ApiError::bad_request(format!("expires_in: {e}")))?;
    if span.0.is_zero() {
        return Err(ApiError::bad_request("expires_in must be more than 0"));
    }
    SignedDuration::try_from(span.0)
        .map_err(|_| ApiError::bad_request("expires_in is too far in the future"))
}
