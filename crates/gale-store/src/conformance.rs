//! A backend-independent conformance suite that every [`Store`] backend must pass.
//!
//! Each check is a `pub async fn` taking a fresh, empty store, so a failure names
//! the behaviour that broke; [`run_all`] runs every check, each on its own store.
//! The SQLite backend runs it in `tests/it`; a future PostgreSQL backend will call
//! the same functions. Checks panic (via `assert!`) on a violation: this is test
//! support code, not something a running node calls.
//!
//! Checks only use the trait, and only rely on what its documentation promises.
//! Timestamps passed in are whole seconds, since backends keep microseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gale_model::dag::{content_hash, parse};
use gale_model::{Dag, DagError, DagId, RunId, RunState, TaskState};
use jiff::Timestamp;

use crate::{
    AttemptRow, ClearTask, Finish, LogLine, NewRun, NewTask, NodeRow, Reap, RunActivity, RunFilter,
    RunMark, RunRow, RunType, SlotStatus, Store, Stream, TaskRow, TiId, Transition,
};

/// Calls `$m!(check, check, ...)` with the name of every check: a backend's
/// test file turns them into one test each, and no check can be left out.
#[macro_export]
macro_rules! for_each_check {
    ($m:ident) => {
        $m!(
            upsert_dag_versions,
            duplicate_dag_id_is_refused,
            sync_files_marks_absent_files,
            renamed_dag_id_retires_the_old_one,
            import_errors_round_trip,
            set_paused,
            create_run_one_per_slot,
            create_run_moves_cursor,
            create_run_task_instances,
            promote_runs_respects_max_active_runs,
            promote_runs_skips_paused_dags,
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
            backfills_progress,
            users_sessions_tokens,
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
        ti,
        try_number,
        worker_id: worker_id.to_owned(),
        state,
        retry_at: None,
        outcome: outcome.to_owned(),
        exit_code: None,
        message: None,
        outputs: BTreeMap::new(),
        pid: None,
        command: None,
    }
}

fn reap(ti: TiId, try_number: u32, worker_id: &str, lease: Duration) -> Reap {
    Reap {
        ti,
        try_number,
        worker_id: worker_id.to_owned(),
        lease,
        to: TaskState::UpForRetry,
        retry_at: None,
        outcome: "lost".into(),
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

// ---------- DAGs ----------

/// `upsert_dag` creates the DAG and a version; the same content again is no new
/// version; new content is a new version the DAG points at, the old one kept.
pub async fn upsert_dag_versions<S: Store + ?Sized>(store: &S) {
    let dag = parse_dag("dags/etl.yaml", ETL_V1);
    let hash = content_hash(ETL_V1);
    let new = store
        .upsert_dag(&dag, "dags/etl.yaml", ETL_V1, &hash, OWNER)
        .await
        .expect("upsert_dag");
    assert!(
        new,
        "the first upsert_dag of a DAG must report a new version"
    );

    let row = store
        .get_dag(&dag.id)
        .await
        .expect("get_dag")
        .expect("upsert_dag must create the DAG row");
    assert_eq!(row.dag_id, dag.id);
    assert_eq!(row.file, "dags/etl.yaml");
    assert_eq!(row.version_hash, hash);
    assert!(!row.paused, "a new DAG starts unpaused");
    assert!(row.active, "a new DAG starts active");
    assert_eq!(row.schedule.as_deref(), Some("0 2 * * *"));
    assert_eq!(row.timezone, "UTC");
    assert_eq!(row.max_active_runs, 2);
    assert_eq!(row.description.as_deref(), Some("nightly load"));
    assert_eq!(row.tags, vec!["etl".to_owned(), "nightly".to_owned()]);
    assert_eq!(row.last_interval_end, None);

    let listed = store.list_dags().await.expect("list_dags");
    assert_eq!(listed.len(), 1, "list_dags: {listed:#?}");
    assert_eq!(listed[0].dag_id, dag.id);

    let version = store
        .get_version(&dag.id, &hash)
        .await
        .expect("get_version")
        .expect("upsert_dag must store the version");
    assert_eq!(version.dag_id, dag.id);
    assert_eq!(version.version_hash, hash);
    assert_eq!(version.file, "dags/etl.yaml");
    assert_eq!(version.source, ETL_V1);
    assert_eq!(version.spec, dag, "the stored spec must round-trip");

    let again = store
        .upsert_dag(&dag, "dags/etl.yaml", ETL_V1, &hash, OWNER)
        .await
        .expect("upsert_dag again");
    assert!(!again, "the same content again must not be a new version");
    let row = store.get_dag(&dag.id).await.expect("get_dag").unwrap();
    assert_eq!(row.version_hash, hash);

    let dag2 = parse_dag("dags/etl.yaml", ETL_V2);
    let hash2 = content_hash(ETL_V2);
    assert_ne!(hash, hash2);
    let new = store
        .upsert_dag(&dag2, "dags/etl.yaml", ETL_V2, &hash2, OWNER)
        .await
        .expect("upsert_dag v2");
    assert!(new, "changed content must be a new version");
    let row = store.get_dag(&dag.id).await.expect("get_dag").unwrap();
    assert_eq!(
        row.version_hash, hash2,
        "the DAG must point at the new version"
    );
    assert_eq!(row.schedule.as_deref(), Some("0 3 * * *"));
    assert_eq!(
        row.description.as_deref(),
        Some("nightly load, now with a report")
    );
    assert_eq!(row.tags, vec!["etl".to_owned()]);
    let v2 = store
        .get_version(&dag.id, &hash2)
        .await
        .expect("get_version v2")
        .expect("v2 stored");
    assert_eq!(v2.spec.tasks.len(), 3);
    assert!(
        store
            .get_version(&dag.id, &hash)
            .await
            .expect("get_version v1")
            .is_some(),
        "old versions must be kept: runs refer to them"
    );
    assert!(
        store
            .get_version(&dag.id, "no-such-hash")
            .await
            .expect("get_version unknown")
            .is_none()
    );
    assert!(
        store
            .get_dag(&DagId::from("nope"))
            .await
            .expect("get_dag unknown")
            .is_none()
    );
}

/// A second file defining an active DAG's id is refused, changing nothing.
pub async fn duplicate_dag_id_is_refused<S: Store + ?Sized>(store: &S) {
    let original = seed(store, "dags/etl.yaml", ETL_V1).await;
    let copy_source = ETL_V1.replace("nightly load", "a copy");
    let copy = parse_dag("dags/copy.yaml", &copy_source);
    assert_eq!(copy.id, original.dag.id);
    let copy_hash = content_hash(&copy_source);
    let err = store
        .upsert_dag(&copy, "dags/copy.yaml", &copy_source, &copy_hash, OWNER)
        .await
        .expect_err("a second file defining an active DAG id must be refused");
    assert!(
        err.to_string().contains("duplicate"),
        "the error must say \"duplicate\": {err}"
    );
    assert!(
        !err.is_retryable(),
        "a duplicate DAG id is not fixed by retrying: {err:?}"
    );
    let row = store
        .get_dag(original.id())
        .await
        .expect("get_dag")
        .unwrap();
    assert_eq!(row.file, "dags/etl.yaml", "the original file keeps the DAG");
    assert_eq!(row.version_hash, original.hash);
    assert_eq!(row.description.as_deref(), Some("nightly load"));
    assert!(
        store
            .get_version(original.id(), &copy_hash)
            .await
            .expect("get_version")
            .is_none(),
        "a refused file must not leave a version behind"
    );
    // The original file itself may be upserted again.
    let again = store
        .upsert_dag(&original.dag, &original.file, ETL_V1, &original.hash, OWNER)
        .await
        .expect("the file that owns the DAG id may upsert it again");
    assert!(!again);
}

/// A file defines one DAG: when a file's DAG id changes, the DAG it defined before
/// becomes inactive (it is no longer defined anywhere) and its id is free again.
pub async fn renamed_dag_id_retires_the_old_one<S: Store + ?Sized>(store: &S) {
    let old = seed(store, "dags/a.yaml", &flat_dag_source("old_name", 1, "")).await;
    let other = seed(store, "dags/other.yaml", &flat_dag_source("other", 1, "")).await;
    let new = seed(store, "dags/a.yaml", &flat_dag_source("new_name", 1, "")).await;

    let new_row = store.get_dag(new.id()).await.expect("get_dag").unwrap();
    assert!(new_row.active);
    assert_eq!(new_row.file, "dags/a.yaml");
    let old_row = store
        .get_dag(old.id())
        .await
        .expect("get_dag")
        .expect("the old DAG is kept (its runs refer to it), only inactive");
    assert!(
        !old_row.active,
        "a DAG whose file now defines another id must become inactive"
    );
    assert!(
        store
            .get_dag(other.id())
            .await
            .expect("get_dag")
            .unwrap()
            .active,
        "DAGs of other files are not touched"
    );

    // The old id is free: another file may define it now.
    let moved = seed(store, "dags/b.yaml", &flat_dag_source("old_name", 2, "")).await;
    let row = store.get_dag(moved.id()).await.expect("get_dag").unwrap();
    assert!(row.active);
    assert_eq!(row.file, "dags/b.yaml");
    assert!(
        store
            .get_dag(new.id())
            .await
            .expect("get_dag")
            .unwrap()
            .active,
        "taking over a free id does not retire the file's former owner's new DAG"
    );
}

/// `sync_files` marks DAGs of absent files inactive (freeing their ids) and drops
/// the import errors of absent files.
pub async fn sync_files_marks_absent_files<S: Store + ?Sized>(store: &S) {
    let a = seed(store, "dags/a.yaml", &flat_dag_source("a", 1, "")).await;
    let b = seed(store, "dags/b.yaml", &flat_dag_source("b", 1, "")).await;
    let err = |file: &str| DagError {
        file: file.to_owned(),
        line: 3,
        column: 7,
        message: "bad".into(),
    };
    store
        .record_import_errors("dags/gone.yaml", None, &[err("dags/gone.yaml")], OWNER)
        .await
        .expect("record_import_errors");
    store
        .record_import_errors("dags/bad.yaml", Some("bad"), &[err("dags/bad.yaml")], OWNER)
        .await
        .expect("record_import_errors");

    // What another DAG processor (another host or folder) recorded is its own.
    let theirs_source = flat_dag_source("theirs", 1, "");
    let theirs = parse_dag("other/theirs.yaml", &theirs_source);
    store
        .upsert_dag(
            &theirs,
            "other/theirs.yaml",
            &theirs_source,
            &content_hash(&theirs_source),
            "node2:/other",
        )
        .await
        .expect("upsert_dag");
    store
        .record_import_errors(
            "other/broken.yaml",
            None,
            &[err("other/broken.yaml")],
            "node2:/other",
        )
        .await
        .expect("record_import_errors");

    store
        .sync_files(
            OWNER,
            &["dags/a.yaml".to_owned(), "dags/bad.yaml".to_owned()],
        )
        .await
        .expect("sync_files");
    assert!(
        store
            .get_dag(&theirs.id)
            .await
            .expect("get_dag")
            .expect("theirs")
            .active,
        "another processor's DAG is not retired by this one"
    );
    assert!(
        store
            .list_import_errors()
            .await
            .expect("list_import_errors")
            .iter()
            .any(|e| e.file == "other/broken.yaml"),
        "another processor's import errors are not dropped by this one"
    );
    store
        .sync_files("node2:/other", &[])
        .await
        .expect("sync_files");
    assert!(
        !store
            .get_dag(&theirs.id)
            .await
            .expect("get_dag")
            .expect("theirs")
            .active,
        "its own processor retires it"
    );

    let a_row = store.get_dag(a.id()).await.expect("get_dag").unwrap();
    assert!(a_row.active, "a DAG whose file is present stays active");
    let b_row = store
        .get_dag(b.id())
        .await
        .expect("get_dag")
        .expect("an absent file's DAG is kept (its runs refer to it), only inactive");
    assert!(
        !b_row.active,
        "a DAG whose file is absent must become inactive"
    );
    let files: Vec<String> = store
        .list_import_errors()
        .await
        .expect("list_import_errors")
        .into_iter()
        .map(|e| e.file)
        .collect();
    assert_eq!(
        files,
        vec!["dags/bad.yaml".to_owned()],
        "import errors of absent files must be dropped, others kept"
    );

    // The inactive DAG's id is free for another file now.
    let moved = seed(store, "dags/b2.yaml", &flat_dag_source("b", 2, "")).await;
    let row = store.get_dag(moved.id()).await.expect("get_dag").unwrap();
    assert_eq!(row.file, "dags/b2.yaml");
    assert!(row.active, "upserting a DAG makes it active again");
    assert_eq!(row.version_hash, moved.hash);
}

/// Import errors round-trip file, DAG id, line, column and message; recording a
/// file again replaces its errors; a successful upsert of the file clears them.
pub async fn import_errors_round_trip<S: Store + ?Sized>(store: &S) {
    let broken = "schedule: '99 * * * *'\ntasks:\n  a:\n    run: x\n    needs: [nope]\n";
    let errors =
        parse("dags/broken.yaml", "broken", broken).expect_err("the fixture must not parse");
    assert!(errors.len() >= 2, "{errors:?}");
    store
        .record_import_errors("dags/broken.yaml", Some("broken"), &errors, OWNER)
        .await
        .expect("record_import_errors");
    let other = vec![DagError {
        file: "dags/other.yaml".into(),
        line: 0,
        column: 0,
        message: "file is not UTF-8: ünïcödé ✓".into(),
    }];
    store
        .record_import_errors("dags/other.yaml", None, &other, OWNER)
        .await
        .expect("record_import_errors");

    let mut listed = store
        .list_import_errors()
        .await
        .expect("list_import_errors");
    listed.sort_by(|x, y| x.file.cmp(&y.file));
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(listed[0].file, "dags/broken.yaml");
    assert_eq!(listed[0].dag_id.as_deref(), Some("broken"));
    assert_eq!(
        listed[0].errors, errors,
        "file, line, column and message must round-trip"
    );
    assert_eq!(listed[1].file, "dags/other.yaml");
    assert_eq!(listed[1].dag_id, None);
    assert_eq!(listed[1].errors, other);

    let replacement = vec![DagError {
        file: "dags/broken.yaml".into(),
        line: 9,
        column: 2,
        message: "still broken".into(),
    }];
    store
        .record_import_errors("dags/broken.yaml", None, &replacement, OWNER)
        .await
        .expect("record_import_errors again");
    let listed = store
        .list_import_errors()
        .await
        .expect("list_import_errors");
    let entries: Vec<_> = listed
        .iter()
        .filter(|e| e.file == "dags/broken.yaml")
        .collect();
    assert_eq!(entries.len(), 1, "one entry per file: {listed:#?}");
    assert_eq!(entries[0].errors, replacement, "recording again replaces");
    assert_eq!(entries[0].dag_id, None);

    seed(store, "dags/broken.yaml", &flat_dag_source("broken", 1, "")).await;
    let files: Vec<String> = store
        .list_import_errors()
        .await
        .expect("list_import_errors")
        .into_iter()
        .map(|e| e.file)
        .collect();
    assert_eq!(
        files,
        vec!["dags/other.yaml".to_owned()],
        "a successful upsert_dag clears the file's import errors"
    );
}

/// `set_paused` is false for an unknown DAG, toggles `paused`, and a new version
/// of a paused DAG stays paused.
pub async fn set_paused<S: Store + ?Sized>(store: &S) {
    let unknown = store
        .set_paused(&DagId::from("nope"), true)
        .await
        .expect("set_paused unknown");
    assert!(!unknown, "set_paused of an unknown DAG must return false");
    assert!(
        store.list_dags().await.expect("list_dags").is_empty(),
        "set_paused must not create a DAG"
    );

    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    assert!(store.set_paused(dag.id(), true).await.expect("set_paused"));
    let row = store.get_dag(dag.id()).await.expect("get_dag").unwrap();
    assert!(row.paused, "set_paused(true) must pause");

    seed(store, "dags/etl.yaml", ETL_V2).await;
    let row = store.get_dag(dag.id()).await.expect("get_dag").unwrap();
    assert!(row.paused, "a new version of a paused DAG must stay paused");

    assert!(store.set_paused(dag.id(), false).await.expect("set_paused"));
    let row = store.get_dag(dag.id()).await.expect("get_dag").unwrap();
    assert!(!row.paused, "set_paused(false) must unpause");
}

// ---------- runs ----------

/// One run per slot: a scheduled or backfill run at a logical date that already
/// has one is refused, whatever its key; a manual run there is allowed; a run key
/// is never reused.
pub async fn create_run_one_per_slot<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    let mut first = new_run(&dag, "scheduled__2026-01-02", RunType::Scheduled, day(1));
    first.conf.insert("region".into(), "eu".into());
    first.conf.insert("limit".into(), 10.into());
    let id = create(store, &first).await;

    let run = store
        .get_run(id)
        .await
        .expect("get_run")
        .expect("the created run");
    assert_eq!(run.id, id);
    assert_eq!(run.dag_id, dag.dag.id);
    assert_eq!(run.run_key, "scheduled__2026-01-02");
    assert_eq!(run.run_type, RunType::Scheduled);
    assert_eq!(run.version_hash, dag.hash);
    assert_eq!(run.logical_date, day(1));
    assert_eq!(run.interval_start, day(1));
    assert_eq!(run.interval_end, day(2));
    assert_eq!(run.conf, first.conf, "conf must round-trip");
    assert_eq!(run.state, RunState::Queued, "a new run is queued");
    assert_eq!(run.started_at, None);
    assert_eq!(run.ended_at, None);

    let same_key = store.create_run(&first).await.expect("create_run again");
    assert_eq!(
        same_key, None,
        "the same run key must not create a second run"
    );

    let other_key = new_run(&dag, "scheduled__other", RunType::Scheduled, day(1));
    assert_eq!(
        store.create_run(&other_key).await.expect("create_run"),
        None,
        "a second scheduled run for the same slot must be refused"
    );
    let backfill = new_run(&dag, "backfill__2026-01-02", RunType::Backfill, day(1));
    assert_eq!(
        store.create_run(&backfill).await.expect("create_run"),
        None,
        "a backfill run for a slot that has a run must be refused"
    );

    let manual = new_run(&dag, "manual__now", RunType::Manual, day(1));
    let manual_id = store
        .create_run(&manual)
        .await
        .expect("create_run manual")
        .expect("a manual run at an occupied logical date is allowed");
    assert_ne!(manual_id, id);
    let manual_key_again = new_run(&dag, "manual__now", RunType::Manual, day(7));
    assert_eq!(
        store
            .create_run(&manual_key_again)
            .await
            .expect("create_run"),
        None,
        "a run key is unique within a DAG, for manual runs too"
    );

    let backfill_free = new_run(&dag, "backfill__2026-01-04", RunType::Backfill, day(3));
    let backfill_id = create(store, &backfill_free).await;
    let scheduled_there = new_run(&dag, "scheduled__2026-01-04", RunType::Scheduled, day(3));
    assert_eq!(
        store
            .create_run(&scheduled_there)
            .await
            .expect("create_run"),
        None,
        "a scheduled run for a slot a backfill run took must be refused"
    );

    let runs = store
        .list_runs(&RunFilter {
            dag_id: Some(dag.dag.id.clone()),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    let listed: BTreeSet<RunId> = runs.iter().map(|r| r.id).collect();
    assert_eq!(
        listed,
        BTreeSet::from([id, manual_id, backfill_id]),
        "exactly the three accepted runs exist: {runs:#?}"
    );
    assert_eq!(
        store
            .count_active_runs(dag.id())
            .await
            .expect("count_active_runs"),
        3
    );
    // Refused runs left no task instances behind.
    assert_eq!(tasks_of(store, id).await.len(), 2);
}

/// A scheduled run moves the DAG's `last_interval_end` forward (never back); other
/// run types do not move it.
pub async fn create_run_moves_cursor<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    let cursor = async || {
        store
            .get_dag(dag.id())
            .await
            .expect("get_dag")
            .unwrap()
            .last_interval_end
    };
    assert_eq!(cursor().await, None);

    create(
        store,
        &new_run(&dag, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    assert_eq!(
        cursor().await,
        Some(day(2)),
        "a scheduled run must move last_interval_end to its interval end"
    );

    create(
        store,
        &new_run(&dag, "scheduled__0", RunType::Scheduled, day(0)),
    )
    .await;
    assert_eq!(
        cursor().await,
        Some(day(2)),
        "an earlier scheduled run must not move the cursor back"
    );

    create(store, &new_run(&dag, "manual__9", RunType::Manual, day(9))).await;
    create(
        store,
        &new_run(&dag, "backfill__8", RunType::Backfill, day(8)),
    )
    .await;
    assert_eq!(
        cursor().await,
        Some(day(2)),
        "manual and backfill runs must not move the cursor"
    );

    create(
        store,
        &new_run(&dag, "scheduled__4", RunType::Scheduled, day(4)),
    )
    .await;
    assert_eq!(cursor().await, Some(day(5)));
}

/// A new run's task instances are `none` with try number 0 and the given limits.
pub async fn create_run_task_instances<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let rows = tasks_of(store, run).await;
    assert_eq!(rows.len(), 2, "one task instance per task: {rows:#?}");
    for t in &rows {
        assert_eq!(t.run_id, run);
        assert_eq!(t.dag_id, dag.dag.id);
        assert_eq!(t.state, TaskState::None, "{} starts in none", t.task_id);
        assert_eq!(t.try_number, 0, "{} starts at try 0", t.task_id);
        assert_eq!(t.worker_id, None);
        assert_eq!(t.heartbeat_at, None);
        assert_eq!(t.queued_at, None);
        assert_eq!(t.started_at, None);
        assert_eq!(t.ended_at, None);
        assert_eq!(t.retry_at, None);
        assert!(t.outputs.is_empty());
    }
    let extract = find(&rows, "extract");
    assert_eq!(extract.max_tries, 3);
    assert_eq!(extract.queue, "default");
    assert_eq!(extract.priority, 5);
    let load = find(&rows, "load");
    assert_eq!(load.max_tries, 1);
    assert_eq!(load.queue, "io");
    assert_eq!(load.priority, 0);
    assert_ne!(extract.id, load.id);

    let other = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    let other_ids = ids(&tasks_of(store, other).await);
    assert!(
        ids(&rows).is_disjoint(&other_ids),
        "task instance ids must be unique across runs"
    );
}

/// `promote_runs` starts queued runs oldest logical date first, never more than
/// `max_active_runs` running per DAG.
pub async fn promote_runs_respects_max_active_runs<S: Store + ?Sized>(store: &S) {
    let serial = seed(store, "dags/serial.yaml", &flat_dag_source("serial", 1, "")).await;
    assert_eq!(serial.dag.max_active_runs, 1);
    // Created newest first, so creation order and logical date order differ.
    let later = create(
        store,
        &new_run(&serial, "scheduled__2", RunType::Scheduled, day(2)),
    )
    .await;
    let older = create(
        store,
        &new_run(&serial, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let wide = seed(
        store,
        "dags/wide.yaml",
        &flat_dag_source("wide", 1, "max_active_runs: 2"),
    )
    .await;
    let mut wide_runs = Vec::new();
    for d in 1..=3 {
        wide_runs.push(
            create(
                store,
                &new_run(
                    &wide,
                    &format!("scheduled__{d}"),
                    RunType::Scheduled,
                    day(d),
                ),
            )
            .await,
        );
    }

    let promoted: BTreeSet<RunId> = store
        .promote_runs()
        .await
        .expect("promote_runs")
        .into_iter()
        .collect();
    assert_eq!(
        promoted,
        BTreeSet::from([older, wide_runs[0], wide_runs[1]]),
        "only the oldest run of a max_active_runs=1 DAG and the two oldest of a \
         max_active_runs=2 DAG may start"
    );
    let run = store.get_run(older).await.expect("get_run").unwrap();
    assert_eq!(run.state, RunState::Running);
    assert!(run.started_at.is_some(), "a promoted run has started_at");
    let run = store.get_run(later).await.expect("get_run").unwrap();
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(
        store.count_active_runs(serial.id()).await.expect("count"),
        2,
        "queued plus running"
    );
    let running: BTreeSet<RunId> = store
        .running_runs(100)
        .await
        .expect("running_runs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(running, promoted);

    assert!(
        store.promote_runs().await.expect("promote_runs").is_empty(),
        "nothing more may start while the limits are reached"
    );

    assert!(
        store
            .finish_run(older, RunState::Success)
            .await
            .expect("finish_run"),
        "finish_run of a running run"
    );
    let run = store.get_run(older).await.expect("get_run").unwrap();
    assert_eq!(run.state, RunState::Success);
    assert!(run.ended_at.is_some());
    assert!(
        !store
            .finish_run(older, RunState::Failed)
            .await
            .expect("finish_run again"),
        "finish_run of a finished run must return false"
    );
    assert_eq!(
        store.get_run(older).await.expect("get_run").unwrap().state,
        RunState::Success,
        "a second finish_run must not change the state"
    );
    assert!(
        !store
            .finish_run(later, RunState::Success)
            .await
            .expect("finish_run of a queued run"),
        "finish_run of a queued run must return false"
    );

    assert_eq!(
        store.promote_runs().await.expect("promote_runs"),
        vec![later],
        "after the running run finished, the next one starts"
    );
    assert_eq!(
        store.get_run(later).await.expect("get_run").unwrap().state,
        RunState::Running
    );
}

/// `promote_runs` leaves the queued runs of a paused DAG alone.
pub async fn promote_runs_skips_paused_dags<S: Store + ?Sized>(store: &S) {
    let held = seed(store, "dags/held.yaml", &flat_dag_source("held", 1, "")).await;
    assert!(store.set_paused(held.id(), true).await.expect("set_paused"));
    let run = create(store, &new_run(&held, "manual__1", RunType::Manual, day(1))).await;
    assert!(
        store.promote_runs().await.expect("promote_runs").is_empty(),
        "a paused DAG's runs must not start"
    );
    assert_eq!(
        store.get_run(run).await.expect("get_run").unwrap().state,
        RunState::Queued
    );
    assert!(
        store
            .set_paused(held.id(), false)
            .await
            .expect("set_paused")
    );
    assert_eq!(
        store.promote_runs().await.expect("promote_runs"),
        vec![run],
        "once unpaused, the run starts"
    );
}

// ---------- task instances ----------

/// A transition applies only if the task is still in `from`; only applied ones count.
pub async fn run_state_counts_follow_transitions<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/flat.yaml", &flat_dag_source("flat", 3, "")).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let other = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    let counts = |c: Vec<(TaskState, u32)>| {
        let mut c = c;
        c.sort_by_key(|(s, _)| s.as_str());
        c
    };
    let got = store.run_state_counts(run).await.expect("run_state_counts");
    assert_eq!(counts(got), [(TaskState::None, 3)]);
    let rows = tasks_of(store, run).await;
    store
        .apply_transitions(&[
            Transition {
                ti: find(&rows, "t1").id,
                from: TaskState::None,
                to: TaskState::Scheduled,
                retry_at: None,
            },
            Transition {
                ti: find(&rows, "t2").id,
                from: TaskState::None,
                to: TaskState::Skipped,
                retry_at: None,
            },
        ])
        .await
        .expect("apply_transitions");
    let got = store.run_state_counts(run).await.expect("run_state_counts");
    assert_eq!(
        counts(got),
        [
            (TaskState::None, 1),
            (TaskState::Scheduled, 1),
            (TaskState::Skipped, 1)
        ]
    );
    let got = store
        .run_state_counts(other)
        .await
        .expect("run_state_counts");
    assert_eq!(
        counts(got),
        [(TaskState::None, 3)],
        "other runs are not counted"
    );
    let missing = store
        .run_state_counts(RunId(999_999))
        .await
        .expect("run_state_counts");
    assert!(missing.is_empty());

    // run_activity: pending (none/scheduled/up_for_retry) and in flight
    // (queued/running), each true as soon as one task instance is.
    let activity = |pending, in_flight| RunActivity { pending, in_flight };
    assert_eq!(
        store.run_activity(run).await.expect("run_activity"),
        activity(true, false)
    );
    let rows = tasks_of(store, run).await;
    let t1 = find(&rows, "t1").id;
    assert_eq!(
        store
            .enqueue(&dag.dag.id, &[t1], None)
            .await
            .expect("enqueue"),
        1
    );
    assert_eq!(
        store.run_activity(run).await.expect("run_activity"),
        activity(true, true),
        "t3 still waits"
    );
    store
        .apply_transitions(&[Transition {
            ti: find(&rows, "t3").id,
            from: TaskState::None,
            to: TaskState::UpstreamFailed,
            retry_at: None,
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(
        store.run_activity(run).await.expect("run_activity"),
        activity(false, true),
        "only t1 is left, queued"
    );
    assert_eq!(
        store
            .run_activity(RunId(999_999))
            .await
            .expect("run_activity"),
        activity(false, false)
    );
}

pub async fn apply_transitions_is_conditional<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/flat.yaml", &flat_dag_source("flat", 3, "")).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let rows = tasks_of(store, run).await;
    let (t1, t2, t3) = (
        find(&rows, "t1").id,
        find(&rows, "t2").id,
        find(&rows, "t3").id,
    );
    let tr = |ti, from, to| Transition {
        ti,
        from,
        to,
        retry_at: None,
    };

    let n = store
        .apply_transitions(&[
            tr(t1, TaskState::None, TaskState::Scheduled),
            tr(t2, TaskState::Running, TaskState::Success),
            tr(t3, TaskState::None, TaskState::Skipped),
        ])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 2, "only transitions whose `from` matches are counted");
    let rows = tasks_of(store, run).await;
    assert_eq!(find(&rows, "t1").state, TaskState::Scheduled);
    assert_eq!(
        find(&rows, "t2").state,
        TaskState::None,
        "a transition whose `from` does not match must change nothing"
    );
    assert_eq!(find(&rows, "t2").ended_at, None);
    assert_eq!(find(&rows, "t3").state, TaskState::Skipped);
    assert!(
        find(&rows, "t3").ended_at.is_some(),
        "a terminal transition sets ended_at"
    );

    // A stale scheduler repeating the same decision changes nothing.
    let n = store
        .apply_transitions(&[
            tr(t1, TaskState::None, TaskState::Scheduled),
            tr(t1, TaskState::None, TaskState::UpstreamFailed),
        ])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 0);
    assert_eq!(ti_of(store, run, "t1").await.state, TaskState::Scheduled);

    let retry_at = day(3);
    let n = store
        .apply_transitions(&[Transition {
            ti: t1,
            from: TaskState::Scheduled,
            to: TaskState::UpForRetry,
            retry_at: Some(retry_at),
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 1);
    let t = ti_of(store, run, "t1").await;
    assert_eq!(t.state, TaskState::UpForRetry);
    assert_eq!(t.retry_at, Some(retry_at), "retry_at must round-trip");

    // A ready task nothing holds back goes straight to queued, from none or from
    // up_for_retry, stamped for its queue wait, and a worker can claim it.
    let n = store
        .apply_transitions(&[
            tr(t1, TaskState::UpForRetry, TaskState::Queued),
            tr(t2, TaskState::None, TaskState::Queued),
        ])
        .await
        .expect("apply_transitions to queued");
    assert_eq!(n, 2);
    for ti in ["t1", "t2"] {
        let t = ti_of(store, run, ti).await;
        assert_eq!(t.state, TaskState::Queued, "{ti}");
        assert!(
            t.queued_at.is_some(),
            "{ti}: a move to queued sets queued_at"
        );
        assert_eq!(t.retry_at, None, "{ti}");
    }
    let claimed: BTreeSet<TiId> = store
        .claim("w1", "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim")
        .iter()
        .map(|c| c.task.id)
        .collect();
    assert_eq!(claimed, BTreeSet::from([t1, t2]));

    assert_eq!(
        store
            .apply_transitions(&[])
            .await
            .expect("apply_transitions([])"),
        0
    );
}

/// `enqueue` moves scheduled task instances in the order given and never lets a
/// DAG have more than `max_active_tasks` queued plus running, across all its runs.
pub async fn enqueue_respects_max_active_tasks<S: Store + ?Sized>(store: &S) {
    let dag = seed(
        store,
        "dags/limited.yaml",
        &flat_dag_source("limited", 3, "max_active_tasks: 2"),
    )
    .await;
    let max = dag.dag.max_active_tasks;
    assert_eq!(max, Some(2));
    // Another DAG's active tasks do not count against this one's limit.
    let (_other, _) = queued_run(store, "other", 3).await;

    let run1 = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let run2 = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    let mut scheduled = Vec::new();
    for run in [run1, run2] {
        let rows = tasks_of(store, run).await;
        let transitions: Vec<Transition> = ["t3", "t1", "t2"]
            .iter()
            .map(|id| Transition {
                ti: find(&rows, id).id,
                from: TaskState::None,
                to: TaskState::Scheduled,
                retry_at: None,
            })
            .collect();
        assert_eq!(
            store
                .apply_transitions(&transitions)
                .await
                .expect("apply_transitions"),
            3
        );
        scheduled.push(transitions.iter().map(|t| t.ti).collect::<Vec<_>>());
    }

    let n = store
        .enqueue(dag.id(), &scheduled[0], max)
        .await
        .expect("enqueue");
    assert_eq!(n, 2, "enqueue must stop at max_active_tasks");
    let rows = tasks_of(store, run1).await;
    assert_eq!(
        find(&rows, "t3").state,
        TaskState::Queued,
        "enqueue goes in the order given"
    );
    assert!(find(&rows, "t3").queued_at.is_some());
    assert_eq!(find(&rows, "t1").state, TaskState::Queued);
    assert_eq!(find(&rows, "t2").state, TaskState::Scheduled);

    let n = store
        .enqueue(dag.id(), &scheduled[1], max)
        .await
        .expect("enqueue");
    assert_eq!(
        n, 0,
        "queued task instances of another run of the DAG count against the limit"
    );

    // A running attempt counts too.
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 100)
        .await
        .expect("claim");
    let mine: Vec<_> = claims
        .iter()
        .filter(|c| c.task.run_id == run1)
        .map(|c| c.task.clone())
        .collect();
    assert_eq!(
        mine.len(),
        2,
        "both queued tasks of run1 claimed: {claims:#?}"
    );
    let n = store
        .enqueue(dag.id(), &scheduled[1], max)
        .await
        .expect("enqueue");
    assert_eq!(n, 0, "running task instances count against the limit");

    assert!(
        store
            .finish_attempt(&finish(
                mine[0].id,
                mine[0].try_number,
                "w1",
                TaskState::Success,
                "success"
            ))
            .await
            .expect("finish_attempt")
    );
    let n = store
        .enqueue(dag.id(), &scheduled[1], max)
        .await
        .expect("enqueue");
    assert_eq!(n, 1, "a finished task frees one slot");
    let rows = tasks_of(store, run2).await;
    assert_eq!(find(&rows, "t3").state, TaskState::Queued);
    assert_eq!(find(&rows, "t1").state, TaskState::Scheduled);

    // Task instances not in `scheduled` are not moved and use no room.
    let n = store
        .enqueue(dag.id(), &[mine[1].id, scheduled[1][0]], None)
        .await
        .expect("enqueue");
    assert_eq!(n, 0, "only scheduled task instances are enqueued");
    assert_eq!(
        ti_of(store, run1, mine[1].task_id.as_str()).await.state,
        TaskState::Running
    );

    let n = store
        .enqueue(dag.id(), &scheduled[1], None)
        .await
        .expect("enqueue");
    assert_eq!(n, 2, "without a limit every scheduled one is enqueued");
}

/// `claim` takes the highest priority first, only from the listed queues, at most
/// `limit`, and starts an attempt: try 1, the worker's id, an attempt row.
pub async fn claim_priority_queues_and_limit<S: Store + ?Sized>(store: &S) {
    let source = r#"
id: claims
tasks:
  low:
    run: echo low
    priority: 1
  high:
    run: echo high
    priority: 10
  mid:
    run: echo mid
    priority: 5
  gpu:
    run: echo gpu
    priority: 100
    queue: gpu
"#;
    let dag = seed(store, "dags/claims.yaml", source).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    queue_tasks(store, dag.id(), run, &["low", "high", "mid", "gpu"]).await;

    assert!(
        store
            .claim("w1", "host-1", &queues(&["default"]), 0)
            .await
            .expect("claim limit 0")
            .is_empty(),
        "a limit of 0 claims nothing"
    );
    assert!(
        store
            .claim("w1", "host-1", &[], 10)
            .await
            .expect("claim no queues")
            .is_empty(),
        "no queues claims nothing"
    );
    assert!(
        store
            .claim("w1", "host-1", &queues(&["nope"]), 10)
            .await
            .expect("claim unknown queue")
            .is_empty(),
        "a queue without work claims nothing"
    );

    let before = store.now().await.expect("now");
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 2)
        .await
        .expect("claim");
    let names: Vec<&str> = claims.iter().map(|c| c.task.task_id.as_str()).collect();
    assert_eq!(
        names,
        vec!["high", "mid"],
        "claim must take the highest priority first and respect the limit"
    );
    for c in &claims {
        let t = &c.task;
        assert_eq!(t.state, TaskState::Running, "{}", t.task_id);
        assert_eq!(t.try_number, 1, "the first claim is try 1");
        assert_eq!(t.worker_id.as_deref(), Some("w1"));
        let hb = t.heartbeat_at.expect("a claim sets heartbeat_at");
        assert!(
            hb.as_microsecond() >= before.as_microsecond(),
            "heartbeat_at comes from the store's clock"
        );
        assert!(t.started_at.is_some());
        assert_eq!(c.run.id, run, "the claim carries its run");
        assert_eq!(c.run.dag_id, dag.dag.id);
        let stored = ti_of(store, run, t.task_id.as_str()).await;
        assert_eq!(stored.state, TaskState::Running);
        assert_eq!(stored.try_number, 1);
        assert_eq!(stored.worker_id.as_deref(), Some("w1"));

        let attempts = store.attempts(t.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "a claim creates one attempt row");
        let a = &attempts[0];
        assert_eq!(a.ti_id, t.id);
        assert_eq!(a.try_number, 1);
        assert_eq!(a.run_id, run);
        assert_eq!(a.task_id, t.task_id);
        assert_eq!(a.worker_id, "w1");
        assert_eq!(a.host.as_deref(), Some("host-1"));
        assert_eq!(a.state, "running");
        assert_eq!(a.exit_code, None);
        assert_eq!(a.ended_at, None);
    }

    let rows = tasks_of(store, run).await;
    assert_eq!(find(&rows, "low").state, TaskState::Queued);
    assert_eq!(
        find(&rows, "gpu").state,
        TaskState::Queued,
        "claim must not take work from queues it did not list"
    );

    let second = store
        .claim("w2", "host-2", &queues(&["default"]), 10)
        .await
        .expect("claim w2");
    let names: Vec<&str> = second.iter().map(|c| c.task.task_id.as_str()).collect();
    assert_eq!(
        names,
        vec!["low"],
        "a second worker gets only what is still queued"
    );
    assert_eq!(second[0].task.worker_id.as_deref(), Some("w2"));
    assert!(
        store
            .claim("w2", "host-2", &queues(&["default"]), 10)
            .await
            .expect("claim w2 again")
            .is_empty()
    );

    let gpu = store
        .claim("w3", "host-3", &queues(&["io", "gpu", "default"]), 10)
        .await
        .expect("claim w3");
    assert_eq!(gpu.len(), 1);
    assert_eq!(gpu[0].task.task_id.as_str(), "gpu");
    assert_eq!(gpu[0].task.queue, "gpu");

    // record_process fills in the attempt row.
    let high = &claims[0].task;
    store
        .record_process(high.id, 1, Some(4242), "echo high")
        .await
        .expect("record_process");
    let a = &store.attempts(high.id).await.expect("attempts")[0];
    assert_eq!(a.pid, Some(4242));
    assert_eq!(a.command.as_deref(), Some("echo high"));

    let w1: BTreeSet<TiId> = ids(&store.worker_attempts("w1").await.expect("worker_attempts"));
    assert_eq!(
        w1,
        claims.iter().map(|c| c.task.id).collect::<BTreeSet<_>>()
    );
}

/// Concurrent claims by two workers never hand out the same task instance.
pub async fn claim_is_exclusive<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "many", 12).await;
    let default = queues(&["default"]);
    let grab = async |worker: &str| {
        let mut got = Vec::new();
        loop {
            let claims = store
                .claim(worker, "host", &default, 2)
                .await
                .expect("claim");
            if claims.is_empty() {
                return got;
            }
            got.extend(claims.into_iter().map(|c| c.task.id));
        }
    };
    let (a, b) = tokio::join!(grab("wa"), grab("wb"));
    let sa: BTreeSet<TiId> = a.iter().copied().collect();
    let sb: BTreeSet<TiId> = b.iter().copied().collect();
    assert_eq!(sa.len(), a.len(), "a worker got a task instance twice");
    assert_eq!(sb.len(), b.len(), "a worker got a task instance twice");
    assert!(
        sa.is_disjoint(&sb),
        "two workers claimed the same task instance: {a:?} {b:?}"
    );
    assert_eq!(
        sa.union(&sb).count(),
        12,
        "every queued task instance is claimed once"
    );
    for t in tasks_of(store, run).await {
        assert_eq!(t.try_number, 1, "{} claimed more than once", t.task_id);
        assert_eq!(store.attempts(t.id).await.expect("attempts").len(), 1);
    }
}

/// `finish_attempt` applies only to the running attempt with that try number under
/// that worker; it records state, outputs and the attempt's outcome.
pub async fn finish_attempt_is_fenced<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "fence", 2).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 2);
    let t1 = find(
        &claims.iter().map(|c| c.task.clone()).collect::<Vec<_>>(),
        "t1",
    )
    .clone();

    let outputs = BTreeMap::from([
        ("rows".to_owned(), "42".to_owned()),
        ("path".to_owned(), "/tmp/out.csv".to_owned()),
    ]);
    let good = Finish {
        exit_code: Some(0),
        message: Some("ok".into()),
        outputs: outputs.clone(),
        ..finish(t1.id, 1, "w1", TaskState::Success, "success")
    };

    let wrong_worker = Finish {
        worker_id: "w2".into(),
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&wrong_worker)
            .await
            .expect("finish_attempt"),
        "a finish from another worker must be refused"
    );
    let wrong_try = Finish {
        try_number: 2,
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&wrong_try)
            .await
            .expect("finish_attempt"),
        "a finish for another try must be refused"
    );
    let wrong_ti = Finish {
        ti: TiId(t1.id.0 + 1_000_000),
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&wrong_ti)
            .await
            .expect("finish_attempt")
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!(
        t.state,
        TaskState::Running,
        "a refused finish changes nothing"
    );
    assert!(t.outputs.is_empty(), "a refused finish changes nothing");
    assert_eq!(t.ended_at, None);
    let a = &store.attempts(t1.id).await.expect("attempts")[0];
    assert_eq!(a.state, "running", "a refused finish changes nothing");
    assert_eq!(a.exit_code, None);
    assert_eq!(a.message, None);
    assert_eq!(a.ended_at, None);

    assert!(
        store.finish_attempt(&good).await.expect("finish_attempt"),
        "the fence holder's finish must apply"
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!(t.state, TaskState::Success);
    assert_eq!(t.outputs, outputs, "outputs must round-trip");
    assert_eq!(t.try_number, 1);
    assert!(t.ended_at.is_some());
    let attempts = store.attempts(t1.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a.state, "success", "the attempt row records the outcome");
    assert_eq!(a.exit_code, Some(0));
    assert_eq!(a.message.as_deref(), Some("ok"));
    assert!(a.ended_at.is_some());

    assert!(
        !store.finish_attempt(&good).await.expect("finish_attempt"),
        "a repeated finish must be refused"
    );
    let timed_out = Finish {
        state: TaskState::Failed,
        outcome: "timed_out".into(),
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&timed_out)
            .await
            .expect("finish_attempt")
    );
    assert_eq!(ti_of(store, run, "t1").await.state, TaskState::Success);
    assert_eq!(
        store.attempts(t1.id).await.expect("attempts")[0].state,
        "success"
    );

    // A failed attempt that will be retried: state up_for_retry with retry_at, the
    // attempt row saying what happened.
    let t2 = ti_of(store, run, "t2").await;
    let retry_at = day(5);
    let failed = Finish {
        retry_at: Some(retry_at),
        exit_code: Some(3),
        message: Some("exit status 3".into()),
        ..finish(t2.id, 1, "w1", TaskState::UpForRetry, "failed")
    };
    assert!(store.finish_attempt(&failed).await.expect("finish_attempt"));
    let t = ti_of(store, run, "t2").await;
    assert_eq!(t.state, TaskState::UpForRetry);
    assert_eq!(t.retry_at, Some(retry_at));
    let a = &store.attempts(t2.id).await.expect("attempts")[0];
    assert_eq!(a.state, "failed");
    assert_eq!(a.exit_code, Some(3));
    assert_eq!(a.message.as_deref(), Some("exit status 3"));
}

