//! What a new run is: its type, its key, its data interval and the task instances
//! it starts with. Every way a run comes to be (a due schedule slot, a manual
//! trigger, a backfill) is built here, so there is one run-key format and one
//! rule for a run's first task instances. No I/O: the caller supplies `now`.

use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

use crate::schedule::Interval;
use crate::{Dag, DagId, TaskId};

/// Why a run exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    /// Created by a scheduler for a due schedule slot.
    Scheduled,
    /// Triggered by a person or a script (API, UI, CLI).
    Manual,
    /// One slot of a backfill over a date range.
    Backfill,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Scheduled => "scheduled",
            RunType::Manual => "manual",
            RunType::Backfill => "backfill",
        }
    }
}

impl FromStr for RunType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scheduled" => Ok(RunType::Scheduled),
            "manual" => Ok(RunType::Manual),
            "backfill" => Ok(RunType::Backfill),
            _ => Err(format!("unknown run type {s:?}")),
        }
    }
}

/// A run's key: its type and logical date, e.g. `scheduled__2026-01-01T02:00:00Z`
/// or `manual__2026-01-01T02:00:00.25Z` (RFC 3339 in UTC; a fraction of a second
/// only when there is one, so two triggers within a second get two keys).
pub fn run_key(run_type: RunType, logical_date: Timestamp) -> String {
    format!("{}__{logical_date}", run_type.as_str())
}

/// The same key as Airflow writes its `run_id` (what a template's `run_id`
/// is): the date as Python's `isoformat()`, `scheduled__2026-01-01T02:00:00+00:00`.
pub fn airflow_run_id(run_type: RunType, logical_date: Timestamp) -> String {
    format!(
        "{}__{}",
        run_type.as_str(),
        crate::template::isoformat(logical_date)
    )
}

/// A run to create, with one task instance per task of its DAG version.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub dag_id: DagId,
    pub run_key: String,
    pub run_type: RunType,
    pub version_hash: String,
    pub logical_date: Timestamp,
    pub interval_start: Timestamp,
    pub interval_end: Timestamp,
    pub conf: serde_json::Map<String, serde_json::Value>,
    pub tasks: Vec<NewTask>,
}

impl NewRun {
    /// The run of one due schedule slot of `dag`'s version `version_hash`.
    pub fn scheduled(dag_id: &DagId, version_hash: &str, dag: &Dag, interval: Interval) -> NewRun {
        NewRun::of_interval(dag_id, version_hash, dag, RunType::Scheduled, interval)
    }

    /// A backfill's run of one schedule slot.
    pub fn backfill(dag_id: &DagId, version_hash: &str, dag: &Dag, interval: Interval) -> NewRun {
        NewRun::of_interval(dag_id, version_hash, dag, RunType::Backfill, interval)
    }

    /// A manual run at `logical_date`, whose data interval is that instant.
    pub fn manual(
        dag_id: &DagId,
        version_hash: &str,
        dag: &Dag,
        logical_date: Timestamp,
        conf: serde_json::Map<String, serde_json::Value>,
    ) -> NewRun {
        NewRun {
            conf,
            ..NewRun::of_interval(
                dag_id,
                version_hash,
                dag,
                RunType::Manual,
                Interval {
                    start: logical_date,
                    end: logical_date,
                },
            )
        }
    }

    fn of_interval(
        dag_id: &DagId,
        version_hash: &str,
        dag: &Dag,
        run_type: RunType,
        interval: Interval,
    ) -> NewRun {
        NewRun {
            dag_id: dag_id.clone(),
            run_key: run_key(run_type, interval.start),
            run_type,
            version_hash: version_hash.to_owned(),
            logical_date: interval.start,
            interval_start: interval.start,
            interval_end: interval.end,
            conf: serde_json::Map::new(),
            tasks: NewTask::for_dag(dag),
        }
    }
}

/// One task instance of a new run.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub task_id: TaskId,
    pub max_tries: u32,
    pub queue: String,
    pub priority: i32,
    pub pool: Option<String>,
}

impl NewTask {
    /// The task instances a new run of `dag` starts with.
    pub fn for_dag(dag: &Dag) -> Vec<NewTask> {
        dag.tasks
            .iter()
            .map(|t| NewTask {
                task_id: t.id.clone(),
                max_tries: t.retries.saturating_add(1),
                queue: t.queue.clone(),
                priority: t.priority,
                pool: t.pool.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
