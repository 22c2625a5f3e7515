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

use crate::*;

/// Embedded migrations, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_run_state_index.sql"),
    ),
    (
        3,
        include_str!("../migrations/sqlite/0003_slots_and_clock.sql"),
    ),
    (4, include_str!("../migrations/sqlite/0004_pools.sql")),
    (5, include_str!("../migrations/sqlite/0005_node_lease.sql")),
    (6, include_str!("../migrations/sqlite/0006_file_owner.sql")),
    (7, include_str!("../migrations/sqlite/0007_web.sql")),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 7;

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

/// Hands a job its result once the COMMIT's outcome (an error message, or none) is known.
type Delivery = Box<dyn FnOnce(Option<&str>) + Send>;

/// One queued write: `run` executes it inside the group's transaction and
/// returns the delivery of its result, made once the group's COMMIT is known.
trait WriteJob: Send {
    fn run(self: Box<Self>, conn: &Connection) -> Delivery;
    fn fail(self: Box<Self>, message: &str);
}

struct Job<F, T> {
    f: F,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Delivery {
        let Job { f, reply } = *self;
        let res = match conn.execute_batch("SAVEPOINT job") {
            Ok(()) => {
                let res = f(conn);
                // A failed job leaves no trace; the others in the group still commit.
                let end = if res.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                match conn.execute_batch(end) {
                    Ok(()) => res,
                    Err(e) => Err(map_err(e)),
                }
            }
            Err(e) => Err(map_err(e)),
        };
        Box::new(move |commit_error: Option<&str>| {
            let out = match (commit_error, res) {
                (Some(msg), _) => Err(Error::Unavailable(format!("commit failed: {msg}"))),
                (None, res) => res,
            };
            let _ = reply.send(out);
        })
    }

    fn fail(self: Box<Self>, message: &str) {
        let _ = self.reply.send(Err(Error::Unavailable(message.to_owned())));
    }
}

fn writer_loop(conn: Connection, jobs: std::sync::mpsc::Receiver<Box<dyn WriteJob>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            for j in group {
                j.fail(&msg);
            }
            continue;
        }
        let mut deliveries = Vec::with_capacity(group.len());
        for job in group {
            // A job that panics must not take the writer thread (and every later
            // write) with it: its partial changes are rolled back, its caller sees
            // its reply dropped, and the rest of the group goes on.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&conn))) {
                Ok(delivery) => deliveries.push(delivery),
                Err(_) => {
                    tracing::error!("a store write panicked; its changes were rolled back");
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => deliveries.into_iter().for_each(|d| d(None)),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                let msg = e.to_string();
                deliveries.into_iter().for_each(|d| d(Some(&msg)));
            }
        }
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        Error::Unavailable(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(Duration::from_secs(10))
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
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(map_err)?;
    Ok(conn)
}

fn map_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::*;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure => {
                Error::Unavailable(e.to_string())
            }
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
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
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
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send(Box::new(Job { f, reply }))
            .map_err(|_| Error::Database("the SQLite writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Database("the SQLite writer thread has stopped".into()))?
            .inspect_err(|e| crate::telemetry::count_error("sqlite", e))
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)?;
    if current > SCHEMA_VERSION {
        return Err(Error::Invalid(format!(
            "the database schema is version {current}, newer than this gale ({SCHEMA_VERSION}): upgrade gale"
        )));
    }
    for (version, sql) in MIGRATIONS {
        if *version > current {
            tx.execute_batch(sql).map_err(map_err)?;
            tx.pragma_update(None, "user_version", version)
                .map_err(map_err)?;
        }
    }
    tx.commit().map_err(map_err)
}

const DAG_COLS: &str = "dag_id, file, version_hash, paused, active, schedule, timezone, \
     max_active_runs, description, tags, last_interval_end, updated_at";

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
    })
}

const RUN_COLS: &str = "id, dag_id, run_key, run_type, version_hash, logical_date, \
     interval_start, interval_end, conf, state, created_at, started_at, ended_at";

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
        worker_id: r.get(9)?,
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
        roles: r
            .get::<_, String>(3)?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        version: r.get(4)?,
        state: r.get(5)?,
        started_at: ts(r.get(6)?),
        heartbeat_at: ts(r.get(7)?),
        clock_skew_us: r.get(8)?,
        running_attempts: r.get(9)?,
        attempt_lease_ms: u64::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
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

fn query_tis(conn: &Connection, sql_where: &str, p: impl rusqlite::Params) -> Result<Vec<TaskRow>> {
    let sql = format!("SELECT {TI_COLS} FROM task_instances WHERE {sql_where}");
    query_all(conn, &sql, p, ti_row)
}

const BACKFILL_COLS: &str = "id, dag_id, from_date, to_date, created_by, created_at";

fn backfill_row(r: &Row) -> rusqlite::Result<BackfillRow> {
    Ok(BackfillRow {
        id: r.get(0)?,
        dag_id: DagId(r.get(1)?),
        from_date: ts(r.get(2)?),
        to_date: ts(r.get(3)?),
        created_by: r.get(4)?,
        created_at: ts(r.get(5)?),
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
        role: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: ts(r.get(3)?),
    })
}

const TOKEN_COLS: &str = "t.id, t.name, t.user_name, u.role, t.created_at, t.expires_at";

fn token_row(r: &Row) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        user: r.get(2)?,
        role: r.get(3)?,
        created_at: ts(r.get(4)?),
        expires_at: opt_ts(r.get(5)?),
    })
}

#[async_trait]
impl Clock for SqliteStore {
    async fn now(&self) -> Result<Timestamp> {
        Ok(Timestamp::now())
    }
}