/// `finish_attempts` applies each result of a batch through the same fence as
/// `finish_attempt`, and says which it recorded, in order.
pub async fn finish_attempts_fences_each<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "batch", 4).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 4);
    let ti = |name: &str| {
        claims
            .iter()
            .find(|c| c.task.task_id.as_str() == name)
            .expect("claimed")
            .task
            .id
    };
    let batch = vec![
        Finish {
            exit_code: Some(0),
            outputs: BTreeMap::from([("n".to_owned(), "1".to_owned())]),
            pid: Some(4242),
            command: Some("echo n=1".into()),
            ..finish(ti("t1"), 1, "w1", TaskState::Success, "success")
        },
        // Another worker's late result: refused.
        finish(ti("t2"), 1, "w2", TaskState::Success, "success"),
        Finish {
            retry_at: Some(day(3)),
            exit_code: Some(2),
            message: Some("exited with code 2".into()),
            ..finish(ti("t3"), 1, "w1", TaskState::UpForRetry, "failed")
        },
        // A try that is not running: refused.
        finish(ti("t4"), 2, "w1", TaskState::Success, "success"),
    ];
    let recorded = store
        .finish_attempts(&batch)
        .await
        .expect("finish_attempts");
    assert_eq!(recorded, vec![true, false, true, false]);
    let t1 = ti_of(store, run, "t1").await;
    assert_eq!(t1.state, TaskState::Success);
    assert_eq!(t1.outputs.get("n").map(String::as_str), Some("1"));
    let a1 = &store.attempts(t1.id).await.expect("attempts")[0];
    assert_eq!((a1.state.as_str(), a1.exit_code), ("success", Some(0)));
    assert_eq!(a1.command.as_deref(), Some("echo n=1"));
    let t3 = ti_of(store, run, "t3").await;
    assert_eq!(
        (t3.state, t3.retry_at),
        (TaskState::UpForRetry, Some(day(3)))
    );
    let a3 = &store.attempts(t3.id).await.expect("attempts")[0];
    assert_eq!(a3.message.as_deref(), Some("exited with code 2"));
    for name in ["t2", "t4"] {
        let t = ti_of(store, run, name).await;
        assert_eq!(
            t.state,
            TaskState::Running,
            "{name}: a refused result changes nothing"
        );
        assert_eq!(
            store.attempts(t.id).await.expect("attempts")[0].state,
            "running"
        );
    }
    // Sent again (its answer lost): nothing applies twice.
    let again = store
        .finish_attempts(&batch)
        .await
        .expect("finish_attempts");
    assert_eq!(again, vec![false, false, false, false]);
    assert_eq!(
        store.finish_attempts(&[]).await.expect("empty batch"),
        Vec::<bool>::new()
    );
}

