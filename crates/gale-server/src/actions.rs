//! What people ask Gale to do, shared by the API, the UI and the command line:
//! trigger a run, backfill a date range, clear tasks so they run again.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context as _, bail};
use gale_model::{DagId, RunId, TaskState, schedule};
use gale_store::{ClearTask, DagRow, DagVersion, NewRun, NewTask, RunRow, RunType, Store};
use jiff::Timestamp;

/// The most runs one backfill may create.
pub const MAX_BACKFILL_RUNS: usize = 10_000;

/// An error for something that does not exist (the API answers 404).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// An error for a request that conflicts with the current state (409).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

/// A DAG's row and its current version.
pub async fn current_dag(
    store: &dyn Store,
    dag_id: &DagId,
) -> anyhow::Result<(DagRow, DagVersion)> {
    let row = store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| NotFound(format!("no DAG {dag_id}")))?;
    let version = store
        .get_version(dag_id, &row.version_hash)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("the current version of {dag_id} is missing from the store")
        })?;
    Ok((row, version))
}

/// Creates a manual run of the DAG's current version with `conf` (merged over
/// the DAG's params when tasks render) at `logical_date` (default: now, in the
/// DAG's time zone unless the text has an offset).
pub async fn trigger(
    store: &dyn Store,
    dag_id: &DagId,
    conf: serde_json::Map<String, serde_json::Value>,
    logical_date: Option<&str>,
) -> anyhow::Result<RunRow> {
    let (row, version) = current_dag(store, dag_id).await?;
    let now = store.now().await?;
    let logical = match logical_date {
        Some(text) => {
            let tz = schedule::time_zone(&version.spec.timezone).map_err(anyhow::Error::msg)?;
            schedule::parse_date(text, &tz).map_err(|e| anyhow::anyhow!("logical date: {e}"))?
        }
        None => now,
    };
    let run = NewRun {
        dag_id: dag_id.clone(),
        run_key: format!("manual__{}", logical.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")),
        run_type: RunType::Manual,
        version_hash: row.version_hash.clone(),
        logical_date: logical,
        interval_start: logical,
        interval_end: logical,
        conf,
        tasks: NewTask::for_dag(&version.spec),
    };
    let Some(run_id) = store.create_run(&run).await? else {
        return Err(Conflict(format!(
            "{dag_id} already has a manual run at {logical}: pick another logical date"
        ))
        .into());
    };
    store
        .get_run(run_id)
        .await?
        .with_context(|| format!("run {run_id} vanished"))
}

/// What a backfill created.
#[derive(Debug)]
pub struct Backfill {
    pub id: i64,
    pub created: Vec<RunId>,
    /// Slots that already had a run.
    pub existing: usize,
}

/// Creates one `backfill` run per schedule slot of the DAG whose logical date
/// lies in `[from, to]` (dates in the DAG's time zone unless they carry an
/// offset), and records the backfill.
pub async fn backfill(
    store: &dyn Store,
    dag_id: &DagId,
    from: &str,
    to: &str,
    by: Option<&str>,
) -> anyhow::Result<Backfill> {
    let (row, version) = current_dag(store, dag_id).await?;
    let dag = &version.spec;
    let Some(sched) = dag.parsed_schedule() else {
        bail!("{dag_id} has no schedule: trigger it instead");
    };
    let tz = schedule::time_zone(&dag.timezone).map_err(anyhow::Error::msg)?;
    let from_ts = schedule::parse_date(from, &tz).map_err(|e| anyhow::anyhow!("from: {e}"))?;
    let to_ts = schedule::parse_date(to, &tz).map_err(|e| anyhow::anyhow!("to: {e}"))?;
    if to_ts < from_ts {
        bail!("`to` ({to}) is before `from` ({from})");
    }
    let intervals = schedule::intervals_between(&sched, from_ts, to_ts, MAX_BACKFILL_RUNS + 1);
    if intervals.len() > MAX_BACKFILL_RUNS {
        bail!("that range has more than {MAX_BACKFILL_RUNS} schedule slots: backfill it in parts");
    }
    if intervals.is_empty() {
        bail!(
            "no schedule slot of {dag_id} ({}) lies between {from_ts} and {to_ts}",
            sched.expr()
        );
    }
    let id = store.create_backfill(dag_id, from_ts, to_ts, by).await?;
    let mut created = Vec::new();
    let mut existing = 0;
    for iv in &intervals {
        let run = NewRun {
            dag_id: dag_id.clone(),
            run_key: format!("backfill__{}", iv.start),
            run_type: RunType::Backfill,
            version_hash: row.version_hash.clone(),
            logical_date: iv.start,
            interval_start: iv.start,
            interval_end: iv.end,
            conf: serde_json::Map::new(),
            tasks: NewTask::for_dag(dag),
        };
        match store.create_run(&run).await? {
            Some(id) => created.push(id),
            None => existing += 1,
        }
    }
    Ok(Backfill {
        id,
        created,
        existing,
    })
}

/// Which tasks of a run to clear.
#[derive(Clone, Debug)]
pub enum ClearWhat {
    /// Every failed and upstream-failed task.
    Failed,
    /// These tasks, and with `downstream` every task that depends on them.
    Tasks {
        task_ids: Vec<String>,
        downstream: bool,
    },
}

/// Sends finished tasks of a run back to the scheduler (they run again with
/// their full retries); a finished run is queued again. Returns the task ids
/// cleared. Unknown task ids are `NotFound`; a chosen task that is still
/// running or queued is a `Conflict`.
pub async fn clear(
    store: &dyn Store,
    run_id: RunId,
    what: &ClearWhat,
) -> anyhow::Result<Vec<String>> {
    let run = store
        .get_run(run_id)
        .await?
        .ok_or_else(|| NotFound(format!("no run {run_id}")))?;
    let version = store
        .get_version(&run.dag_id, &run.version_hash)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the DAG version of run {run_id} is missing"))?;
    let tasks = store.run_tasks(run_id).await?;
    let by_id: HashMap<&str, &gale_store::TaskRow> =
        tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    let chosen: BTreeSet<String> = match what {
        ClearWhat::Failed => tasks
            .iter()
            .filter(|t| matches!(t.state, TaskState::Failed | TaskState::UpstreamFailed))
            .map(|t| t.task_id.0.clone())
            .collect(),
        ClearWhat::Tasks {
            task_ids,
            downstream,
        } => {
            let mut set = BTreeSet::new();
            for id in task_ids {
                let Some(t) = by_id.get(id.as_str()) else {
                    return Err(NotFound(format!("run {run_id} has no task {id:?}")).into());
                };
                if !t.state.is_terminal() {
                    return Err(Conflict(format!(
                        "task {id} of run {run_id} is {}: only finished tasks can be cleared",
                        t.state
                    ))
                    .into());
                }
                set.insert(id.clone());
            }
            if *downstream {
                // Everything that depends on a chosen task, transitively.
                loop {
                    let before = set.len();
                    for t in &version.spec.tasks {
                        if t.needs.iter().any(|n| set.contains(n.as_str())) {
                            set.insert(t.id.0.clone());
                        }
                    }
                    if set.len() == before {
                        break;
                    }
                }
            }
            set
        }
    };
    let clears: Vec<ClearTask> = chosen
        .iter()
        .filter_map(|id| by_id.get(id.as_str()))
        .filter(|t| t.state.is_terminal())
        .map(|t| {
            let retries = version
                .spec
                .task(t.task_id.as_str())
                .map_or(0, |s| s.retries);
            ClearTask {
                ti: t.id,
                from: t.state,
                max_tries: t.try_number.saturating_add(retries).saturating_add(1),
            }
        })
        .collect();
    let names: Vec<String> = clears
        .iter()
        .filter_map(|c| tasks.iter().find(|t| t.id == c.ti))
        .map(|t| t.task_id.0.clone())
        .collect();
    if clears.is_empty() {
        return Ok(Vec::new());
    }
    store.clear_tasks(run_id, &clears).await?;
    Ok(names)
}

/// When a DAG's next scheduled run is due (its next slot's interval end), if
/// it has a schedule and is not past its end date.
pub fn next_run(dag: &DagRow, spec: &gale_model::Dag, now: Timestamp) -> Option<Timestamp> {
    let sched = spec.parsed_schedule()?;
    let from = dag.last_interval_end.or(spec.start_date).unwrap_or(now);
    let start = sched.next_at_or_after(from)?;
    if spec.end_date.is_some_and(|end| start > end) {
        return None;
    }
    sched.interval_from(start).map(|iv| iv.end)
}
