//! The attempt queue: queueing within limits, claims, process records, lease
//! renewal, fenced results, and reaping attempts whose worker is gone.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use gale_model::{DagId, RunId, TaskId, TaskState};
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

/// How an attempt ended, as its attempt record says (`attempts.state`, and the
/// API's attempt `state`): the same strings in the database and on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failed,
    /// The task asked to be skipped (its exit code said so).
    Skipped,
    /// It ran past its timeout and its process group was killed.
    TimedOut,
    /// It was killed before it ended (its worker fenced itself, or shut down).
    Killed,
    /// Its worker stopped renewing the lease and a reaper ended it.
    Lost,
    /// A shutting-down worker gave it back; the try is refunded.
    HandedBack,
    /// An operator marked it (or its run) success while it ran.
    MarkedSuccess,
    /// An operator marked it (or its run) failed while it ran.
    MarkedFailed,
    /// An operator cancelled its run while it ran.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::TimedOut => "timed_out",
            Outcome::Killed => "killed",
            Outcome::Lost => "lost",
            Outcome::HandedBack => "handed_back",
            Outcome::MarkedSuccess => "marked_success",
            Outcome::MarkedFailed => "marked_failed",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "success" => Outcome::Success,
            "failed" => Outcome::Failed,
            "skipped" => Outcome::Skipped,
            "timed_out" => Outcome::TimedOut,
            "killed" => Outcome::Killed,
            "lost" => Outcome::Lost,
            "handed_back" => Outcome::HandedBack,
            "marked_success" => Outcome::MarkedSuccess,
            "marked_failed" => Outcome::MarkedFailed,
            "cancelled" => Outcome::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attempt record's state: still running, or how it ended. Written and
/// shown as one string (`running`, or the outcome's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptState {
    Running,
    Ended(Outcome),
}

impl AttemptState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Running => "running",
            AttemptState::Ended(outcome) => outcome.as_str(),
        }
    }

    /// The state a stored string names. The store writes only `running` and
    /// outcomes; anything else reads as `failed`.
    pub fn parse(s: &str) -> AttemptState {
        match s {
            "running" => AttemptState::Running,
            _ => AttemptState::Ended(Outcome::parse(s).unwrap_or(Outcome::Failed)),
        }
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AttemptState {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for AttemptState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
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
    pub worker_id: WorkerId,
    /// `success`, `failed`, `skipped` or `up_for_retry`.
    pub state: TaskState,
    pub retry_at: Option<Timestamp>,
    /// What the attempt record says: `success`, `failed`, `skipped`, `timed_out`, ...
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub outputs: BTreeMap<String, String>,
    /// The attempt's process, when it had one (also recorded by `record_process`
    /// for attempts that run for a while).
    pub pid: Option<i64>,
    pub command: Option<String>,
    /// Alerts this result causes: added to the outbox in the same
    /// transaction, and only if the result is recorded.
    pub alerts: Vec<NewDelivery>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AttemptRow {
    pub ti_id: TiId,
    pub try_number: u32,
    pub run_id: RunId,
    pub task_id: TaskId,
    pub worker_id: WorkerId,
    pub host: Option<String>,
    pub pid: Option<i64>,
    /// `running`, `success`, `failed`, `skipped`, `timed_out`, `lost` or `handed_back`.
    pub state: AttemptState,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub command: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

/// A reaper's or a shutting-down worker's conditional end of an attempt.
#[derive(Clone, Debug)]
pub struct Reap {
    pub ti: TiId,
    pub try_number: u32,
    pub worker_id: WorkerId,
    /// Applied only if the heartbeat is older than this (zero: unconditionally).
    pub lease: Duration,
    pub to: TaskState,
    pub retry_at: Option<Timestamp>,
    /// `lost` or `handed_back`.
    pub outcome: Outcome,
    pub message: String,
    /// A handed-back attempt does not use up a try.
    pub refund_try: bool,
    /// Alerts the reaped attempt causes: added to the outbox in the same
    /// transaction, and only if the reap applies.
    pub alerts: Vec<NewDelivery>,
}

/// The attempt queue, from queueing to the fenced result. Every method is one
/// transaction.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
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
        worker_id: &WorkerId,
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

    /// Records when the process of a try that was reaped as `lost` really
    /// stopped, as its worker (`worker_id`) measured it once it could: the try's
    /// end becomes `stopped_at`. Changes nothing unless the try is `lost` and
    /// was `worker_id`'s; returns whether it applied.
    async fn record_stop(
        &self,
        ti: TiId,
        try_number: u32,
        worker_id: &WorkerId,
        stopped_at: Timestamp,
    ) -> Result<bool>;

    /// Renews the lease of each listed attempt still running under `worker_id`;
    /// returns those renewed. An attempt missing from the answer was fenced off.
    async fn heartbeat_attempts(
        &self,
        worker_id: &WorkerId,
        held: &[(TiId, u32)],
    ) -> Result<Vec<TiId>>;

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
    async fn worker_attempts(&self, worker_id: &WorkerId) -> Result<Vec<TaskRow>>;

    /// Ends an attempt whose worker is gone: applied only if it is still running
    /// with this try under this worker and its heartbeat is older than `lease`
    /// (and than the worker's own registered lease, when longer).
    /// The attempt record says `lost` (or `handed_back`) with `message`.
    async fn reap_attempt(&self, reap: &Reap) -> Result<bool>;

    async fn attempts(&self, ti: TiId) -> Result<Vec<AttemptRow>>;
}
