//! Backfills: create one over a date range, list them, follow one, cancel one.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use gale_model::DagId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, Shared, dag_id_of, limit_of};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// First logical date (inclusive), e.g. `2026-01-01`.
    pub from: String,
    /// Last logical date (inclusive).
    pub to: String,
}

#[derive(Serialize, ToSchema)]
pub struct Backfill {
    pub id: i64,
    pub dag_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub from_date: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub to_date: Timestamp,
    pub created_by: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was cancelled.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancelled_at: Option<Timestamp>,
    /// Its runs by state.
    pub runs: BTreeMap<String, u32>,
    /// Runs in all (created), queued, running, and finished.
    pub total: u32,
    pub queued: u32,
    pub running: u32,
    pub done: u32,
    /// `running` (a run is unfinished), `done` or `cancelled`.
    pub state: String,
}

impl From<&gale_store::BackfillRow> for Backfill {
    fn from(b: &gale_store::BackfillRow) -> Backfill {
        use gale_model::RunState;
        Backfill {
            id: b.id,
            dag_id: b.dag_id.0.clone(),
            from_date: b.from_date,
            to_date: b.to_date,
            created_by: b.created_by.clone(),
            created_at: b.created_at,
            cancelled_at: b.cancelled_at,
            runs: b.runs.clone(),
            total: b.runs.values().sum(),
            queued: b.count(RunState::Queued),
            running: b.count(RunState::Running),
            done: b.done(),
            state: b.state().as_str().to_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BackfillCreated {
    #[serde(flatten)]
    pub backfill: Backfill,
    /// Runs this request created.
    pub created_runs: Vec<i64>,
    /// Slots that already had a run.
    pub existing: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackfillQuery {
    pub dag_id: Option<String>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Create one backfill run per schedule slot in a date range.
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/backfills", tag = "backfills",
    params(("dag_id" = String, Path)), request_body = BackfillRequest,
    responses((status = 201, body = BackfillCreated), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn create_backfill(
    State(s): Shared,
    caller: Caller,
    Path(dag_id): Path<String>,
    Json(req): Json<BackfillRequest>,
) -> ApiResult<(StatusCode, Json<BackfillCreated>)> {
    let dag_id = dag_id_of(dag_id)?;
    let b = gale_actions::backfill(&*s.store, &caller.actor(), &dag_id, &req.from, &req.to).await?;
    let row = s
        .store
        .get_backfill(b.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("backfill {} vanished", b.id)))?;
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok((
        StatusCode::CREATED,
        Json(BackfillCreated {
            backfill: Backfill::from(&row),
            created_runs: b.created.iter().map(|r| r.0).collect(),
            existing: b.existing,
        }),
    ))
}

/// Backfills, newest first, with their progress.
#[utoipa::path(get, path = "/api/v1/backfills", tag = "backfills", params(BackfillQuery),
    responses((status = 200, body = Vec<Backfill>), (status = 400, body = Problem)))]
pub(super) async fn list_backfills(
    State(s): Shared,
    Query(q): Query<BackfillQuery>,
) -> ApiResult<Json<Vec<Backfill>>> {
    let limit = limit_of(q.limit, 100, 1000)?;
    let dag = q.dag_id.map(DagId);
    Ok(Json(
        s.store
            .list_backfills(dag.as_ref(), limit)
            .await?
            .iter()
            .map(Backfill::from)
            .collect(),
    ))
}

/// One backfill and its progress.
#[utoipa::path(get, path = "/api/v1/backfills/{backfill_id}", tag = "backfills",
    params(("backfill_id" = i64, Path)),
    responses((status = 200, body = Backfill), (status = 404, body = Problem)))]
pub(super) async fn get_backfill(
    State(s): Shared,
    Path(id): Path<i64>,
) -> ApiResult<Json<Backfill>> {
    let b = s
        .store
        .get_backfill(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no backfill {id}")))?;
    Ok(Json(Backfill::from(&b)))
}

#[derive(Serialize, ToSchema)]
pub struct BackfillCancelledOut {
    #[serde(flatten)]
    pub backfill: Backfill,
    /// Its runs this request cancelled.
    pub cancelled_runs: Vec<i64>,
}

/// Cancel a backfill: no more of its runs are created, and its queued and
/// running runs are cancelled (each as `POST /runs/{run_id}/cancel` would).
#[utoipa::path(post, path = "/api/v1/backfills/{backfill_id}/cancel", tag = "backfills",
    params(("backfill_id" = i64, Path)),
    responses((status = 200, body = BackfillCancelledOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn cancel_backfill(
    State(s): Shared,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<BackfillCancelledOut>> {
    let c = gale_actions::cancel_backfill(&*s.store, &caller.actor(), id).await?;
    for run in &c.cancelled_runs {
        s.run_changed(*run);
    }
    let row = s
        .store
        .get_backfill(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no backfill {id}")))?;
    Ok(Json(BackfillCancelledOut {
        backfill: Backfill::from(&row),
        cancelled_runs: c.cancelled_runs.iter().map(|r| r.0).collect(),
    }))
}
