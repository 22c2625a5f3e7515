//! Tests of one run's plan: trigger rules, retries, limits and the run's outcome.

use super::*;
use gale_model::{DagId, RunId, TaskId};

fn dag(src: &str) -> Dag {
    gale_model::dag::parse("t.yaml", "t", src).unwrap()
}

fn rows(dag: &Dag, states: &[(&str, TaskState)]) -> Vec<TaskRow> {
    dag.tasks
        .iter()
        .enumerate()
        .map(|(i, t)| TaskRow {
            id: TiId(i as i64 + 1),
            run_id: RunId(1),
            dag_id: DagId("t".into()),
            task_id: TaskId(t.id.0.clone()),
            state: states
                .iter()
                .find(|(id, _)| *id == t.id.as_str())
                .map_or(TaskState::None, |(_, s)| *s),
            try_number: 0,
            max_tries: 1,
            queue: "default".into(),
            priority: t.priority,
            worker_id: None,
            heartbeat_at: None,
            queued_at: None,
            started_at: None,
            ended_at: None,
            retry_at: None,
            outputs: Default::default(),
            pool: None,
        })
        .collect()
}

fn to_states(plan: &Plan) -> Vec<(i64, TaskState)> {
    plan.transitions.iter().map(|t| (t.ti.0, t.to)).collect()
}

const DIAMOND: &str = "tasks:\n  a:\n    run: x\n  b:\n    run: x\n    needs: [a]\n  c:\n    run: x\n    needs: [a]\n  d:\n    run: x\n    needs: [b, c]\n";

#[test]
fn roots_are_queued_first() {
    let d = dag(DIAMOND);
    let plan = plan_run(&d, &topo_order(&d), &rows(&d, &[]), Timestamp::now());
    assert_eq!(to_states(&plan), [(1, TaskState::Queued)]);
    assert!(plan.enqueue.is_empty());
    assert_eq!(plan.outcome, None);
}

#[test]
fn tasks_under_a_limit_wait_in_scheduled_for_room() {
    // A pool holds back its own tasks only; max_active_tasks holds back all.
    let d = dag("tasks:\n  a:\n    run: x\n  b:\n    run: x\n    pool: p\n");
    let plan = plan_run(&d, &topo_order(&d), &rows(&d, &[]), Timestamp::now());
    assert_eq!(
        to_states(&plan),
        [(2, TaskState::Scheduled), (1, TaskState::Queued)]
    );
    assert_eq!(plan.enqueue, [TiId(2)]);
    let d = dag("max_active_tasks: 1\ntasks:\n  a:\n    run: x\n  b:\n    run: x\n");
    let plan = plan_run(&d, &topo_order(&d), &rows(&d, &[]), Timestamp::now());
    assert_eq!(
        to_states(&plan),
        [(1, TaskState::Scheduled), (2, TaskState::Scheduled)]
    );
    assert_eq!(plan.enqueue, [TiId(1), TiId(2)]);
}

#[test]
fn a_failure_propagates_through_the_whole_dag_in_one_pass() {
    let d = dag(DIAMOND);
    let plan = plan_run(
        &d,
        &topo_order(&d),
        &rows(&d, &[("a", TaskState::Failed)]),
        Timestamp::now(),
    );
    assert_eq!(
        to_states(&plan),
        [
            (2, TaskState::UpstreamFailed),
            (3, TaskState::UpstreamFailed),
            (4, TaskState::UpstreamFailed)
        ]
    );
    assert_eq!(plan.outcome, Some(RunState::Failed));
}

#[test]
fn a_cleanup_leaf_with_all_done_decides_the_outcome() {
    let d = dag(
        "tasks:\n  a:\n    run: x\n  cleanup:\n    run: x\n    needs: [a]\n    trigger_rule: all_done\n",
    );
    let plan = plan_run(
        &d,
        &topo_order(&d),
        &rows(
            &d,
            &[("a", TaskState::Failed), ("cleanup", TaskState::Success)],
        ),
        Timestamp::now(),
    );
    assert_eq!(plan.outcome, Some(RunState::Success));
}

#[test]
fn retries_wait_for_their_time() {
    let d = dag("tasks:\n  a:\n    run: x\n");
    let now = Timestamp::now();
    let mut r = rows(&d, &[("a", TaskState::UpForRetry)]);
    r[0].retry_at = Some(now + jiff::SignedDuration::from_secs(5));
    assert!(
        plan_run(&d, &topo_order(&d), &r, now)
            .transitions
            .is_empty()
    );
    r[0].retry_at = Some(now);
    assert_eq!(
        to_states(&plan_run(&d, &topo_order(&d), &r, now)),
        [(1, TaskState::Queued)]
    );
}

#[test]
fn queued_transitions_come_last_and_most_urgent_first() {
    let d = dag(
        "tasks:\n  a:\n    run: x\n  b:\n    run: x\n    priority: 5\n  c:\n    run: x\n    needs: [a]\n  d:\n    run: x\n    priority: 9\n  e:\n    run: x\n",
    );
    let plan = plan_run(
        &d,
        &topo_order(&d),
        &rows(&d, &[("a", TaskState::Failed)]),
        Timestamp::now(),
    );
    assert_eq!(
        to_states(&plan),
        [
            (3, TaskState::UpstreamFailed),
            (4, TaskState::Queued),
            (2, TaskState::Queued),
            (5, TaskState::Queued)
        ]
    );
}

#[test]
fn higher_priority_is_queued_first() {
    let d = dag(
        "max_active_tasks: 2\ntasks:\n  low:\n    run: x\n  high:\n    run: x\n    priority: 5\n",
    );
    let plan = plan_run(&d, &topo_order(&d), &rows(&d, &[]), Timestamp::now());
    assert_eq!(plan.enqueue, [TiId(2), TiId(1)]);
}