/// Moves a task instance waiting for its retry back to queued, as the
/// scheduler does once its retry time has come.
async fn queue_retry<S: Store + ?Sized>(store: &S, dag: &Seeded, ti: TiId) {
    let moved = store
        .apply_transitions(&[Transition {
            ti,
            from: TaskState::UpForRetry,
            to: TaskState::Scheduled,
            retry_at: None,
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(moved, 1, "up_for_retry -> scheduled");
    assert_eq!(
        store.enqueue(dag.id(), &[ti], None).await.expect("enqueue"),
        1,
        "scheduled -> queued"
    );
}

/// A batch can hold a late result of a try that was reaped beside the result
/// of its retry on the same worker: only the running try's applies, and the
/// reaped try's attempt record keeps what the reaper wrote. A NUL in a result
/// (which PostgreSQL text cannot hold) does not fail the batch.
pub async fn finish_attempts_tells_tries_apart<S: Store + ?Sized>(store: &S) {
    let (dag, run) = queued_run(store, "tries", 1).await;
    let first = store
        .claim("w1", "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let ti = first[0].task.id;
    // The worker went silent: try 1 is reaped for a retry.
    assert!(
        store
            .reap_attempt(&reap(ti, 1, "w1", Duration::ZERO))
            .await
            .expect("reap_attempt")
    );
    queue_retry(store, &dag, ti).await;
    let second = store
        .claim("w1", "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(second[0].task.try_number, 2);
    let batch = vec![
        Finish {
            message: Some("late".into()),
            ..finish(ti, 1, "w1", TaskState::Success, "success")
        },
        Finish {
            message: Some("nul \0 inside".into()),
            outputs: BTreeMap::from([("k".to_owned(), "a\0b".to_owned())]),
            ..finish(ti, 2, "w1", TaskState::Success, "success")
        },
    ];
    let recorded = store
        .finish_attempts(&batch)
        .await
        .expect("finish_attempts");
    assert_eq!(recorded, vec![false, true], "only the running try applies");
    let attempts = store.attempts(ti).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].state, "lost",
        "the reaped try's record keeps what the reaper wrote: {attempts:#?}"
    );
    assert_ne!(attempts[0].message.as_deref(), Some("late"));
    assert_eq!(attempts[1].state, "success");
    assert!(
        attempts[1]
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("nul ")),
        "{attempts:#?}"
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!((t.state, t.try_number), (TaskState::Success, 2));
    assert!(t.outputs.get("k").is_some_and(|v| v.starts_with('a')));
}

/// A retried task instance is claimed with the next try number and a new attempt
/// row; the previous try's worker is fenced off.
pub async fn retry_claims_next_try<S: Store + ?Sized>(store: &S) {
    let (dag, run) = queued_run(store, "retry", 1).await;
    let first = store
        .claim("w1", "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let ti = first[0].task.id;
    assert!(
        store
            .finish_attempt(&finish(ti, 1, "w1", TaskState::UpForRetry, "failed"))
            .await
            .expect("finish_attempt")
    );
    queue_retry(store, &dag, ti).await;

    let second = store
        .claim("w2", "host-2", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    let t = &second[0].task;
    assert_eq!(t.id, ti);
    assert_eq!(
        t.try_number, 2,
        "a retry is claimed with the next try number"
    );
    assert_eq!(t.worker_id.as_deref(), Some("w2"));
    assert_eq!(t.retry_at, None, "a claim clears retry_at");
    assert_eq!(t.ended_at, None, "a claim clears ended_at");

    let attempts = store.attempts(ti).await.expect("attempts");
    assert_eq!(attempts.len(), 2, "one attempt row per try: {attempts:#?}");
    assert_eq!(attempts[0].try_number, 1);
    assert_eq!(attempts[0].state, "failed", "try 1's record is kept");
    assert_eq!(attempts[0].worker_id, "w1");
    assert_eq!(attempts[1].try_number, 2);
    assert_eq!(attempts[1].state, "running");
    assert_eq!(attempts[1].worker_id, "w2");

    assert!(
        !store
            .finish_attempt(&finish(ti, 1, "w1", TaskState::Success, "success"))
            .await
            .expect("finish_attempt"),
        "a late finish of try 1 must not touch try 2"
    );
    assert!(
        store
            .heartbeat_attempts("w1", &[(ti, 1)])
            .await
            .expect("heartbeat_attempts")
            .is_empty()
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.try_number, 2);
    assert_eq!(t.worker_id.as_deref(), Some("w2"));
}

/// `heartbeat_attempts` renews and returns only attempts still running under that
/// worker with that try.
pub async fn heartbeat_returns_only_held_attempts<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "beat", 3).await;
    let w1 = store
        .claim("w1", "host-1", &queues(&["default"]), 2)
        .await
        .expect("claim w1");
    let w2 = store
        .claim("w2", "host-2", &queues(&["default"]), 2)
        .await
        .expect("claim w2");
    assert_eq!((w1.len(), w2.len()), (2, 1));
    let (a, b, c) = (w1[0].task.clone(), w1[1].task.clone(), w2[0].task.clone());

    tokio::time::sleep(Duration::from_millis(5)).await;
    let renewed: BTreeSet<TiId> = store
        .heartbeat_attempts("w1", &[(a.id, 1), (b.id, 1)])
        .await
        .expect("heartbeat_attempts")
        .into_iter()
        .collect();
    assert_eq!(renewed, BTreeSet::from([a.id, b.id]));
    let fresh = ti_of(store, run, a.task_id.as_str()).await;
    assert!(
        fresh.heartbeat_at > a.heartbeat_at,
        "a heartbeat must move heartbeat_at forward: {:?} -> {:?}",
        a.heartbeat_at,
        fresh.heartbeat_at
    );

    assert!(
        store
            .heartbeat_attempts("w1", &[(c.id, 1)])
            .await
            .expect("heartbeat_attempts")
            .is_empty(),
        "a worker cannot renew another worker's attempt"
    );
    assert_eq!(
        ti_of(store, run, c.task_id.as_str()).await.heartbeat_at,
        c.heartbeat_at,
        "a refused heartbeat changes nothing"
    );
    assert!(
        store
            .heartbeat_attempts("w1", &[(a.id, 2)])
            .await
            .expect("heartbeat_attempts")
            .is_empty(),
        "a heartbeat for another try is refused"
    );

    // The scheduler moves `a` away (say, it timed out): w1 no longer holds it.
    let n = store
        .apply_transitions(&[Transition {
            ti: a.id,
            from: TaskState::Running,
            to: TaskState::UpForRetry,
            retry_at: None,
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 1);
    let renewed = store
        .heartbeat_attempts("w1", &[(a.id, 1), (b.id, 1)])
        .await
        .expect("heartbeat_attempts");
    assert_eq!(
        renewed,
        vec![b.id],
        "an attempt moved away by another transition must not be renewed"
    );
    assert_eq!(
        ti_of(store, run, a.task_id.as_str()).await.state,
        TaskState::UpForRetry,
        "a heartbeat must not bring an attempt back"
    );

    let held: Vec<TiId> = store
        .worker_attempts("w1")
        .await
        .expect("worker_attempts")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        held,
        vec![b.id],
        "worker_attempts lists running attempts only"
    );
    let held: Vec<TiId> = store
        .worker_attempts("w2")
        .await
        .expect("worker_attempts")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(held, vec![c.id]);
    assert!(
        store
            .heartbeat_attempts("w1", &[])
            .await
            .expect("heartbeat_attempts([])")
            .is_empty()
    );
}

/// `expired_attempts` lists running attempts whose heartbeat is older than the
/// lease; `reap_attempt` ends one once, recording `lost` and the message.
pub async fn expired_attempts_and_reap<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "reap", 3).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 3)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 3);
    let (a, b, c) = (
        claims[0].task.clone(),
        claims[1].task.clone(),
        claims[2].task.clone(),
    );

    let hour = Duration::from_secs(3600);
    assert!(
        store
            .expired_attempts(hour)
            .await
            .expect("expired_attempts")
            .is_empty(),
        "fresh attempts are not expired"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let renewed = store
        .heartbeat_attempts("w1", &[(b.id, 1)])
        .await
        .expect("heartbeat_attempts");
    assert_eq!(renewed, vec![b.id]);

    let expired = ids(&store
        .expired_attempts(Duration::from_millis(200))
        .await
        .expect("expired_attempts"));
    assert_eq!(
        expired,
        BTreeSet::from([a.id, c.id]),
        "attempts whose heartbeat is older than the lease, and only those"
    );
    let all = ids(&store
        .expired_attempts(Duration::ZERO)
        .await
        .expect("expired_attempts"));
    assert_eq!(all, BTreeSet::from([a.id, b.id, c.id]));

    let lost = Reap {
        to: TaskState::UpForRetry,
        retry_at: Some(day(4)),
        ..reap(a.id, 1, "w1", Duration::from_millis(1))
    };
    assert!(
        !store
            .reap_attempt(&Reap {
                lease: hour,
                ..lost.clone()
            })
            .await
            .expect("reap_attempt"),
        "an attempt heartbeating within the lease must not be reaped"
    );
    assert!(
        !store
            .reap_attempt(&Reap {
                worker_id: "w9".into(),
                ..lost.clone()
            })
            .await
            .expect("reap_attempt"),
        "reap is fenced on the worker"
    );
    assert!(
        !store
            .reap_attempt(&Reap {
                try_number: 2,
                ..lost.clone()
            })
            .await
            .expect("reap_attempt"),
        "reap is fenced on the try number"
    );
    assert_eq!(
        ti_of(store, run, a.task_id.as_str()).await.state,
        TaskState::Running
    );

    assert!(
        store.reap_attempt(&lost).await.expect("reap_attempt"),
        "an expired attempt must be reaped"
    );
    let t = ti_of(store, run, a.task_id.as_str()).await;
    assert_eq!(t.state, TaskState::UpForRetry);
    assert_eq!(t.retry_at, Some(day(4)));
    assert_eq!(t.max_tries, a.max_tries, "a lost attempt uses up its try");
    assert!(t.ended_at.is_some());
    let attempts = store.attempts(a.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].state, "lost", "the attempt row says lost");
    assert_eq!(
        attempts[0].message.as_deref(),
        Some("worker w1 stopped heartbeating")
    );
    assert!(attempts[0].ended_at.is_some());

    let again = Reap {
        message: "reaped twice".into(),
        ..lost.clone()
    };
    assert!(
        !store.reap_attempt(&again).await.expect("reap_attempt"),
        "a second reap of the same attempt must return false"
    );
    assert_eq!(
        store.attempts(a.id).await.expect("attempts")[0]
            .message
            .as_deref(),
        Some("worker w1 stopped heartbeating"),
        "a refused reap changes nothing"
    );
    let expired = ids(&store
        .expired_attempts(Duration::ZERO)
        .await
        .expect("expired_attempts"));
    assert!(
        !expired.contains(&a.id),
        "a reaped attempt is no longer listed"
    );
    assert!(
        !store
            .finish_attempt(&finish(a.id, 1, "w1", TaskState::Success, "success"))
            .await
            .expect("finish_attempt"),
        "the reaped worker's late finish must be refused"
    );

    // Lease zero reaps unconditionally, even a freshly renewed attempt.
    let failed = Reap {
        to: TaskState::Failed,
        ..reap(c.id, 1, "w1", Duration::ZERO)
    };
    assert!(store.reap_attempt(&failed).await.expect("reap_attempt"));
    assert_eq!(
        ti_of(store, run, c.task_id.as_str()).await.state,
        TaskState::Failed
    );
    store
        .heartbeat_attempts("w1", &[(b.id, 1)])
        .await
        .expect("heartbeat_attempts");
    assert!(
        store
            .reap_attempt(&reap(b.id, 1, "w1", Duration::ZERO))
            .await
            .expect("reap_attempt"),
        "lease zero reaps regardless of the heartbeat"
    );
}

