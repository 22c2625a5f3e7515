//! The store conformance suite against the SQLite backend, plus the SQLite-only
//! behaviour: several handles (processes) on one file, and reopening a file.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use gale_model::dag::{content_hash, parse};
use gale_model::{DagId, TaskState};
use gale_store::prelude::*;
use gale_store::sqlite::{SCHEMA_VERSION, SqliteStore};
use gale_store::{
    LogLine, NewRun, NewTask, RunFilter, RunType, Stream, TiId, Transition, WorkerId, conformance,
};
use jiff::Timestamp;
use tempfile::TempDir;

/// A fresh store in its own directory; keep the directory alive while using it.
fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("gale.db")).expect("open a fresh store");
    (dir, store)
}

/// One `#[tokio::test]` per conformance check, each on a fresh store.
macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (_dir, store) = fresh();
                conformance::$check(&store).await;
            }
        )*
    };
}

gale_store::for_each_check!(conformance_tests);

/// `run_all` itself, the entry point another backend uses: one store per check.
#[tokio::test]
async fn run_all_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = AtomicUsize::new(0);
    conformance::run_all(|| {
        let n = opened.fetch_add(1, Ordering::Relaxed);
        SqliteStore::open(&dir.path().join(format!("gale-{n}.db"))).expect("open")
    })
    .await;
    assert!(
        opened.load(Ordering::Relaxed) >= 20,
        "run_all must use a fresh store per check"
    );
}

// ---------- SQLite: one file, several handles ----------

const SOURCE: &str = "id: shared\ntasks:\n  a:\n    run: echo a\n  b:\n    run: echo b\n";

fn run_for(hash: &str, key: &str) -> NewRun {
    let dag = parse("dags/shared.yaml", "shared", SOURCE).expect("fixture parses");
    NewRun {
        dag_id: dag.id.clone(),
        run_key: key.to_owned(),
        run_type: RunType::Manual,
        version_hash: hash.to_owned(),
        logical_date: Timestamp::from_second(1_767_225_600).unwrap(),
        interval_start: Timestamp::from_second(1_767_225_600).unwrap(),
        interval_end: Timestamp::from_second(1_767_312_000).unwrap(),
        conf: serde_json::Map::new(),
        tasks: NewTask::for_dag(&dag),
    }
}

async fn seed_shared(store: &SqliteStore) -> String {
    let dag = parse("dags/shared.yaml", "shared", SOURCE).expect("fixture parses");
    let hash = content_hash(SOURCE);
    store
        .upsert_dag(&dag, "dags/shared.yaml", SOURCE, &hash, "host:/dags")
        .await
        .expect("upsert_dag");
    hash
}

