//! Runs: list, trigger, detail, cancel, mark and clear.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use gale_actions::{ClearWhat, Mark};
use gale_model::{DagId, RunId, RunState};
use gale_store::{RunFilter, RunType};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, Shared, dag_id_of, limit_of, run_of};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::secrets::mask_conf;

#[derive(Serialize, ToSchema)]
pub struct Run {
    pub run_id: i64,
    pub dag_id: String,
    pub run_key: String,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: String,
    pub version_hash: String,
    /// `queued`, `running`, `success`, `failed` or `cancelled`.
    pub state: String,
    #[schema(value_type = String, format = DateTime)]
    pub logical_date: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub interval_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub interval_end: Timestamp,
    /// With secret-looking values (password, token, key, …) shown as `***`.
    #[schema(value_type = Object)]
    pub conf: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
}

impl From<&gale_store::RunRow> for Run {
    fn from(r: &gale_store::RunRow) -> Run {
        Run {
            run_id: r.id.0,
            dag_id: r.dag_id.0.clone(),
            run_key: r.run_key.clone(),
            run_type: r.run_type.as_str().into(),
            version_hash: r.version_hash.clone(),
            state: r.state.as_str().into(),
            logical_date: r.logical_date,
            interval_start: r.interval_start,
            interval_end: r.interval_end,
            conf: mask_conf(&r.conf),
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    pub dag_id: Option<String>,
    /// `queued`, `running`, `success`, `failed` or `cancelled`.
    pub state: Option<String>,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: Option<String>,
    /// Only runs with a smaller id (the next page).
    pub before: Option<i64>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    /// Task instances by state.
    pub task_counts: BTreeMap<String, u32>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// A JSON object merged over the DAG's params.
    #[schema(value_type = Option<Object>)]
    pub conf: Option<serde_json::Map<String, serde_json::Value>>,
    /// Default: now. `2026-01-01`, `2026-01-01T02:00` (DAG time zone) or RFC 3339.
    pub logical_date: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    pub state: MarkAs,
}

/// The state a run or task is marked with.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarkAs {
    Success,
    Failed,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ClearRunRequest {
    /// These tasks (default: every failed and upstream-failed task).
    pub task_ids: Option<Vec<String>>,
    /// With `task_ids`: also every task downstream of them.
    #[serde(default)]
    pub downstream: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Cleared {
    /// Task ids sent back to the scheduler.
    pub cleared: Vec<String>,
}

impl From<MarkAs> for Mark {
    fn from(state: MarkAs) -> Mark {
        match state {
            MarkAs::Success => Mark::Success,
            MarkAs::Failed => Mark::Failed,
        }
    }
}

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunQuery),
    responses((status = 200, body = RunList), (status = 400, body = Problem)))]
pub(super) async fn list_runs(
    State(s): Shared,
    Query(q): Query<RunQuery>,
) -> ApiResult<Json<RunList>> {
    let limit = limit_of(q.limit, 100, 1000)?;
    let state = q
        .state
        .as_deref()
        .map(|x| x.parse::<RunState>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("state: {e}")))?;
    let run_type = q
        .run_type
        .as_deref()
        .map(|x| x.parse::<RunType>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("run_type: {e}")))?;
    let runs = s
        .store
        .list_runs(&RunFilter {
            dag_id: q.dag_id.map(DagId),
            state,
            run_type,
            before: q.before.map(RunId),
            limit,
        })
        .await?;
    let next_before = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id.0))
        .flatten();
    Ok(Json(RunList {
        runs: runs.iter().map(Run::from).collect(),
        next_before,
    }))
}

/// Trigger a run of the DAG's current version.
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/runs", tag = "runs",
    params(("dag_id" = String, Path)), request_body = TriggerRequest,
    responses((status = 201, body = Run), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn trigger_run(
    State(s): Shared,
    caller: Caller,
    Path(dag_id): Path<String>,
    Json(req): Json<TriggerRequest>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let dag_id = dag_id_of(dag_id)?;
    let run = gale_actions::trigger(
        &*s.store,
        &caller.actor(),
        &dag_id,
        req.conf.unwrap_or_default(),
        req.logical_date.as_deref(),
    )
    .await?;
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok((StatusCode::CREATED, Json(Run::from(&run))))
}

/// A run and how many of its tasks are in each state.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs",
    params(("run_id" = i64, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem)))]
pub(super) async fn get_run(
    State(s): Shared,
    Path(run_id): Path<i64>,
) -> ApiResult<Json<RunDetail>> {
    let run = run_of(&*s.store, run_id).await?;
    let counts = s.store.run_state_counts(run.id).await?;
    Ok(Json(RunDetail {
        run: Run::from(&run),
        task_counts: counts
            .into_iter()
            .map(|(st, n)| (st.as_str().to_owned(), n))
            .collect(),
    }))
}

/// Cancel a queued or running run: it ends `cancelled`, running attempts killed, the rest skipped.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/cancel", tag = "runs",
    params(("run_id" = i64, Path)),
    responses((status = 200, body = Run), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn cancel_run(
    State(s): Shared,
    caller: Caller,
    Path(run_id): Path<i64>,
) -> ApiResult<Json<Run>> {
    let run = gale_actions::cancel_run(&*s.store, &caller.actor(), RunId(run_id)).await?;
    s.run_changed(run.id);
    Ok(Json(Run::from(&run_of(&*s.store, run_id).await?)))
}

/// Mark a run success or failed, with its unfinished tasks.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/mark", tag = "runs",
    params(("run_id" = i64, Path)), request_body = MarkRequest,
    responses((status = 200, body = Run), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn mark_run(
    State(s): Shared,
    caller: Caller,
    Path(run_id): Path<i64>,
    Json(req): Json<MarkRequest>,
) -> ApiResult<Json<Run>> {
    let run =
        gale_actions::mark_run(&*s.store, &caller.actor(), RunId(run_id), req.state.into()).await?;
    s.run_changed(run.id);
    Ok(Json(Run::from(&run_of(&*s.store, run_id).await?)))
}

/// Run tasks of a run again: its failed ones, or the ones named.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/clear", tag = "runs",
    params(("run_id" = i64, Path)), request_body = ClearRunRequest,
    responses((status = 200, body = Cleared), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn clear_run(
    State(s): Shared,
    caller: Caller,
    Path(run_id): Path<i64>,
    Json(req): Json<ClearRunRequest>,
) -> ApiResult<Json<Cleared>> {
    let what = match req.task_ids {
        None => ClearWhat::Failed,
        Some(task_ids) if task_ids.is_empty() => {
            return Err(ApiError::bad_request(
                "task_ids is empty: name at least one task",
            ));
        }
        Some(task_ids) => ClearWhat::Tasks {
            task_ids,
            downstream: req.downstream,
        },
    };
    let cleared = gale_actions::clear(&*s.store, &caller.actor(), RunId(run_id), &what).await?;
    s.run_changed(RunId(run_id));
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok(Json(Cleared { cleared }))
}
