//! The audit log (admins only): who changed what, when, from where, and
//! whether it worked, newest first, a page at a time.

use axum::extract::State;
use gale_store::{AuditAction, AuditFilter, AuditRow};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Shared, limit_of};
use crate::error::{ApiError, ApiResult, Json, Problem, Query};

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// When the store recorded it.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// A user name, `anonymous` (authentication off), `cli:<OS user>`, or for
    /// a failed login the name that was tried (`unknown` for a bad token).
    pub actor: String,
    /// The client's address (the socket's peer: behind a proxy, the proxy),
    /// or `cli`.
    pub origin: String,
    /// What was done, e.g. `run.trigger`, `dag.pause`, `user.create`, `login`.
    pub action: String,
    /// What it was done to: `dag/<id>`, `run/<id>`, `run/<id>/task/<task>`,
    /// `pool/<name>`, `user/<name>`, `token/<id>`.
    pub target: String,
    /// What else says what happened (never a password, a token or a conf value).
    #[schema(value_type = Object)]
    pub detail: serde_json::Map<String, serde_json::Value>,
    /// `success` or `failure`.
    pub outcome: String,
}

impl From<&AuditRow> for AuditEntry {
    fn from(r: &AuditRow) -> AuditEntry {
        AuditEntry {
            id: r.id,
            at: r.at,
            actor: r.actor.clone(),
            origin: r.origin.clone(),
            action: r.action.as_str().to_owned(),
            target: r.target.clone(),
            detail: r.detail.clone(),
            outcome: r.outcome.as_str().to_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this actor's entries (at most 200 characters).
    #[param(max_length = 200)]
    pub actor: Option<String>,
    /// Only this action, e.g. `run.trigger` or `login`.
    pub action: Option<String>,
    /// Only entries recorded at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only entries with a smaller id (the next page).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A filter from the query, or a 400 naming the parameter that is wrong.
pub(crate) fn filter_of(q: &AuditQuery) -> ApiResult<AuditFilter> {
    let limit = limit_of(q.limit, 100, 1000)?;
    let actor = match q.actor.as_deref() {
        Some(a) if a.chars().count() > 200 => {
            return Err(ApiError::bad_request(
                "actor must be at most 200 characters",
            ));
        }
        Some(a) => Some(a.to_owned()),
        None => None,
    };
    let action = match q.action.as_deref() {
        None => None,
        Some(a) => Some(AuditAction::parse(a).ok_or_else(|| {
            ApiError::bad_request(format!(
                "action must be one of {}, not {a:?}",
                AuditAction::names()
            ))
        })?),
    };
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<Timestamp>().map_err(|e| {
            ApiError::bad_request(format!(
                "since must be an RFC 3339 time such as 2026-01-01T00:00:00Z, not {s:?}: {e}"
            ))
        })?),
    };
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::bad_request("before must be at least 1"));
    }
    Ok(AuditFilter {
        actor,
        action,
        since,
        before: q.before,
        limit,
    })
}

/// The audit log, newest first, a page at a time (admins only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = Problem)))]
pub(super) async fn list_audit(
    State(s): Shared,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let filter = filter_of(&q)?;
    let rows = s.store.list_audit(&filter).await?;
    let next_before = (rows.len() == filter.limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditList {
        entries: rows.iter().map(AuditEntry::from).collect(),
        next_before,
    }))
}
