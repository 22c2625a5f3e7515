//! The embedded SQLite backend: one file in WAL mode, shared safely by several
//! processes on one machine (the CLI writes a run, `gale standalone` picks it up).
//!
//! All SQL runs on a blocking thread; every write transaction starts with
//! `BEGIN IMMEDIATE` so two processes never deadlock upgrading a read lock, and a
//! busy database is waited for (`busy_timeout`) before the error is reported as
//! retryable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gale_model::time::{from_micros, to_micros};
use gale_model::{Dag, DagError, DagId, RunId, RunState, TaskId, TaskState};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use crate::rules::*;
use crate::*;

mod alerts;
mod audit;
mod auth;
mod backfills;
mod clock;
mod dags;
mod database;
mod logs;
mod migrate;
mod nodes;
mod operator;
mod outbox;
mod pools;
mod queue;
mod runs;
mod secrets;
mod slots;
mod writer;

use migrate::migrate;
use writer::{Job, WriteJob, writer_loop};

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 15;

/// Reader connections per store: WAL lets them read while the writer writes, so
/// a scheduler reading a large run never holds up a worker reporting a result.
const READERS: usize = 3;

/// Most write jobs committed together in one transaction.
const GROUP_COMMIT_MAX: usize = 256;

#[derive(Clone)]
pub struct SqliteStore {
    /// Write jobs go to one writer thread, which commits whatever has queued up
    /// in one transaction (group commit), each job inside its own savepoint.
    writer: std::sync::mpsc::Sender<Box<dyn WriteJob>>,
    // std Mutexes: they are only ever held on a blocking thread, never across `.await`.
    readers: Arc<Vec<Mutex<Connection>>>,
    path: PathBuf,
}

/// Prepared statements kept per connection.
const STATEMENTS_CACHED: usize = 64;

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        Error::Unavailable(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(map_err)?;
    // The statements a busy node runs (beyond rusqlite's default of 16), so
    // none is parsed again each time.
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    // And not prepared again at each new binding either: without the query
    // planner stability guarantee, SQLite plans `LIMIT ?` (a claim, every
    // page) and a parameter compared with a partial index's value by the
    // value bound, and prepares the statement again whenever it is rebound.
    // Every partial index here is matched by a literal in the SQL, and no
    // statistics are gathered, so no plan depended on a bound value.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(map_err)?;
    // Switching a new database file to WAL takes its lock without calling the busy
    // handler: when another process opens the same new file at that moment, the
    // switch fails at once with SQLITE_BUSY. Retry it within the busy timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match conn.execute_batch("PRAGMA journal_mode = WAL;") {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(map_err(e)),
        }
    }
    // The WAL is checkpointed every 1,000 pages (SQLite's default) and cut
    // back to at most WAL_KEPT_BYTES after each checkpoint, so a burst leaves
    // no WAL the size of the database behind.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
         PRAGMA journal_size_limit = {WAL_KEPT_BYTES};"
    ))
    .map_err(map_err)?;
    Ok(conn)
}

/// The most of its WAL file SQLite keeps after a checkpoint.
pub const WAL_KEPT_BYTES: i64 = 64 << 20;

fn map_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::*;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure => {
                Error::Unavailable(e.to_string())
            }
            DiskFull => Error::Full(e.to_string()),
            _ => Error::Database(e.to_string()),
        },
        _ => Error::Database(e.to_string()),
    }
}

fn now_us() -> i64 {
    to_micros(Timestamp::now())
}

fn ts(v: i64) -> Timestamp {
    from_micros(v)
}

fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(from_micros)
}

