//! A backend-independent conformance suite that every [`Store`] backend must pass.
//!
//! Each check is a `pub async fn` taking a fresh, empty store, so a failure names
//! the behaviour that broke; [`run_all`] runs every check, each on its own store.
//! The SQLite backend runs it in `tests/it`, the PostgreSQL one in
//! `tests/postgres`. Checks panic (via `assert!`) on a violation: this is test
//! support code, not something a running node calls, so it is compiled only
//! with the `conformance` feature, which only the store's own test targets
//! enable. One file per aggregate holds its checks; the fixtures are here.
//!
//! Checks only use the trait, and only rely on what its documentation promises.
//! Timestamps passed in are whole seconds, since backends keep microseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gale_model::dag::{content_hash, parse};
use gale_model::{Dag, DagError, DagId, RunId, RunState, TaskState};
use jiff::Timestamp;

use crate::{
    AttemptRow, AttemptState, ClearTask, Finish, LogLine, NewRun, NewTask, NodeRow, NodeState,
    Outcome, Reap, Role, RunActivity, RunFilter, RunMark, RunRow, RunType, SlotStatus, Store,
    Stream, TaskRow, TiId, Transition, WorkerId,
};

/// Calls `$m!(check, check, ...)` with the name of every check: a backend's
/// test file turns them into one test each, and no check can be left out.
#[macro_export]
macro_rules! for_each_check {
    ($m:ident) => {
        $m!(
            upsert_dag_versions,
            duplicate_dag_id_is_refused,
            push_dags_and_one_owner_per_id,
            git_commits_in_order,
            sync_files_marks_absent_files,
            renamed_dag_id_retires_the_old_one,
            import_errors_round_trip,
            set_paused,
            dags_changed_since_lists_changes,
            dag_page_filters_and_pages,
            delete_dag_and_history,
            create_run_one_per_slot,
            create_run_moves_cursor,
            create_run_task_instances,
            promote_runs_respects_max_active_runs,
            promote_runs_skips_paused_dags,
            batched_runs_and_reads,
            apply_transitions_is_conditional,
            run_state_counts_follow_transitions,
            enqueue_respects_max_active_tasks,
            enqueue_respects_pools,
            slot_ledger,
            claim_priority_queues_and_limit,
            claim_is_exclusive,
            finish_attempt_is_fenced,
            finish_attempts_fences_each,
            finish_attempts_tells_tries_apart,
            retry_claims_next_try,
            heartbeat_returns_only_held_attempts,
            expired_attempts_and_reap,
            reap_refund_try,
            reaper_respects_the_workers_lease,
            logs_paging,
            nodes_round_trip,
            mark_run_and_cancel,
            mark_task_states,
            clear_tasks_requeues_finished_run,
            listing_for_the_web,
            history_and_calendar,
            backfills_progress,
            cancel_backfill_once,
            users_sessions_tokens,
            audit_log_round_trip,
            audit_log_is_bounded,
            sessions_idle_and_tokens_revoked,
            variables_round_trip,
            connections_round_trip,
            reseal_is_conditional,
            alert_channels_round_trip,
            enqueue_alerts_is_idempotent,
            claim_deliveries_is_exclusive,
            expired_delivery_claim_is_fenced,
            delivery_retry_and_give_up,
            delivery_results_recorded_together,
            deliveries_listed_counted_pruned,
            alerts_ride_with_their_change,
            claim_window_holds_a_channel_back,
        );
    };
}

/// Runs every check, each against a store from `new_store` (which must return a
/// fresh, empty store on every call).
pub async fn run_all<S: Store>(new_store: impl Fn() -> S) {
    macro_rules! run_each {
        ($($check:ident),* $(,)?) => {
            $( $check(&new_store()).await; )*
        };
    }
    for_each_check!(run_each);
}

mod alerts;
mod audit;
mod auth;
mod backfills;
mod dags;
mod leases;
mod logs;
mod nodes;
mod operator;
mod outbox;
mod pools;
mod queue;
mod runs;
mod secrets;
mod slots;
mod sources;
mod tasks;
mod web;

pub use alerts::*;
pub use audit::*;
pub use auth::*;
pub use backfills::*;
pub use dags::*;
pub use leases::*;
pub use logs::*;
pub use nodes::*;
pub use operator::*;
pub use outbox::*;
pub use pools::*;
pub use queue::*;
pub use runs::*;
pub use secrets::*;
pub use slots::*;
pub use sources::*;
pub use tasks::*;
pub use web::*;

// ---------- fixtures ----------

/// The DAG processor the fixtures record DAGs as.
const OWNER: &str = "host:/dags";

/// 2026-01-01T00:00:00Z.
const BASE_SECOND: i64 = 1_767_225_600;

/// Midnight UTC `n` days after 2026-01-01.
fn day(n: i64) -> Timestamp {
    Timestamp::from_second(BASE_SECOND + n * 86_400).expect("a valid timestamp")
}

const ETL_V1: &str = r#"
id: etl
description: nightly load
schedule: "0 2 * * *"
max_active_runs: 2
tags: [etl, nightly]
tasks:
  extract:
    run: ./bin/extract
    retries: 2
    priority: 5
  load:
    needs: [extract]
    run: ./bin/load
    queue: io
"#;

const ETL_V2: &str = r#"
id: etl
description: nightly load, now with a report
schedule: "0 3 * * *"
max_active_runs: 2
tags: [etl]
tasks:
  extract:
    run: ./bin/extract
    retries: 2
    priority: 5
  load:
    needs: [extract]
    run: ./bin/load
    queue: io
  report:
    needs: [load]
    run: ./bin/report
"#;

