//! An operator's decisions about a run or a task: mark it success or failed,
//! or cancel a run. A running attempt they end is recorded as
//! `marked_success`, `marked_failed` or `cancelled`; its worker's next lease
//! renewal fails and it kills the attempt.

use gale_model::{RunId, TaskState};
use gale_store::{AuditAction, RunMark, RunRow, TaskRow};
use serde_json::json;

use crate::audit::{Actor, audited, detail};
use crate::{ActionStore, Error, Result};

/// The state a run or task is marked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Success,
    Failed,
}

impl Mark {
    /// `success` or `failed`, as a form sends it.
    pub fn parse(state: &str) -> Result<Mark> {
        match state {
            "success" => Ok(Mark::Success),
            "failed" => Ok(Mark::Failed),
            other => Err(Error::Invalid(format!(
                "mark as \"success\" or \"failed\", not {other:?}"
            ))),
        }
    }

    /// What marking a run with it does.
    pub fn run_mark(self) -> RunMark {
        match self {
            Mark::Success => RunMark::Success,
            Mark::Failed => RunMark::Failed,
        }
    }

    /// The state a marked task gets.
    pub fn task_state(self) -> TaskState {
        match self {
            Mark::Success => TaskState::Success,
            Mark::Failed => TaskState::Failed,
        }
    }
}

/// A run; `NotFound` when there is none.
async fn run_of(store: &(impl ActionStore + ?Sized), run_id: RunId) -> Result<RunRow> {
    store
        .get_run(run_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no run {run_id}")))
}

/// Cancels a queued or running run: running attempts are killed, the rest
/// skipped. Returns the run as it was before; a finished run is a `Conflict`.
pub async fn cancel_run(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    run_id: RunId,
) -> Result<RunRow> {
    let result = async {
        let run = run_of(store, run_id).await?;
        if !store.mark_run(run.id, RunMark::Cancel, &actor.name).await? {
            return Err(Error::Conflict(format!(
                "run {run_id} has already finished ({})",
                run.state
            )));
        }
        Ok(run)
    }
    .await;
    let target = format!("run/{run_id}");
    let about = serde_json::Map::new();
    audited(
        store,
        actor,
        AuditAction::RunCancel,
        &target,
        about,
        result,
        |run, d| {
            d.insert("was".into(), json!(run.state.to_string()));
        },
    )
    .await
}

/// Marks a run success or failed, with its unfinished tasks. Returns the run
/// as it was before; a run already in that state is a `Conflict`.
pub async fn mark_run(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    run_id: RunId,
    mark: Mark,
) -> Result<RunRow> {
    let result = async {
        let run = run_of(store, run_id).await?;
        if !store.mark_run(run.id, mark.run_mark(), &actor.name).await? {
            return Err(Error::Conflict(format!(
                "run {run_id} is already {}",
                mark.task_state()
            )));
        }
        Ok(run)
    }
    .await;
    let target = format!("run/{run_id}");
    let about = detail([("state", json!(mark.task_state().to_string()))]);
    audited(
        store,
        actor,
        AuditAction::RunMark,
        &target,
        about,
        result,
        |run, d| {
            d.insert("was".into(), json!(run.state.to_string()));
        },
    )
    .await
}

/// Marks one task success or failed (a running attempt is stopped). Returns
/// the task instance as it was before; one already in that state is a
/// `Conflict`.
pub async fn mark_task(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    run_id: RunId,
    task_id: &str,
    mark: Mark,
) -> Result<TaskRow> {
    let to = mark.task_state();
    let result = async {
        let run = run_of(store, run_id).await?;
        let t = store
            .run_tasks(run.id)
            .await?
            .into_iter()
            .find(|t| t.task_id.as_str() == task_id)
            .ok_or_else(|| Error::NotFound(format!("run {run_id} has no task {task_id:?}")))?;
        if !store.mark_task(t.id, to, &actor.name).await? {
            return Err(Error::Conflict(format!(
                "task {task_id} of run {run_id} is already {to}"
            )));
        }
        Ok(t)
    }
    .await;
    let target = format!("run/{run_id}/task/{task_id}");
    let about = detail([("state", json!(to.to_string()))]);
    audited(
        store,
        actor,
        AuditAction::TaskMark,
        &target,
        about,
        result,
        |t, d| {
            d.insert("was".into(), json!(t.state.to_string()));
        },
    )
    .await
}
