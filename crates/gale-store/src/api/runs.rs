//! Runs and their task instances: creating runs (one per schedule slot),
//! promoting them, the scheduler's conditional transitions, and the reads the
//! scheduler, the web pages and metrics need.

use std::collections::BTreeMap;

use async_trait::async_trait;
use gale_model::{DagId, RunId, RunState, TaskId, TaskState};
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub id: RunId,
    pub dag_id: DagId,
    pub run_key: String,
    pub run_type: RunType,
    pub version_hash: String,
    pub logical_date: Timestamp,
    pub interval_start: Timestamp,
    pub interval_end: Timestamp,
    pub conf: serde_json::Map<String, serde_json::Value>,
    pub state: RunState,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub dag_id: Option<DagId>,
    pub state: Option<RunState>,
    pub run_type: Option<RunType>,
    /// Only runs with a smaller id (the next page of a newest-first listing).
    pub before: Option<RunId>,
    /// At most this many (0: 100; never more than 10,000).
    pub limit: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct TaskRow {
    pub id: TiId,
    pub run_id: RunId,
    pub dag_id: DagId,
    pub task_id: TaskId,
    pub state: TaskState,
    /// The current (or last) attempt, 1-based; 0 before the first claim.
    pub try_number: u32,
    pub max_tries: u32,
    pub queue: String,
    pub priority: i32,
    pub worker_id: Option<WorkerId>,
    pub heartbeat_at: Option<Timestamp>,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub retry_at: Option<Timestamp>,
    pub outputs: BTreeMap<String, String>,
    pub pool: Option<String>,
}

/// See [`Runs::run_activity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunActivity {
    /// Some task instance is `none`, `scheduled` or `up_for_retry`.
    pub pending: bool,
    /// Some task instance is `queued` or `running`.
    pub in_flight: bool,
}

/// The most runs [`Runs::dag_history`] returns.
pub const HISTORY_MAX: u32 = 100;

/// The most days [`Runs::daily_runs`] covers, counted back from its newest run.
pub const DAILY_MAX_DAYS: u32 = 400;

/// One run of [`Runs::dag_history`]: the run and the timing of each of its task
/// instances.
#[derive(Clone, Debug, Serialize)]
pub struct RunHistory {
    pub run: RunRow,
    /// By task id.
    pub tasks: Vec<TaskHistory>,
}

/// A task instance's timing in a run: its current (or last) try's start and
/// end, and how many tries it has had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskHistory {
    pub task_id: TaskId,
    pub state: TaskState,
    /// Tries claimed so far (0: never started).
    pub try_number: u32,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

/// How many runs of a DAG whose logical date falls on one UTC day ended up (so
/// far) in one state. See [`Runs::daily_runs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DayRuns {
    pub day: jiff::civil::Date,
    pub state: RunState,
    pub n_runs: u32,
}

/// A scheduler's conditional state change of a task instance.
#[derive(Clone, Debug)]
pub struct Transition {
    pub ti: TiId,
    pub from: TaskState,
    pub to: TaskState,
    /// For `up_for_retry`: when the retry may be scheduled.
    pub retry_at: Option<Timestamp>,
}

/// What a metrics scrape or the cluster page counts: only what is unfinished,
/// so the cost does not grow with the history.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreCounts {
    /// Queued and running runs.
    pub runs_by_state: BTreeMap<String, u64>,
    /// Task instances in `none`, `scheduled`, `queued`, `running` or `up_for_retry`.
    pub tasks_by_state: BTreeMap<String, u64>,
    /// Task instances queued, per queue.
    pub queued_by_queue: BTreeMap<String, u64>,
    /// When the longest-waiting queued task instance of each queue was queued.
    pub oldest_queued: BTreeMap<String, Timestamp>,
}