#[async_trait]
impl Dags for SqliteStore {
    async fn upsert_dag(
        &self,
        dag: &Dag,
        file: &str,
        source: &str,
        hash: &str,
        owner: &str,
    ) -> Result<bool> {
        let spec = to_json(dag)?;
        let tags = to_json(&dag.tags)?;
        let (dag, file, source, hash, owner) = (
            dag.clone(),
            file.to_owned(),
            source.to_owned(),
            hash.to_owned(),
            owner.to_owned(),
        );
        self.write(move |tx| {
            let now = now_us();
            let other: Option<String> = tx
                .query_row(
                    "SELECT file FROM dags WHERE dag_id = ?1 AND active = 1 AND file <> ?2",
                    params![dag.id.as_str(), file],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            if let Some(other) = other {
                return Err(Error::Invalid(format!(
                    "duplicate DAG id {:?}: {other} already defines it; give one of them another `id:`",
                    dag.id.as_str()
                )));
            }
            let new_version = tx
                .execute(
                    "INSERT OR IGNORE INTO dag_versions (dag_id, version_hash, file, source, spec, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![dag.id.as_str(), hash, file, source, spec, now],
                )
                .map_err(map_err)?
                > 0;
            tx.execute(
                "INSERT INTO dags (dag_id, file, version_hash, paused, active, schedule, timezone,
                     max_active_runs, description, tags, created_at, updated_at, owner)
                 VALUES (?1, ?2, ?3, 0, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)
                 ON CONFLICT (dag_id) DO UPDATE SET file = ?2, version_hash = ?3, active = 1,
                     schedule = ?4, timezone = ?5, max_active_runs = ?6, description = ?7,
                     tags = ?8, updated_at = ?9, owner = ?10",
                params![
                    dag.id.as_str(),
                    file,
                    hash,
                    dag.schedule,
                    dag.timezone,
                    dag.max_active_runs,
                    dag.description,
                    tags,
                    now,
                    owner
                ],
            )
            .map_err(map_err)?;
            // A file defines one DAG: one it defined under another id is gone.
            tx.execute(
                "UPDATE dags SET active = 0, updated_at = ?3
                 WHERE file = ?1 AND dag_id <> ?2 AND active = 1",
                params![file, dag.id.as_str(), now],
            )
            .map_err(map_err)?;
            tx.execute("DELETE FROM import_errors WHERE file = ?1", params![file])
                .map_err(map_err)?;
            Ok(new_version)
        })
        .await
    }

