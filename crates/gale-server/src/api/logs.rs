//! An attempt's log, a page at a time, optionally waiting for new lines.

use std::time::Duration;

use axum::extract::State;
use gale_store::Store;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Shared, limit_of, run_and_task};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::secrets::Secrets;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The attempt (default: the latest).
    #[serde(rename = "try")]
    #[param(rename = "try")]
    pub try_number: Option<u32>,
    /// Only lines after this sequence number (from `next_after`).
    pub after: Option<i64>,
    /// 1–10000 lines (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Wait up to 10 s for new lines while the attempt runs.
    pub follow: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct LogLineOut {
    pub seq: i64,
    #[schema(value_type = String, format = DateTime)]
    pub ts: Timestamp,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogPage {
    pub try_number: u32,
    pub lines: Vec<LogLineOut>,
    /// Pass as `after` to read on.
    pub next_after: i64,
    /// The attempt has ended: no more lines will come.
    pub finished: bool,
}

/// An attempt's log, a page at a time; `follow` waits for new lines.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}/logs", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path), LogQuery),
    responses((status = 200, body = LogPage), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn task_logs(
    State(s): Shared,
    Path((run_id, task_id)): Path<(i64, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    let limit = limit_of(q.limit, 1000, 10_000)?;
    let (run, t) = run_and_task(&*s.store, run_id, &task_id).await?;
    let secrets = Secrets::of_conf(&run.conf);
    if t.try_number == 0 {
        return Err(ApiError::not_found(format!(
            "task {task_id} of run {run_id} has not started yet: no attempt, no log"
        )));
    }
    let try_number = q.try_number.unwrap_or(t.try_number);
    if try_number == 0 || try_number > t.try_number {
        return Err(ApiError::not_found(format!(
            "task {task_id} of run {run_id} has no attempt {try_number} (it has {})",
            t.try_number
        )));
    }
    let after = q.after.unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = s.store.read_logs(t.id, try_number, after, limit).await?;
        let finished = attempt_finished(&*s.store, t.id, try_number).await?;
        let waiting = rows.is_empty()
            && !finished
            && q.follow.unwrap_or(false)
            && tokio::time::Instant::now() < deadline;
        if !waiting {
            let next_after = rows.last().map_or(after, |r| r.seq);
            return Ok(Json(LogPage {
                try_number,
                // Lines written before the end are all in: a page that is not
                // full after the attempt ended is the last.
                finished: finished && rows.len() < limit as usize,
                next_after,
                lines: rows
                    .into_iter()
                    .map(|r| LogLineOut {
                        seq: r.seq,
                        ts: r.ts,
                        stream: r.stream.as_str().into(),
                        text: secrets.mask(&r.text),
                    })
                    .collect(),
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(super) async fn attempt_finished(
    store: &dyn Store,
    ti: gale_store::TiId,
    try_number: u32,
) -> ApiResult<bool> {
    Ok(store
        .attempts(ti)
        .await?
        .iter()
        .find(|a| a.try_number == try_number)
        .is_none_or(|a| a.ended_at.is_some()))
}
