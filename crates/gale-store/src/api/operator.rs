//! Operators' actions on runs and task instances: marking and clearing.

use async_trait::async_trait;
use gale_model::{RunId, TaskState};

use crate::*;

/// An operator's change of a whole run (`mark_run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMark {
    /// The run succeeds: every unfinished task instance becomes `success`.
    Success,
    /// The run fails: queued and running task instances become `failed`, the
    /// other unfinished ones `skipped`.
    Failed,
    /// Like `Failed`, but only for a run that is still queued or running.
    Cancel,
}

/// A task instance an operator clears, and the tries it gets from now on.
#[derive(Clone, Debug)]
pub struct ClearTask {
    pub ti: TiId,
    /// Its state when read: the clear applies only if it is still in it.
    pub from: TaskState,
    /// The new `max_tries`: its current try number plus the tries the task allows.
    pub max_tries: u32,
}

/// Operators' actions.
#[async_trait]
pub trait Operator: Send + Sync + 'static {
    /// Marks a run `success` or `failed` (see [`RunMark`]) with the unfinished task
    /// instances it holds; a running attempt among them is recorded as
    /// `marked_success` / `marked_failed` / `cancelled`, and its worker, whose
    /// lease renewal now fails, kills it. Returns false when the run does not
    /// exist, is already in that state, or (`Cancel`) has finished.
    async fn mark_run(&self, run_id: RunId, mark: RunMark, by: &str) -> Result<bool>;

    /// Sets one task instance to `success` or `failed` (an operator's decision,
    /// recorded on its running attempt as `marked_<state>`, which is then
    /// fenced off). Returns false when it is already in that state or gone.
    async fn mark_task(&self, ti: TiId, to: TaskState, by: &str) -> Result<bool>;

    /// Sends finished task instances of a run back to `none` so the scheduler
    /// runs them again, each only if still in the state it was read in; the run,
    /// if finished, is queued again. Returns how many were cleared.
    async fn clear_tasks(&self, run_id: RunId, tasks: &[ClearTask]) -> Result<usize>;
}
