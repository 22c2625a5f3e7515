//! Gale's metadata store: the one source of truth for DAG versions, runs, task
//! attempts, logs and nodes.
//!
//! Callers see the [`Store`] trait only. Every state change it offers is a
//! conditional write (on the expected state, try number and worker), so two
//! schedulers, a late worker or a retried request can race and the loser changes
//! nothing. Backends: [`sqlite::SqliteStore`] (embedded, one file, several
//! processes on one machine may share it) and [`postgres::PgStore`] (any number of
//! nodes; follows a primary failover).
//!
//! The store owns the clock used for leases (`now()`): heartbeats and their expiry
//! are compared on one clock, never on each node's own.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use gale_model::{Dag, DagError, DagId, RunId, RunState, TaskId, TaskState};
use jiff::Timestamp;
use serde::Serialize;

pub mod conformance;
pub mod postgres;
pub mod sqlite;
pub mod telemetry;

/// A store error, saying whether trying again may help.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The database is busy, restarting or unreachable: retry with backoff.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The data or request is invalid; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Database(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The id of a task instance (one task in one run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TiId(pub i64);

impl fmt::Display for TiId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub use gale_model::run::RunType;

#[derive(Clone, Debug, Serialize)]
pub struct DagRow {
    pub dag_id: DagId,
    pub file: String,
    pub version_hash: String,
    pub paused: bool,
    /// False once its file is gone from the DAG folder.
    pub active: bool,
    pub schedule: Option<String>,
    pub timezone: String,
    pub max_active_runs: u32,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub last_interval_end: Option<Timestamp>,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct DagVersion {
    pub dag_id: DagId,
    pub version_hash: String,
    pub file: String,
    pub source: String,
    pub spec: Dag,
    pub created_at: Timestamp,
}

/// One stored version of a DAG (its content hash), without the content.
#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    pub version_hash: String,
    pub file: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportError {
    pub file: String,
    pub dag_id: Option<String>,
    pub errors: Vec<DagError>,
    pub updated_at: Timestamp,
}

pub use gale_model::run::{NewRun, NewTask};

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
    pub worker_id: Option<String>,
    pub heartbeat_at: Option<Timestamp>,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub retry_at: Option<Timestamp>,
    pub outputs: BTreeMap<String, String>,
    pub pool: Option<String>,
}

/// See [`Store::run_activity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunActivity {
    /// Some task instance is `none`, `scheduled` or `up_for_retry`.
    pub pending: bool,
    /// Some task instance is `queued` or `running`.
    pub in_flight: bool,
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

/// An attempt a worker has just claimed: the task instance (now `running` under
/// this worker with a new try number) and its run.
#[derive(Clone, Debug)]
pub struct Claim {
    pub task: TaskRow,
    pub run: RunRow,
}

/// A worker's report that an attempt ended. Applied only while the attempt is
/// still `running` with this try number under this worker (the fence).
#[derive(Clone, Debug)]
pub struct Finish {
    pub ti: TiId,
    pub try_number: u32,
    pub worker_id: String,
    /// `success`, `failed`, `skipped` or `up_for_retry`.
    pub state: TaskState,
    pub retry_at: Option<Timestamp>,
    /// What the attempt record says: `success`, `failed`, `skipped`, `timed_out`, ...
    pub outcome: String,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub outputs: BTreeMap<String, String>,
    /// The attempt's process, when it had one (also recorded by `record_process`
    /// for attempts that run for a while).
    pub pid: Option<i64>,
    pub command: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AttemptRow {
    pub ti_id: TiId,
    pub try_number: u32,
    pub run_id: RunId,
    pub task_id: TaskId,
    pub worker_id: String,
    pub host: Option<String>,
    pub pid: Option<i64>,
    /// `running`, `success`, `failed`, `skipped`, `timed_out`, `lost` or `handed_back`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub command: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// Lines Gale itself writes into an attempt's log.
    System,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        }
    }
    fn parse(s: &str) -> Stream {
        match s {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            _ => Stream::System,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogLine {
    pub ts: Timestamp,
    pub stream: Stream,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogRow {
    /// Increases with every line; pass the last one seen to read on.
    pub seq: i64,
    pub ts: Timestamp,
    pub stream: Stream,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
    pub roles: Vec<String>,
    pub version: String,
    /// `running` or `stopped`.
    pub state: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// The node's clock minus the store's, as of its last heartbeat (output only).
    pub clock_skew_us: i64,
    /// The attempt lease its worker fences itself by (0: no worker role). A
    /// reaper never ends this worker's attempts sooner, whatever its own lease.
    pub attempt_lease_ms: u64,
    /// Attempts running under this node's worker (output only).
    pub running_attempts: u32,
}

/// A pool: a number of slots that the attempts of every task naming it share,
/// across DAGs (e.g. connections to one database).
#[derive(Clone, Debug, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub slots: u32,
    pub description: Option<String>,
    /// Task instances of this pool now queued, and running (output only).
    pub queued: u32,
    pub running: u32,
}

/// What became of one schedule slot of a DAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// A run was created for it (scheduled, or a backfill).
    Run,
    /// Passed over on purpose: `catchup: false` before the DAG's first run, or while paused.
    Skipped,
    /// Passed while no scheduler was creating runs, and `catchup: false` let it go.
    Missed,
}

impl SlotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotStatus::Run => "run",
            SlotStatus::Skipped => "skipped",
            SlotStatus::Missed => "missed",
        }
    }
    fn parse(s: &str) -> SlotStatus {
        match s {
            "run" => SlotStatus::Run,
            "skipped" => SlotStatus::Skipped,
            _ => SlotStatus::Missed,
        }
    }
}