/// `n` independent tasks `t1..tn` on the default queue, priority `n+1-i` (so `t1`
/// is the most urgent), in a DAG with the given extra top-level YAML.
fn flat_dag_source(id: &str, n: usize, extra: &str) -> String {
    let mut s = format!("id: {id}\nschedule: '@daily'\n{extra}\ntasks:\n");
    for i in 1..=n {
        s.push_str(&format!(
            "  t{i}:\n    run: echo {i}\n    priority: {}\n",
            n + 1 - i
        ));
    }
    s
}

/// A DAG as the DAG processor would store it.
struct Seeded {
    dag: Dag,
    file: String,
    hash: String,
}

impl Seeded {
    fn id(&self) -> &DagId {
        &self.dag.id
    }
}

fn parse_dag(file: &str, source: &str) -> Dag {
    let stem = file
        .rsplit('/')
        .next()
        .and_then(|name| name.split('.').next())
        .unwrap_or(file);
    parse(file, stem, source)
        .unwrap_or_else(|e| panic!("conformance fixture {file} does not parse: {e:?}"))
}

async fn seed<S: Store + ?Sized>(store: &S, file: &str, source: &str) -> Seeded {
    let dag = parse_dag(file, source);
    let hash = content_hash(source);
    store
        .upsert_dag(&dag, file, source, &hash, OWNER)
        .await
        .unwrap_or_else(|e| panic!("upsert_dag({file}) failed: {e}"));
    Seeded {
        dag,
        file: file.to_owned(),
        hash,
    }
}

fn new_run(dag: &Seeded, run_key: &str, run_type: RunType, logical_date: Timestamp) -> NewRun {
    NewRun {
        dag_id: dag.dag.id.clone(),
        run_key: run_key.to_owned(),
        run_type,
        version_hash: dag.hash.clone(),
        logical_date,
        interval_start: logical_date,
        interval_end: Timestamp::from_second(logical_date.as_second() + 86_400)
            .expect("a valid timestamp"),
        conf: serde_json::Map::new(),
        tasks: NewTask::for_dag(&dag.dag),
    }
}

async fn create<S: Store + ?Sized>(store: &S, run: &NewRun) -> RunId {
    store
        .create_run(run)
        .await
        .unwrap_or_else(|e| panic!("create_run({}) failed: {e}", run.run_key))
        .unwrap_or_else(|| panic!("create_run({}) created no run", run.run_key))
}

async fn tasks_of<S: Store + ?Sized>(store: &S, run: RunId) -> Vec<TaskRow> {
    store.run_tasks(run).await.expect("run_tasks")
}

fn find<'a>(rows: &'a [TaskRow], task_id: &str) -> &'a TaskRow {
    rows.iter()
        .find(|t| t.task_id.as_str() == task_id)
        .unwrap_or_else(|| panic!("no task instance {task_id:?} in {rows:#?}"))
}

async fn ti_of<S: Store + ?Sized>(store: &S, run: RunId, task_id: &str) -> TaskRow {
    find(&tasks_of(store, run).await, task_id).clone()
}

/// Moves the named task instances of a run `none -> scheduled`.
async fn schedule_tasks<S: Store + ?Sized>(store: &S, run: RunId, task_ids: &[&str]) -> Vec<TiId> {
    let rows = tasks_of(store, run).await;
    let tis: Vec<TiId> = task_ids.iter().map(|id| find(&rows, id).id).collect();
    let transitions: Vec<Transition> = tis
        .iter()
        .map(|&ti| Transition {
            ti,
            from: TaskState::None,
            to: TaskState::Scheduled,
            retry_at: None,
        })
        .collect();
    let n = store
        .apply_transitions(&transitions)
        .await
        .expect("apply_transitions");
    assert_eq!(n, tis.len(), "scheduling {task_ids:?} of run {run}");
    tis
}

/// Moves the named task instances of a run `none -> scheduled -> queued`.
async fn queue_tasks<S: Store + ?Sized>(store: &S, dag: &DagId, run: RunId, task_ids: &[&str]) {
    let tis = schedule_tasks(store, run, task_ids).await;
    let n = store.enqueue(dag, &tis, None).await.expect("enqueue");
    assert_eq!(n, tis.len(), "queueing {task_ids:?} of run {run}");
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn finish(ti: TiId, try_number: u32, worker_id: &str, state: TaskState, outcome: &str) -> Finish {
    Finish {
        alerts: Vec::new(),
        ti,
        try_number,
        worker_id: worker_id.into(),
        state,
        retry_at: None,
        outcome: Outcome::parse(outcome).expect("an outcome"),
        exit_code: None,
        message: None,
        outputs: BTreeMap::new(),
        pid: None,
        command: None,
    }
}

fn reap(ti: TiId, try_number: u32, worker_id: &str, lease: Duration) -> Reap {
    Reap {
        alerts: Vec::new(),
        ti,
        try_number,
        worker_id: worker_id.into(),
        lease,
        to: TaskState::UpForRetry,
        retry_at: None,
        outcome: Outcome::Lost,
        message: format!("worker {worker_id} stopped heartbeating"),
        refund_try: false,
    }
}

/// A run with `n` independent queued tasks (`t1` most urgent), all on `default`.
async fn queued_run<S: Store + ?Sized>(store: &S, dag_id: &str, n: usize) -> (Seeded, RunId) {
    let dag = seed(
        store,
        &format!("dags/{dag_id}.yaml"),
        &flat_dag_source(dag_id, n, ""),
    )
    .await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let names: Vec<String> = (1..=n).map(|i| format!("t{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    queue_tasks(store, dag.id(), run, &names).await;
    (dag, run)
}

fn ids(rows: &[TaskRow]) -> BTreeSet<TiId> {
    rows.iter().map(|t| t.id).collect()
}
