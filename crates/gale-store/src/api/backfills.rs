//! Backfills: a DAG's schedule slots between two dates, run as `backfill` runs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use gale_model::{DagId, RunState};
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

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
    /// When it was cancelled: it creates no more runs, and its unfinished
    /// ones were cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// The backfill runs of the DAG with a logical date in the range, by state
    /// (output only).
    pub runs: BTreeMap<String, u32>,
}

/// Where a backfill is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackfillState {
    /// Some of its runs are queued or running.
    Running,
    /// Every run has finished.
    Done,
    /// Cancelled (whatever its runs did before).
    Cancelled,
}

impl BackfillState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillState::Running => "running",
            BackfillState::Done => "done",
            BackfillState::Cancelled => "cancelled",
        }
    }
}

impl BackfillRow {
    /// Its runs in a state.
    pub fn count(&self, state: RunState) -> u32 {
        self.runs.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Its runs that have finished.
    pub fn done(&self) -> u32 {
        RunState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(|s| self.count(s))
            .sum()
    }

    pub fn state(&self) -> BackfillState {
        if self.cancelled_at.is_some() {
            BackfillState::Cancelled
        } else if self.count(RunState::Queued) + self.count(RunState::Running) > 0 {
            BackfillState::Running
        } else {
            BackfillState::Done
        }
    }
}

/// How cancelling a backfill went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelBackfill {
    Cancelled,
    /// It had been cancelled before (its time is kept).
    AlreadyCancelled,
    NotFound,
}

/// Backfills.
#[async_trait]
pub trait Backfills: Send + Sync + 'static {
    async fn create_backfill(
        &self,
        dag_id: &DagId,
        from: Timestamp,
        to: Timestamp,
        by: Option<&str>,
    ) -> Result<i64>;

    async fn list_backfills(&self, dag_id: Option<&DagId>, limit: u32) -> Result<Vec<BackfillRow>>;

    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>>;

    /// Records the backfill cancelled (its creator stops creating runs; the
    /// caller cancels its unfinished ones).
    async fn cancel_backfill(&self, id: i64) -> Result<CancelBackfill>;
}