/// One slot of a DAG's schedule, recorded once.
#[derive(Clone, Debug, Serialize)]
pub struct SlotRow {
    pub dag_id: DagId,
    pub logical_date: Timestamp,
    pub interval_end: Timestamp,
    pub status: SlotStatus,
    pub run_id: Option<RunId>,
    pub recorded_at: Timestamp,
}

/// A person (or script) who may use the web UI and API.
#[derive(Clone, Debug, Serialize)]
pub struct UserRow {
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// A PHC string (argon2id); never shown.
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// A logged-in browser session, found by the SHA-256 of its cookie.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub user: String,
    pub role: String,
    /// The token every state-changing request of this session must echo.
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// An API token (the secret itself is shown once and stored only hashed).
#[derive(Clone, Debug, Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub user: String,
    /// The user's role (output only).
    pub role: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

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

/// A backfill: the schedule slots of a DAG between two logical dates, run as
/// `backfill` runs.
#[derive(Clone, Debug, Serialize)]
pub struct BackfillRow {
    pub id: i64,
    pub dag_id: DagId,
    pub from_date: Timestamp,
    pub to_date: Timestamp,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    /// The backfill runs of the DAG with a logical date in the range, by state
    /// (output only).
    pub runs: BTreeMap<String, u32>,
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
}

/// The metadata store. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The store's clock: leases and heartbeats are measured on it.
    async fn now(&self) -> Result<Timestamp>;

    // ---- DAGs ----

    /// Records a successfully parsed DAG file: a new version if its content is new,
    /// the DAG row pointing at it, and no import error for the file. Returns whether
    /// the version was new. Refuses a DAG id that another active file already defines.
    ///
    /// `owner` names the DAG processor (host and folder) recording it: see
    /// `sync_files`.
    async fn upsert_dag(
        &self,
        dag: &Dag,
        file: &str,
        source: &str,
        hash: &str,
        owner: &str,
    ) -> Result<bool>;
    async fn record_import_errors(
        &self,
        file: &str,
        dag_id: Option<&str>,
        errors: &[DagError],
        owner: &str,
    ) -> Result<()>;
    /// For the DAG processor `owner`, whose folder now holds exactly `present`:
    /// marks the DAGs it recorded whose files are gone inactive, and drops its
    /// import errors of files that are gone. What other processors recorded is
    /// left alone (rows from before owners were recorded count as anyone's).
    async fn sync_files(&self, owner: &str, present: &[String]) -> Result<()>;
    async fn list_dags(&self) -> Result<Vec<DagRow>>;
    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>>;
    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>>;
    /// A DAG's versions, newest first.
    async fn list_versions(&self, dag_id: &DagId) -> Result<Vec<VersionInfo>>;
    async fn list_import_errors(&self) -> Result<Vec<ImportError>>;
    /// Returns false when the DAG does not exist.
    async fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<bool>;

    // ---- runs ----

    /// Creates a queued run and its task instances. Returns `None` when a run with
    /// that key or (for scheduled and backfill runs) that logical date exists: one
    /// slot never gets two runs. A scheduled run also moves the DAG's cursor.
    async fn create_run(&self, run: &NewRun) -> Result<Option<RunId>>;
    /// Queued plus running runs of a DAG.
    async fn count_active_runs(&self, dag_id: &DagId) -> Result<u32>;
    /// Moves queued runs of unpaused DAGs to running, oldest logical date first,
    /// while each DAG has fewer than `max_active_runs` running.
    async fn promote_runs(&self) -> Result<Vec<RunId>>;
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>>;
    async fn get_run(&self, run_id: RunId) -> Result<Option<RunRow>>;
    async fn running_runs(&self, limit: u32) -> Result<Vec<RunRow>>;
    /// `running -> success|failed`.
    async fn finish_run(&self, run_id: RunId, state: RunState) -> Result<bool>;