/// A handed-back attempt (`refund_try`) does not use up a try: max_tries grows by one.
pub async fn reap_refund_try<S: Store + ?Sized>(store: &S) {
    let source = "id: refund\ntasks:\n  t1:\n    run: echo\n    retries: 2\n";
    let dag = seed(store, "dags/refund.yaml", source).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    queue_tasks(store, dag.id(), run, &["t1"]).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let t = claims[0].task.clone();
    assert_eq!(t.max_tries, 3);

    let handed_back = Reap {
        outcome: "handed_back".into(),
        message: "worker w1 is shutting down".into(),
        refund_try: true,
        ..reap(t.id, 1, "w1", Duration::ZERO)
    };
    assert!(
        store
            .reap_attempt(&handed_back)
            .await
            .expect("reap_attempt")
    );
    let after = ti_of(store, run, "t1").await;
    assert_eq!(after.state, TaskState::UpForRetry);
    assert_eq!(after.max_tries, 4, "refund_try must add one to max_tries");
    let a = &store.attempts(t.id).await.expect("attempts")[0];
    assert_eq!(a.state, "handed_back");
    assert_eq!(a.message.as_deref(), Some("worker w1 is shutting down"));
    assert!(
        !store
            .reap_attempt(&handed_back)
            .await
            .expect("reap_attempt"),
        "a second reap must return false"
    );
    assert_eq!(
        ti_of(store, run, "t1").await.max_tries,
        4,
        "a refused reap must not refund again"
    );
}