/// Two handles on one file (as two processes would have) see each other's writes,
/// and their conditional writes exclude each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_share_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gale.db");
    let cli = SqliteStore::open(&path).expect("open 1");
    let server = SqliteStore::open(&path).expect("open 2");
    let dag_id = DagId::from("shared");

    let hash = seed_shared(&cli).await;
    let row = server
        .get_dag(&dag_id)
        .await
        .expect("get_dag")
        .expect("the other handle sees the DAG");
    assert_eq!(row.version_hash, hash);

    // The CLI writes a run; the server promotes it and queues its tasks.
    let run = cli
        .create_run(&run_for(&hash, "manual__cli"))
        .await
        .expect("create_run")
        .expect("a new run");
    assert_eq!(
        server
            .create_run(&run_for(&hash, "manual__cli"))
            .await
            .expect("create_run"),
        None,
        "the other handle sees the run key taken"
    );
    assert_eq!(
        server.promote_runs().await.expect("promote_runs"),
        vec![run]
    );
    assert!(
        cli.promote_runs().await.expect("promote_runs").is_empty(),
        "a run is promoted once"
    );
    let tis: Vec<TiId> = server
        .run_tasks(run)
        .await
        .expect("run_tasks")
        .iter()
        .map(|t| t.id)
        .collect();
    let scheduled: Vec<Transition> = tis
        .iter()
        .map(|&ti| Transition {
            ti,
            from: TaskState::None,
            to: TaskState::Scheduled,
            retry_at: None,
        })
        .collect();
    assert_eq!(server.apply_transitions(&scheduled).await.unwrap(), 2);
    assert_eq!(
        cli.apply_transitions(&scheduled).await.unwrap(),
        0,
        "the other handle's transition already applied"
    );
    assert_eq!(server.enqueue(&dag_id, &tis, None).await.unwrap(), 2);

    // Both handles claim at once: every task instance goes to exactly one.
    let default = vec!["default".to_owned()];
    let (w_cli, w_server) = (WorkerId::from("w-cli"), WorkerId::from("w-server"));
    let (a, b) = tokio::join!(
        cli.claim(&w_cli, "h", &default, 10),
        server.claim(&w_server, "h", &default, 10)
    );
    let (a, b) = (a.expect("claim"), b.expect("claim"));
    let sa: BTreeSet<TiId> = a.iter().map(|c| c.task.id).collect();
    let sb: BTreeSet<TiId> = b.iter().map(|c| c.task.id).collect();
    assert!(sa.is_disjoint(&sb), "double claim across handles");
    assert_eq!(sa.len() + sb.len(), 2);

    // Logs written through one handle are read through the other.
    let claim = a.first().or(b.first()).expect("a claim");
    let line = LogLine {
        ts: Timestamp::from_second(1_767_225_601).unwrap(),
        stream: Stream::Stdout,
        text: "hello from the worker".into(),
    };
    cli.append_logs(claim.task.id, 1, std::slice::from_ref(&line))
        .await
        .expect("append_logs");
    let read = server
        .read_logs(claim.task.id, 1, 0, 10)
        .await
        .expect("read_logs");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].text, line.text);

    assert!(server.set_paused(&dag_id, true).await.expect("set_paused"));
    assert!(
        cli.get_dag(&dag_id).await.unwrap().unwrap().paused,
        "the other handle sees the pause"
    );
}

/// Many writers on separate handles at once: busy waits, no lost or failed writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_separate_handles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gale.db");
    let first = SqliteStore::open(&path).expect("open");
    let hash = seed_shared(&first).await;
    let mut tasks = Vec::new();
    for h in 0..4 {
        let store = SqliteStore::open(&path).expect("open another handle");
        let hash = hash.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .create_run(&run_for(&hash, &format!("manual__{h}_{i}")))
                    .await
                    .expect("create_run under contention")
                    .expect("a new run");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let runs = first
        .list_runs(&RunFilter {
            dag_id: Some(DagId::from("shared")),
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    assert_eq!(runs.len(), 100, "every concurrent write landed");
}

/// Opening an existing file again keeps its data and does not rerun migrations.
#[tokio::test]
async fn reopen_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/dir/gale.db");
    let (hash, run) = {
        let store = SqliteStore::open(&path).expect("open (creating the directory)");
        assert_eq!(store.path(), path.as_path());
        let hash = seed_shared(&store).await;
        let run = store
            .create_run(&run_for(&hash, "manual__1"))
            .await
            .expect("create_run")
            .expect("a new run");
        assert!(
            store
                .set_paused(&DagId::from("shared"), true)
                .await
                .unwrap()
        );
        (hash, run)
    };

    for _ in 0..2 {
        let store = SqliteStore::open(&path).expect("reopen");
        let dag = store
            .get_dag(&DagId::from("shared"))
            .await
            .expect("get_dag")
            .expect("the DAG survives reopening");
        assert_eq!(dag.version_hash, hash);
        assert!(dag.paused, "state survives reopening");
        assert!(
            store
                .get_version(&DagId::from("shared"), &hash)
                .await
                .unwrap()
                .is_some()
        );
        let got = store
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run survives reopening");
        assert_eq!(got.run_key, "manual__1");
        assert_eq!(store.run_tasks(run).await.unwrap().len(), 2);
        // New ids do not collide with old ones.
        let next = store
            .create_run(&run_for(&hash, &format!("manual__{}", Timestamp::now())))
            .await
            .expect("create_run after reopen")
            .expect("a new run");
        assert!(next > run);
    }

    let conn = rusqlite::Connection::open(&path).expect("open raw");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SCHEMA_VERSION);
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .expect("count runs");
    assert_eq!(runs, 3);
}

