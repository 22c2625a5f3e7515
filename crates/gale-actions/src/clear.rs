//! Clearing: sending finished tasks of a run back to the scheduler so they
//! run again.

use std::collections::{BTreeSet, HashMap};

use gale_model::{RunId, TaskState};
use gale_store::{AuditAction, ClearTask};
use serde_json::json;

use crate::audit::{Actor, audited, detail};
use crate::{ActionStore, Error, Result};

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
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    run_id: RunId,
    what: &ClearWhat,
) -> Result<Vec<String>> {
    let about = match what {
        ClearWhat::Failed => detail([("what", json!("failed"))]),
        ClearWhat::Tasks {
            task_ids,
            downstream,
        } => detail([
            (
                "tasks",
                json!(task_ids.iter().take(100).collect::<Vec<_>>()),
            ),
            ("downstream", json!(downstream)),
        ]),
    };
    let result = clear_tasks(store, run_id, what).await;
    audited(
        store,
        actor,
        AuditAction::RunClear,
        &format!("run/{run_id}"),
        about,
        result,
        |cleared, d| {
            d.insert("cleared".into(), json!(cleared));
        },
    )
    .await
}

async fn clear_tasks(
    store: &(impl ActionStore + ?Sized),
    run_id: RunId,
    what: &ClearWhat,
) -> Result<Vec<String>> {
    let run = store
        .get_run(run_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no run {run_id}")))?;
    let version = store
        .get_version(&run.dag_id, &run.version_hash)
        .await?
        .ok_or_else(|| {
            Error::Inconsistent(format!("the DAG version of run {run_id} is missing"))
        })?;
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
                    return Err(Error::NotFound(format!("run {run_id} has no task {id:?}")));
                };
                if !t.state.is_terminal() {
                    return Err(Error::Conflict(format!(
                        "task {id} of run {run_id} is {}: only finished tasks can be cleared",
                        t.state
                    )));
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