// ---------- logs ----------

/// Logs come back in order with their streams, paged by `after_seq` and `limit`,
/// separately per attempt.
pub async fn logs_paging<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "logs", 2).await;
    let rows = tasks_of(store, run).await;
    let (t1, t2) = (find(&rows, "t1").id, find(&rows, "t2").id);

    let line = |n: i64, stream: Stream, text: &str| LogLine {
        ts: Timestamp::from_second(BASE_SECOND + n).expect("a valid timestamp"),
        stream,
        text: text.to_owned(),
    };
    let first = vec![
        line(1, Stream::System, "starting try 1"),
        line(2, Stream::Stdout, "hello"),
        line(2, Stream::Stderr, "warning: ünïcödé ✓"),
        line(3, Stream::Stdout, ""),
        line(4, Stream::Stdout, "  indented\ttab"),
    ];
    let second = vec![
        line(5, Stream::Stderr, "oops"),
        line(6, Stream::System, "exit status 0"),
    ];
    store.append_logs(t1, 1, &first).await.expect("append_logs");
    store
        .append_logs(t2, 1, &[line(1, Stream::Stdout, "other task")])
        .await
        .expect("append_logs");
    store
        .append_logs(t1, 2, &[line(9, Stream::Stdout, "other try")])
        .await
        .expect("append_logs");
    store
        .append_logs(t1, 1, &second)
        .await
        .expect("append_logs");
    store
        .append_logs(t1, 1, &[])
        .await
        .expect("append_logs([])");

    let expected: Vec<&LogLine> = first.iter().chain(&second).collect();
    let all = store.read_logs(t1, 1, 0, 1000).await.expect("read_logs");
    assert_eq!(
        all.len(),
        expected.len(),
        "only this attempt's lines: {all:#?}"
    );
    for (got, want) in all.iter().zip(&expected) {
        assert_eq!(got.text, want.text, "lines come back in order");
        assert_eq!(got.stream, want.stream, "the stream is kept: {got:?}");
        assert_eq!(got.ts, want.ts, "the timestamp is kept: {got:?}");
    }
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq increases with every line: {all:#?}"
    );
    assert!(all[0].seq > 0, "after_seq 0 reads from the start");

    let mut paged = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = store.read_logs(t1, 1, after, 3).await.expect("read_logs");
        assert!(page.len() <= 3, "read_logs must respect the limit");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page.into_iter().map(|r| r.text));
        pages += 1;
        assert!(pages <= 10, "paging does not end");
    }
    assert_eq!(pages, 3, "7 lines in pages of 3");
    let texts: Vec<String> = expected.iter().map(|l| l.text.clone()).collect();
    assert_eq!(paged, texts, "paging returns every line once, in order");

    let tail = store
        .read_logs(t1, 1, all[4].seq, 1000)
        .await
        .expect("read_logs");
    let tail: Vec<&str> = tail.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(tail, vec!["oops", "exit status 0"], "lines after after_seq");
    assert!(
        store
            .read_logs(t1, 1, all[6].seq, 1000)
            .await
            .expect("read_logs")
            .is_empty()
    );

    let other_try = store.read_logs(t1, 2, 0, 1000).await.expect("read_logs");
    assert_eq!(other_try.len(), 1);
    assert_eq!(other_try[0].text, "other try");
    let other_task = store.read_logs(t2, 1, 0, 1000).await.expect("read_logs");
    assert_eq!(other_task.len(), 1);
    assert_eq!(other_task[0].text, "other task");
    assert!(
        store
            .read_logs(t2, 2, 0, 1000)
            .await
            .expect("read_logs")
            .is_empty()
    );
}

// ---------- nodes ----------

/// Nodes round-trip; heartbeats and state changes apply to the named node, on the
/// store's clock.
pub async fn nodes_round_trip<S: Store + ?Sized>(store: &S) {
    let before = store.now().await.expect("now").as_microsecond();
    let node = |id: &str, pid: i64, roles: &[&str], started: i64| NodeRow {
        node_id: id.to_owned(),
        host: format!("{id}.example"),
        pid,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        version: "0.1.0".into(),
        state: "running".into(),
        started_at: Timestamp::from_second(BASE_SECOND + started).expect("a valid timestamp"),
        // The store sets heartbeats on its own clock.
        heartbeat_at: Timestamp::UNIX_EPOCH,
        clock_skew_us: 0,
        running_attempts: 0,
        attempt_lease_ms: 0,
    };
    let n1 = node("n1", 100, &["scheduler", "worker"], 10);
    let n2 = node("n2", 200, &["worker"], 20);
    let n3 = node("n3", 300, &[], 30);
    for n in [&n1, &n2, &n3] {
        store.register_node(n).await.expect("register_node");
    }

    let listed = store.list_nodes().await.expect("list_nodes");
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let get = |rows: &[NodeRow], id: &str| {
        rows.iter()
            .find(|n| n.node_id == id)
            .unwrap_or_else(|| panic!("node {id} missing from {rows:#?}"))
            .clone()
    };
    for want in [&n1, &n2, &n3] {
        let got = get(&listed, &want.node_id);
        assert_eq!(got.host, want.host);
        assert_eq!(got.pid, want.pid);
        assert_eq!(got.roles, want.roles, "roles must round-trip");
        assert_eq!(got.version, want.version);
        assert_eq!(got.state, "running");
        assert_eq!(got.started_at, want.started_at);
        assert!(
            got.heartbeat_at.as_microsecond() >= before,
            "register_node sets heartbeat_at from the store's clock: {got:?}"
        );
    }
    let hb1 = get(&listed, "n1").heartbeat_at;
    let hb2 = get(&listed, "n2").heartbeat_at;

    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .heartbeat_node("n1", Timestamp::now())
        .await
        .expect("heartbeat_node");
    let listed = store.list_nodes().await.expect("list_nodes");
    assert!(
        get(&listed, "n1").heartbeat_at > hb1,
        "heartbeat_node must move heartbeat_at forward"
    );
    assert_eq!(
        get(&listed, "n2").heartbeat_at,
        hb2,
        "heartbeat_node touches only the named node"
    );

    store
        .set_node_state("n2", "stopped")
        .await
        .expect("set_node_state");
    let listed = store.list_nodes().await.expect("list_nodes");
    assert_eq!(get(&listed, "n2").state, "stopped");
    assert_eq!(get(&listed, "n1").state, "running");

    store
        .heartbeat_node("ghost", Timestamp::now())
        .await
        .expect("heartbeat_node of an unknown node");
    store
        .set_node_state("ghost", "stopped")
        .await
        .expect("set_node_state of an unknown node");
    assert_eq!(
        store.list_nodes().await.expect("list_nodes").len(),
        3,
        "heartbeats and state changes do not create nodes"
    );

    // A node registering again (a restart) replaces its row.
    let restarted = NodeRow {
        pid: 101,
        roles: vec!["worker".into()],
        version: "0.2.0".into(),
        ..n1.clone()
    };
    store
        .register_node(&restarted)
        .await
        .expect("register_node again");
    let listed = store.list_nodes().await.expect("list_nodes");
    assert_eq!(listed.len(), 3, "registering again must not add a row");
    let got = get(&listed, "n1");
    assert_eq!(got.pid, 101);
    assert_eq!(got.roles, vec!["worker".to_owned()]);
    assert_eq!(got.version, "0.2.0");
}

// ---------- pools ----------

/// A pool caps queued plus running task instances across DAGs; a task whose
/// pool does not exist stays scheduled; tasks without a pool are not held back.
pub async fn enqueue_respects_pools<S: Store + ?Sized>(store: &S) {
    store
        .set_pool("db", 2, Some("the warehouse"))
        .await
        .expect("set_pool");
    let a = seed(
        store,
        "dags/pa.yaml",
        "id: pa\ntasks:\n  p1: {run: 'true', pool: db}\n  p2: {run: 'true', pool: db}\n  free: {run: 'true'}\n  ghost: {run: 'true', pool: nowhere}\n",
    )
    .await;
    let b = seed(
        store,
        "dags/pb.yaml",
        "id: pb\ntasks:\n  p1: {run: 'true', pool: db}\n",
    )
    .await;
    let run_a = create(store, &new_run(&a, "manual__a", RunType::Manual, day(1))).await;
    let run_b = create(store, &new_run(&b, "manual__b", RunType::Manual, day(1))).await;
    assert_eq!(
        ti_of(store, run_a, "p1").await.pool.as_deref(),
        Some("db"),
        "a task instance keeps its task's pool"
    );
    // pb's task takes one of the two slots first.
    let tis_b = schedule_tasks(store, run_b, &["p1"]).await;
    assert_eq!(
        store.enqueue(b.id(), &tis_b, None).await.expect("enqueue"),
        1
    );
    let tis_a = schedule_tasks(store, run_a, &["p1", "p2", "free", "ghost"]).await;
    let n = store.enqueue(a.id(), &tis_a, None).await.expect("enqueue");
    assert_eq!(n, 2, "one pool slot left, plus the task without a pool");
    let rows = tasks_of(store, run_a).await;
    assert_eq!(find(&rows, "p1").state, TaskState::Queued);
    assert_eq!(
        find(&rows, "p2").state,
        TaskState::Scheduled,
        "the pool is full"
    );
    assert_eq!(find(&rows, "free").state, TaskState::Queued);
    assert_eq!(
        find(&rows, "ghost").state,
        TaskState::Scheduled,
        "a missing pool holds its tasks back"
    );
    let pools = store.list_pools().await.expect("list_pools");
    assert_eq!(pools.len(), 1, "{pools:?}");
    assert_eq!(
        (pools[0].slots, pools[0].queued, pools[0].running),
        (2, 2, 0)
    );
    assert_eq!(pools[0].description.as_deref(), Some("the warehouse"));

    // A claimed (running) attempt still holds its slot; a finished one frees it.
    let claims = store
        .claim("w1", "host", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 3);
    let p2 = find(&rows, "p2").id;
    assert_eq!(
        store.enqueue(a.id(), &[p2], None).await.expect("enqueue"),
        0
    );
    let first = claims
        .iter()
        .find(|c| c.task.pool.as_deref() == Some("db"))
        .expect("a claimed pool task");
    assert!(
        store
            .finish_attempt(&finish(
                first.task.id,
                1,
                "w1",
                TaskState::Success,
                "success"
            ))
            .await
            .expect("finish_attempt")
    );
    assert_eq!(
        store.enqueue(a.id(), &[p2], None).await.expect("enqueue"),
        1
    );

    // More slots let more in; a deleted pool holds its tasks back again.
    store.set_pool("nowhere", 1, None).await.expect("set_pool");
    let ghost = find(&rows, "ghost").id;
    assert_eq!(
        store
            .enqueue(a.id(), &[ghost], None)
            .await
            .expect("enqueue"),
        1
    );
    assert!(store.delete_pool("nowhere").await.expect("delete_pool"));
    assert!(!store.delete_pool("nowhere").await.expect("delete_pool"));
    assert_eq!(store.list_pools().await.expect("list_pools").len(), 1);
}