fn json_map(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(text).unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    ///
    /// A directory or file it creates is its owner's only (0700, 0600): the
    /// database holds password hashes, tokens and every log. SQLite gives
    /// the WAL and shared-memory files the database file's mode.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    Error::Unavailable(format!("cannot create {}: {e}", path.display()))
                })?;
        }
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| connect(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let (writer, jobs) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("gale-sqlite-writer".into())
            .spawn(move || writer_loop(conn, jobs))
            .map_err(|e| {
                Error::Unavailable(format!("cannot start the SQLite writer thread: {e}"))
            })?;
        Ok(SqliteStore {
            writer,
            readers: Arc::new(readers),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills the store with a long, finished history of `dag_id` for page-time
    /// benchmarks: `runs` hourly scheduled runs from `start`, each with one
    /// task instance per task id and one attempt each (every 50th run failed
    /// in its last task). Returns the run ids' range.
    pub async fn seed_history(
        &self,
        dag_id: &DagId,
        version_hash: &str,
        task_ids: &[String],
        runs: u32,
        start: Timestamp,
    ) -> Result<(RunId, RunId)> {
        let (dag, hash, tasks) = (
            dag_id.0.clone(),
            version_hash.to_owned(),
            to_json(&task_ids)?,
        );
        let last_task = task_ids.last().cloned().unwrap_or_default();
        let start = to_micros(start);
        self.write(move |tx| {
            let first: i64 = tx
                .query_row("SELECT coalesce(max(id), 0) + 1 FROM runs", [], |r| r.get(0))
                .map_err(map_err)?;
            tx.execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?3)
                 INSERT INTO runs (dag_id, run_key, run_type, version_hash, logical_date,
                                   interval_start, interval_end, conf, state, created_at,
                                   started_at, ended_at)
                 SELECT ?1, 'seed__' || i, 'scheduled', ?2, ?4 + i * 3600000000,
                        ?4 + i * 3600000000, ?4 + (i + 1) * 3600000000, '{}',
                        CASE WHEN i % 50 = 49 THEN 'failed' ELSE 'success' END,
                        ?4 + (i + 1) * 3600000000, ?4 + (i + 1) * 3600000000 + 1000,
                        ?4 + (i + 1) * 3600000000 + 60000000
                 FROM n",
                params![dag, hash, runs, start],
            )
            .map_err(map_err)?;
            tx.execute(
                "INSERT INTO task_instances (run_id, dag_id, task_id, state, try_number, max_tries,
                     queue, priority, worker_id, queued_at, started_at, ended_at, updated_at)
                 SELECT r.id, r.dag_id, t.value,
                        CASE WHEN r.state = 'failed' AND t.value = ?3 THEN 'failed' ELSE 'success' END,
                        1, 1, 'default', 0, 'seed', r.started_at,
                        r.started_at + t.key * 1000000, r.started_at + t.key * 1000000 + 900000,
                        r.ended_at
                 FROM runs r, json_each(?2) t WHERE r.dag_id = ?1 AND r.id >= ?4",
                params![dag, tasks, last_task, first],
            )
            .map_err(map_err)?;
            tx.execute(
                "INSERT INTO attempts (ti_id, try_number, run_id, task_id, worker_id, host, pid,
                     state, exit_code, message, command, started_at, ended_at)
                 SELECT id, 1, run_id, task_id, 'seed', 'seed-host', 4242, state,
                        CASE WHEN state = 'failed' THEN 1 ELSE 0 END, NULL, 'true',
                        started_at, ended_at
                 FROM task_instances WHERE dag_id = ?1 AND run_id >= ?2",
                params![dag, first],
            )
            .map_err(map_err)?;
            let last: i64 = tx
                .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
                .map_err(map_err)?;
            tx.execute(
                "UPDATE dags SET last_interval_end = ?2 WHERE dag_id = ?1",
                params![dag, start + i64::from(runs) * 3_600_000_000],
            )
            .map_err(map_err)?;
            Ok((RunId(first), RunId(last)))
        })
        .await
    }

    /// Runs the read-only `f` on a blocking thread with a free reader connection.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .unwrap_or_else(|| readers[0].lock().unwrap_or_else(|p| p.into_inner()));
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::Database(format!("store task failed: {e}")))?
        .inspect_err(|e| crate::telemetry::count_error("sqlite", e))
    }

    /// Runs `f` on the writer thread inside a write transaction; its changes are
    /// kept only if it returns Ok, and the result arrives once they are committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, false).await
    }

    /// As [`SqliteStore::write`], for a write that may change without bound
    /// (a DAG deleted with its history, a prune): it runs in a transaction of
    /// its own, its savepoint journal on disk rather than in memory.
    async fn write_large<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, true).await
    }

    async fn submit<T, F>(&self, f: F, large: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send(Box::new(Job { f, reply, large }))
            .map_err(|_| Error::Database("the SQLite writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Database("the SQLite writer thread has stopped".into()))?
            .inspect_err(|e| crate::telemetry::count_error("sqlite", e))
    }
}

const DAG_COLS: &str = "dag_id, file, version_hash, paused, active, schedule, timezone, \
     max_active_runs, description, tags, last_interval_end, updated_at, owner, \
     (SELECT v.origin FROM dag_versions v \
      WHERE v.dag_id = dags.dag_id AND v.version_hash = dags.version_hash)";

fn dag_row(r: &Row) -> rusqlite::Result<DagRow> {
    Ok(DagRow {
        dag_id: DagId(r.get(0)?),
        file: r.get(1)?,
        version_hash: r.get(2)?,
        paused: r.get(3)?,
        active: r.get(4)?,
        schedule: r.get(5)?,
        timezone: r.get(6)?,
        max_active_runs: r.get(7)?,
        description: r.get(8)?,
        tags: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
        last_interval_end: opt_ts(r.get(10)?),
        updated_at: ts(r.get(11)?),
        owner: r.get(12)?,
        origin: r
            .get::<_, Option<String>>(13)?
            .as_deref()
            .and_then(Origin::from_text),
    })
}

const RUN_COLS: &str = "id, dag_id, run_key, run_type, version_hash, logical_date, \
     interval_start, interval_end, conf, state, created_at, started_at, ended_at";

/// `RUN_COLS`, each qualified by a table alias (for a join).
fn prefixed_run_cols(alias: &str) -> String {
    RUN_COLS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: RunId(r.get(0)?),
        dag_id: DagId(r.get(1)?),
        run_key: r.get(2)?,
        run_type: r.get::<_, String>(3)?.parse().unwrap_or(RunType::Manual),
        version_hash: r.get(4)?,
        logical_date: ts(r.get(5)?),
        interval_start: ts(r.get(6)?),
        interval_end: ts(r.get(7)?),
        conf: json_map(&r.get::<_, String>(8)?),
        state: r.get::<_, String>(9)?.parse().unwrap_or(RunState::Failed),
        created_at: ts(r.get(10)?),
        started_at: opt_ts(r.get(11)?),
        ended_at: opt_ts(r.get(12)?),
    })
}