/// Runs and their task instances. Every method is one transaction.
#[async_trait]
pub trait Runs: Send + Sync + 'static {
    /// Creates a queued run and its task instances. Returns `None` when a run with
    /// that key or (for scheduled and backfill runs) that logical date exists: one
    /// slot never gets two runs. A scheduled run also moves the DAG's cursor.
    /// A DAG that does not exist (deleted meanwhile) is refused as
    /// `Error::Invalid`, and no run is made: a `delete_dag` that ran first
    /// leaves nothing behind, one that runs after sees this run unfinished.
    async fn create_run(&self, run: &NewRun) -> Result<Option<RunId>>;

    /// Several runs made as [`Runs::create_run`] makes each, in one
    /// transaction (a slot shared by many DAGs). Per run, in order: its id,
    /// or `None` when its slot or key already had a run or its DAG is gone.
    async fn create_runs(&self, runs: &[NewRun]) -> Result<Vec<Option<RunId>>>;

    /// Queued plus running runs of a DAG.
    async fn count_active_runs(&self, dag_id: &DagId) -> Result<u32>;

    /// Queued plus running runs of each of `dags` that has any.
    async fn count_active_runs_of(&self, dags: &[DagId]) -> Result<Vec<(DagId, u32)>>;

    /// Moves queued runs of unpaused DAGs to running, oldest logical date first,
    /// while each DAG has fewer than `max_active_runs` running.
    async fn promote_runs(&self) -> Result<Vec<RunId>>;

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>>;

    async fn get_run(&self, run_id: RunId) -> Result<Option<RunRow>>;

    /// Running runs with ids above `after`, lowest id first, at most
    /// `limit`: every running run, a page at a time.
    async fn running_runs(&self, after: RunId, limit: u32) -> Result<Vec<RunRow>>;

    /// Those of `runs` that are running, lowest id first.
    async fn running_runs_by_id(&self, runs: &[RunId]) -> Result<Vec<RunRow>>;

    /// `running -> success|failed`, with the alerts it causes added to the
    /// outbox in the same transaction (only if the run was still running).
    async fn finish_run(
        &self,
        run_id: RunId,
        state: RunState,
        alerts: &[NewDelivery],
    ) -> Result<bool>;

    /// The newest run of `dag_id` created before `before` that has finished
    /// (success or failed; a cancelled run is passed over, as it says
    /// nothing of the DAG's health): whether a success is a recovery.
    async fn previous_finished_run(&self, dag_id: &DagId, before: RunId) -> Result<Option<RunRow>>;

    async fn run_tasks(&self, run_id: RunId) -> Result<Vec<TaskRow>>;

    /// How many of a run's task instances are in each state (states with none are
    /// left out). Cheap: it reads an index, not the rows.
    async fn run_state_counts(&self, run_id: RunId) -> Result<Vec<(TaskState, u32)>>;

    /// Whether a run has task instances a plan could move (`none`, `scheduled`,
    /// `up_for_retry`) and whether it has any queued or running. Cheaper than
    /// `run_state_counts` on a large run: it stops at the first of each.
    async fn run_activity(&self, run_id: RunId) -> Result<RunActivity>;

    /// Applies each transition only if the task is still in `from`; returns how many
    /// applied. A move to `queued` stamps `queued_at`; a networked store also
    /// announces it to other processes' workers (the caller wakes its own).
    async fn apply_transitions(&self, transitions: &[Transition]) -> Result<usize>;

    async fn get_task(&self, ti: TiId) -> Result<Option<TaskRow>>;

    /// The task instances of several runs (a grid's window).
    async fn tasks_of_runs(&self, runs: &[RunId]) -> Result<Vec<TaskRow>>;

    /// The newest `per_dag` runs of each of `dags` (a page of the DAG list),
    /// newest first within each.
    async fn recent_runs(&self, dags: &[DagId], per_dag: u32) -> Result<Vec<RunRow>>;

    async fn counts(&self) -> Result<StoreCounts>;

    /// The newest `limit` runs of a DAG (at most [`HISTORY_MAX`]; 0 is 25),
    /// newest first, each with its task instances' tries, start and end:
    /// what the durations, tries and landing charts draw. One query.
    async fn dag_history(&self, dag_id: &DagId, limit: u32) -> Result<Vec<RunHistory>>;

    /// A DAG's runs whose logical date is at or after `since`, counted per
    /// UTC day of the logical date and state, oldest day first (states in
    /// [`RunState`] order within a day). `since` is moved up to at most
    /// [`DAILY_MAX_DAYS`] before the newest run, so the answer stays bounded.
    /// One query, on the (dag, logical date, state) index.
    async fn daily_runs(&self, dag_id: &DagId, since: Timestamp) -> Result<Vec<DayRuns>>;
}