    async fn record_import_errors(
        &self,
        file: &str,
        dag_id: Option<&str>,
        errors: &[DagError],
        owner: &str,
    ) -> Result<()> {
        let text = to_json(&errors)?;
        let (file, dag_id, owner) = (file.to_owned(), dag_id.map(str::to_owned), owner.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO import_errors (file, dag_id, errors, updated_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (file) DO UPDATE SET dag_id = ?2, errors = ?3, updated_at = ?4,
                     owner = ?5",
                params![file, dag_id, text, now_us(), owner],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn sync_files(&self, owner: &str, present: &[String]) -> Result<()> {
        let present: HashSet<String> = present.iter().cloned().collect();
        let owner = owner.to_owned();
        self.write(move |tx| {
            let gone = |sql: &str| -> Result<Vec<String>> {
                let mut stmt = tx.prepare_cached(sql).map_err(map_err)?;
                let files = stmt
                    .query_map(params![owner], |r| r.get::<_, String>(0))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_err)?;
                Ok(files.into_iter().filter(|f| !present.contains(f)).collect())
            };
            let now = now_us();
            for file in gone("SELECT file FROM dags WHERE active = 1 AND owner IN (?1, '')")? {
                tx.execute(
                    "UPDATE dags SET active = 0, updated_at = ?2
                     WHERE file = ?1 AND active = 1 AND owner IN (?3, '')",
                    params![file, now, owner],
                )
                .map_err(map_err)?;
            }
            for file in gone("SELECT file FROM import_errors WHERE owner IN (?1, '')")? {
                tx.execute("DELETE FROM import_errors WHERE file = ?1", params![file])
                    .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_dags(&self) -> Result<Vec<DagRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {DAG_COLS} FROM dags ORDER BY dag_id"),
                [],
                dag_row,
            )
        })
        .await
    }

    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {DAG_COLS} FROM dags WHERE dag_id = ?1"),
                params![dag_id],
                dag_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>> {
        let (dag_id, hash) = (dag_id.0.clone(), hash.to_owned());
        self.call(move |conn| {
            let row: Option<(String, String, String, i64)> = conn
                .query_row(
                    "SELECT file, source, spec, created_at FROM dag_versions
                     WHERE dag_id = ?1 AND version_hash = ?2",
                    params![dag_id, hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(map_err)?;
            let Some((file, source, spec, created_at)) = row else {
                return Ok(None);
            };
            let spec: Dag = serde_json::from_str(&spec).map_err(|e| {
                Error::Database(format!(
                    "stored DAG version {dag_id}@{hash} is unreadable: {e}"
                ))
            })?;
            Ok(Some(DagVersion {
                dag_id: DagId(dag_id),
                version_hash: hash,
                file,
                source,
                spec,
                created_at: ts(created_at),
            }))
        })
        .await
    }

    async fn list_versions(&self, dag_id: &DagId) -> Result<Vec<VersionInfo>> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT version_hash, file, created_at FROM dag_versions
                 WHERE dag_id = ?1 ORDER BY created_at DESC, version_hash",
                params![dag_id],
                |r| {
                    Ok(VersionInfo {
                        version_hash: r.get(0)?,
                        file: r.get(1)?,
                        created_at: ts(r.get(2)?),
                    })
                },
            )
        })
        .await
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportError>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT file, dag_id, errors, updated_at FROM import_errors ORDER BY file",
                [],
                |r| {
                    Ok(ImportError {
                        file: r.get(0)?,
                        dag_id: r.get(1)?,
                        errors: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                        updated_at: ts(r.get(3)?),
                    })
                },
            )
        })
        .await
    }

    async fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<bool> {
        let dag_id = dag_id.0.clone();
        self.write(move |tx| {
            Ok(tx
                .execute(
                    "UPDATE dags SET paused = ?2, updated_at = ?3 WHERE dag_id = ?1",
                    params![dag_id, paused, now_us()],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }
}

#[async_trait]
impl Runs for SqliteStore {
    async fn create_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        let conf = to_json(&run.conf)?;
        let run = run.clone();
        self.write(move |tx| {
            let now = now_us();
            if run.run_type == RunType::Scheduled {
                // The cursor moves even when the slot already has a run, so a second
                // scheduler that lost the race moves on too.
                tx.execute(
                    "UPDATE dags SET last_interval_end = max(coalesce(last_interval_end, ?2), ?2)
                     WHERE dag_id = ?1",
                    params![run.dag_id.as_str(), to_micros(run.interval_end)],
                )
                .map_err(map_err)?;
            }
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO runs (dag_id, run_key, run_type, version_hash, logical_date,
                         interval_start, interval_end, conf, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9)",
                    params![
                        run.dag_id.as_str(),
                        run.run_key,
                        run.run_type.as_str(),
                        run.version_hash,
                        to_micros(run.logical_date),
                        to_micros(run.interval_start),
                        to_micros(run.interval_end),
                        conf,
                        now
                    ],
                )
                .map_err(map_err)?;
            if inserted == 0 {
                return Ok(None);
            }
            let run_id = tx.last_insert_rowid();
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO task_instances (run_id, dag_id, task_id, state, max_tries, queue,
                         priority, updated_at, pool)
                     VALUES (?1, ?2, ?3, 'none', ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(map_err)?;
            for t in &run.tasks {
                stmt.execute(params![
                    run_id,
                    run.dag_id.as_str(),
                    t.task_id.as_str(),
                    t.max_tries,
                    t.queue,
                    t.priority,
                    now,
                    t.pool
                ])
                .map_err(map_err)?;
            }
            if matches!(run.run_type, RunType::Scheduled | RunType::Backfill) {
                tx.execute(
                    "INSERT INTO schedule_slots (dag_id, logical_date, interval_end, status, run_id,
                         recorded_at)
                     VALUES (?1, ?2, ?3, 'run', ?4, ?5)
                     ON CONFLICT (dag_id, logical_date) DO UPDATE
                         SET status = 'run', run_id = ?4, recorded_at = ?5",
                    params![
                        run.dag_id.as_str(),
                        to_micros(run.logical_date),
                        to_micros(run.interval_end),
                        run_id,
                        now
                    ],
                )
                .map_err(map_err)?;
            }
            Ok(Some(RunId(run_id)))
        })
        .await
    }

    async fn count_active_runs(&self, dag_id: &DagId) -> Result<u32> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            conn.query_row(
                "SELECT count(*) FROM runs WHERE dag_id = ?1 AND state IN ('queued', 'running')",
                params![dag_id],
                |r| r.get(0),
            )
            .map_err(map_err)
        })
        .await
    }

    async fn promote_runs(&self) -> Result<Vec<RunId>> {
        // Most calls find nothing to start: answer those from a reader, without
        // taking the write lock.
        let any = self
            .call(|conn| {
                conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM runs r JOIN dags d ON d.dag_id = r.dag_id
                     WHERE r.state = 'queued' AND d.paused = 0)",
                )
                .and_then(|mut stmt| stmt.query_row([], |r| r.get::<_, bool>(0)))
                .map_err(map_err)
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let candidates: Vec<(i64, String, u32)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT r.id, r.dag_id, d.max_active_runs FROM runs r
                         JOIN dags d ON d.dag_id = r.dag_id
                         WHERE r.state = 'queued' AND d.paused = 0
                         ORDER BY r.dag_id, r.logical_date, r.id LIMIT 10000",
                    )
                    .map_err(map_err)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(map_err)?
            };
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            let mut running: HashMap<String, u32> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT dag_id, count(*) FROM runs WHERE state = 'running' GROUP BY dag_id",
                    )
                    .map_err(map_err)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(map_err)?
            };
            let now = now_us();
            let mut promoted = Vec::new();
            for (id, dag_id, max) in candidates {
                let n = running.entry(dag_id).or_insert(0);
                if *n >= max {
                    continue;
                }
                let changed = tx
                    .execute(
                        "UPDATE runs SET state = 'running', started_at = ?2
                         WHERE id = ?1 AND state = 'queued'",
                        params![id, now],
                    )
                    .map_err(map_err)?;
                if changed > 0 {
                    *n += 1;
                    promoted.push(RunId(id));
                }
            }
            Ok(promoted)
        })
        .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let filter = filter.clone();
        self.call(move |conn| {
            let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            if let Some(d) = &filter.dag_id {
                args.push(d.0.clone());
                sql.push_str(&format!(" AND dag_id = ?{}", args.len()));
            }
            if let Some(s) = filter.state {
                args.push(s.as_str().to_owned());
                sql.push_str(&format!(" AND state = ?{}", args.len()));
            }
            if let Some(t) = filter.run_type {
                args.push(t.as_str().to_owned());
                sql.push_str(&format!(" AND run_type = ?{}", args.len()));
            }
            if let Some(before) = filter.before {
                sql.push_str(&format!(" AND id < {}", before.0));
            }
            let limit = if filter.limit == 0 {
                100
            } else {
                filter.limit.min(10_000)
            };
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
            query_all(conn, &sql, params_from_iter(args.iter()), run_row)
        })
        .await
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<RunRow>> {
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"),
                params![run_id.0],
                run_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn running_runs(&self, limit: u32) -> Result<Vec<RunRow>> {
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {RUN_COLS} FROM runs WHERE state = 'running' ORDER BY id LIMIT ?1"
                ),
                params![limit],
                run_row,
            )
        })
        .await
    }

    async fn finish_run(&self, run_id: RunId, state: RunState) -> Result<bool> {
        self.write(move |tx| {
            Ok(tx
                .execute(
                    "UPDATE runs SET state = ?2, ended_at = ?3 WHERE id = ?1 AND state = 'running'",
                    params![run_id.0, state.as_str(), now_us()],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn run_tasks(&self, run_id: RunId) -> Result<Vec<TaskRow>> {
        self.call(move |conn| query_tis(conn, "run_id = ?1 ORDER BY id", params![run_id.0]))
            .await
    }

    async fn run_state_counts(&self, run_id: RunId) -> Result<Vec<(TaskState, u32)>> {
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT state, count(*) FROM task_instances WHERE run_id = ?1 GROUP BY state",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![run_id.0], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
                })
                .map_err(map_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (state, n) = row.map_err(map_err)?;
                let state = state
                    .parse()
                    .map_err(|e: String| Error::Database(format!("task instance state: {e}")))?;
                out.push((state, n));
            }
            Ok(out)
        })
        .await
    }

    async fn run_activity(&self, run_id: RunId) -> Result<RunActivity> {
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM task_instances WHERE run_id = ?1
                                AND state IN ('none', 'scheduled', 'up_for_retry')),
                        EXISTS (SELECT 1 FROM task_instances WHERE run_id = ?1
                                AND state IN ('queued', 'running'))",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![run_id.0], |r| {
                    Ok(RunActivity {
                        pending: r.get(0)?,
                        in_flight: r.get(1)?,
                    })
                })
            })
            .map_err(map_err)
        })
        .await
    }

    async fn apply_transitions(&self, transitions: &[Transition]) -> Result<usize> {
        if transitions.is_empty() {
            return Ok(0);
        }
        let transitions = transitions.to_vec();
        self.write(move |tx| {
            let now = now_us();
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE task_instances SET state = ?3, retry_at = ?4, updated_at = ?5,
                         queued_at = CASE WHEN ?3 = 'queued' THEN ?5 ELSE queued_at END,
                         ended_at = CASE WHEN ?6 THEN ?5
                             WHEN ?3 IN ('scheduled', 'queued') THEN NULL ELSE ended_at END,
                         -- A task waiting for its next try shows no previous worker.
                         worker_id = CASE WHEN ?3 IN ('scheduled', 'queued') THEN NULL
                             ELSE worker_id END,
                         started_at = CASE WHEN ?3 IN ('scheduled', 'queued') THEN NULL
                             ELSE started_at END
                     WHERE id = ?1 AND state = ?2",
                )
                .map_err(map_err)?;
            let mut n = 0;
            for t in &transitions {
                n += stmt
                    .execute(params![
                        t.ti.0,
                        t.from.as_str(),
                        t.to.as_str(),
                        t.retry_at.map(to_micros),
                        now,
                        t.to.is_terminal()
                    ])
                    .map_err(map_err)?;
            }
            Ok(n)
        })
        .await
    }

    async fn get_task(&self, ti: TiId) -> Result<Option<TaskRow>> {
        self.call(move |conn| Ok(query_tis(conn, "id = ?1", params![ti.0])?.pop()))
            .await
    }

    async fn tasks_of_runs(&self, runs: &[RunId]) -> Result<Vec<TaskRow>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
        self.call(move |conn| {
            let marks = vec!["?"; ids.len()].join(", ");
            query_tis(
                conn,
                &format!("run_id IN ({marks}) ORDER BY run_id, id"),
                params_from_iter(ids.iter()),
            )
        })
        .await
    }

    async fn recent_runs(&self, per_dag: u32) -> Result<Vec<RunRow>> {
        self.call(move |conn| {
            let dags = query_all(conn, "SELECT dag_id FROM dags ORDER BY dag_id", [], |r| {
                r.get::<_, String>(0)
            })?;
            let mut out = Vec::new();
            for d in dags {
                out.extend(query_all(
                    conn,
                    &format!(
                        "SELECT {RUN_COLS} FROM runs WHERE dag_id = ?1 ORDER BY id DESC LIMIT ?2"
                    ),
                    params![d, per_dag],
                    run_row,
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.call(|conn| {
            let pairs = |sql: &str| -> Result<BTreeMap<String, u64>> {
                Ok(query_all(conn, sql, [], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .into_iter()
                .map(|(k, v)| (k, u64::try_from(v).unwrap_or(0)))
                .collect())
            };
            Ok(StoreCounts {
                runs_by_state: pairs(
                    "SELECT state, count(*) FROM runs WHERE state IN ('queued', 'running')
                     GROUP BY state",
                )?,
                tasks_by_state: pairs(
                    "SELECT state, count(*) FROM task_instances
                     WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')
                     GROUP BY state",
                )?,
                queued_by_queue: pairs(
                    "SELECT queue, count(*) FROM task_instances WHERE state = 'queued' GROUP BY queue",
                )?,
            })
        })
        .await
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn enqueue(
        &self,
        dag_id: &DagId,
        tis: &[TiId],
        max_active_tasks: Option<u32>,
    ) -> Result<usize> {
        if tis.is_empty() {
            return Ok(0);
        }
        let (dag_id, tis) = (dag_id.0.clone(), tis.to_vec());
        self.write(move |tx| {
            let dag_room = match max_active_tasks {
                Some(max) => {
                    let active: i64 = tx
                        .query_row(
                            "SELECT count(*) FROM task_instances
                             WHERE dag_id = ?1 AND state IN ('queued', 'running')",
                            params![dag_id],
                            |r| r.get(0),
                        )
                        .map_err(map_err)?;
                    Some(i64::from(max) - active)
                }
                None => None,
            };
            if dag_room.is_some_and(|r| r <= 0) {
                return Ok(0);
            }
            // In the order given, only this DAG's (the count above is this DAG's).
            let mut candidates = Vec::with_capacity(tis.len());
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT pool FROM task_instances
                         WHERE id = ?1 AND state = 'scheduled' AND dag_id = ?2",
                    )
                    .map_err(map_err)?;
                for ti in &tis {
                    let pool: Option<Option<String>> = stmt
                        .query_row(params![ti.0, dag_id], |r| r.get(0))
                        .optional()
                        .map_err(map_err)?;
                    if let Some(pool) = pool {
                        candidates.push((ti.0, pool));
                    }
                }
            }
            let mut pool_room = HashMap::new();
            for pool in candidates.iter().filter_map(|(_, p)| p.as_deref()) {
                if pool_room.contains_key(pool) {
                    continue;
                }
                let room: Option<i64> = tx
                    .query_row(
                        "SELECT p.slots - (SELECT count(*) FROM task_instances t
                             WHERE t.pool = p.name AND t.state IN ('queued', 'running'))
                         FROM pools p WHERE p.name = ?1",
                        params![pool],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_err)?;
                if let Some(room) = room {
                    pool_room.insert(pool.to_owned(), room);
                }
            }
            let now = now_us();
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE task_instances SET state = 'queued', queued_at = ?2, updated_at = ?2
                     WHERE id = ?1 AND state = 'scheduled'",
                )
                .map_err(map_err)?;
            let mut n = 0;
            for id in fit_limits(&candidates, dag_room, pool_room) {
                n += stmt.execute(params![id, now]).map_err(map_err)?;
            }
            Ok(n)
        })
        .await
    }

    async fn claim(
        &self,
        worker_id: &str,
        host: &str,
        queues: &[String],
        limit: u32,
    ) -> Result<Vec<Claim>> {
        if queues.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (worker_id, host, queues) = (worker_id.to_owned(), host.to_owned(), queues.to_vec());
        self.write(move |tx| {
            let now = now_us();
            let placeholders: Vec<String> = (0..queues.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT id FROM task_instances WHERE state = 'queued' AND queue IN ({})
                 ORDER BY priority DESC, id LIMIT ?1",
                placeholders.join(", ")
            );
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
                let mut args: Vec<rusqlite::types::Value> = vec![i64::from(limit).into()];
                args.extend(queues.iter().map(|q| rusqlite::types::Value::from(q.clone())));
                stmt.query_map(params_from_iter(args), |r| r.get(0))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(map_err)?
            };
            let mut tasks = Vec::with_capacity(ids.len());
            {
                let mut update = tx
                    .prepare_cached(&format!(
                        "UPDATE task_instances SET state = 'running', try_number = try_number + 1,
                             worker_id = ?2, heartbeat_at = ?3, started_at = ?3, ended_at = NULL,
                             retry_at = NULL, outputs = NULL, updated_at = ?3
                         WHERE id = ?1 AND state = 'queued' RETURNING {TI_COLS}"
                    ))
                    .map_err(map_err)?;
                let mut attempt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO attempts (ti_id, try_number, run_id, task_id, worker_id,
                             host, state, started_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7)",
                    )
                    .map_err(map_err)?;
                for id in ids {
                    let row = update
                        .query_row(params![id, worker_id, now], ti_row)
                        .optional()
                        .map_err(map_err)?;
                    if let Some(t) = row {
                        attempt
                            .execute(params![
                                t.id.0,
                                t.try_number,
                                t.run_id.0,
                                t.task_id.as_str(),
                                worker_id,
                                host,
                                now
                            ])
                            .map_err(map_err)?;
                        tasks.push(t);
                    }
                }
            }
            let mut runs: HashMap<i64, RunRow> = HashMap::new();
            for t in &tasks {
                if let std::collections::hash_map::Entry::Vacant(slot) = runs.entry(t.run_id.0) {
                    let run = tx
                        .query_row(
                            &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"),
                            params![t.run_id.0],
                            run_row,
                        )
                        .map_err(map_err)?;
                    slot.insert(run);
                }
            }
            Ok(tasks
                .into_iter()
                .map(|task| Claim {
                    run: runs[&task.run_id.0].clone(),
                    task,
                })
                .collect())
        })
        .await
    }

    async fn record_process(
        &self,
        ti: TiId,
        try_number: u32,
        pid: Option<i64>,
        command: &str,
    ) -> Result<()> {
        let command = command.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE attempts SET pid = ?3, command = ?4 WHERE ti_id = ?1 AND try_number = ?2",
                params![ti.0, try_number, pid, command],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn heartbeat_attempts(&self, worker_id: &str, held: &[(TiId, u32)]) -> Result<Vec<TiId>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (worker_id, held) = (worker_id.to_owned(), held.to_vec());
        self.write(move |tx| {
            let now = now_us();
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE task_instances SET heartbeat_at = ?4
                     WHERE id = ?1 AND try_number = ?2 AND worker_id = ?3 AND state = 'running'",
                )
                .map_err(map_err)?;
            let mut renewed = Vec::new();
            for (ti, try_number) in held {
                if stmt
                    .execute(params![ti.0, try_number, worker_id, now])
                    .map_err(map_err)?
                    > 0
                {
                    renewed.push(ti);
                }
            }
            Ok(renewed)
        })
        .await
    }

    async fn finish_attempt(&self, finish: &Finish) -> Result<bool> {
        let outputs = to_json(&finish.outputs)?;
        let f = finish.clone();
        self.write(move |tx| finish_one(tx, &f, &outputs, now_us()))
            .await
    }

    async fn finish_attempts(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Vec::with_capacity(finishes.len());
        for f in finishes {
            batch.push((f.clone(), to_json(&f.outputs)?));
        }
        // One transaction (one commit) for the whole batch.
        self.write(move |tx| {
            let now = now_us();
            batch
                .iter()
                .map(|(f, outputs)| finish_one(tx, f, outputs, now))
                .collect()
        })
        .await
    }

    async fn expired_attempts(&self, lease: Duration) -> Result<Vec<TaskRow>> {
        let (now, lease) = (
            now_us(),
            i64::try_from(lease.as_micros()).unwrap_or(i64::MAX),
        );
        self.call(move |conn| {
            query_tis(
                conn,
                "state = 'running' AND heartbeat_at < ?1 - max(?2, coalesce(
                     (SELECT attempt_lease_ms * 1000 FROM nodes WHERE node_id = worker_id), 0))
                 ORDER BY heartbeat_at LIMIT 1000",
                params![now, lease],
            )
        })
        .await
    }

    async fn worker_attempts(&self, worker_id: &str) -> Result<Vec<TaskRow>> {
        let worker_id = worker_id.to_owned();
        self.call(move |conn| {
            query_tis(
                conn,
                "state = 'running' AND worker_id = ?1",
                params![worker_id],
            )
        })
        .await
    }

    async fn reap_attempt(&self, reap: &Reap) -> Result<bool> {
        let r = reap.clone();
        self.write(move |tx| {
            let now = now_us();
            // Zero: whatever the heartbeat.
            let lease: Option<i64> =
                (!r.lease.is_zero()).then_some(i64::try_from(r.lease.as_micros()).unwrap_or(i64::MAX));
            let changed = tx
                .execute(
                    "UPDATE task_instances SET state = ?4, retry_at = ?5, ended_at = ?6, updated_at = ?6,
                         max_tries = max_tries + ?8
                     WHERE id = ?1 AND try_number = ?2 AND worker_id = ?3 AND state = 'running'
                       AND (?7 IS NULL OR heartbeat_at < ?6 - max(?7, coalesce(
                           (SELECT attempt_lease_ms * 1000 FROM nodes WHERE node_id = ?3), 0)))",
                    params![
                        r.ti.0,
                        r.try_number,
                        r.worker_id,
                        r.to.as_str(),
                        r.retry_at.map(to_micros),
                        now,
                        lease,
                        i64::from(r.refund_try)
                    ],
                )
                .map_err(map_err)?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "UPDATE attempts SET state = ?3, message = ?4, ended_at = ?5
                 WHERE ti_id = ?1 AND try_number = ?2",
                params![r.ti.0, r.try_number, r.outcome, r.message, now],
            )
            .map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn attempts(&self, ti: TiId) -> Result<Vec<AttemptRow>> {
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT ti_id, try_number, run_id, task_id, worker_id, host, pid, state, exit_code,
                         message, command, started_at, ended_at
                     FROM attempts WHERE ti_id = ?1 ORDER BY try_number",
                params![ti.0],
                |r| {
                    Ok(AttemptRow {
                        ti_id: TiId(r.get(0)?),
                        try_number: r.get(1)?,
                        run_id: RunId(r.get(2)?),
                        task_id: TaskId(r.get(3)?),
                        worker_id: r.get(4)?,
                        host: r.get(5)?,
                        pid: r.get(6)?,
                        state: r.get(7)?,
                        exit_code: r.get(8)?,
                        message: r.get(9)?,
                        command: r.get(10)?,
                        started_at: ts(r.get(11)?),
                        ended_at: opt_ts(r.get(12)?),
                    })
                },
            )
        })
        .await
    }
}

