//! A run's task instances: list, detail with attempts, clear and mark.

use std::collections::BTreeMap;

use axum::extract::State;
use gale_actions::ClearWhat;
use gale_model::RunId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::runs::{Cleared, MarkRequest};
use super::{Caller, Shared, run_and_task, run_of};
use crate::error::{ApiError, ApiResult, Json, Path, Problem};
use crate::secrets::Secrets;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ClearTaskRequest {
    /// Also every task downstream of it.
    #[serde(default)]
    pub downstream: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TaskInstance {
    pub run_id: i64,
    pub dag_id: String,
    pub task_id: String,
    pub state: String,
    /// The current (or last) attempt; 0 before the first.
    pub try_number: u32,
    pub max_tries: u32,
    pub queue: String,
    pub pool: Option<String>,
    pub worker_id: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub queued_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    pub outputs: BTreeMap<String, String>,
    /// While it waits to start: why (its upstream, a pool, a limit, a retry
    /// time, no worker for its queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

impl From<&gale_store::TaskRow> for TaskInstance {
    fn from(t: &gale_store::TaskRow) -> TaskInstance {
        TaskInstance {
            run_id: t.run_id.0,
            dag_id: t.dag_id.0.clone(),
            task_id: t.task_id.0.clone(),
            state: t.state.as_str().into(),
            try_number: t.try_number,
            max_tries: t.max_tries,
            queue: t.queue.clone(),
            pool: t.pool.clone(),
            worker_id: t.worker_id.clone().map(|w| w.0),
            queued_at: t.queued_at,
            started_at: t.started_at,
            ended_at: t.ended_at,
            outputs: t.outputs.clone(),
            waiting_for: None,
        }
    }
}

/// Why each waiting task of `run` waits (none for a run whose DAG version
/// is gone).
async fn reasons(
    store: &dyn gale_store::Store,
    run: &gale_store::RunRow,
    tasks: &[gale_store::TaskRow],
) -> Result<BTreeMap<String, String>, crate::error::ApiError> {
    Ok(
        match store.get_version(&run.dag_id, &run.version_hash).await? {
            Some(v) => gale_actions::waiting_reasons(store, run, &v.spec, tasks).await?,
            None => BTreeMap::new(),
        },
    )
}

#[derive(Serialize, ToSchema)]
pub struct Attempt {
    pub try_number: u32,
    pub worker_id: String,
    pub host: Option<String>,
    pub pid: Option<i64>,
    /// `running`, `success`, `failed`, `skipped`, `timed_out`, `lost`,
    /// `handed_back`, `cancelled`, `marked_success` or `marked_failed`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// The rendered command.
    pub command: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
}

impl From<&gale_store::AttemptRow> for Attempt {
    fn from(a: &gale_store::AttemptRow) -> Attempt {
        Attempt {
            try_number: a.try_number,
            worker_id: a.worker_id.0.clone(),
            host: a.host.clone(),
            pid: a.pid,
            state: a.state.to_string(),
            exit_code: a.exit_code,
            message: a.message.clone(),
            command: a.command.clone(),
            started_at: a.started_at,
            ended_at: a.ended_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskInstance,
    pub attempts: Vec<Attempt>,
}

/// A run's task instances.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks", tag = "tasks",
    params(("run_id" = i64, Path)),
    responses((status = 200, body = Vec<TaskInstance>), (status = 404, body = Problem)))]
pub(super) async fn list_tasks(
    State(s): Shared,
    Path(run_id): Path<i64>,
) -> ApiResult<Json<Vec<TaskInstance>>> {
    let run = run_of(&*s.store, run_id).await?;
    let tasks = s.store.run_tasks(run.id).await?;
    let mut why = reasons(&*s.store, &run, &tasks).await?;
    Ok(Json(
        tasks
            .iter()
            .map(|t| TaskInstance {
                waiting_for: why.remove(t.task_id.as_str()),
                ..TaskInstance::from(t)
            })
            .collect(),
    ))
}

/// One task instance and all its attempts.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path)),
    responses((status = 200, body = TaskDetail), (status = 404, body = Problem)))]
pub(super) async fn get_task(
    State(s): Shared,
    Path((run_id, task_id)): Path<(i64, String)>,
) -> ApiResult<Json<TaskDetail>> {
    let (run, t) = run_and_task(&*s.store, run_id, &task_id).await?;
    let attempts = s.store.attempts(t.id).await?;
    let secrets = Secrets::of_conf(&run.conf);
    let tasks = s.store.run_tasks(run.id).await?;
    let mut why = reasons(&*s.store, &run, &tasks).await?;
    Ok(Json(TaskDetail {
        task: TaskInstance {
            waiting_for: why.remove(t.task_id.as_str()),
            ..TaskInstance::from(&t)
        },
        attempts: attempts
            .iter()
            .map(|a| {
                let mut out = Attempt::from(a);
                out.command = out.command.map(|c| secrets.mask(&c));
                out
            })
            .collect(),
    }))
}

/// Run one task again (and, with `downstream`, everything after it).
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/tasks/{task_id}/clear", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path)), request_body = ClearTaskRequest,
    responses((status = 200, body = Cleared), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn clear_task(
    State(s): Shared,
    caller: Caller,
    Path((run_id, task_id)): Path<(i64, String)>,
    Json(req): Json<ClearTaskRequest>,
) -> ApiResult<Json<Cleared>> {
    let what = ClearWhat::Tasks {
        task_ids: vec![task_id],
        downstream: req.downstream,
    };
    let cleared = gale_actions::clear(&*s.store, &caller.actor(), RunId(run_id), &what).await?;
    s.run_changed(RunId(run_id));
    Ok(Json(Cleared { cleared }))
}

/// Mark one task success or failed (a running attempt is stopped).
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/tasks/{task_id}/mark", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path)), request_body = MarkRequest,
    responses((status = 200, body = TaskInstance), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn mark_task(
    State(s): Shared,
    caller: Caller,
    Path((run_id, task_id)): Path<(i64, String)>,
    Json(req): Json<MarkRequest>,
) -> ApiResult<Json<TaskInstance>> {
    let t = gale_actions::mark_task(
        &*s.store,
        &caller.actor(),
        RunId(run_id),
        &task_id,
        req.state.into(),
    )
    .await?;
    s.run_changed(RunId(run_id));
    let t = s
        .store
        .get_task(t.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} has no task {task_id:?}")))?;
    Ok(Json(TaskInstance::from(&t)))
}
