//! Why a task that has not started waits, in a sentence, as Airflow's task
//! instance "dependencies" view says it: its run waits (paused DAG,
//! `max_active_runs`), its upstream tasks are not done, a retry's time has
//! not come, its pool is missing or full, its DAG is at `max_active_tasks`,
//! or no live worker serves its queue.

use std::collections::BTreeMap;

use gale_model::{Dag, RunState, TaskState};
use gale_store::{NodeState, Nodes, Pools, RunFilter, RunRow, TaskRow};
use jiff::Timestamp;

use crate::{ActionStore, Result};

/// How long since its heartbeat a worker still counts as live.
const LIVE: i64 = 30;

/// The reason each waiting task of `run` waits, by task id (tasks that run
/// or ended have none).
pub async fn waiting_reasons<S: ActionStore + Pools + Nodes + ?Sized>(
    store: &S,
    run: &RunRow,
    dag: &Dag,
    tasks: &[TaskRow],
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let waiting: Vec<&TaskRow> = tasks
        .iter()
        .filter(|t| {
            matches!(
                t.state,
                TaskState::None | TaskState::Scheduled | TaskState::Queued | TaskState::UpForRetry
            )
        })
        .collect();
    if waiting.is_empty() || run.state.is_terminal() {
        return Ok(out);
    }
    if run.state == RunState::Queued {
        let why = match store.get_dag(&run.dag_id).await? {
            Some(d) if d.paused => format!(
                "the DAG is paused: its runs wait (gale dags unpause {})",
                run.dag_id
            ),
            _ => format!(
                "the run waits for room: {} allows {} running run(s) at once (max_active_runs)",
                run.dag_id, dag.max_active_runs
            ),
        };
        for t in waiting {
            out.insert(t.task_id.0.clone(), why.clone());
        }
        return Ok(out);
    }
    let now = store.now().await?;
    let by_id: BTreeMap<&str, &TaskRow> = tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    let pools = store.list_pools().await?;
    let nodes = store.list_nodes().await?;
    let mut dag_active: Option<usize> = None;
    for t in waiting {
        let spec = dag.task(t.task_id.as_str());
        let why = match t.state {
            TaskState::UpForRetry => match t.retry_at {
                Some(at) if at > now => {
                    format!("its retry is due at {at} (try {} failed)", t.try_number)
                }
                _ => "its retry is due: the scheduler queues it next".into(),
            },
            TaskState::None => {
                let pending: Vec<String> = spec
                    .map(|s| s.needs.as_slice())
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|n| by_id.get(n.as_str()))
                    .filter(|u| !u.state.is_terminal())
                    .map(|u| format!("{} ({})", u.task_id, u.state))
                    .collect();
                if pending.is_empty() {
                    "its upstream tasks are done: the scheduler decides on it next".into()
                } else {
                    format!("upstream not done: {}", pending.join(", "))
                }
            }
            TaskState::Scheduled => {
                let pool = t
                    .pool
                    .as_deref()
                    .map(|p| (p, pools.iter().find(|r| r.name == p)));
                match pool {
                    Some((p, None)) => format!(
                        "pool {p} does not exist: create it with `gale pools set {p} SLOTS`"
                    ),
                    Some((p, Some(row))) if row.queued + row.running >= row.slots => format!(
                        "pool {p} is full: {} running and {} queued of {} slot(s)",
                        row.running, row.queued, row.slots
                    ),
                    _ => match dag.max_active_tasks {
                        Some(max) => {
                            let active = match dag_active {
                                Some(n) => n,
                                None => {
                                    let n = active_tasks(store, run).await?;
                                    dag_active = Some(n);
                                    n
                                }
                            };
                            if active >= max as usize {
                                format!(
                                    "{} has {active} task(s) queued or running, its max_active_tasks",
                                    run.dag_id
                                )
                            } else {
                                "ready: the scheduler queues it next".into()
                            }
                        }
                        None => "ready: the scheduler queues it next".into(),
                    },
                }
            }
            TaskState::Queued => {
                if serves(&nodes, &t.queue, now) {
                    format!("queued on {}: waiting for a free worker slot", t.queue)
                } else {
                    format!(
                        "queued on {}, which no live worker serves (start one with `gale worker --queues {}`)",
                        t.queue, t.queue
                    )
                }
            }
            _ => continue,
        };
        out.insert(t.task_id.0.clone(), why);
    }
    Ok(out)
}

/// Whether a live worker serves `queue`.
fn serves(nodes: &[gale_store::NodeRow], queue: &str, now: Timestamp) -> bool {
    nodes.iter().any(|n| {
        n.state == NodeState::Running
            && n.roles.iter().any(|r| r == "worker")
            && n.queues.iter().any(|q| q == queue)
            && now.as_second() - n.heartbeat_at.as_second() < LIVE
    })
}

/// The DAG's task instances queued or running, over its running runs.
async fn active_tasks<S: ActionStore + ?Sized>(store: &S, run: &RunRow) -> Result<usize> {
    let runs = store
        .list_runs(&RunFilter {
            dag_id: Some(run.dag_id.clone()),
            state: Some(RunState::Running),
            limit: 100,
            ..RunFilter::default()
        })
        .await?;
    let mut n = 0;
    for r in runs {
        n += store
            .run_tasks(r.id)
            .await?
            .iter()
            .filter(|t| matches!(t.state, TaskState::Queued | TaskState::Running))
            .count();
    }
    Ok(n)
}
