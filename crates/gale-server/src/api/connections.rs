//! Connections: anyone reads them (the password and secret-looking extra
//! values as `***`); admins create, change, delete and reveal them, each
//! recorded in the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use gale_store::Role;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::variables::{REVEALING, RevealQuery};
use super::{Caller, Shared};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::vault::{self, ConnectionEdit, ConnectionView, Saved};

/// A connection: an Airflow URI (`postgres://login:password@host:5432/db?sslmode=require`,
/// every part percent-encoded) or the fields, not both. Storing a password or
/// an extra needs the server's secret key.
#[derive(ToSchema)]
pub struct ConnectionBody {
    /// 1 to 250 letters, digits, `_`, `.` and `-` (in `POST` only).
    pub name: Option<String>,
    pub uri: Option<String>,
    /// `postgres`, `http`, `aws`, ... (required without `uri`).
    pub conn_type: Option<String>,
    pub host: Option<String>,
    /// A number, or digits as text.
    pub port: Option<u16>,
    pub login: Option<String>,
    /// Left out (or `***`) keeps the current one; empty clears it.
    pub password: Option<String>,
    pub schema: Option<String>,
    /// An object (or its JSON text); left out keeps the current one, and
    /// values sent as `***` keep theirs.
    #[schema(value_type = Option<Object>)]
    pub extra: Option<Map<String, Value>>,
    pub description: Option<String>,
}

const CHANGING: &str = "changing variables and connections";

/// Every connection, the password and secret-looking extra values as `***`.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections",
    responses((status = 200, body = Vec<ConnectionView>)))]
pub(super) async fn list_connections(State(s): Shared) -> ApiResult<Json<Vec<ConnectionView>>> {
    Ok(Json(vault::connections(&s).await?))
}

/// Create a connection (admins only). A password or an extra needs the
/// server's secret key: without one the answer is 400, saying how to make it.
#[utoipa::path(post, path = "/api/v1/connections", tag = "connections",
    request_body = ConnectionBody,
    responses((status = 201, body = ConnectionView), (status = 400, body = Problem),
        (status = 409, body = Problem)))]
pub(super) async fn create_connection(
    State(s): Shared,
    caller: Caller,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    caller.require(Role::Admin, CHANGING)?;
    let (name, edit) = ConnectionEdit::from_json(&body, true).map_err(ApiError::bad_request)?;
    let name = name.unwrap_or_default();
    vault::save_connection(&s, &caller.actor(), &name, edit, true).await?;
    Ok((
        StatusCode::CREATED,
        Json(vault::connection(&s, &name).await?),
    ))
}

/// A connection; with `reveal=true` (admins only) in clear with its URI,
/// recorded in the audit log as `connection.reveal`.
#[utoipa::path(get, path = "/api/v1/connections/{name}", tag = "connections", params(
        ("name" = String, Path, description = "The connection's name"), RevealQuery),
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem)))]
pub(super) async fn get_connection(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<RevealQuery>,
) -> ApiResult<Json<ConnectionView>> {
    if q.reveal == Some(true) {
        caller
            .require_reveal(
                &*s.store,
                gale_store::AuditAction::ConnectionReveal,
                &format!("connection/{name}"),
                REVEALING,
            )
            .await?;
        return Ok(Json(
            vault::reveal_connection(&s, &caller.actor(), &name).await?,
        ));
    }
    Ok(Json(vault::connection(&s, &name).await?))
}

/// Create or replace a connection (admins only): a password or extra left
/// out keeps the current one, so a secret need not be sent again.
#[utoipa::path(put, path = "/api/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    request_body = ConnectionBody,
    responses((status = 200, body = ConnectionView), (status = 201, body = ConnectionView),
        (status = 400, body = Problem)))]
pub(super) async fn put_connection(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    caller.require(Role::Admin, CHANGING)?;
    let (_, edit) = ConnectionEdit::from_json(&body, false).map_err(ApiError::bad_request)?;
    let saved = vault::save_connection(&s, &caller.actor(), &name, edit, false).await?;
    let status = match saved {
        Saved::Created => StatusCode::CREATED,
        Saved::Replaced => StatusCode::OK,
    };
    Ok((status, Json(vault::connection(&s, &name).await?)))
}

/// Delete a connection (admins only).
#[utoipa::path(delete, path = "/api/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
pub(super) async fn delete_connection(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin, CHANGING)?;
    vault::delete_connection(&s, &caller.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