// ---------- schedule-slot ledger ----------

/// Every slot is recorded once: `create_run` records scheduled and backfill runs'
/// slots as `run`; `record_slots` records passed-over ones without overwriting,
/// and moves the DAG's cursor; a backfill later turns a skipped slot into a run.
pub async fn slot_ledger<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/ledger.yaml", &flat_dag_source("ledger", 1, "")).await;
    let run1 = create(
        store,
        &new_run(&dag, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let _manual = create(store, &new_run(&dag, "manual__x", RunType::Manual, day(9))).await;
    let n = store
        .record_slots(
            dag.id(),
            SlotStatus::Missed,
            &[(day(2), day(3)), (day(3), day(4))],
        )
        .await
        .expect("record_slots");
    assert_eq!(n, 2);
    let again = store
        .record_slots(
            dag.id(),
            SlotStatus::Skipped,
            &[(day(1), day(2)), (day(3), day(4))],
        )
        .await
        .expect("record_slots");
    assert_eq!(again, 0, "a slot is recorded once");
    assert_eq!(
        store
            .get_dag(dag.id())
            .await
            .expect("get_dag")
            .expect("dag")
            .last_interval_end,
        Some(day(4)),
        "passing over slots moves the cursor past them"
    );
    let slots = store.list_slots(dag.id(), 10).await.expect("list_slots");
    let seen: Vec<(Timestamp, SlotStatus, Option<RunId>)> = slots
        .iter()
        .map(|s| (s.logical_date, s.status, s.run_id))
        .collect();
    assert_eq!(
        seen,
        vec![
            (day(3), SlotStatus::Missed, None),
            (day(2), SlotStatus::Missed, None),
            (day(1), SlotStatus::Run, Some(run1)),
        ],
        "newest first; manual runs are not slots"
    );
    assert_eq!(slots[0].interval_end, day(4));
    let backfill = create(
        store,
        &new_run(&dag, "backfill__2", RunType::Backfill, day(2)),
    )
    .await;
    let slots = store.list_slots(dag.id(), 1).await.expect("list_slots");
    assert_eq!(slots.len(), 1, "the limit applies");
    let slots = store.list_slots(dag.id(), 10).await.expect("list_slots");
    let day2 = slots
        .iter()
        .find(|s| s.logical_date == day(2))
        .expect("day 2");
    assert_eq!(
        (day2.status, day2.run_id),
        (SlotStatus::Run, Some(backfill))
    );
}

/// A worker registered with a longer lease than the reaper's is not reaped
/// sooner: it fences itself by its own lease, so an earlier retry could overlap.
pub async fn reaper_respects_the_workers_lease<S: Store + ?Sized>(store: &S) {
    let (_dag, _run) = queued_run(store, "leases", 2).await;
    let now = store.now().await.expect("now");
    store
        .register_node(&NodeRow {
            node_id: "patient".into(),
            host: "h".into(),
            pid: 1,
            roles: vec!["worker".into()],
            version: "0".into(),
            state: "running".into(),
            started_at: now,
            heartbeat_at: now,
            clock_skew_us: 0,
            running_attempts: 0,
            attempt_lease_ms: 60_000,
        })
        .await
        .expect("register_node");
    let patient = store
        .claim("patient", "h", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let unknown = store
        .claim("unregistered", "h", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!((patient.len(), unknown.len()), (1, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = ids(&store
        .expired_attempts(Duration::from_secs(1))
        .await
        .expect("expired_attempts"));
    assert!(
        !expired.contains(&patient[0].task.id),
        "the worker's own 60 s lease has not run out"
    );
    assert!(
        expired.contains(&unknown[0].task.id),
        "a worker without a registered lease is judged by the reaper's"
    );
    let t = &patient[0].task;
    assert!(
        !store
            .reap_attempt(&reap(t.id, t.try_number, "patient", Duration::from_secs(1)))
            .await
            .expect("reap_attempt"),
        "reaping by a shorter lease is refused"
    );
    assert!(
        store
            .reap_attempt(&reap(t.id, t.try_number, "patient", Duration::ZERO))
            .await
            .expect("reap_attempt"),
        "a zero lease (recovery of a dead process) still applies"
    );
}

// ---------- operators' actions ----------

/// The attempt records of a task instance, with the last one (the one an
/// operator's action ends) checked to say `state` and name `who`.
async fn last_attempt_says<S: Store + ?Sized>(store: &S, ti: TiId, state: &str, who: &str) {
    let attempts = store.attempts(ti).await.expect("attempts");
    let a = attempts
        .last()
        .unwrap_or_else(|| panic!("task instance {ti} has no attempt record"));
    assert_eq!(
        a.state, state,
        "the running attempt of {ti} must be recorded as {state:?}: {a:#?}"
    );
    let message = a.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(who),
        "the attempt's message must name who did it ({who:?}): {message:?}"
    );
    assert!(
        a.ended_at.is_some(),
        "an attempt ended by an operator has ended_at: {a:#?}"
    );
}

/// An operator's action fenced the attempt `try_number` of `ti` off its worker:
/// its lease is not renewed, the worker no longer holds it and its late report
/// changes nothing.
async fn fenced_off<S: Store + ?Sized>(store: &S, ti: TiId, try_number: u32, worker: &str) {
    let before = store
        .get_task(ti)
        .await
        .expect("get_task")
        .expect("the task instance");
    let attempts_before = store.attempts(ti).await.expect("attempts");
    assert!(
        store
            .heartbeat_attempts(worker, &[(ti, try_number)])
            .await
            .expect("heartbeat_attempts")
            .is_empty(),
        "the worker's heartbeat must no longer renew an attempt an operator ended"
    );
    assert!(
        !ids(&store
            .worker_attempts(worker)
            .await
            .expect("worker_attempts"))
        .contains(&ti),
        "the worker no longer holds an attempt an operator ended"
    );
    let late = Finish {
        exit_code: Some(0),
        message: Some("done after all".into()),
        ..finish(ti, try_number, worker, TaskState::UpForRetry, "failed")
    };
    assert!(
        !store.finish_attempt(&late).await.expect("finish_attempt"),
        "the worker's late finish of an attempt an operator ended must be refused"
    );
    let after = store
        .get_task(ti)
        .await
        .expect("get_task")
        .expect("the task instance");
    assert_eq!(
        after.state, before.state,
        "a refused late finish changes nothing"
    );
    let attempts_after = store.attempts(ti).await.expect("attempts");
    let states = |rows: &[AttemptRow]| -> Vec<(u32, String, Option<String>)> {
        rows.iter()
            .map(|a| (a.try_number, a.state.clone(), a.message.clone()))
            .collect()
    };
    assert_eq!(
        states(&attempts_after),
        states(&attempts_before),
        "a refused late finish must not touch the attempt records"
    );
}

/// `mark_run(Cancel)` fails a queued or running run: its queued and running task
/// instances fail, its other unfinished ones are skipped, finished ones are kept,
/// and the running attempt, recorded `cancelled`, is fenced off its worker.
/// `Success` finishes every unfinished task instance as success; `Failed` applies
/// to any run not failed already. A run already in that state, a finished run
/// (for `Cancel`) and a missing run are refused.
pub async fn mark_run_and_cancel<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/marked.yaml", &flat_dag_source("marked", 7, "")).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    assert_eq!(store.promote_runs().await.expect("promote_runs"), vec![run]);

    // t1 and t2 succeeded, t3 runs under w1, t4 is queued, t5 scheduled, t6 none
    // and t7 up for retry.
    queue_tasks(store, dag.id(), run, &["t1", "t2", "t3"]).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 3)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 3, "t1, t2 and t3 claimed: {claims:#?}");
    for id in ["t1", "t2"] {
        let ti = ti_of(store, run, id).await.id;
        assert!(
            store
                .finish_attempt(&finish(ti, 1, "w1", TaskState::Success, "success"))
                .await
                .expect("finish_attempt")
        );
    }
    queue_tasks(store, dag.id(), run, &["t4"]).await;
    let scheduled = schedule_tasks(store, run, &["t5", "t7"]).await;
    assert_eq!(
        store
            .apply_transitions(&[Transition {
                ti: scheduled[1],
                from: TaskState::Scheduled,
                to: TaskState::UpForRetry,
                retry_at: Some(day(5)),
            }])
            .await
            .expect("apply_transitions"),
        1
    );
    let t3 = ti_of(store, run, "t3").await;
    assert_eq!(t3.state, TaskState::Running);
    assert_eq!(t3.worker_id.as_deref(), Some("w1"));

    assert!(
        store
            .mark_run(run, RunMark::Cancel, "alice")
            .await
            .expect("mark_run"),
        "cancelling a running run must apply"
    );
    let row = store.get_run(run).await.expect("get_run").expect("the run");
    assert_eq!(row.state, RunState::Failed, "a cancelled run is failed");
    assert!(row.ended_at.is_some(), "a cancelled run has ended_at");
    let rows = tasks_of(store, run).await;
    for (id, state) in [
        ("t1", TaskState::Success),
        ("t2", TaskState::Success),
        ("t3", TaskState::Failed),
        ("t4", TaskState::Failed),
        ("t5", TaskState::Skipped),
        ("t6", TaskState::Skipped),
        ("t7", TaskState::Skipped),
    ] {
        assert_eq!(
            find(&rows, id).state,
            state,
            "after a cancel, {id} must be {state} (success kept, queued/running failed, \
             the other unfinished ones skipped)"
        );
        assert!(
            find(&rows, id).ended_at.is_some(),
            "after a cancel, {id} has ended_at"
        );
    }
    last_attempt_says(store, t3.id, "cancelled", "alice").await;
    assert_eq!(
        store.attempts(t3.id).await.expect("attempts").len(),
        1,
        "a cancel adds no attempt record"
    );
    fenced_off(store, t3.id, 1, "w1").await;
    assert_eq!(
        store
            .attempts(find(&rows, "t1").id)
            .await
            .expect("attempts")[0]
            .state,
        "success",
        "a finished attempt's record is not touched by a cancel"
    );

    assert!(
        !store
            .mark_run(run, RunMark::Cancel, "alice")
            .await
            .expect("mark_run"),
        "a finished run cannot be cancelled"
    );
    assert!(
        !store
            .mark_run(run, RunMark::Failed, "alice")
            .await
            .expect("mark_run"),
        "marking a failed run failed must return false"
    );

    // Marking the cancelled run success keeps its finished task instances.
    assert!(
        store
            .mark_run(run, RunMark::Success, "bob")
            .await
            .expect("mark_run"),
        "a failed run may be marked success"
    );
    let row = store.get_run(run).await.expect("get_run").expect("the run");
    assert_eq!(row.state, RunState::Success);
    assert!(row.ended_at.is_some());
    let after: Vec<(String, TaskState)> = tasks_of(store, run)
        .await
        .iter()
        .map(|t| (t.task_id.to_string(), t.state))
        .collect();
    let before: Vec<(String, TaskState)> = rows
        .iter()
        .map(|t| (t.task_id.to_string(), t.state))
        .collect();
    assert_eq!(
        after, before,
        "marking a run success leaves its finished task instances as they are"
    );
    assert!(
        !store
            .mark_run(run, RunMark::Success, "bob")
            .await
            .expect("mark_run"),
        "marking a successful run success must return false"
    );
    assert!(
        store
            .mark_run(run, RunMark::Failed, "bob")
            .await
            .expect("mark_run"),
        "a successful run may be marked failed"
    );
    assert_eq!(
        store
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run")
            .state,
        RunState::Failed
    );
    assert!(
        !store
            .mark_run(run, RunMark::Failed, "bob")
            .await
            .expect("mark_run"),
        "marking a failed run failed again must return false"
    );
    for mark in [RunMark::Success, RunMark::Failed, RunMark::Cancel] {
        assert!(
            !store
                .mark_run(RunId(999_999), mark, "bob")
                .await
                .expect("mark_run of a missing run"),
            "mark_run({mark:?}) of a missing run must return false"
        );
    }

    // A run with unfinished task instances marked success: every one of them
    // succeeds, and the running attempt is recorded `marked_success`.
    let run2 = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    queue_tasks(store, dag.id(), run2, &["t1"]).await;
    let claims = store
        .claim("w2", "host-2", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1, "only run2's t1 is queued: {claims:#?}");
    let running = claims[0].task.clone();
    assert_eq!(running.run_id, run2);
    queue_tasks(store, dag.id(), run2, &["t2"]).await;
    schedule_tasks(store, run2, &["t3"]).await;
    assert!(
        store
            .mark_run(run2, RunMark::Success, "bob")
            .await
            .expect("mark_run"),
        "marking a queued run success must apply"
    );
    let row = store
        .get_run(run2)
        .await
        .expect("get_run")
        .expect("the run");
    assert_eq!(row.state, RunState::Success);
    assert!(row.ended_at.is_some(), "a run marked success has ended_at");
    for t in tasks_of(store, run2).await {
        assert_eq!(
            t.state,
            TaskState::Success,
            "every unfinished task instance of a run marked success succeeds: {t:#?}"
        );
        assert!(t.ended_at.is_some(), "{} has ended_at", t.task_id);
    }
    last_attempt_says(store, running.id, "marked_success", "bob").await;
    fenced_off(store, running.id, running.try_number, "w2").await;

    // A queued run can be cancelled too; its task instances are skipped.
    let run3 = create(store, &new_run(&dag, "manual__3", RunType::Manual, day(3))).await;
    assert!(
        store
            .mark_run(run3, RunMark::Cancel, "carol")
            .await
            .expect("mark_run"),
        "cancelling a queued run must apply"
    );
    let row = store
        .get_run(run3)
        .await
        .expect("get_run")
        .expect("the run");
    assert_eq!(row.state, RunState::Failed);
    assert!(row.ended_at.is_some());
    for t in tasks_of(store, run3).await {
        assert_eq!(
            t.state,
            TaskState::Skipped,
            "a cancelled run's task instances that never ran are skipped: {t:#?}"
        );
    }
    assert!(
        store.promote_runs().await.expect("promote_runs").is_empty(),
        "marked runs are not started"
    );
}

/// `mark_task` sets one task instance to success or failed: a running attempt is
/// recorded `marked_<state>` and fenced off its worker. Marking it in the state it
/// is in, or a missing one, returns false; any other target state is an error.
pub async fn mark_task_states<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "marks", 3).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    let t1 = claims[0].task.clone();
    assert_eq!(t1.task_id.as_str(), "t1");

    assert!(
        store
            .mark_task(t1.id, TaskState::Success, "carol")
            .await
            .expect("mark_task"),
        "marking a running task instance success must apply"
    );
    let row = store
        .get_task(t1.id)
        .await
        .expect("get_task")
        .expect("get_task of an existing task instance");
    assert_eq!(row.id, t1.id);
    assert_eq!(row.run_id, run);
    assert_eq!(row.task_id, t1.task_id);
    assert_eq!(row.state, TaskState::Success);
    assert_eq!(row.try_number, 1, "marking does not change the try number");
    assert!(
        row.ended_at.is_some(),
        "a marked task instance has ended_at"
    );
    last_attempt_says(store, t1.id, "marked_success", "carol").await;
    fenced_off(store, t1.id, 1, "w1").await;
    assert!(
        !store
            .mark_task(t1.id, TaskState::Success, "carol")
            .await
            .expect("mark_task"),
        "marking a task instance success again must return false"
    );

    let t2 = ti_of(store, run, "t2").await;
    assert_eq!(t2.state, TaskState::Queued);
    assert!(
        store
            .mark_task(t2.id, TaskState::Failed, "dave")
            .await
            .expect("mark_task"),
        "marking a queued task instance failed must apply"
    );
    let row = store.get_task(t2.id).await.expect("get_task").unwrap();
    assert_eq!(row.state, TaskState::Failed);
    assert!(
        store.attempts(t2.id).await.expect("attempts").is_empty(),
        "a task instance that never ran has no attempt to record"
    );
    assert!(
        store
            .claim("w1", "host-1", &queues(&["default"]), 10)
            .await
            .expect("claim")
            .iter()
            .all(|c| c.task.id != t2.id),
        "a task instance marked failed is no longer queued"
    );
    assert!(
        store
            .mark_task(t2.id, TaskState::Success, "dave")
            .await
            .expect("mark_task"),
        "a failed task instance may be marked success"
    );
    assert_eq!(
        store
            .get_task(t2.id)
            .await
            .expect("get_task")
            .unwrap()
            .state,
        TaskState::Success
    );

    let t3 = ti_of(store, run, "t3").await;
    for to in [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::UpForRetry,
        TaskState::Skipped,
        TaskState::UpstreamFailed,
    ] {
        store
            .mark_task(t3.id, to, "eve")
            .await
            .expect_err("a task instance can only be marked success or failed");
    }
    let row = store.get_task(t3.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.worker_id.clone()),
        (t3.state, t3.worker_id.clone()),
        "a refused mark changes nothing"
    );

    let missing = TiId(999_999_999);
    for to in [TaskState::Success, TaskState::Failed] {
        assert!(
            !store
                .mark_task(missing, to, "eve")
                .await
                .expect("mark_task"),
            "marking a missing task instance must return false"
        );
    }
    assert!(
        store.get_task(missing).await.expect("get_task").is_none(),
        "get_task of a missing task instance is None"
    );
}