/// A database written by a newer gale is refused rather than misread.
#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gale.db");
    drop(SqliteStore::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump user_version");
    drop(conn);
    let err = match SqliteStore::open(&path) {
        Ok(_) => panic!("a newer schema must be refused"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("newer"), "{err}");
    assert!(!err.is_retryable());
}

/// The versions `gale_schema` records, in order.
fn recorded_versions(conn: &rusqlite::Connection) -> Vec<i64> {
    let mut stmt = conn
        .prepare("SELECT version FROM gale_schema ORDER BY version")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("versions")
}

/// Migrations a database lacks below the newest it has are applied when the
/// database is opened (versions need not be consecutive either).
#[tokio::test]
async fn a_missing_migration_below_the_newest_is_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gale.db");
    drop(SqliteStore::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    let fresh = recorded_versions(&conn);
    assert_eq!(fresh, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    // The web tables' migrations (7, and 8 and 12 which alter them) undone
    // and forgotten, those between (the audit log, 9, and on) kept.
    conn.execute_batch(
        "DROP TABLE api_tokens; DROP TABLE sessions; DROP TABLE users; DROP TABLE backfills;
         DROP INDEX ti_unfinished; DELETE FROM gale_schema WHERE version IN (7, 8, 12);",
    )
    .expect("undo migrations 7, 8 and 12");
    drop(conn);
    let store = SqliteStore::open(&path).expect("reopen applies the missing migration");
    assert!(
        store
            .list_users()
            .await
            .expect("users table is back")
            .is_empty()
    );
    assert_eq!(
        store.schema_version().await.expect("version"),
        SCHEMA_VERSION
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    assert_eq!(recorded_versions(&conn), fresh);
}

/// A database from before each version was recorded (only `user_version`)
/// counts every migration up to it as applied and gets the rest.
#[tokio::test]
async fn a_database_without_recorded_versions_is_brought_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gale.db");
    drop(SqliteStore::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    conn.execute_batch(
        "DROP TABLE gale_schema; DROP TABLE audit_log; DROP TABLE variables; DROP TABLE connections; DROP TABLE alert_channels; DROP TABLE alert_deliveries; ALTER TABLE nodes DROP COLUMN queues; ALTER TABLE users DROP COLUMN last_login_at; ALTER TABLE api_tokens DROP COLUMN last_used_at; ALTER TABLE backfills DROP COLUMN cancelled_at; ALTER TABLE dag_versions DROP COLUMN origin; DROP TABLE dag_sources; PRAGMA user_version = 8;",
    )
        .expect("make it a version-8 database");
    drop(conn);
    let store = SqliteStore::open(&path).expect("reopen");
    assert!(
        store
            .list_audit(&gale_store::AuditFilter::default())
            .await
            .expect("the audit table was created")
            .is_empty()
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    assert_eq!(
        recorded_versions(&conn),
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SCHEMA_VERSION);
}

/// A database that holds a migration this gale does not have was written by
/// another gale: refused, saying so.
#[tokio::test]
async fn an_unknown_migration_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gale.db");
    drop(SqliteStore::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    conn.execute(
        "INSERT INTO gale_schema (version, applied_at) VALUES (?1, 0)",
        [SCHEMA_VERSION + 1],
    )
    .expect("record a version from a newer gale");
    drop(conn);
    let err = match SqliteStore::open(&path) {
        Ok(_) => panic!("an unknown migration must be refused"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains(&format!("version {}", SCHEMA_VERSION + 1)) && text.contains("newer"),
        "{err}"
    );
    assert!(!err.is_retryable());
}
