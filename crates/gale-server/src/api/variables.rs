//! Variables: anyone reads them (a secret one's value as `***`); admins
//! create, change, delete and reveal them, each recorded in the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use gale_store::Role;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, Shared};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::vault::{self, Saved, VariableEdit, VariableView};

/// A new variable.
#[derive(ToSchema)]
pub struct NewVariable {
    /// 1 to 250 letters, digits, `_`, `.` and `-`.
    pub name: String,
    /// At most 64 KiB; JSON text when `json` is true.
    pub value: String,
    pub json: Option<bool>,
    /// Sealed at rest and shown as `***` (a secret-looking name makes it
    /// secret too). Storing one needs the server's secret key.
    pub secret: Option<bool>,
    pub description: Option<String>,
}

/// A change to a variable: fields left out keep their values (a new one
/// needs `value`); a secret variable's value sent as `***` is kept too.
#[derive(ToSchema)]
pub struct VariableChange {
    pub value: Option<String>,
    pub json: Option<bool>,
    pub secret: Option<bool>,
    /// Empty clears it.
    pub description: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    /// The value in clear (admins only; recorded in the audit log).
    pub reveal: Option<bool>,
}

pub(super) const REVEALING: &str = "revealing a secret";
const CHANGING: &str = "changing variables and connections";

/// Every variable, a secret one's value as `***`.
#[utoipa::path(get, path = "/api/v1/variables", tag = "variables",
    responses((status = 200, body = Vec<VariableView>)))]
pub(super) async fn list_variables(State(s): Shared) -> ApiResult<Json<Vec<VariableView>>> {
    Ok(Json(vault::variables(&s).await?))
}

/// Create a variable (admins only). A secret one needs the server's secret
/// key: without one the answer is 400, saying how to make it.
#[utoipa::path(post, path = "/api/v1/variables", tag = "variables", request_body = NewVariable,
    responses((status = 201, body = VariableView), (status = 400, body = Problem),
        (status = 409, body = Problem)))]
pub(super) async fn create_variable(
    State(s): Shared,
    caller: Caller,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<VariableView>)> {
    caller.require(Role::Admin, CHANGING)?;
    let (name, edit) = VariableEdit::from_json(&body, true).map_err(ApiError::bad_request)?;
    let name = name.unwrap_or_default();
    vault::save_variable(&s, &caller.actor(), &name, edit, true).await?;
    Ok((StatusCode::CREATED, Json(vault::variable(&s, &name).await?)))
}

/// A variable; with `reveal=true` (admins only) a secret value in clear,
/// recorded in the audit log as `variable.reveal`.
#[utoipa::path(get, path = "/api/v1/variables/{name}", tag = "variables", params(
        ("name" = String, Path, description = "The variable's name"), RevealQuery),
    responses((status = 200, body = VariableView), (status = 404, body = Problem)))]
pub(super) async fn get_variable(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<RevealQuery>,
) -> ApiResult<Json<VariableView>> {
    if q.reveal == Some(true) {
        caller
            .require_reveal(
                &*s.store,
                gale_store::AuditAction::VariableReveal,
                &format!("variable/{name}"),
                REVEALING,
            )
            .await?;
        return Ok(Json(
            vault::reveal_variable(&s, &caller.actor(), &name).await?,
        ));
    }
    Ok(Json(vault::variable(&s, &name).await?))
}

/// Create or change a variable (admins only): fields left out keep their
/// values, so a secret need not be sent again.
#[utoipa::path(put, path = "/api/v1/variables/{name}", tag = "variables",
    params(("name" = String, Path, description = "The variable's name")),
    request_body = VariableChange,
    responses((status = 200, body = VariableView), (status = 201, body = VariableView),
        (status = 400, body = Problem)))]
pub(super) async fn put_variable(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<VariableView>)> {
    caller.require(Role::Admin, CHANGING)?;
    let (_, edit) = VariableEdit::from_json(&body, false).map_err(ApiError::bad_request)?;
    let saved = vault::save_variable(&s, &caller.actor(), &name, edit, false).await?;
    let status = match saved {
        Saved::Created => StatusCode::CREATED,
        Saved::Replaced => StatusCode::OK,
    };
    Ok((status, Json(vault::variable(&s, &name).await?)))
}

/// Delete a variable (admins only).
#[utoipa::path(delete, path = "/api/v1/variables/{name}", tag = "variables",
    params(("name" = String, Path, description = "The variable's name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
pub(super) async fn delete_variable(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin, CHANGING)?;
    vault::delete_variable(&s, &caller.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
