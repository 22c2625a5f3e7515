//! The pure part of scheduling one run: given its DAG version and its task
//! instances, which transitions to make, what to queue, and whether it is done.

use std::collections::{HashMap, HashSet};

use gale_model::state::{Readiness, UpstreamCounts, run_outcome};
use gale_model::{Dag, RunState, TaskState};
use gale_store::{RunRow, TaskRow, TiId, Transition};
use jiff::Timestamp;

use super::{RunAction, TRANSITION_CHUNK};

#[derive(Debug, Default)]
pub struct Plan {
    /// Includes `none`/`up_for_retry -> queued` for ready tasks that nothing can
    /// hold back (no pool, no `max_active_tasks`): they skip `scheduled`.
    pub transitions: Vec<Transition>,
    /// Task instances to move from `scheduled` to `queued` under the DAG's and
    /// pools' limits, most urgent first.
    pub enqueue: Vec<TiId>,
    /// Set when every task instance is finished.
    pub outcome: Option<RunState>,
}

/// Task ids of `dag` in an order where every task comes after its upstreams.
pub fn topo_order(dag: &Dag) -> Vec<usize> {
    let index: HashMap<&str, usize> = dag
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut indegree: Vec<usize> = dag.tasks.iter().map(|t| t.needs.len()).collect();
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); dag.tasks.len()];
    for (i, t) in dag.tasks.iter().enumerate() {
        for n in &t.needs {
            if let Some(&u) = index.get(n.as_str()) {
                downstream[u].push(i);
            }
        }
    }
    let mut order: Vec<usize> = (0..dag.tasks.len()).filter(|&i| indegree[i] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let u = order[head];
        head += 1;
        for &d in &downstream[u] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                order.push(d);
            }
        }
    }
    order
}

/// Plans one run. `order` is [`topo_order`] of `dag`, so that a skip or an
/// upstream failure travels down the whole DAG in one pass.
pub fn plan_run(dag: &Dag, order: &[usize], tasks: &[TaskRow], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let mut state: HashMap<&str, TaskState> = tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.state))
        .collect();
    let by_task: HashMap<&str, &TaskRow> = tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    let set = |plan: &mut Plan,
               state: &mut HashMap<&str, TaskState>,
               row: &TaskRow,
               to: TaskState,
               retry_at: Option<Timestamp>| {
        plan.transitions.push(Transition {
            ti: row.id,
            from: row.state,
            to,
            retry_at,
        });
        if let Some(s) = state.get_mut(row.task_id.as_str()) {
            *s = to;
        }
    };

    // Task instances whose task the DAG version no longer has.
    let known: HashSet<&str> = dag.tasks.iter().map(|t| t.id.as_str()).collect();
    for row in tasks {
        if !known.contains(row.task_id.as_str())
            && matches!(
                row.state,
                TaskState::None | TaskState::Scheduled | TaskState::UpForRetry
            )
        {
            set(&mut plan, &mut state, row, TaskState::Removed, None);
        }
    }

    for &i in order {
        let task = &dag.tasks[i];
        let Some(row) = by_task.get(task.id.as_str()) else {
            continue;
        };
        // A ready task waits in `scheduled` only for a limit to leave it room.
        let ready = if dag.max_active_tasks.is_none() && task.pool.is_none() {
            TaskState::Queued
        } else {
            TaskState::Scheduled
        };
        match row.state {
            TaskState::None => {
                let mut counts = UpstreamCounts::default();
                for n in &task.needs {
                    counts.add(state.get(n.as_str()).copied().unwrap_or(TaskState::Removed));
                }
                match task.trigger_rule.evaluate(counts) {
                    Readiness::Wait => {}
                    Readiness::Run => set(&mut plan, &mut state, row, ready, None),
                    Readiness::Skip => set(&mut plan, &mut state, row, TaskState::Skipped, None),
                    Readiness::UpstreamFailed => {
                        set(&mut plan, &mut state, row, TaskState::UpstreamFailed, None)
                    }
                }
            }
            TaskState::UpForRetry if row.retry_at.is_none_or(|at| at <= now) => {
                set(&mut plan, &mut state, row, ready, None);
            }
            _ => {}
        }
    }

    // Queued ones last and the most urgent of them first: the transitions are
    // written in chunks, and workers claim from the first chunk on. The others
    // keep their order, upstream before downstream (a stable sort).
    let priority: HashMap<TiId, i32> = tasks.iter().map(|t| (t.id, t.priority)).collect();
    plan.transitions.sort_by_key(|t| match t.to {
        TaskState::Queued => (
            true,
            std::cmp::Reverse(priority.get(&t.ti).copied().unwrap_or(0)),
            t.ti,
        ),
        _ => (false, std::cmp::Reverse(0), TiId(0)),
    });

    let mut ready: Vec<&TaskRow> = tasks
        .iter()
        .filter(|t| state.get(t.task_id.as_str()) == Some(&TaskState::Scheduled))
        .collect();
    ready.sort_by_key(|t| (std::cmp::Reverse(t.priority), t.id));
    plan.enqueue = ready.into_iter().map(|t| t.id).collect();

    if state.values().all(|s| s.is_terminal()) {
        let leaves = dag.leaves();
        let leaf_states: Vec<TaskState> = state
            .iter()
            .filter(|(id, _)| leaves.contains(*id))
            .map(|(_, s)| *s)
            .collect();
        plan.outcome = Some(run_outcome(&leaf_states));
    }
    plan
}

/// The writes that move one running run along, in the order the shell makes
/// them: its plan's transitions in chunks of [`TRANSITION_CHUNK`] (queued ones
/// last, most urgent first, so workers start on the first chunk while the rest
/// of a large fan-out is still being written), the scheduled task instances to
/// queue within the DAG's and pools' limits, and the run's end once every task
/// instance is finished.
pub fn run_actions(
    run: &RunRow,
    dag: &Dag,
    order: &[usize],
    tasks: &[TaskRow],
    now: Timestamp,
) -> Vec<RunAction> {
    let plan = plan_run(dag, order, tasks, now);
    let mut actions = Vec::new();
    let mut transitions = plan.transitions.into_iter().peekable();
    while transitions.peek().is_some() {
        let chunk = transitions.by_ref().take(TRANSITION_CHUNK).collect();
        actions.push(RunAction::Transitions(chunk));
    }
    if !plan.enqueue.is_empty() {
        actions.push(RunAction::Enqueue {
            dag_id: run.dag_id.clone(),
            tis: plan.enqueue,
            max_active_tasks: dag.max_active_tasks,
        });
    }
    if let Some(state) = plan.outcome {
        actions.push(RunAction::FinishRun {
            run_id: run.id,
            dag_id: run.dag_id.clone(),
            state,
        });
    }
    actions
}

#[cfg(test)]
mod tests;
