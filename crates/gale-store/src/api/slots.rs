//! The schedule-slot ledger: what became of each cron slot of a DAG.

use async_trait::async_trait;
use gale_model::{DagId, RunId};
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

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
    pub(crate) fn parse(s: &str) -> SlotStatus {
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

/// The schedule-slot ledger.
#[async_trait]
pub trait Slots: Send + Sync + 'static {
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
}