#[async_trait]
impl Logs for SqliteStore {
    async fn append_logs(&self, ti: TiId, try_number: u32, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let lines = lines.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO logs (ti_id, try_number, ts, stream, line) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(map_err)?;
            for l in &lines {
                stmt.execute(params![ti.0, try_number, to_micros(l.ts), l.stream.as_str(), l.text])
                    .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn read_logs(
        &self,
        ti: TiId,
        try_number: u32,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogRow>> {
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT id, ts, stream, line FROM logs
                     WHERE ti_id = ?1 AND try_number = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
                params![ti.0, try_number, after_seq, limit],
                |r| {
                    Ok(LogRow {
                        seq: r.get(0)?,
                        ts: ts(r.get(1)?),
                        stream: Stream::parse(&r.get::<_, String>(2)?),
                        text: r.get(3)?,
                    })
                },
            )
        })
        .await
    }
}

#[async_trait]
impl Nodes for SqliteStore {
    async fn register_node(&self, node: &NodeRow) -> Result<()> {
        let n = node.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO nodes (node_id, host, pid, roles, version, state, started_at,
                     heartbeat_at, clock_skew_us, attempt_lease_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
                params![
                    n.node_id,
                    n.host,
                    n.pid,
                    n.roles.join(","),
                    n.version,
                    n.state,
                    to_micros(n.started_at),
                    now_us(),
                    i64::try_from(n.attempt_lease_ms).unwrap_or(i64::MAX)
                ],
            )
            .map_err(map_err)?;
            // Forget nodes that stopped more than a day ago.
            tx.execute(
                "DELETE FROM nodes WHERE heartbeat_at < ?1",
                params![now_us() - 86_400_000_000],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn heartbeat_node(&self, node_id: &str, local_now: Timestamp) -> Result<()> {
        let node_id = node_id.to_owned();
        self.write(move |tx| {
            let now = now_us();
            tx.execute(
                "UPDATE nodes SET heartbeat_at = ?2, clock_skew_us = ?3 WHERE node_id = ?1",
                params![node_id, now, to_micros(local_now) - now],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn set_node_state(&self, node_id: &str, state: &str) -> Result<()> {
        let (node_id, state) = (node_id.to_owned(), state.to_owned());
        self.write(move |tx| {
            tx.execute(
                "UPDATE nodes SET state = ?2, heartbeat_at = ?3 WHERE node_id = ?1",
                params![node_id, state, now_us()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRow>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT n.node_id, n.host, n.pid, n.roles, n.version, n.state, n.started_at,
                         n.heartbeat_at, n.clock_skew_us,
                         (SELECT count(*) FROM task_instances t
                          WHERE t.state = 'running' AND t.worker_id = n.node_id),
                         n.attempt_lease_ms
                     FROM nodes n ORDER BY n.started_at DESC LIMIT 500",
                [],
                node_row,
            )
        })
        .await
    }
}

#[async_trait]
impl Pools for SqliteStore {
    async fn set_pool(&self, name: &str, slots: u32, description: Option<&str>) -> Result<()> {
        let (name, description) = (name.to_owned(), description.map(str::to_owned));
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO pools (name, slots, description, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET slots = ?2, description = ?3, updated_at = ?4",
                params![name, slots, description, now_us()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM pools WHERE name = ?1", params![name])
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn list_pools(&self) -> Result<Vec<PoolRow>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT p.name, p.slots, p.description,
                     (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'queued'),
                     (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'running')
                 FROM pools p ORDER BY p.name",
                [],
                |r| {
                    Ok(PoolRow {
                        name: r.get(0)?,
                        slots: r.get(1)?,
                        description: r.get(2)?,
                        queued: r.get(3)?,
                        running: r.get(4)?,
                    })
                },
            )
        })
        .await
    }
}

#[async_trait]
impl Slots for SqliteStore {
    async fn record_slots(
        &self,
        dag_id: &DagId,
        status: SlotStatus,
        slots: &[(Timestamp, Timestamp)],
    ) -> Result<usize> {
        if slots.is_empty() {
            return Ok(0);
        }
        let (dag_id, slots) = (dag_id.0.clone(), slots.to_vec());
        self.write(move |tx| {
            let now = now_us();
            let mut n = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO schedule_slots (dag_id, logical_date, interval_end,
                             status, recorded_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(map_err)?;
                for (start, end) in &slots {
                    n += stmt
                        .execute(params![
                            dag_id,
                            to_micros(*start),
                            to_micros(*end),
                            status.as_str(),
                            now
                        ])
                        .map_err(map_err)?;
                }
            }
            if let Some(last_end) = slots.iter().map(|s| s.1).max() {
                tx.execute(
                    "UPDATE dags SET last_interval_end = max(coalesce(last_interval_end, ?2), ?2)
                     WHERE dag_id = ?1",
                    params![dag_id, to_micros(last_end)],
                )
                .map_err(map_err)?;
            }
            Ok(n)
        })
        .await
    }

    async fn list_slots(&self, dag_id: &DagId, limit: u32) -> Result<Vec<SlotRow>> {
        let dag_id = dag_id.0.clone();
        let limit = limit.clamp(1, 10_000);
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT logical_date, interval_end, status, run_id, recorded_at
                     FROM schedule_slots WHERE dag_id = ?1 ORDER BY logical_date DESC LIMIT ?2",
                params![dag_id, limit],
                |r| {
                    Ok(SlotRow {
                        dag_id: DagId(dag_id.clone()),
                        logical_date: ts(r.get(0)?),
                        interval_end: ts(r.get(1)?),
                        status: SlotStatus::parse(&r.get::<_, String>(2)?),
                        run_id: r.get::<_, Option<i64>>(3)?.map(RunId),
                        recorded_at: ts(r.get(4)?),
                    })
                },
            )
        })
        .await
    }
}

#[async_trait]
impl Operator for SqliteStore {
    async fn mark_run(&self, run_id: RunId, mark: RunMark, by: &str) -> Result<bool> {
        let by = by.to_owned();
        self.write(move |tx| {
            let now = now_us();
            let (run_state, from) = match mark {
                RunMark::Success => ("success", "state <> 'success'"),
                RunMark::Failed => ("failed", "state <> 'failed'"),
                RunMark::Cancel => ("failed", "state IN ('queued', 'running')"),
            };
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE runs SET state = ?2, ended_at = ?3
                         WHERE id = ?1 AND {from}"
                    ),
                    params![run_id.0, run_state, now],
                )
                .map_err(map_err)?;
            if changed == 0 {
                return Ok(false);
            }
            let (outcome, message) = mark_words(mark, &by);
            tx.execute(
                "UPDATE attempts SET state = ?2, message = ?3, ended_at = ?4
                 WHERE (ti_id, try_number) IN (SELECT id, try_number FROM task_instances
                                               WHERE run_id = ?1 AND state = 'running')",
                params![run_id.0, outcome, message, now],
            )
            .map_err(map_err)?;
            let sql = match mark {
                RunMark::Success => {
                    "UPDATE task_instances SET state = 'success', ended_at = ?2, updated_at = ?2, retry_at = NULL
                     WHERE run_id = ?1 AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                }
                RunMark::Failed | RunMark::Cancel => {
                    "UPDATE task_instances SET
                         state = CASE WHEN state IN ('queued', 'running') THEN 'failed' ELSE 'skipped' END,
                         ended_at = ?2, updated_at = ?2, retry_at = NULL
                     WHERE run_id = ?1 AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                }
            };
            tx.execute(sql, params![run_id.0, now]).map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn mark_task(&self, ti: TiId, to: TaskState, by: &str) -> Result<bool> {
        if !matches!(to, TaskState::Success | TaskState::Failed) {
            return Err(Error::Invalid(format!(
                "a task can be marked success or failed, not {to}"
            )));
        }
        let by = by.to_owned();
        self.write(move |tx| {
            let now = now_us();
            let current: Option<(String, u32)> = tx
                .query_row(
                    "SELECT state, try_number FROM task_instances WHERE id = ?1",
                    params![ti.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(map_err)?;
            let Some((state, try_number)) = current else {
                return Ok(false);
            };
            if state == to.as_str() {
                return Ok(false);
            }
            tx.execute(
                "UPDATE task_instances SET state = ?2, ended_at = ?3, updated_at = ?3, retry_at = NULL
                 WHERE id = ?1 AND state = ?4",
                params![ti.0, to.as_str(), now, state],
            )
            .map_err(map_err)?;
            if state == "running" {
                tx.execute(
                    "UPDATE attempts SET state = ?3, message = ?4, ended_at = ?5
                     WHERE ti_id = ?1 AND try_number = ?2",
                    params![
                        ti.0,
                        try_number,
                        format!("marked_{to}"),
                        format!("marked {to} by {by}"),
                        now
                    ],
                )
                .map_err(map_err)?;
            }
            Ok(true)
        })
        .await
    }

    async fn clear_tasks(&self, run_id: RunId, tasks: &[ClearTask]) -> Result<usize> {
        let tasks = tasks.to_vec();
        self.write(move |tx| {
            let now = now_us();
            let mut cleared = 0;
            for t in &tasks {
                if !t.from.is_terminal() {
                    continue;
                }
                cleared += tx
                    .execute(
                        "UPDATE task_instances SET state = 'none', max_tries = ?4, worker_id = NULL,
                             heartbeat_at = NULL, queued_at = NULL, started_at = NULL, ended_at = NULL,
                             retry_at = NULL, outputs = NULL, updated_at = ?5
                         WHERE id = ?1 AND run_id = ?2 AND state = ?3",
                        params![t.ti.0, run_id.0, t.from.as_str(), t.max_tries, now],
                    )
                    .map_err(map_err)?;
            }
            if cleared > 0 {
                tx.execute(
                    "UPDATE runs SET state = 'queued', ended_at = NULL
                     WHERE id = ?1 AND state IN ('success', 'failed')",
                    params![run_id.0],
                )
                .map_err(map_err)?;
            }
            Ok(cleared)
        })
        .await
    }
}

#[async_trait]
impl Backfills for SqliteStore {
    async fn create_backfill(
        &self,
        dag_id: &DagId,
        from: Timestamp,
        to: Timestamp,
        by: Option<&str>,
    ) -> Result<i64> {
        let (dag_id, by) = (dag_id.0.clone(), by.map(str::to_owned));
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO backfills (dag_id, from_date, to_date, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![dag_id, to_micros(from), to_micros(to), by, now_us()],
            )
            .map_err(map_err)?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn list_backfills(&self, dag_id: Option<&DagId>, limit: u32) -> Result<Vec<BackfillRow>> {
        let dag_id = dag_id.map(|d| d.0.clone());
        self.call(move |conn| {
            let limit = if limit == 0 { 100 } else { limit.min(1000) };
            let mut rows = query_all(
                conn,
                &format!(
                    "SELECT {BACKFILL_COLS} FROM backfills WHERE ?1 IS NULL OR dag_id = ?1
                     ORDER BY id DESC LIMIT ?2"
                ),
                params![dag_id, limit],
                backfill_row,
            )?;
            for b in &mut rows {
                backfill_progress(conn, b)?;
            }
            Ok(rows)
        })
        .await
    }

    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        self.call(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {BACKFILL_COLS} FROM backfills WHERE id = ?1"),
                    params![id],
                    backfill_row,
                )
                .optional()
                .map_err(map_err)?;
            match row {
                Some(mut b) => {
                    backfill_progress(conn, &mut b)?;
                    Ok(Some(b))
                }
                None => Ok(None),
            }
        })
        .await
    }
}

#[async_trait]
impl Auth for SqliteStore {
    async fn create_user(&self, name: &str, role: &str, password_hash: &str) -> Result<bool> {
        let (name, role, hash) = (name.to_owned(), role.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            Ok(tx
                .execute(
                    "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO NOTHING",
                    params![name, role, hash, now_us()],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRow>> {
        let name = name.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT name, role, password_hash, created_at FROM users WHERE name = ?1",
                params![name],
                user_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<UserRow>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT name, role, password_hash, created_at FROM users ORDER BY name",
                [],
                user_row,
            )
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM users WHERE name = ?1", params![name])
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                    params![name, hash],
                )
                .map_err(map_err)?;
            // A new password ends every session of the old one.
            tx.execute("DELETE FROM sessions WHERE user_name = ?1", params![name])
                .map_err(map_err)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        let (id, user, csrf) = (id_hash.to_owned(), user.to_owned(), csrf_token.to_owned());
        self.write(move |tx| {
            let now = now_us();
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])
                .map_err(map_err)?;
            tx.execute(
                "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, user, csrf, now, to_micros(expires_at)],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        let id = id_hash.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT s.user_name, u.role, s.csrf_token, s.expires_at
                 FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2",
                params![id, now_us()],
                |r| {
                    Ok(SessionRow {
                        user: r.get(0)?,
                        role: r.get(1)?,
                        csrf_token: r.get(2)?,
                        expires_at: ts(r.get(3)?),
                    })
                },
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let id = id_hash.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn create_token(
        &self,
        name: &str,
        user: &str,
        secret_hash: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<i64> {
        let (name, user, hash) = (name.to_owned(), user.to_owned(), secret_hash.to_owned());
        self.write(move |tx| {
            let exists: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM users WHERE name = ?1",
                    params![user],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            if !exists {
                return Err(Error::Invalid(format!("no user {user:?}")));
            }
            tx.execute(
                "INSERT INTO api_tokens (name, user_name, secret_hash, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, user, hash, now_us(), expires_at.map(to_micros)],
            )
            .map_err(map_err)?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn get_token(&self, secret_hash: &str) -> Result<Option<TokenRow>> {
        let hash = secret_hash.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE t.secret_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)"
                ),
                params![hash, now_us()],
                token_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>> {
        let user = user.map(str::to_owned);
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE ?1 IS NULL OR t.user_name = ?1 ORDER BY t.id"
                ),
                params![user],
                token_row,
            )
        })
        .await
    }

    async fn revoke_token(&self, id: i64) -> Result<bool> {
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM api_tokens WHERE id = ?1", params![id])
                .map_err(map_err)?
                > 0)
        })
        .await
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn schema_version(&self) -> Result<i64> {
        self.call(|conn| {
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(map_err)
        })
        .await
    }

    fn endpoint(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

/// One fenced result (see [`Store::finish_attempt`]) inside a write transaction.
fn finish_one(tx: &Connection, f: &Finish, outputs: &str, now: i64) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE task_instances SET state = ?4, retry_at = ?5, outputs = ?6, ended_at = ?7,
                 updated_at = ?7
             WHERE id = ?1 AND try_number = ?2 AND worker_id = ?3 AND state = 'running'",
        )
        .and_then(|mut st| {
            st.execute(params![
                f.ti.0,
                f.try_number,
                f.worker_id,
                f.state.as_str(),
                f.retry_at.map(to_micros),
                outputs,
                now
            ])
        })
        .map_err(map_err)?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE attempts SET state = ?3, exit_code = ?4, message = ?5, ended_at = ?6,
             pid = coalesce(?7, pid), command = coalesce(?8, command)
         WHERE ti_id = ?1 AND try_number = ?2",
    )
    .and_then(|mut st| {
        st.execute(params![
            f.ti.0,
            f.try_number,
            f.outcome,
            f.exit_code,
            f.message,
            now,
            f.pid,
            f.command
        ])
    })
    .map_err(map_err)?;
    Ok(true)
}