const TI_COLS: &str = "id, run_id, dag_id, task_id, state, try_number, max_tries, queue, \
     priority, worker_id, heartbeat_at, queued_at, started_at, ended_at, retry_at, outputs, pool";

fn ti_row(r: &Row) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: TiId(r.get(0)?),
        run_id: RunId(r.get(1)?),
        dag_id: DagId(r.get(2)?),
        task_id: TaskId(r.get(3)?),
        state: r.get::<_, String>(4)?.parse().unwrap_or(TaskState::Failed),
        try_number: r.get(5)?,
        max_tries: r.get(6)?,
        queue: r.get(7)?,
        priority: r.get(8)?,
        worker_id: r.get::<_, Option<String>>(9)?.map(WorkerId),
        heartbeat_at: opt_ts(r.get(10)?),
        queued_at: opt_ts(r.get(11)?),
        started_at: opt_ts(r.get(12)?),
        ended_at: opt_ts(r.get(13)?),
        retry_at: opt_ts(r.get(14)?),
        outputs: r
            .get::<_, Option<String>>(15)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        pool: r.get(16)?,
    })
}

fn node_row(r: &Row) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        node_id: r.get(0)?,
        host: r.get(1)?,
        pid: r.get(2)?,
        roles: split_list(&r.get::<_, String>(3)?),
        version: r.get(4)?,
        state: NodeState::parse(&r.get::<_, String>(5)?),
        started_at: ts(r.get(6)?),
        heartbeat_at: ts(r.get(7)?),
        clock_skew_us: r.get(8)?,
        running_attempts: r.get(9)?,
        attempt_lease_ms: u64::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
        queues: split_list(&r.get::<_, String>(11)?),
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(format!("cannot encode JSON: {e}")))
}

