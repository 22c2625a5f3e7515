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

use std::fmt;

use gale_model::RunId;
use serde::Serialize;

pub mod alert_events;
pub mod api;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod postgres;
mod rules;
pub mod sqlite;
pub mod telemetry;

pub use api::prelude;
pub use api::prelude::*;
pub use api::*;

/// A store error, saying whether trying again may help.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The database is busy, restarting or unreachable: retry with backoff.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The disk holding the database is full: writes fail until space is
    /// freed there; retry with backoff.
    #[error("the database's disk is full ({0}): free space on it")]
    Full(String),
    /// The data or request is invalid; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Database(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Full(_))
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

/// The id of a worker (its node's id): what its claims, attempts and lease
/// renewals are recorded under, and what the fence compares.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

impl WorkerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WorkerId {
    fn from(s: &str) -> Self {
        WorkerId(s.to_owned())
    }
}

impl From<String> for WorkerId {
    fn from(s: String) -> Self {
        WorkerId(s)
    }
}

pub use gale_model::run::{NewRun, NewTask, RunType};

/// The metadata store: every aggregate's trait at once. Every method is one
/// transaction. Any type that implements them all is a `Store`, so callers that
/// need all of it take `Arc<dyn Store>` or `S: Store`, and callers that need one
/// part ask for that trait alone (`dyn Store` upcasts to each).
pub trait Store:
    Clock
    + Dags
    + Runs
    + Queue
    + Logs
    + Nodes
    + Pools
    + Slots
    + Operator
    + Backfills
    + Auth
    + Audit
    + Secrets
    + Alerts
    + Database
{
}

impl<T> Store for T where
    T: Clock
        + Dags
        + Runs
        + Queue
        + Logs
        + Nodes
        + Pools
        + Slots
        + Operator
        + Backfills
        + Auth
        + Audit
        + Secrets
        + Alerts
        + Database
        + ?Sized
{
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