    // ---- task instances ----

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
    /// Moves `scheduled` task instances of one DAG to `queued`, in the order given,
    /// while the DAG has fewer than `max_active_tasks` queued or running, and
    /// each one's pool (if it names one) has fewer than its slots queued or
    /// running. A task instance whose pool does not exist stays `scheduled`.
    async fn enqueue(
        &self,
        dag_id: &DagId,
        tis: &[TiId],
        max_active_tasks: Option<u32>,
    ) -> Result<usize>;
    /// Claims up to `limit` queued attempts from `queues` (highest priority first):
    /// each becomes `running` under `worker_id` with the next try number.
    async fn claim(
        &self,
        worker_id: &str,
        host: &str,
        queues: &[String],
        limit: u32,
    ) -> Result<Vec<Claim>>;
    /// Records the process and rendered command of a claimed attempt.
    async fn record_process(
        &self,
        ti: TiId,
        try_number: u32,
        pid: Option<i64>,
        command: &str,
    ) -> Result<()>;
    /// Renews the lease of each listed attempt still running under `worker_id`;
    /// returns those renewed. An attempt missing from the answer was fenced off.
    async fn heartbeat_attempts(&self, worker_id: &str, held: &[(TiId, u32)]) -> Result<Vec<TiId>>;
    async fn finish_attempt(&self, finish: &Finish) -> Result<bool>;
    /// Several results at once, each fenced as by `finish_attempt`; says, in
    /// order, whether each was recorded. On an error, some may have been: each
    /// is safe to send again (the fence applies it at most once).
    async fn finish_attempts(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        let mut recorded = Vec::with_capacity(finishes.len());
        for f in finishes {
            recorded.push(self.finish_attempt(f).await?);
        }
        Ok(recorded)
    }
    /// Running attempts whose heartbeat is older than `lease`, and than their
    /// worker's own registered lease when that is longer.
    async fn expired_attempts(&self, lease: Duration) -> Result<Vec<TaskRow>>;
    /// Running attempts held by `worker_id`.
    async fn worker_attempts(&self, worker_id: &str) -> Result<Vec<TaskRow>>;
    /// Ends an attempt whose worker is gone: applied only if it is still running
    /// with this try under this worker and its heartbeat is older than `lease`
    /// (and than the worker's own registered lease, when longer).
    /// The attempt record says `lost` (or `handed_back`) with `message`.
    async fn reap_attempt(&self, reap: &Reap) -> Result<bool>;
    async fn attempts(&self, ti: TiId) -> Result<Vec<AttemptRow>>;

    // ---- logs ----