/// Every row of a (cached) query, each mapped by `row`.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    row: impl FnMut(&Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let rows = stmt.query_map(p, row).map_err(map_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
}

/// Ids as one JSON array, for `IN (SELECT value FROM json_each(?))`: one
/// statement (prepared once) for any number of them.
fn id_list(ids: impl Iterator<Item = i64>) -> String {
    let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    format!("[{}]", ids.join(","))
}

/// DAG ids as one JSON array (see [`id_list`]).
fn name_list(dags: &[DagId]) -> Result<String> {
    serde_json::to_string(&dags.iter().map(|d| d.as_str()).collect::<Vec<_>>())
        .map_err(|e| Error::Database(format!("DAG ids: {e}")))
}

fn query_tis(conn: &Connection, sql_where: &str, p: impl rusqlite::Params) -> Result<Vec<TaskRow>> {
    let sql = format!("SELECT {TI_COLS} FROM task_instances WHERE {sql_where}");
    query_all(conn, &sql, p, ti_row)
}

const BACKFILL_COLS: &str = "id, dag_id, from_date, to_date, created_by, created_at, cancelled_at";

fn backfill_row(r: &Row) -> rusqlite::Result<BackfillRow> {
    Ok(BackfillRow {
        id: r.get(0)?,
        dag_id: DagId(r.get(1)?),
        from_date: ts(r.get(2)?),
        to_date: ts(r.get(3)?),
        created_by: r.get(4)?,
        created_at: ts(r.get(5)?),
        cancelled_at: opt_ts(r.get(6)?),
        runs: BTreeMap::new(),
    })
}

/// Fills in how many of a backfill's runs are in each state.
fn backfill_progress(conn: &Connection, b: &mut BackfillRow) -> Result<()> {
    b.runs = query_all(
        conn,
        "SELECT state, count(*) FROM runs
         WHERE dag_id = ?1 AND run_type = 'backfill' AND logical_date BETWEEN ?2 AND ?3
         GROUP BY state",
        params![b.dag_id.0, to_micros(b.from_date), to_micros(b.to_date)],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)),
    )?
    .into_iter()
    .collect();
    Ok(())
}

fn user_row(r: &Row) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: r.get(0)?,
        role: stored_role(&r.get::<_, String>(1)?),
        password_hash: r.get(2)?,
        created_at: ts(r.get(3)?),
        last_login_at: opt_ts(r.get(4)?),
    })
}

const TOKEN_COLS: &str =
    "t.id, t.name, t.user_name, u.role, t.created_at, t.expires_at, t.last_used_at";

const USER_COLS: &str = "name, role, password_hash, created_at, last_login_at";

fn token_row(r: &Row) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        user: r.get(2)?,
        role: stored_role(&r.get::<_, String>(3)?),
        created_at: ts(r.get(4)?),
        expires_at: opt_ts(r.get(5)?),
        last_used_at: opt_ts(r.get(6)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_with_a_bound_limit_are_not_prepared_again() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect(&dir.path().join("q.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT);
             CREATE INDEX t_queued ON t (id) WHERE state = 'queued';
             INSERT INTO t (state) VALUES ('queued'), ('queued'), ('running');",
        )
        .unwrap();
        for sql in [
            "SELECT id FROM t WHERE state = 'queued' ORDER BY id LIMIT ?1",
            "UPDATE t SET state = ?2 WHERE id = ?1 AND state = ?3",
        ] {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            for n in 1..=5i64 {
                let _ = stmt.raw_bind_parameter(1, n);
                if stmt.parameter_count() > 1 {
                    stmt.raw_bind_parameter(2, if n % 2 == 0 { "queued" } else { "running" })
                        .unwrap();
                    stmt.raw_bind_parameter(3, if n % 2 == 0 { "running" } else { "queued" })
                        .unwrap();
                }
                let mut rows = stmt.raw_query();
                while rows.next().unwrap().is_some() {}
            }
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql} was prepared again for new bindings"
            );
        }
    }
}