/// `clear_tasks` sends finished task instances back to `none` with new
/// `max_tries` (each only if still in the state it was read in), keeps their
/// attempt records, and queues their run again if it had finished; the next
/// claim is the next try. Unfinished task instances are not cleared.
pub async fn clear_tasks_requeues_finished_run<S: Store + ?Sized>(store: &S) {
    let dag = seed(
        store,
        "dags/cleared.yaml",
        &flat_dag_source("cleared", 3, ""),
    )
    .await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    assert_eq!(store.promote_runs().await.expect("promote_runs"), vec![run]);
    queue_tasks(store, dag.id(), run, &["t1", "t2"]).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 2);
    let ti = |id: &str| {
        claims
            .iter()
            .find(|c| c.task.task_id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} claimed"))
            .task
            .id
    };
    assert!(
        store
            .finish_attempt(&finish(ti("t1"), 1, "w1", TaskState::Success, "success"))
            .await
            .expect("finish_attempt")
    );
    assert!(
        store
            .finish_attempt(&Finish {
                exit_code: Some(1),
                message: Some("exit status 1".into()),
                ..finish(ti("t2"), 1, "w1", TaskState::Failed, "failed")
            })
            .await
            .expect("finish_attempt")
    );
    let t3 = ti_of(store, run, "t3").await.id;
    assert_eq!(
        store
            .apply_transitions(&[Transition {
                ti: t3,
                from: TaskState::None,
                to: TaskState::UpstreamFailed,
                retry_at: None,
            }])
            .await
            .expect("apply_transitions"),
        1
    );
    assert!(
        store
            .finish_run(run, RunState::Failed)
            .await
            .expect("finish_run")
    );

    let rows = tasks_of(store, run).await;
    let (t1, t2, t3) = (
        find(&rows, "t1").clone(),
        find(&rows, "t2").clone(),
        find(&rows, "t3").clone(),
    );
    assert_eq!(
        (t1.state, t2.state, t3.state),
        (
            TaskState::Success,
            TaskState::Failed,
            TaskState::UpstreamFailed
        )
    );
    let clear = |t: &TaskRow| ClearTask {
        ti: t.id,
        from: t.state,
        max_tries: t.try_number + 2,
    };
    assert_eq!(
        store
            .clear_tasks(run, &[clear(&t2), clear(&t3)])
            .await
            .expect("clear_tasks"),
        2,
        "both finished task instances are cleared"
    );
    for t in [&t2, &t3] {
        let row = store.get_task(t.id).await.expect("get_task").unwrap();
        assert_eq!(
            row.state,
            TaskState::None,
            "a cleared task is none: {row:#?}"
        );
        assert_eq!(
            row.max_tries,
            t.try_number + 2,
            "a cleared task gets the new max_tries: {row:#?}"
        );
        assert_eq!(
            row.worker_id, None,
            "a cleared task has no worker: {row:#?}"
        );
        assert_eq!(row.heartbeat_at, None, "{row:#?}");
        assert_eq!(row.queued_at, None, "{row:#?}");
        assert_eq!(row.started_at, None, "{row:#?}");
        assert_eq!(
            row.ended_at, None,
            "a cleared task has no ended_at: {row:#?}"
        );
        assert_eq!(row.retry_at, None, "{row:#?}");
    }
    let row = store.get_task(t1.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.ended_at, row.max_tries),
        (t1.state, t1.ended_at, t1.max_tries),
        "a task not listed is not cleared"
    );
    let row = store.get_run(run).await.expect("get_run").expect("the run");
    assert_eq!(
        row.state,
        RunState::Queued,
        "clearing tasks of a finished run queues it again"
    );
    assert_eq!(row.ended_at, None, "a run queued again has no ended_at");
    let attempts = store.attempts(t2.id).await.expect("attempts");
    assert_eq!(
        attempts.len(),
        1,
        "clearing keeps the attempt history: {attempts:#?}"
    );
    assert_eq!(
        (attempts[0].try_number, attempts[0].state.as_str()),
        (1, "failed")
    );

    // Stale clears (the task is no longer in the state read), another run's task
    // and nothing at all change nothing.
    let stale = [
        ClearTask {
            ti: t2.id,
            from: TaskState::Failed,
            max_tries: 9,
        },
        ClearTask {
            ti: t1.id,
            from: TaskState::Failed,
            max_tries: 9,
        },
    ];
    assert_eq!(
        store.clear_tasks(run, &stale).await.expect("clear_tasks"),
        0,
        "a clear of a task no longer in the state read must not apply"
    );
    assert_eq!(
        store
            .clear_tasks(RunId(run.0 + 1_000_000), &[clear(&t1)])
            .await
            .expect("clear_tasks"),
        0,
        "clear_tasks only clears task instances of the run named"
    );
    assert_eq!(store.clear_tasks(run, &[]).await.expect("clear_tasks"), 0);
    let row = store.get_task(t2.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.max_tries),
        (TaskState::None, t2.try_number + 2)
    );
    let row = store.get_task(t1.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.max_tries),
        (TaskState::Success, t1.max_tries)
    );

    // Run again: the next claim is the next try, with a new attempt record.
    assert_eq!(
        store.promote_runs().await.expect("promote_runs"),
        vec![run],
        "a run queued again by a clear is started again"
    );
    queue_tasks(store, dag.id(), run, &["t2"]).await;
    let claims = store
        .claim("w2", "host-2", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].task.id, t2.id);
    assert_eq!(
        claims[0].task.try_number,
        t2.try_number + 1,
        "a cleared task's next claim is the next try"
    );
    let attempts = store.attempts(t2.id).await.expect("attempts");
    let tries: Vec<(u32, &str)> = attempts
        .iter()
        .map(|a| (a.try_number, a.state.as_str()))
        .collect();
    assert_eq!(tries, vec![(1, "failed"), (2, "running")]);

    // A running task instance is not cleared, whatever state is claimed for it.
    assert_eq!(
        store
            .clear_tasks(
                run,
                &[ClearTask {
                    ti: t2.id,
                    from: TaskState::Running,
                    max_tries: 9,
                }]
            )
            .await
            .expect("clear_tasks"),
        0,
        "clearing a running task instance must be ignored"
    );
    let row = store.get_task(t2.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.worker_id.as_deref(), row.max_tries),
        (TaskState::Running, Some("w2"), t2.try_number + 2),
        "an ignored clear changes nothing"
    );

    // Clearing a finished task of a running run leaves the run running.
    assert_eq!(
        store
            .clear_tasks(run, &[clear(&t1)])
            .await
            .expect("clear_tasks"),
        1
    );
    assert_eq!(
        store
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run")
            .state,
        RunState::Running,
        "clearing tasks of a running run leaves it running"
    );
}

// ---------- listings for the web ----------

