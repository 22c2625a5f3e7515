//! Backfills: a DAG's schedule slots between two dates, run as `backfill` runs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use gale_model::DagId;
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
    /// The backfill runs of the DAG with a logical date in the range, by state
    /// (output only).
    pub runs: BTreeMap<String, u32>,
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
}