    async fn append_logs(&self, ti: TiId, try_number: u32, lines: &[LogLine]) -> Result<()>;
    /// Lines after `after_seq`, at most `limit`.
    async fn read_logs(
        &self,
        ti: TiId,
        try_number: u32,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogRow>>;

    // ---- nodes ----

    /// Records (or, on a restart, replaces) a process's row; `clock_skew_us` and
    /// `running_attempts` are ignored.
    async fn register_node(&self, node: &NodeRow) -> Result<()>;
    /// Renews a node's heartbeat on the store's clock and records how far the
    /// node's own clock (`local_now`, read just before the call) is from it.
    async fn heartbeat_node(&self, node_id: &str, local_now: Timestamp) -> Result<()>;
    async fn set_node_state(&self, node_id: &str, state: &str) -> Result<()>;
    async fn list_nodes(&self) -> Result<Vec<NodeRow>>;

    // ---- pools ----

    /// Creates a pool or changes its slots and description.
    async fn set_pool(&self, name: &str, slots: u32, description: Option<&str>) -> Result<()>;
    /// Returns false when there was no such pool.
    async fn delete_pool(&self, name: &str) -> Result<bool>;
    async fn list_pools(&self) -> Result<Vec<PoolRow>>;

    // ---- schedule-slot ledger ----

    /// Records slots a scheduler passed over (`skipped` or `missed`; slots with a
    /// run are recorded by `create_run`), each once, and moves the DAG's cursor
    /// past them. Returns how many were new.
    async fn record_slots(
        &self,
        dag_id: &DagId,
        status: SlotStatus,
        slots: &[(Timestamp, Timestamp)],
    ) -> Result<usize>;
    /// A DAG's most recent slots, newest first.
    async fn list_slots(&self, dag_id: &DagId, limit: u32) -> Result<Vec<SlotRow>>;

    // ---- operators' actions ----

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
    async fn get_task(&self, ti: TiId) -> Result<Option<TaskRow>>;
    /// The task instances of several runs (a grid's window).
    async fn tasks_of_runs(&self, runs: &[RunId]) -> Result<Vec<TaskRow>>;
    /// The newest `per_dag` runs of every DAG, newest first within each.
    async fn recent_runs(&self, per_dag: u32) -> Result<Vec<RunRow>>;
    async fn counts(&self) -> Result<StoreCounts>;

    // ---- backfills ----

    async fn create_backfill(
        &self,
        dag_id: &DagId,
        from: Timestamp,
        to: Timestamp,
        by: Option<&str>,
    ) -> Result<i64>;
    async fn list_backfills(&self, dag_id: Option<&DagId>, limit: u32) -> Result<Vec<BackfillRow>>;
    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>>;

    // ---- users, sessions and API tokens ----

    /// Returns false when a user of that name exists.
    async fn create_user(&self, name: &str, role: &str, password_hash: &str) -> Result<bool>;
    async fn get_user(&self, name: &str) -> Result<Option<UserRow>>;
    async fn list_users(&self) -> Result<Vec<UserRow>>;
    /// Deletes the user with their sessions and tokens; false when there was none.
    async fn delete_user(&self, name: &str) -> Result<bool>;
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool>;
    async fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// A session that has not expired (expired rows are removed by the next
    /// `create_session`).
    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRow>>;
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    async fn create_token(
        &self,
        name: &str,
        user: &str,
        secret_hash: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<i64>;
    /// The token with this hash, if it exists and has not expired.
    async fn get_token(&self, secret_hash: &str) -> Result<Option<TokenRow>>;
    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>>;
    async fn revoke_token(&self, id: i64) -> Result<bool>;

    // ---- the database itself ----

    /// The schema version the database is at.
    async fn schema_version(&self) -> Result<i64>;
    /// Where the store is, for people: a file path, or hosts and database
    /// (never a password).
    fn endpoint(&self) -> String;
}

/// Which candidates (scheduled task instances with their pool, in queueing
/// order) may be queued: while the DAG has room (`None`: no limit), skipping
/// those whose pool is full or missing from `pool_room`.
pub(crate) fn fit_limits(
    candidates: &[(i64, Option<String>)],
    mut dag_room: Option<i64>,
    mut pool_room: std::collections::HashMap<String, i64>,
) -> Vec<i64> {
    let mut chosen = Vec::new();
    for (id, pool) in candidates {
        if dag_room.is_some_and(|r| r <= 0) {
            break;
        }
        if let Some(pool) = pool {
            match pool_room.get_mut(pool) {
                Some(room) if *room > 0 => *room -= 1,
                _ => continue,
            }
        }
        if let Some(r) = dag_room.as_mut() {
            *r -= 1;
        }
        chosen.push(*id);
    }
    chosen
}

/// What a marked run's running attempts are recorded as, and the message.
pub(crate) fn mark_words(mark: RunMark, by: &str) -> (&'static str, String) {
    match mark {
        RunMark::Success => ("marked_success", format!("run marked success by {by}")),
        RunMark::Failed => ("marked_failed", format!("run marked failed by {by}")),
        RunMark::Cancel => ("cancelled", format!("run cancelled by {by}")),
    }
}

/// A reaper's or a shutting-down worker's conditional end of an attempt.
#[derive(Clone, Debug)]
pub struct Reap {
    pub ti: TiId,
    pub try_number: u32,
    pub worker_id: String,
    /// Applied only if the heartbeat is older than this (zero: unconditionally).
    pub lease: Duration,
    pub to: TaskState,
    pub retry_at: Option<Timestamp>,
    /// `lost` or `handed_back`.
    pub outcome: String,
    pub message: String,
    /// A handed-back attempt does not use up a try.
    pub refund_try: bool,
}

/// In-process change signals: a worker that finishes an attempt wakes the
/// scheduler, a scheduler that queues work wakes the workers. Every loop also polls,
/// so a change made by another process is seen within one poll interval; a
/// networked backend feeds these from the database's own notifications.
///
/// A finished or reaped attempt also names its run (`run_changed`), so a
/// scheduler plans just the runs that moved instead of counting every running
/// run's tasks on every wake-up; it still looks at all of them a few times a
/// second.
#[derive(Default, Debug)]
pub struct Notifier {
    pub scheduler: tokio::sync::Notify,
    pub workers: tokio::sync::Notify,
    changed_runs: std::sync::Mutex<std::collections::HashSet<RunId>>,
}

impl Notifier {
    /// A task of `run` finished or was reaped: wake the scheduler to plan it.
    pub fn run_changed(&self, run: RunId) {
        self.changed_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run);
        self.scheduler.notify_one();
    }

    /// Like `run_changed`, without a wake-up (the scheduler marking a run it just
    /// moved, for its next pass).
    pub fn mark_run(&self, run: RunId) {
        self.changed_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run);
    }

    /// The runs that changed since the last call.
    pub fn take_changed_runs(&self) -> std::collections::HashSet<RunId> {
        std::mem::take(&mut *self.changed_runs.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