fn nonzero(counts: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

fn counted(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// `list_runs` pages newest first with `before`, and filters by run type;
/// `recent_runs` gives each DAG's newest runs; `tasks_of_runs` the task
/// instances of exactly the runs given; `counts` the unfinished runs and task
/// instances by state; `list_versions` a DAG's versions, newest first.
pub async fn listing_for_the_web<S: Store + ?Sized>(store: &S) {
    let alpha = seed(store, "dags/alpha.yaml", &flat_dag_source("alpha", 2, "")).await;
    let etl = seed(store, "dags/etl.yaml", ETL_V1).await;
    let a1 = create(
        store,
        &new_run(&alpha, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let e1 = create(
        store,
        &new_run(&etl, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let a2 = create(
        store,
        &new_run(&alpha, "manual__2", RunType::Manual, day(2)),
    )
    .await;
    let e2 = create(store, &new_run(&etl, "manual__2", RunType::Manual, day(2))).await;
    let a3 = create(
        store,
        &new_run(&alpha, "backfill__3", RunType::Backfill, day(3)),
    )
    .await;
    let newest_first = vec![a3, e2, a2, e1, a1];

    // Paging: every run once, newest first.
    let mut walked = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_runs(&RunFilter {
                before,
                limit: 2,
                ..RunFilter::default()
            })
            .await
            .expect("list_runs");
        assert!(page.len() <= 2, "list_runs must respect the limit");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        walked.extend(page.iter().map(|r| r.id));
        pages += 1;
        assert!(pages <= 10, "paging does not end: {walked:?}");
    }
    assert_eq!(
        walked, newest_first,
        "paging with `before` walks every run once, newest first"
    );
    assert_eq!(pages, 3, "5 runs in pages of 2");
    let page = store
        .list_runs(&RunFilter {
            dag_id: Some(alpha.id().clone()),
            before: Some(a3),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a2, a1],
        "`before` combines with the other filters"
    );

    let of_type = async |dag_id: Option<&DagId>, run_type| {
        store
            .list_runs(&RunFilter {
                dag_id: dag_id.cloned(),
                run_type: Some(run_type),
                ..RunFilter::default()
            })
            .await
            .expect("list_runs")
            .iter()
            .map(|r| {
                assert_eq!(r.run_type, run_type, "the run_type filter: {r:#?}");
                r.id
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(of_type(None, RunType::Manual).await, vec![e2, a2]);
    assert_eq!(of_type(None, RunType::Scheduled).await, vec![e1, a1]);
    assert_eq!(of_type(None, RunType::Backfill).await, vec![a3]);
    assert_eq!(
        of_type(Some(etl.id()), RunType::Manual).await,
        vec![e2],
        "run_type combines with dag_id"
    );
    assert!(of_type(Some(etl.id()), RunType::Backfill).await.is_empty());

    // recent_runs: at most `per_dag` per DAG, newest first within each.
    let per_dag = |runs: &[RunRow], dag: &DagId| -> Vec<RunId> {
        runs.iter()
            .filter(|r| &r.dag_id == dag)
            .map(|r| r.id)
            .collect()
    };
    let recent = store.recent_runs(2).await.expect("recent_runs");
    assert_eq!(recent.len(), 4, "two runs of each of two DAGs: {recent:#?}");
    assert_eq!(per_dag(&recent, alpha.id()), vec![a3, a2]);
    assert_eq!(per_dag(&recent, etl.id()), vec![e2, e1]);
    let recent = store.recent_runs(10).await.expect("recent_runs");
    assert_eq!(per_dag(&recent, alpha.id()), vec![a3, a2, a1]);
    assert_eq!(per_dag(&recent, etl.id()), vec![e2, e1]);

    // tasks_of_runs: the task instances of exactly the runs given.
    let mut expected = ids(&tasks_of(store, a1).await);
    expected.extend(ids(&tasks_of(store, e2).await));
    let got = store.tasks_of_runs(&[a1, e2]).await.expect("tasks_of_runs");
    assert_eq!(got.len(), 4, "two task instances in each run: {got:#?}");
    assert_eq!(
        ids(&got),
        expected,
        "tasks_of_runs returns the runs' task instances"
    );
    assert!(
        store
            .tasks_of_runs(&[])
            .await
            .expect("tasks_of_runs")
            .is_empty(),
        "no runs, no task instances"
    );
    assert!(
        store
            .tasks_of_runs(&[RunId(999_999)])
            .await
            .expect("tasks_of_runs")
            .is_empty()
    );

    // counts (unfinished work only): runs running a1 and e2, queued a2 and a3,
    // e1 failed (not counted).
    let promoted: BTreeSet<RunId> = store
        .promote_runs()
        .await
        .expect("promote_runs")
        .into_iter()
        .collect();
    assert_eq!(promoted, BTreeSet::from([a1, e1, e2]));
    assert!(
        store
            .finish_run(e1, RunState::Failed)
            .await
            .expect("finish_run")
    );
    // Tasks: a1's t1, t2 and e2's load queued, e2's extract running, the other
    // five none; e1's extract skipped (not counted).
    queue_tasks(store, alpha.id(), a1, &["t1", "t2"]).await;
    queue_tasks(store, etl.id(), e2, &["extract", "load"]).await;
    let claims = store
        .claim("w1", "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(
        (claims[0].task.run_id, claims[0].task.task_id.as_str()),
        (e2, "extract"),
        "the highest priority is claimed"
    );
    let e1_extract = ti_of(store, e1, "extract").await.id;
    assert_eq!(
        store
            .apply_transitions(&[Transition {
                ti: e1_extract,
                from: TaskState::None,
                to: TaskState::Skipped,
                retry_at: None,
            }])
            .await
            .expect("apply_transitions"),
        1
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        nonzero(&counts.runs_by_state),
        counted(&[("queued", 2), ("running", 2)]),
        "queued and running runs by state (finished ones are not counted): {counts:#?}"
    );
    assert_eq!(
        nonzero(&counts.tasks_by_state),
        counted(&[("none", 5), ("queued", 3), ("running", 1)]),
        "unfinished task instances by state (finished ones are not counted): {counts:#?}"
    );
    assert_eq!(
        nonzero(&counts.queued_by_queue),
        counted(&[("default", 2), ("io", 1)]),
        "queued task instances by queue: {counts:#?}"
    );

    // list_versions: newest first.
    let etl2 = seed(store, "dags/etl.yaml", ETL_V2).await;
    let versions = store.list_versions(etl.id()).await.expect("list_versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version_hash.as_str())
            .collect::<Vec<_>>(),
        vec![etl2.hash.as_str(), etl.hash.as_str()],
        "both versions, newest first: {versions:#?}"
    );
    assert!(versions.iter().all(|v| v.file == "dags/etl.yaml"));
    assert!(versions[0].created_at >= versions[1].created_at);
    let alpha_versions = store
        .list_versions(alpha.id())
        .await
        .expect("list_versions");
    assert_eq!(alpha_versions.len(), 1);
    assert_eq!(alpha_versions[0].version_hash, alpha.hash);
    assert!(
        store
            .list_versions(&DagId::from("nope"))
            .await
            .expect("list_versions")
            .is_empty()
    );
}

// ---------- backfills ----------

/// A backfill reports the backfill runs of its DAG with a logical date in its
/// range (bounds included) by state; backfills are listed newest first.
pub async fn backfills_progress<S: Store + ?Sized>(store: &S) {
    let dag = seed(
        store,
        "dags/bf.yaml",
        &flat_dag_source("bf", 1, "max_active_runs: 10"),
    )
    .await;
    let other = seed(
        store,
        "dags/bf_other.yaml",
        &flat_dag_source("bf_other", 1, ""),
    )
    .await;
    let started = store.now().await.expect("now");
    let b1 = store
        .create_backfill(dag.id(), day(1), day(4), Some("dora"))
        .await
        .expect("create_backfill");

    let backfill = async |d: &Seeded, n: i64| {
        create(
            store,
            &new_run(d, &format!("backfill__{n}"), RunType::Backfill, day(n)),
        )
        .await
    };
    let first = backfill(&dag, 1).await;
    let second = backfill(&dag, 2).await;
    // Not counted: before and after the range, not backfill runs, another DAG.
    backfill(&dag, 0).await;
    backfill(&dag, 5).await;
    create(
        store,
        &new_run(&dag, "scheduled__3", RunType::Scheduled, day(3)),
    )
    .await;
    create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    backfill(&other, 2).await;
    assert_eq!(
        store.promote_runs().await.expect("promote_runs").len(),
        7,
        "every run starts"
    );
    assert!(
        store
            .finish_run(first, RunState::Success)
            .await
            .expect("finish_run")
    );
    assert!(
        store
            .finish_run(second, RunState::Failed)
            .await
            .expect("finish_run")
    );
    // On the upper bound, still queued.
    backfill(&dag, 4).await;

    let expected = counted(&[("failed", 1), ("queued", 1), ("success", 1)]);
    let as_counts = |runs: &BTreeMap<String, u32>| -> BTreeMap<String, u64> {
        runs.iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), u64::from(*n)))
            .collect()
    };
    let row = store
        .get_backfill(b1)
        .await
        .expect("get_backfill")
        .expect("the backfill");
    assert_eq!(row.id, b1);
    assert_eq!(&row.dag_id, dag.id());
    assert_eq!((row.from_date, row.to_date), (day(1), day(4)));
    assert_eq!(row.created_by.as_deref(), Some("dora"));
    assert!(
        row.created_at >= started,
        "created_at is the store's now: {row:#?}"
    );
    assert_eq!(
        as_counts(&row.runs),
        expected,
        "only the DAG's backfill runs with a logical date in the range (bounds \
         included) are counted, by state: {row:#?}"
    );

    let b2 = store
        .create_backfill(dag.id(), day(5), day(5), None)
        .await
        .expect("create_backfill");
    let b3 = store
        .create_backfill(other.id(), day(10), day(12), Some("erin"))
        .await
        .expect("create_backfill");
    let row = store.get_backfill(b2).await.expect("get_backfill").unwrap();
    assert_eq!(row.created_by, None);
    assert_eq!(
        as_counts(&row.runs),
        counted(&[("running", 1)]),
        "a one-day range counts its day's run: {row:#?}"
    );
    let row = store.get_backfill(b3).await.expect("get_backfill").unwrap();
    assert!(
        as_counts(&row.runs).is_empty(),
        "a backfill without runs yet counts none: {row:#?}"
    );

    let listed = store
        .list_backfills(Some(dag.id()), 10)
        .await
        .expect("list_backfills");
    assert_eq!(
        listed.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b2, b1],
        "a DAG's backfills, newest first"
    );
    assert_eq!(
        as_counts(&listed[1].runs),
        expected,
        "listed backfills carry their progress"
    );
    let all = store
        .list_backfills(None, 10)
        .await
        .expect("list_backfills");
    assert_eq!(
        all.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b3, b2, b1],
        "every backfill, newest first"
    );
    let limited = store.list_backfills(None, 2).await.expect("list_backfills");
    assert_eq!(
        limited.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b3, b2],
        "list_backfills respects the limit"
    );
    assert!(
        store
            .list_backfills(Some(&DagId::from("nope")), 10)
            .await
            .expect("list_backfills")
            .is_empty()
    );
    assert!(
        store
            .get_backfill(b3 + 1_000_000)
            .await
            .expect("get_backfill")
            .is_none(),
        "an unknown backfill is None"
    );
}

// ---------- users, sessions and API tokens ----------

/// Users round-trip; a session or token is found by its hash until it expires,
/// is deleted or revoked, its user's password changes (sessions) or its user is
/// deleted.
pub async fn users_sessions_tokens<S: Store + ?Sized>(store: &S) {
    let hash_a = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaC1h";
    assert!(
        store
            .create_user("ann", "admin", hash_a)
            .await
            .expect("create_user"),
        "creating a new user must return true"
    );
    assert!(
        !store
            .create_user("ann", "viewer", "other")
            .await
            .expect("create_user"),
        "creating an existing user must return false"
    );
    assert!(
        store
            .create_user("bob", "viewer", "hash-b")
            .await
            .expect("create_user")
    );
    let ann = store
        .get_user("ann")
        .await
        .expect("get_user")
        .expect("ann exists");
    assert_eq!(
        (
            ann.name.as_str(),
            ann.role.as_str(),
            ann.password_hash.as_str()
        ),
        ("ann", "admin", hash_a),
        "a user round-trips, and a second create_user changes nothing"
    );
    assert!(store.get_user("nobody").await.expect("get_user").is_none());
    let mut users: Vec<(String, String, String)> = store
        .list_users()
        .await
        .expect("list_users")
        .into_iter()
        .map(|u| (u.name, u.role, u.password_hash))
        .collect();
    users.sort();
    assert_eq!(
        users,
        vec![
            ("ann".to_owned(), "admin".to_owned(), hash_a.to_owned()),
            ("bob".to_owned(), "viewer".to_owned(), "hash-b".to_owned()),
        ]
    );

    // Sessions.
    let now = store.now().await.expect("now").as_second();
    let at = |s: i64| Timestamp::from_second(now + s).expect("a valid timestamp");
    store
        .create_session("sess-a", "ann", "csrf-a", at(3600))
        .await
        .expect("create_session");
    let s = store
        .get_session("sess-a")
        .await
        .expect("get_session")
        .expect("a live session is found by its hash");
    assert_eq!(
        (s.user.as_str(), s.role.as_str(), s.csrf_token.as_str()),
        ("ann", "admin", "csrf-a")
    );
    assert_eq!(s.expires_at, at(3600));
    store
        .create_session("sess-old", "ann", "csrf-o", at(-60))
        .await
        .expect("create_session");
    assert!(
        store
            .get_session("sess-old")
            .await
            .expect("get_session")
            .is_none(),
        "an expired session is not returned"
    );
    assert!(
        store
            .get_session("sess-nope")
            .await
            .expect("get_session")
            .is_none()
    );
    store
        .delete_session("sess-a")
        .await
        .expect("delete_session");
    assert!(
        store
            .get_session("sess-a")
            .await
            .expect("get_session")
            .is_none(),
        "a deleted session is gone"
    );
    store
        .delete_session("sess-a")
        .await
        .expect("deleting a missing session is not an error");

    // A new password ends the user's sessions, not other users'.
    store
        .create_session("sess-b", "ann", "csrf-b", at(3600))
        .await
        .expect("create_session");
    store
        .create_session("sess-bob", "bob", "csrf-bob", at(3600))
        .await
        .expect("create_session");
    assert!(
        store
            .set_password("ann", "hash-a2")
            .await
            .expect("set_password")
    );
    assert_eq!(
        store
            .get_user("ann")
            .await
            .expect("get_user")
            .unwrap()
            .password_hash,
        "hash-a2"
    );
    assert!(
        store
            .get_session("sess-b")
            .await
            .expect("get_session")
            .is_none(),
        "set_password ends the user's sessions"
    );
    assert_eq!(
        store
            .get_session("sess-bob")
            .await
            .expect("get_session")
            .expect("another user's session is kept")
            .role,
        "viewer"
    );
    assert!(
        !store
            .set_password("nobody", "x")
            .await
            .expect("set_password"),
        "set_password of a missing user must return false"
    );

    // API tokens.
    store
        .create_token("ci", "nobody", "sec-x", None)
        .await
        .expect_err("a token for a missing user must be refused");
    let ci = store
        .create_token("ci", "ann", "sec-1", None)
        .await
        .expect("create_token");
    let laptop = store
        .create_token("laptop", "ann", "sec-2", Some(at(86_400)))
        .await
        .expect("create_token");
    let bot = store
        .create_token("bot", "bob", "sec-3", None)
        .await
        .expect("create_token");
    let old = store
        .create_token("old", "bob", "sec-4", Some(at(-60)))
        .await
        .expect("create_token");
    assert_eq!(
        BTreeSet::from([ci, laptop, bot, old]).len(),
        4,
        "token ids are unique"
    );
    let t = store
        .get_token("sec-1")
        .await
        .expect("get_token")
        .expect("a live token is found by its hash");
    assert_eq!(
        (t.id, t.name.as_str(), t.user.as_str(), t.role.as_str()),
        (ci, "ci", "ann", "admin")
    );
    assert_eq!(t.expires_at, None);
    let t = store
        .get_token("sec-2")
        .await
        .expect("get_token")
        .expect("a token that expires tomorrow is live");
    assert_eq!((t.id, t.expires_at), (laptop, Some(at(86_400))));
    assert_eq!(
        store
            .get_token("sec-3")
            .await
            .expect("get_token")
            .expect("bob's token")
            .role,
        "viewer",
        "a token carries its user's role"
    );
    assert!(
        store.get_token("sec-4").await.expect("get_token").is_none(),
        "an expired token is not returned"
    );
    assert!(
        store
            .get_token("sec-nope")
            .await
            .expect("get_token")
            .is_none()
    );
    let token_ids = async |user: Option<&str>| -> BTreeSet<i64> {
        store
            .list_tokens(user)
            .await
            .expect("list_tokens")
            .iter()
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(
        token_ids(Some("ann")).await,
        BTreeSet::from([ci, laptop]),
        "list_tokens of a user lists only theirs"
    );
    let everyone = token_ids(None).await;
    assert!(
        everyone.is_superset(&BTreeSet::from([ci, laptop, bot]))
            && everyone.is_subset(&BTreeSet::from([ci, laptop, bot, old])),
        "list_tokens(None) lists every user's tokens: {everyone:?}"
    );
    assert!(store.revoke_token(ci).await.expect("revoke_token"));
    assert!(
        !store.revoke_token(ci).await.expect("revoke_token"),
        "revoking a revoked token must return false"
    );
    assert!(
        store.get_token("sec-1").await.expect("get_token").is_none(),
        "a revoked token is not returned"
    );
    assert_eq!(token_ids(Some("ann")).await, BTreeSet::from([laptop]));

    // Deleting a user deletes their sessions and tokens, and nobody else's.
    store
        .create_session("sess-c", "ann", "csrf-c", at(3600))
        .await
        .expect("create_session");
    assert!(store.delete_user("ann").await.expect("delete_user"));
    assert!(store.get_user("ann").await.expect("get_user").is_none());
    assert!(
        store
            .get_session("sess-c")
            .await
            .expect("get_session")
            .is_none(),
        "a deleted user's sessions are gone"
    );
    assert!(
        store.get_token("sec-2").await.expect("get_token").is_none(),
        "a deleted user's tokens are gone"
    );
    assert!(token_ids(Some("ann")).await.is_empty());
    assert!(
        !token_ids(None).await.contains(&laptop),
        "a deleted user's tokens are not listed"
    );
    assert!(
        !store.delete_user("ann").await.expect("delete_user"),
        "deleting a missing user must return false"
    );
    assert!(
        store.get_token("sec-3").await.expect("get_token").is_some(),
        "other users' tokens are kept"
    );
    assert!(
        store
            .get_session("sess-bob")
            .await
            .expect("get_session")
            .is_some(),
        "other users' sessions are kept"
    );
    assert_eq!(
        store
            .list_users()
            .await
            .expect("list_users")
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        vec!["bob"]
    );
}
