//! Process-wide measurements that `/metrics` exposes: how long attempts wait and
//! run, how long a scheduler pass takes, and store errors by kind. Each process
//! measures what it does itself (a worker's attempts, a scheduler's passes), so
//! Prometheus scrapes every node.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `unavailable`, `full` or `database` (see [`crate::Error`]; refused
    /// input, `invalid`, is the caller's error, not the database's).
    pub kind: &'static str,
    /// The backend: `sqlite` or `postgres`.
    pub backend: &'static str,
}

pub struct Telemetry {
    /// Seconds from an attempt's claim to its process (or request) starting.
    pub claim_to_start: Histogram,
    /// Seconds a task instance waited in `queued` before a worker claimed it.
    pub queue_wait: Histogram,
    /// Seconds an attempt ran, from start to result.
    pub task_duration: Histogram,
    /// Seconds one scheduler pass took.
    pub scheduler_pass: Histogram,
    pub db_errors: Family<ErrorLabels, Counter>,
    /// Runs this process's scheduler finished, by state.
    pub runs_finished: Family<StateLabels, Counter>,
    /// Attempts this process's worker finished, by outcome.
    pub attempts_finished: Family<StateLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

fn duration_buckets() -> impl Iterator<Item = f64> {
    [
        0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
    ]
    .into_iter()
}

static TELEMETRY: LazyLock<Telemetry> = LazyLock::new(|| Telemetry {
    claim_to_start: Histogram::new(latency_buckets()),
    queue_wait: Histogram::new(latency_buckets()),
    task_duration: Histogram::new(duration_buckets()),
    scheduler_pass: Histogram::new(latency_buckets()),
    db_errors: Family::default(),
    runs_finished: Family::default(),
    attempts_finished: Family::default(),
});

/// This process's measurements.
pub fn telemetry() -> &'static Telemetry {
    &TELEMETRY
}

/// Counts a store error by kind.
pub(crate) fn count_error(backend: &'static str, e: &crate::Error) {
    let kind = match e {
        crate::Error::Unavailable(_) => "unavailable",
        crate::Error::Full(_) => "full",
        // A refusal of bad input: nothing wrong with the database.
        crate::Error::Invalid(_) => return,
        crate::Error::Database(_) => "database",
    };
    telemetry()
        .db_errors
        .get_or_create(&ErrorLabels { kind, backend })
        .inc();
}
