//! The PostgreSQL backend: any number of schedulers, workers and webservers on
//! any number of nodes share one database, and follow it through a failover.
//!
//! - **Connections.** A pool (deadpool) built from one `tokio_postgres::Config`, so
//!   a multi-host URL (`host=a,b,c`) finds the primary by itself: Gale always asks
//!   for a read-write session. TCP keepalives, a TCP user timeout, a connect
//!   timeout and a statement timeout make a dead peer an error within seconds,
//!   not minutes. An error that says the server went away, restarted or is read-only
//!   (SQLSTATE class 08, 57P01-57P03, 25006, ...) is [`Error::Unavailable`]: the
//!   connection is dropped along with every idle one (after a failover they all
//!   point at the old primary), and the caller retries with backoff.
//! - **Concurrency.** Every change is a conditional write. Claims take queued rows
//!   with `FOR UPDATE SKIP LOCKED`; limits that span rows (`max_active_runs`,
//!   `max_active_tasks`) are checked while holding the DAG's row lock, taken in a
//!   statement of its own so that the count after it sees every committed change.
//! - **Wake-ups.** Changes that others wait for `NOTIFY` on `gale_queued` (workers)
//!   and `gale_changed` (schedulers); [`PgStore::listen`] feeds them into a
//!   [`Notifier`] from a dedicated connection that reconnects and then wakes
//!   everyone for a rescan.
//! - **Time.** Every timestamp is the database's `now()`: leases never depend on a
//!   node's clock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use gale_model::{Dag, DagError, DagId, RunId, RunState, TaskId, TaskState};
use jiff::Timestamp;
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls, Row, Statement};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::*;

/// Embedded migrations, applied in order under an advisory lock.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_pools.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_node_lease.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_file_owner.sql"),
    ),
    (5, include_str!("../migrations/postgres/0005_web.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_lean_indexes.sql"),
    ),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 6;

/// Key of the advisory lock that serialises migrations between processes.
const MIGRATION_LOCK: i64 = 0x6761_6c65_6d69_6721;

/// Tunables of a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Most connections this process keeps open.
    pub pool_size: usize,
    /// Longest time one store call may take (waiting for a connection included);
    /// after it the call fails as unavailable and its connection is dropped.
    pub call_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 8,
            call_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    opts: PgOptions,
    /// The payload of this handle's notifications: its own listener skips them,
    /// since in-process wake-ups already covered them.
    origin: String,
    /// Whether a finished attempt is announced to schedulers (`gale_changed`).
    /// A process that runs a scheduler itself wakes it in-process, and one
    /// scheduler is enough: only worker-only processes need to announce.
    announce_results: Arc<std::sync::atomic::AtomicBool>,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Tx<'a> = deadpool_postgres::Transaction<'a>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Error {
        classify(&e)
    }
}

/// Refreshes the planner's statistics after a bulk load.
async fn tx_analyze(client: &deadpool_postgres::Object) -> Result<()> {
    client
        .batch_execute("ANALYZE runs; ANALYZE task_instances; ANALYZE attempts;")
        .await?;
    Ok(())
}

/// Whether an error means "the database is (momentarily) not there".
fn classify(e: &tokio_postgres::Error) -> Error {
    let text = describe(e);
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection broke, timed out or was closed, or a value
        // did not convert (a bug, not an outage).
        if text.contains("error serializing") || text.contains("error deserializing") {
            return Error::Database(text);
        }
        return Error::Unavailable(text);
    };
    let c = code.code();
    let retryable = c.starts_with("08")
        || c.starts_with("53")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::QUERY_CANCELED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        ]
        .contains(code);
    if retryable {
        Error::Unavailable(text)
    } else if c.starts_with("23") || c.starts_with("22") {
        Error::Invalid(text)
    } else {
        Error::Database(text)
    }
}

/// The error with its database detail (`Display` alone says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        },
    }
}

/// What every query helper needs: a cached statement and a way to run it, on a
/// plain connection (reads) or in a transaction (writes).
#[async_trait]
trait Conn: Sync {
    async fn stmt(&self, sql: &str) -> Result<Statement>;
    async fn run_query(&self, st: &Statement, p: Params<'_>) -> Result<Vec<Row>>;
    async fn run_exec(&self, st: &Statement, p: Params<'_>) -> Result<u64>;

    async fn rows(&self, sql: &str, p: Params<'_>) -> Result<Vec<Row>> {
        let st = self.stmt(sql).await?;
        self.run_query(&st, p).await
    }
    async fn opt(&self, sql: &str, p: Params<'_>) -> Result<Option<Row>> {
        Ok(self.rows(sql, p).await?.into_iter().next())
    }
    async fn one(&self, sql: &str, p: Params<'_>) -> Result<Row> {
        self.opt(sql, p)
            .await?
            .ok_or_else(|| Error::Database(format!("query returned no row: {sql}")))
    }
    async fn exec(&self, sql: &str, p: Params<'_>) -> Result<u64> {
        let st = self.stmt(sql).await?;
        self.run_exec(&st, p).await
    }
}

#[async_trait]
impl Conn for deadpool_postgres::ClientWrapper {
    async fn stmt(&self, sql: &str) -> Result<Statement> {
        Ok(self.prepare_cached(sql).await?)
    }
    async fn run_query(&self, st: &Statement, p: Params<'_>) -> Result<Vec<Row>> {
        Ok(self.query(st, p).await?)
    }
    async fn run_exec(&self, st: &Statement, p: Params<'_>) -> Result<u64> {
        Ok(self.execute(st, p).await?)
    }
}

#[async_trait]
impl Conn for Tx<'_> {
    async fn stmt(&self, sql: &str) -> Result<Statement> {
        Ok(self.prepare_cached(sql).await?)
    }
    async fn run_query(&self, st: &Statement, p: Params<'_>) -> Result<Vec<Row>> {
        Ok(self.query(st, p).await?)
    }
    async fn run_exec(&self, st: &Statement, p: Params<'_>) -> Result<u64> {
        Ok(self.execute(st, p).await?)
    }
}

/// Parses a database URL (`postgres://user@h1:5432,h2:5432/gale?...` or
/// `host=h1,h2 dbname=gale ...`) and adds Gale's defaults where it says nothing.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| {
        Error::Invalid(format!(
            "invalid PostgreSQL URL (expected postgres://user@host:port[,host:port...]/dbname): {e}"
        ))
    })?;
    if cfg.get_hosts().is_empty() {
        return Err(Error::Invalid(
            "the PostgreSQL URL names no host (e.g. postgres://gale@127.0.0.1:5432/gale)".into(),
        ));
    }
    // Gale writes: a standby is never the right server.
    cfg.target_session_attrs(TargetSessionAttrs::ReadWrite);
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(3));
    }
    if cfg.get_tcp_user_timeout().is_none() {
        cfg.tcp_user_timeout(Duration::from_secs(8));
    }
    cfg.keepalives(true);
    if cfg.get_keepalives_idle() >= Duration::from_secs(7200) {
        cfg.keepalives_idle(Duration::from_secs(3));
    }
    if cfg.get_keepalives_interval().is_none() {
        cfg.keepalives_interval(Duration::from_secs(1));
    }
    if cfg.get_keepalives_retries().is_none() {
        cfg.keepalives_retries(3);
    }
    if cfg.get_options().is_none() {
        cfg.options(
            "-c statement_timeout=10000 -c lock_timeout=5000 \
             -c idle_in_transaction_session_timeout=30000",
        );
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("gale");
    }
    Ok(cfg)
}

/// Hosts, ports, database and user of a config: never the password.
pub fn endpoint_of(cfg: &tokio_postgres::Config) -> String {
    let ports = cfg.get_ports();
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        cfg.get_user().unwrap_or("postgres"),
        hosts.join(","),
        cfg.get_dbname().or(cfg.get_user()).unwrap_or("postgres")
    )
}

impl PgStore {
    /// Connects (waiting up to `wait` for the database to come up) and brings the
    /// schema up to date.
    pub async fn connect(url: &str, wait: Duration) -> Result<PgStore> {
        PgStore::connect_with(url, wait, PgOptions::default()).await
    }

    pub async fn connect_with(url: &str, wait: Duration, opts: PgOptions) -> Result<PgStore> {
        let config = parse_url(url)?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let connect_budget = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(3))
            * u32::try_from(config.get_hosts().len().max(1)).unwrap_or(1)
            + Duration::from_secs(1);
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.call_timeout))
            .create_timeout(Some(connect_budget))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the connection pool: {e}")))?;
        let origin = format!(
            "{:x}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let store = PgStore {
            pool,
            config,
            opts,
            origin,
            announce_results: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut delay = Duration::from_millis(100);
        loop {
            match store.migrate().await {
                Ok(()) => return Ok(store),
                Err(e) if e.is_retryable() && tokio::time::Instant::now() + delay < deadline => {
                    debug!(error = %e, "database not ready yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(match e {
                        Error::Unavailable(m) => Error::Unavailable(format!(
                            "cannot reach PostgreSQL at {}: {m}",
                            store.endpoint()
                        )),
                        other => other,
                    });
                }
            }
        }
    }

    async fn migrate(&self) -> Result<()> {
        self.write(|tx| {
            Box::pin(async move {
                tx.exec("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                    .await?;
                tx.exec(
                    "CREATE TABLE IF NOT EXISTS gale_schema (
                         version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                    &[],
                )
                .await?;
                let current: i64 = tx
                    .one("SELECT coalesce(max(version), 0) FROM gale_schema", &[])
                    .await?
                    .get(0);
                if current > SCHEMA_VERSION {
                    return Err(Error::Invalid(format!(
                        "the database schema is version {current}, newer than this gale ({SCHEMA_VERSION}): upgrade gale"
                    )));
                }
                for (version, sql) in MIGRATIONS {
                    if *version > current {
                        tx.batch_execute(sql).await?;
                        tx.exec("INSERT INTO gale_schema (version) VALUES ($1)", &[version])
                            .await?;
                        info!(version, "applied database migration");
                    }
                }
                Ok(())
            })
        })
        .await
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
        let (dag, hash) = (dag_id.0.clone(), version_hash.to_owned());
        let tasks = task_ids.to_vec();
        let last_task = task_ids.last().cloned().unwrap_or_default();
        let runs = i32::try_from(runs).unwrap_or(i32::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        let ids = tx
            .query_one(
                "WITH r AS (
                     INSERT INTO runs (dag_id, run_key, run_type, version_hash, logical_date,
                                       interval_start, interval_end, conf, state, created_at,
                                       started_at, ended_at)
                     SELECT $1, 'seed__' || i, 'scheduled', $2, $4::timestamptz + i * interval '1 hour',
                            $4::timestamptz + i * interval '1 hour', $4::timestamptz + (i + 1) * interval '1 hour', '{}',
                            CASE WHEN i % 50 = 49 THEN 'failed' ELSE 'success' END,
                            $4::timestamptz + (i + 1) * interval '1 hour',
                            $4::timestamptz + (i + 1) * interval '1 hour' + interval '1 ms',
                            $4::timestamptz + (i + 1) * interval '1 hour' + interval '1 minute'
                     FROM generate_series(0, $3::int - 1) i
                     RETURNING id)
                 SELECT min(id), max(id) FROM r",
                &[&dag, &hash, &runs, &start],
            )
            .await?;
        let (first, last): (i64, i64) = (ids.get(0), ids.get(1));
        tx.execute(
            "INSERT INTO task_instances (run_id, dag_id, task_id, state, try_number, max_tries,
                 queue, priority, worker_id, queued_at, started_at, ended_at, updated_at)
             SELECT r.id, r.dag_id, t.task_id,
                    CASE WHEN r.state = 'failed' AND t.task_id = $3 THEN 'failed' ELSE 'success' END,
                    1, 1, 'default', 0, 'seed', r.started_at,
                    r.started_at + t.n * interval '1 second',
                    r.started_at + t.n * interval '1 second' + interval '900 ms', r.ended_at
             FROM runs r, unnest($2::text[]) WITH ORDINALITY AS t(task_id, n)
             WHERE r.id BETWEEN $1 AND $4",
            &[&first, &tasks, &last_task, &last],
        )
        .await?;
        tx.execute(
            "INSERT INTO attempts (ti_id, try_number, run_id, task_id, worker_id, host, pid,
                 state, exit_code, message, command, started_at, ended_at)
             SELECT id, 1, run_id, task_id, 'seed', 'seed-host', 4242, state,
                    CASE WHEN state = 'failed' THEN 1 ELSE 0 END, NULL, 'true',
                    started_at, ended_at
             FROM task_instances WHERE run_id BETWEEN $1 AND $2",
            &[&first, &last],
        )
        .await?;
        tx.execute(
            "UPDATE dags SET last_interval_end = $2::timestamptz + make_interval(hours => $3::int) WHERE dag_id = $1",
            &[&dag, &start, &runs],
        )
        .await?;
        tx.commit().await?;
        tx_analyze(&client).await?;
        Ok((RunId(first), RunId(last)))
    }

    /// Whether finished attempts are announced to other processes' schedulers
    /// (default: yes). A process that runs a scheduler turns this off.
    pub fn announce_results(&self, on: bool) {
        self.announce_results
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => classify(&e),
            deadpool_postgres::PoolError::Timeout(t) => {
                Error::Unavailable(format!("no database connection within the timeout ({t:?})"))
            }
            other => Error::Unavailable(other.to_string()),
        })
    }

    /// After an outage error: drop this connection and every idle one, so the
    /// next call connects afresh (to the new primary, after a failover).
    fn discard(&self, client: deadpool_postgres::Object) {
        drop(deadpool_postgres::Object::take(client));
        self.pool.retain(|_, _| false);
    }

    /// Runs `f` on a pooled connection in autocommit mode: for reads, and for
    /// writes that are one statement (atomic by themselves, and one round trip
    /// instead of three).
    async fn single<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: for<'a> FnOnce(&'a deadpool_postgres::ClientWrapper) -> BoxFut<'a, Result<T>> + Send,
    {
        let client = self.client().await?;
        let out = match tokio::time::timeout(self.opts.call_timeout, f(&client)).await {
            Ok(out) => out,
            Err(_) => Err(Error::Unavailable(
                "the database did not answer in time".into(),
            )),
        };
        if let Err(e) = &out {
            crate::telemetry::count_error("postgres", e);
            if e.is_retryable() {
                self.discard(client);
            }
        }
        out
    }

    /// Runs `f` in one transaction, committed when it returns Ok. A failed COMMIT
    /// has an unknown outcome: every write is conditional, so the caller may retry.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: for<'a, 'b> FnOnce(&'a Tx<'b>) -> BoxFut<'a, Result<T>> + Send,
    {
        let mut client = self.client().await?;
        let work = async {
            let tx = client.transaction().await?;
            let v = f(&tx).await?;
            tx.commit().await?;
            Ok(v)
        };
        let out = match tokio::time::timeout(self.opts.call_timeout, work).await {
            Ok(out) => out,
            Err(_) => Err(Error::Unavailable(
                "the database did not answer in time".into(),
            )),
        };
        if let Err(e) = &out {
            crate::telemetry::count_error("postgres", e);
            if e.is_retryable() {
                self.discard(client);
            }
        }
        out
    }

    /// Feeds the database's notifications into `notifier` until `stop` resolves:
    /// `gale_queued` wakes workers, `gale_changed` wakes schedulers. Runs on its
    /// own connection; after every (re)connect it wakes both, since notifications
    /// sent while it was away are lost. Every loop also polls, so this only makes
    /// other processes' changes visible sooner.
    pub async fn listen(&self, notifier: Arc<Notifier>, stop: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            let session = self.listen_once(&notifier, &stop);
            match session.await {
                ListenEnd::Stopped => return,
                ListenEnd::Lost(why) => {
                    debug!(error = %why, "notification connection lost; reconnecting");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    async fn listen_once(&self, notifier: &Notifier, stop: &CancellationToken) -> ListenEnd {
        let connect = tokio::time::timeout(self.opts.call_timeout, self.config.connect(NoTls));
        let (client, mut connection) = match connect.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return ListenEnd::Lost(describe(&e)),
            Err(_) => return ListenEnd::Lost("connect timed out".into()),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(msg)) => {
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                    Some(Err(_)) | None => return,
                }
            }
        });
        let _abort = AbortOnDrop(driver);
        if let Err(e) = client
            .batch_execute("LISTEN gale_queued; LISTEN gale_changed")
            .await
        {
            return ListenEnd::Lost(describe(&e));
        }
        // Whatever was announced while we were not listening: look now.
        notifier.workers.notify_one();
        notifier.scheduler.notify_one();
        let mut probe = tokio::time::interval(Duration::from_secs(5));
        probe.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return ListenEnd::Stopped,
                msg = rx.recv() => match msg {
                    Some(AsyncMessage::Notification(n)) => {
                        // The payload: the sender's origin, then the run that changed.
                        let mut words = n.payload().split(' ');
                        if words.next() == Some(self.origin.as_str()) {
                            continue;
                        }
                        match (n.channel(), words.next().and_then(|r| r.parse().ok())) {
                            ("gale_queued", _) => notifier.workers.notify_one(),
                            (_, Some(run)) => notifier.run_changed(RunId(run)),
                            _ => notifier.scheduler.notify_one(),
                        }
                    }
                    Some(_) => {}
                    None => return ListenEnd::Lost("connection closed".into()),
                },
                // A silent peer (a partition) is noticed by a query, not by waiting.
                _ = probe.tick() => {
                    match tokio::time::timeout(Duration::from_secs(3), client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return ListenEnd::Lost(describe(&e)),
                        Err(_) => return ListenEnd::Lost("the database stopped answering".into()),
                    }
                }
            }
        }
    }
}

enum ListenEnd {
    Stopped,
    Lost(String),
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `f` with every NUL replaced: PostgreSQL's text and jsonb cannot hold one,
/// and a task's outputs or exit message may.
fn without_nul(f: &Finish) -> Finish {
    let clean = |s: &str| s.replace('\0', "\u{fffd}");
    Finish {
        outputs: f
            .outputs
            .iter()
            .map(|(k, v)| (clean(k), clean(v)))
            .collect(),
        message: f.message.as_deref().map(clean),
        command: f.command.as_deref().map(clean),
        ..f.clone()
    }
}

fn u32_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn json_map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(format!("cannot encode JSON: {e}")))
}

const DAG_COLS: &str = "dag_id, file, version_hash, paused, active, schedule, timezone, \
     max_active_runs, description, tags, last_interval_end, updated_at";

fn dag_row(r: &Row) -> DagRow {
    DagRow {
        dag_id: DagId(r.get(0)),
        file: r.get(1),
        version_hash: r.get(2),
        paused: r.get(3),
        active: r.get(4),
        schedule: r.get(5),
        timezone: r.get(6),
        max_active_runs: u32_of(r.get(7)),
        description: r.get(8),
        tags: serde_json::from_value(r.get(9)).unwrap_or_default(),
        last_interval_end: r.get(10),
        updated_at: r.get(11),
    }
}

const RUN_COLS: &str = "id, dag_id, run_key, run_type, version_hash, logical_date, \
     interval_start, interval_end, conf, state, created_at, started_at, ended_at";

fn run_row(r: &Row) -> RunRow {
    run_row_at(r, 0)
}

/// A run whose `RUN_COLS` start at column `at` (after a join's other columns).
fn run_row_at(r: &Row, at: usize) -> RunRow {
    RunRow {
        id: RunId(r.get(at)),
        dag_id: DagId(r.get(at + 1)),
        run_key: r.get(at + 2),
        run_type: r
            .get::<_, String>(at + 3)
            .parse()
            .unwrap_or(RunType::Manual),
        version_hash: r.get(at + 4),
        logical_date: r.get(at + 5),
        interval_start: r.get(at + 6),
        interval_end: r.get(at + 7),
        conf: json_map(r.get(at + 8)),
        state: r
            .get::<_, String>(at + 9)
            .parse()
            .unwrap_or(RunState::Failed),
        created_at: r.get(at + 10),
        started_at: r.get(at + 11),
        ended_at: r.get(at + 12),
    }
}

const TI_COLS: &str = "id, run_id, dag_id, task_id, state, try_number, max_tries, queue, \
     priority, worker_id, heartbeat_at, queued_at, started_at, ended_at, retry_at, outputs, pool";

fn ti_row(r: &Row) -> TaskRow {
    TaskRow {
        id: TiId(r.get(0)),
        run_id: RunId(r.get(1)),
        dag_id: DagId(r.get(2)),
        task_id: TaskId(r.get(3)),
        state: r.get::<_, String>(4).parse().unwrap_or(TaskState::Failed),
        try_number: u32_of(r.get(5)),
        max_tries: u32_of(r.get(6)),
        queue: r.get(7),
        priority: r.get(8),
        worker_id: r.get(9),
        heartbeat_at: r.get(10),
        queued_at: r.get(11),
        started_at: r.get(12),
        ended_at: r.get(13),
        retry_at: r.get(14),
        outputs: r
            .get::<_, Option<serde_json::Value>>(15)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        pool: r.get(16),
    }
}

/// Columns qualified with a table alias, for statements that join.
fn cols_of(cols: &str, alias: &str) -> String {
    cols.split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ti_cols_of(alias: &str) -> String {
    cols_of(TI_COLS, alias)
}

/// A backfill's columns, with its runs by state as a JSON object.
const BACKFILL_COLS: &str = "b.id, b.dag_id, b.from_date, b.to_date, b.created_by, b.created_at, \
     (SELECT coalesce(jsonb_object_agg(state, n), '{}') FROM (
          SELECT state, count(*) AS n FROM runs
          WHERE runs.dag_id = b.dag_id AND run_type = 'backfill'
            AND logical_date BETWEEN b.from_date AND b.to_date
          GROUP BY state) s)";

fn backfill_row(r: &Row) -> BackfillRow {
    BackfillRow {
        id: r.get(0),
        dag_id: DagId(r.get(1)),
        from_date: r.get(2),
        to_date: r.get(3),
        created_by: r.get(4),
        created_at: r.get(5),
        runs: serde_json::from_value(r.get(6)).unwrap_or_default(),
    }
}

fn user_row(r: &Row) -> UserRow {
    UserRow {
        name: r.get(0),
        role: r.get(1),
        password_hash: r.get(2),
        created_at: r.get(3),
    }
}

const TOKEN_COLS: &str = "t.id, t.name, t.user_name, u.role, t.created_at, t.expires_at";

fn token_row(r: &Row) -> TokenRow {
    TokenRow {
        id: r.get(0),
        name: r.get(1),
        user: r.get(2),
        role: r.get(3),
        created_at: r.get(4),
        expires_at: r.get(5),
    }
}

#[async_trait]
impl Clock for PgStore {
    async fn now(&self) -> Result<Timestamp> {
        self.single(|c| Box::pin(async move { Ok(c.one("SELECT now()", &[]).await?.get(0)) }))
            .await
    }
}

#[async_trait]
impl Dags for PgStore {
    async fn upsert_dag(
        &self,
        dag: &Dag,
        file: &str,
        source: &str,
        hash: &str,
        owner: &str,
    ) -> Result<bool> {
        let owner = owner.to_owned();
        let spec = serde_json::to_string(dag)
            .map_err(|e| Error::Invalid(format!("cannot encode JSON: {e}")))?;
        let tags = to_value(&dag.tags)?;
        let (dag, file, source, hash) = (
            dag.clone(),
            file.to_owned(),
            source.to_owned(),
            hash.to_owned(),
        );
        self.write(move |tx| {
            Box::pin(async move {
                let id = dag.id.as_str();
                let max_active_runs = i32_of(dag.max_active_runs);
                // Serialise definitions of one DAG id, so two processors cannot both
                // pass the duplicate check.
                tx.exec("SELECT pg_advisory_xact_lock(hashtext($1))", &[&id])
                    .await?;
                if let Some(other) = tx
                    .opt(
                        "SELECT file FROM dags WHERE dag_id = $1 AND active AND file <> $2",
                        &[&id, &file],
                    )
                    .await?
                {
                    let other: String = other.get(0);
                    return Err(Error::Invalid(format!(
                        "duplicate DAG id {id:?}: {other} already defines it; give one of them another `id:`"
                    )));
                }
                let new_version = tx
                    .exec(
                        "INSERT INTO dag_versions (dag_id, version_hash, file, source, spec, created_at)
                         VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING",
                        &[&id, &hash, &file, &source, &spec],
                    )
                    .await?
                    > 0;
                tx.exec(
                    "INSERT INTO dags (dag_id, file, version_hash, paused, active, schedule, timezone,
                         max_active_runs, description, tags, created_at, updated_at, owner)
                     VALUES ($1, $2, $3, false, true, $4, $5, $6, $7, $8, now(), now(), $9)
                     ON CONFLICT (dag_id) DO UPDATE SET file = $2, version_hash = $3, active = true,
                         schedule = $4, timezone = $5, max_active_runs = $6, description = $7,
                         tags = $8, updated_at = now(), owner = $9",
                    &[
                        &id,
                        &file,
                        &hash,
                        &dag.schedule,
                        &dag.timezone,
                        &max_active_runs,
                        &dag.description,
                        &tags,
                        &owner,
                    ],
                )
                .await?;
                // A file defines one DAG: one it defined under another id is gone.
                tx.exec(
                    "UPDATE dags SET active = false, updated_at = now()
                     WHERE file = $1 AND dag_id <> $2 AND active",
                    &[&file, &id],
                )
                .await?;
                tx.exec("DELETE FROM import_errors WHERE file = $1", &[&file])
                    .await?;
                Ok(new_version)
            })
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
        let errors = to_value(&errors)?;
        let (file, dag_id, owner) = (file.to_owned(), dag_id.map(str::to_owned), owner.to_owned());
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO import_errors (file, dag_id, errors, updated_at, owner)
                     VALUES ($1, $2, $3, now(), $4)
                     ON CONFLICT (file) DO UPDATE SET dag_id = $2, errors = $3, updated_at = now(),
                         owner = $4",
                    &[&file, &dag_id, &errors, &owner],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn sync_files(&self, owner: &str, present: &[String]) -> Result<()> {
        let (owner, present) = (owner.to_owned(), present.to_vec());
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE dags SET active = false, updated_at = now()
                     WHERE active AND owner IN ($1, '') AND NOT (file = ANY($2))",
                    &[&owner, &present],
                )
                .await?;
                tx.exec(
                    "DELETE FROM import_errors WHERE owner IN ($1, '') AND NOT (file = ANY($2))",
                    &[&owner, &present],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn list_dags(&self) -> Result<Vec<DagRow>> {
        self.single(|c| {
            Box::pin(async move {
                let sql = format!("SELECT {DAG_COLS} FROM dags ORDER BY dag_id");
                Ok(c.rows(&sql, &[]).await?.iter().map(dag_row).collect())
            })
        })
        .await
    }

    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>> {
        let id = dag_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {DAG_COLS} FROM dags WHERE dag_id = $1");
                Ok(c.opt(&sql, &[&id]).await?.as_ref().map(dag_row))
            })
        })
        .await
    }

    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>> {
        let (id, hash) = (dag_id.0.clone(), hash.to_owned());
        self.single(move |c| {
            Box::pin(async move {
                let Some(r) = c
                    .opt(
                        "SELECT file, source, spec, created_at FROM dag_versions
                         WHERE dag_id = $1 AND version_hash = $2",
                        &[&id, &hash],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let spec: Dag = serde_json::from_str(r.get::<_, &str>(2)).map_err(|e| {
                    Error::Database(format!("stored DAG version {id}@{hash} is unreadable: {e}"))
                })?;
                Ok(Some(DagVersion {
                    dag_id: DagId(id),
                    version_hash: hash,
                    file: r.get(0),
                    source: r.get(1),
                    spec,
                    created_at: r.get(3),
                }))
            })
        })
        .await
    }

    async fn list_versions(&self, dag_id: &DagId) -> Result<Vec<VersionInfo>> {
        let dag_id = dag_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT version_hash, file, created_at FROM dag_versions
                         WHERE dag_id = $1 ORDER BY created_at DESC, version_hash",
                        &[&dag_id],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| VersionInfo {
                        version_hash: r.get(0),
                        file: r.get(1),
                        created_at: r.get(2),
                    })
                    .collect())
            })
        })
        .await
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportError>> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT file, dag_id, errors, updated_at FROM import_errors ORDER BY file",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| ImportError {
                        file: r.get(0),
                        dag_id: r.get(1),
                        errors: serde_json::from_value(r.get(2)).unwrap_or_default(),
                        updated_at: r.get(3),
                    })
                    .collect())
            })
        })
        .await
    }

    async fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<bool> {
        let id = dag_id.0.clone();
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let changed = tx
                    .exec(
                        "UPDATE dags SET paused = $2, updated_at = now() WHERE dag_id = $1",
                        &[&id, &paused],
                    )
                    .await?
                    > 0;
                if changed && !paused {
                    tx.exec("SELECT pg_notify('gale_changed', $1)", &[&origin])
                        .await?;
                }
                Ok(changed)
            })
        })
        .await
    }
}

#[async_trait]
impl Runs for PgStore {
    async fn create_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        let conf = serde_json::Value::Object(run.conf.clone());
        let run = run.clone();
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let dag_id = run.dag_id.as_str();
                if run.run_type == RunType::Scheduled {
                    // The cursor moves even when the slot already has a run, so a
                    // second scheduler that lost the race moves on too.
                    tx.exec(
                        "UPDATE dags SET last_interval_end = greatest(coalesce(last_interval_end, $2), $2)
                         WHERE dag_id = $1",
                        &[&dag_id, &run.interval_end],
                    )
                    .await?;
                }
                let Some(row) = tx
                    .opt(
                        "INSERT INTO runs (dag_id, run_key, run_type, version_hash, logical_date,
                             interval_start, interval_end, conf, state, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', now())
                         ON CONFLICT DO NOTHING RETURNING id",
                        &[
                            &dag_id,
                            &run.run_key,
                            &run.run_type.as_str(),
                            &run.version_hash,
                            &run.logical_date,
                            &run.interval_start,
                            &run.interval_end,
                            &conf,
                        ],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let run_id: i64 = row.get(0);
                let task_ids: Vec<&str> = run.tasks.iter().map(|t| t.task_id.as_str()).collect();
                let max_tries: Vec<i32> = run.tasks.iter().map(|t| i32_of(t.max_tries)).collect();
                let queues: Vec<&str> = run.tasks.iter().map(|t| t.queue.as_str()).collect();
                let priorities: Vec<i32> = run.tasks.iter().map(|t| t.priority).collect();
                let pools: Vec<Option<&str>> = run.tasks.iter().map(|t| t.pool.as_deref()).collect();
                tx.exec(
                    "INSERT INTO task_instances (run_id, dag_id, task_id, state, max_tries, queue,
                         priority, pool, updated_at)
                     SELECT $1, $2, u.task_id, 'none', u.max_tries, u.queue, u.priority, u.pool, now()
                     FROM unnest($3::text[], $4::int[], $5::text[], $6::int[], $7::text[])
                         AS u(task_id, max_tries, queue, priority, pool)",
                    &[&run_id, &dag_id, &task_ids, &max_tries, &queues, &priorities, &pools],
                )
                .await?;
                if matches!(run.run_type, RunType::Scheduled | RunType::Backfill) {
                    tx.exec(
                        "INSERT INTO schedule_slots (dag_id, logical_date, interval_end, status,
                             run_id, recorded_at)
                         VALUES ($1, $2, $3, 'run', $4, now())
                         ON CONFLICT (dag_id, logical_date) DO UPDATE
                             SET status = 'run', run_id = $4, recorded_at = now()",
                        &[&dag_id, &run.logical_date, &run.interval_end, &run_id],
                    )
                    .await?;
                }
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&origin]).await?;
                Ok(Some(RunId(run_id)))
            })
        })
        .await
    }

    async fn count_active_runs(&self, dag_id: &DagId) -> Result<u32> {
        let id = dag_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let n: i64 = c
                    .one(
                        "SELECT count(*) FROM runs WHERE dag_id = $1 AND state IN ('queued', 'running')",
                        &[&id],
                    )
                    .await?
                    .get(0);
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            })
        })
        .await
    }

    async fn promote_runs(&self) -> Result<Vec<RunId>> {
        // Most calls find nothing to start: answer those without a transaction.
        let any: bool = self
            .single(|c| {
                Box::pin(async move {
                    Ok(c.one(
                        "SELECT EXISTS (SELECT 1 FROM runs r JOIN dags d ON d.dag_id = r.dag_id
                         WHERE r.state = 'queued' AND NOT d.paused)",
                        &[],
                    )
                    .await?
                    .get(0))
                })
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            Box::pin(async move {
                // The DAG rows guard `max_active_runs`: a DAG another scheduler is
                // promoting right now is left to it.
                let locked: Vec<String> = tx
                    .rows(
                        "SELECT d.dag_id FROM dags d
                         WHERE NOT d.paused
                           AND EXISTS (SELECT 1 FROM runs r WHERE r.dag_id = d.dag_id AND r.state = 'queued')
                         ORDER BY d.dag_id LIMIT 1000
                         FOR UPDATE OF d SKIP LOCKED",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if locked.is_empty() {
                    return Ok(Vec::new());
                }
                // A new statement: its snapshot sees every promotion committed
                // before the locks above were granted.
                let rows = tx
                    .rows(
                        "WITH ranked AS (
                             SELECT r.id,
                                    row_number() OVER (PARTITION BY r.dag_id ORDER BY r.logical_date, r.id) AS n,
                                    d.max_active_runs - (SELECT count(*) FROM runs x
                                        WHERE x.dag_id = r.dag_id AND x.state = 'running') AS room
                             FROM runs r JOIN dags d ON d.dag_id = r.dag_id
                             WHERE r.state = 'queued' AND r.dag_id = ANY($1))
                         UPDATE runs SET state = 'running', started_at = clock_timestamp()
                         FROM ranked WHERE runs.id = ranked.id AND ranked.n <= ranked.room
                           AND runs.state = 'queued'
                         RETURNING runs.id",
                        &[&locked],
                    )
                    .await?;
                let mut ids: Vec<RunId> = rows.iter().map(|r| RunId(r.get(0))).collect();
                ids.sort();
                Ok(ids)
            })
        })
        .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let dag_id = filter.dag_id.as_ref().map(|d| d.0.clone());
        let state = filter.state.map(|s| s.as_str());
        let run_type = filter.run_type.map(|t| t.as_str());
        let before = filter.before.map(|r| r.0);
        let limit = i64::from(if filter.limit == 0 {
            100
        } else {
            filter.limit.min(10_000)
        });
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {RUN_COLS} FROM runs
                     WHERE ($1::text IS NULL OR dag_id = $1) AND ($2::text IS NULL OR state = $2)
                       AND ($4::text IS NULL OR run_type = $4) AND ($5::bigint IS NULL OR id < $5)
                     ORDER BY id DESC LIMIT $3"
                );
                Ok(c.rows(&sql, &[&dag_id, &state, &limit, &run_type, &before])
                    .await?
                    .iter()
                    .map(run_row)
                    .collect())
            })
        })
        .await
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<RunRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1");
                Ok(c.opt(&sql, &[&run_id.0]).await?.as_ref().map(run_row))
            })
        })
        .await
    }

    async fn running_runs(&self, limit: u32) -> Result<Vec<RunRow>> {
        let limit = i64::from(limit);
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {RUN_COLS} FROM runs WHERE state = 'running' ORDER BY id LIMIT $1"
                );
                Ok(c.rows(&sql, &[&limit]).await?.iter().map(run_row).collect())
            })
        })
        .await
    }

    async fn finish_run(&self, run_id: RunId, state: RunState) -> Result<bool> {
        let state = state.as_str();
        self.single(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .exec(
                        "UPDATE runs SET state = $2, ended_at = now() WHERE id = $1 AND state = 'running'",
                        &[&run_id.0, &state],
                    )
                    .await?
                    > 0)
            })
        })
        .await
    }

    async fn run_tasks(&self, run_id: RunId) -> Result<Vec<TaskRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql =
                    format!("SELECT {TI_COLS} FROM task_instances WHERE run_id = $1 ORDER BY id");
                Ok(c.rows(&sql, &[&run_id.0])
                    .await?
                    .iter()
                    .map(ti_row)
                    .collect())
            })
        })
        .await
    }

    async fn run_state_counts(&self, run_id: RunId) -> Result<Vec<(TaskState, u32)>> {
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT state, count(*) FROM task_instances WHERE run_id = $1 GROUP BY state",
                        &[&run_id.0],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let state: TaskState = r.get::<_, &str>(0).parse().map_err(|e: String| {
                            Error::Database(format!("task instance state: {e}"))
                        })?;
                        Ok((state, u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX)))
                    })
                    .collect()
            })
        })
        .await
    }

    async fn run_activity(&self, run_id: RunId) -> Result<RunActivity> {
        self.single(move |c| {
            Box::pin(async move {
                let r = c
                    .one(
                        "SELECT EXISTS (SELECT 1 FROM task_instances WHERE run_id = $1
                                        AND state IN ('none', 'scheduled', 'up_for_retry')),
                                EXISTS (SELECT 1 FROM task_instances WHERE run_id = $1
                                        AND state IN ('queued', 'running'))",
                        &[&run_id.0],
                    )
                    .await?;
                Ok(RunActivity {
                    pending: r.get(0),
                    in_flight: r.get(1),
                })
            })
        })
        .await
    }

    async fn apply_transitions(&self, transitions: &[Transition]) -> Result<usize> {
        if transitions.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = transitions.iter().map(|t| t.ti.0).collect();
        let from: Vec<&str> = transitions.iter().map(|t| t.from.as_str()).collect();
        let to: Vec<&str> = transitions.iter().map(|t| t.to.as_str()).collect();
        let retry_at: Vec<Option<Timestamp>> = transitions.iter().map(|t| t.retry_at).collect();
        let terminal: Vec<bool> = transitions.iter().map(|t| t.to.is_terminal()).collect();
        let origin = self.origin.clone();
        self.single(move |tx| {
            Box::pin(async move {
                // One statement: the rows that became queued wake the workers.
                let row = tx
                    .one(
                        "WITH moved AS (
                             UPDATE task_instances t SET state = u.to_state, retry_at = u.retry_at,
                                 updated_at = now(),
                                 queued_at = CASE WHEN u.to_state = 'queued' THEN clock_timestamp()
                                     ELSE t.queued_at END,
                                 ended_at = CASE WHEN u.terminal THEN now()
                                     WHEN u.to_state IN ('scheduled', 'queued') THEN NULL
                                     ELSE t.ended_at END,
                                 -- A task waiting for its next try shows no previous worker.
                                 worker_id = CASE WHEN u.to_state IN ('scheduled', 'queued') THEN NULL
                                     ELSE t.worker_id END,
                                 started_at = CASE WHEN u.to_state IN ('scheduled', 'queued') THEN NULL
                                     ELSE t.started_at END
                             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::bool[])
                                 AS u(id, from_state, to_state, retry_at, terminal)
                             -- The rows by primary key, whatever the table's statistics say.
                             WHERE t.id = ANY($1::bigint[]) AND t.id = u.id AND t.state = u.from_state
                             RETURNING t.state)
                         SELECT (SELECT count(*) FROM moved),
                                (SELECT count(*) FROM (SELECT pg_notify('gale_queued', $6)
                                    WHERE EXISTS (SELECT 1 FROM moved WHERE state = 'queued')) n)",
                        &[&ids, &from, &to, &retry_at, &terminal, &origin],
                    )
                    .await?;
                Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX))
            })
        })
        .await
    }

    async fn get_task(&self, ti: TiId) -> Result<Option<TaskRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {TI_COLS} FROM task_instances WHERE id = $1");
                Ok(c.opt(&sql, &[&ti.0]).await?.as_ref().map(ti_row))
            })
        })
        .await
    }

    async fn tasks_of_runs(&self, runs: &[RunId]) -> Result<Vec<TaskRow>> {
        let ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TI_COLS} FROM task_instances WHERE run_id = ANY($1) ORDER BY run_id, id"
                );
                Ok(c.rows(&sql, &[&ids]).await?.iter().map(ti_row).collect())
            })
        })
        .await
    }

    async fn recent_runs(&self, per_dag: u32) -> Result<Vec<RunRow>> {
        let per_dag = i64::from(per_dag);
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {} FROM dags d CROSS JOIN LATERAL (
                         SELECT * FROM runs WHERE runs.dag_id = d.dag_id ORDER BY id DESC LIMIT $1) r
                     ORDER BY d.dag_id, r.id DESC",
                    cols_of(RUN_COLS, "r")
                );
                Ok(c.rows(&sql, &[&per_dag]).await?.iter().map(run_row).collect())
            })
        })
        .await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT 'run', state, count(*) FROM runs
                             WHERE state IN ('queued', 'running') GROUP BY state
                         UNION ALL
                         SELECT 'task', state, count(*) FROM task_instances
                             WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')
                             GROUP BY state
                         UNION ALL
                         SELECT 'queue', queue, count(*) FROM task_instances
                             WHERE state = 'queued' GROUP BY queue",
                        &[],
                    )
                    .await?;
                let mut out = StoreCounts::default();
                for r in &rows {
                    let (kind, key, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
                    let n = u64::try_from(n).unwrap_or(0);
                    match kind.as_str() {
                        "run" => out.runs_by_state.insert(key, n),
                        "task" => out.tasks_by_state.insert(key, n),
                        _ => out.queued_by_queue.insert(key, n),
                    };
                }
                Ok(out)
            })
        })
        .await
    }
}

#[async_trait]
impl Queue for PgStore {
    async fn enqueue(
        &self,
        dag_id: &DagId,
        tis: &[TiId],
        max_active_tasks: Option<u32>,
    ) -> Result<usize> {
        if tis.is_empty() {
            return Ok(0);
        }
        let id = dag_id.0.clone();
        let ids: Vec<i64> = tis.iter().map(|t| t.0).collect();
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // Limits that span rows are checked under a lock: the DAG's row for
                // `max_active_tasks`, then (by name) each pool's row. Every count is
                // a statement of its own, after its lock, so it sees every change
                // committed before the lock was granted.
                let dag_room: Option<i64> = match max_active_tasks {
                    Some(max) => {
                        tx.exec("SELECT 1 FROM dags WHERE dag_id = $1 FOR UPDATE", &[&id])
                            .await?;
                        let active: i64 = tx
                            .one(
                                "SELECT count(*) FROM task_instances
                                 WHERE dag_id = $1 AND state IN ('queued', 'running')",
                                &[&id],
                            )
                            .await?
                            .get(0);
                        Some(i64::from(max) - active)
                    }
                    None => None,
                };
                if dag_room.is_some_and(|r| r <= 0) {
                    return Ok(0);
                }
                // In the order given, only this DAG's (the count above is this DAG's).
                let candidates: Vec<(i64, Option<String>)> = tx
                    .rows(
                        "SELECT t.id, t.pool FROM task_instances t
                         JOIN unnest($2::bigint[]) WITH ORDINALITY AS w(id, ord) ON w.id = t.id
                         WHERE t.id = ANY($2::bigint[]) AND t.state = 'scheduled' AND t.dag_id = $1
                         ORDER BY w.ord",
                        &[&id, &ids],
                    )
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let mut pools: Vec<&str> =
                    candidates.iter().filter_map(|(_, p)| p.as_deref()).collect();
                pools.sort_unstable();
                pools.dedup();
                let mut pool_room = HashMap::new();
                if !pools.is_empty() {
                    let slots = tx
                        .rows(
                            "SELECT name, slots FROM pools WHERE name = ANY($1)
                             ORDER BY name FOR UPDATE",
                            &[&pools],
                        )
                        .await?;
                    for r in &slots {
                        pool_room.insert(r.get::<_, String>(0), i64::from(r.get::<_, i32>(1)));
                    }
                    for r in tx
                        .rows(
                            "SELECT pool, count(*) FROM task_instances
                             WHERE pool = ANY($1) AND state IN ('queued', 'running') GROUP BY pool",
                            &[&pools],
                        )
                        .await?
                    {
                        if let Some(room) = pool_room.get_mut(r.get::<_, &str>(0)) {
                            *room -= r.get::<_, i64>(1);
                        }
                    }
                }
                let chosen = fit_limits(&candidates, dag_room, pool_room);
                if chosen.is_empty() {
                    return Ok(0);
                }
                let n = tx
                    .exec(
                        "UPDATE task_instances SET state = 'queued', queued_at = clock_timestamp(), updated_at = now()
                         WHERE id = ANY($1) AND state = 'scheduled'",
                        &[&chosen],
                    )
                    .await?;
                if n > 0 {
                    tx.exec("SELECT pg_notify('gale_queued', $1)", &[&origin]).await?;
                }
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
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
        let limit = i64::from(limit);
        // One statement: take queued rows no one else is taking, make them ours,
        // open their attempt records, and return them with their runs.
        self.single(move |c| {
            Box::pin(async move {
                // One queue (the usual case) reads the queued index in order and
                // stops at the limit; several need a sort of their queued rows.
                let queue_test = if queues.len() == 1 {
                    "queue = ($2::text[])[1]"
                } else {
                    "queue = ANY($2)"
                };
                let sql = format!(
                    "WITH pick AS (
                         SELECT id FROM task_instances
                         WHERE state = 'queued' AND {queue_test}
                         ORDER BY priority DESC, id LIMIT $3
                         FOR UPDATE SKIP LOCKED),
                     claimed AS (
                         UPDATE task_instances t SET state = 'running', try_number = t.try_number + 1,
                             worker_id = $1, heartbeat_at = clock_timestamp(), started_at = clock_timestamp(), ended_at = NULL,
                             retry_at = NULL, outputs = NULL, updated_at = now()
                         -- By primary key alone: pick's rows are queued and locked by
                         -- this statement, and a state test here lets the planner scan
                         -- every queued row instead while the table's statistics are young.
                         WHERE t.id = ANY(ARRAY(SELECT id FROM pick))
                         RETURNING t.*),
                     opened AS (
                         INSERT INTO attempts (ti_id, try_number, run_id, task_id, worker_id, host,
                             state, started_at)
                         SELECT id, try_number, run_id, task_id, $1, $4, 'running', started_at FROM claimed
                         ON CONFLICT (ti_id, try_number) DO UPDATE SET worker_id = $1, host = $4,
                             pid = NULL, state = 'running', exit_code = NULL, message = NULL,
                             command = NULL, started_at = EXCLUDED.started_at, ended_at = NULL)
                     SELECT {}, {} FROM claimed c JOIN runs r ON r.id = c.run_id
                     ORDER BY c.priority DESC, c.id",
                    ti_cols_of("c"),
                    cols_of(RUN_COLS, "r"),
                );
                let rows = c.rows(&sql, &[&worker_id, &queues, &limit, &host]).await?;
                let width = TI_COLS.split(", ").count();
                Ok(rows
                    .iter()
                    .map(|r| Claim {
                        task: ti_row(r),
                        run: run_row_at(r, width),
                    })
                    .collect())
            })
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
        let try_number = i32_of(try_number);
        let command = command.to_owned();
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE attempts SET pid = $3, command = $4 WHERE ti_id = $1 AND try_number = $2",
                    &[&ti.0, &try_number, &pid, &command],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn heartbeat_attempts(&self, worker_id: &str, held: &[(TiId, u32)]) -> Result<Vec<TiId>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut held = held.to_vec();
        held.sort();
        let ids: Vec<i64> = held.iter().map(|(t, _)| t.0).collect();
        let tries: Vec<i32> = held.iter().map(|(_, n)| i32_of(*n)).collect();
        let worker_id = worker_id.to_owned();
        self.single(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .rows(
                        "UPDATE task_instances t SET heartbeat_at = now()
                         FROM unnest($2::bigint[], $3::int[]) AS h(id, try_number)
                         WHERE t.id = h.id AND t.try_number = h.try_number AND t.worker_id = $1
                           AND t.state = 'running'
                         RETURNING t.id",
                        &[&worker_id, &ids, &tries],
                    )
                    .await?;
                let mut renewed: Vec<TiId> = rows.iter().map(|r| TiId(r.get(0))).collect();
                renewed.sort();
                Ok(renewed)
            })
        })
        .await
    }

    async fn finish_attempt(&self, finish: &Finish) -> Result<bool> {
        let recorded = self.finish_attempts(std::slice::from_ref(finish)).await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    async fn finish_attempts(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        // One task's stray NUL must not fail the whole batch.
        let finishes: Vec<Finish> = finishes.iter().map(without_nul).collect();
        let mut outputs = Vec::with_capacity(finishes.len());
        for f in &finishes {
            outputs.push(to_value(&f.outputs)?);
        }
        let ids: Vec<i64> = finishes.iter().map(|f| f.ti.0).collect();
        let tries: Vec<i32> = finishes.iter().map(|f| i32_of(f.try_number)).collect();
        let workers: Vec<String> = finishes.iter().map(|f| f.worker_id.clone()).collect();
        let states: Vec<&'static str> = finishes.iter().map(|f| f.state.as_str()).collect();
        let retry_at: Vec<Option<Timestamp>> = finishes.iter().map(|f| f.retry_at).collect();
        let outcomes: Vec<String> = finishes.iter().map(|f| f.outcome.clone()).collect();
        let codes: Vec<Option<i32>> = finishes.iter().map(|f| f.exit_code).collect();
        let messages: Vec<Option<String>> = finishes.iter().map(|f| f.message.clone()).collect();
        let pids: Vec<Option<i64>> = finishes.iter().map(|f| f.pid).collect();
        let commands: Vec<Option<String>> = finishes.iter().map(|f| f.command.clone()).collect();
        let origin = self.origin.clone();
        let announce = self
            .announce_results
            .load(std::sync::atomic::Ordering::Relaxed);
        // One statement: the fenced changes, their attempt records, and one
        // wake-up per run.
        let recorded = self
            .single(move |c| {
                Box::pin(async move {
                    let row = c
                        .one(
                            "WITH f AS (
                                 SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[],
                                     $5::timestamptz[], $6::jsonb[], $7::text[], $8::int[], $9::text[],
                                     $10::bigint[], $11::text[])
                                 AS f(ti, try_number, worker_id, state, retry_at, outputs, outcome,
                                     exit_code, message, pid, command)),
                             t AS (
                                 UPDATE task_instances ti SET state = f.state, retry_at = f.retry_at,
                                     outputs = f.outputs, ended_at = now(), updated_at = now()
                                 FROM f
                                 WHERE ti.id = ANY($1::bigint[]) AND ti.id = f.ti
                                   AND ti.worker_id = ANY($3::text[])
                                   AND ti.try_number = f.try_number AND ti.worker_id = f.worker_id
                                   AND ti.state = 'running'
                                 RETURNING ti.id, ti.try_number, ti.run_id),
                             a AS (
                                 UPDATE attempts a SET state = f.outcome, exit_code = f.exit_code,
                                     message = f.message, ended_at = now(),
                                     pid = coalesce(f.pid, a.pid), command = coalesce(f.command, a.command)
                                 FROM f JOIN t ON t.id = f.ti AND t.try_number = f.try_number
                                 WHERE a.ti_id = f.ti AND a.try_number = f.try_number)
                             SELECT coalesce((SELECT array_agg(id) FROM t), '{}'),
                                    coalesce((SELECT array_agg(try_number) FROM t), '{}'),
                                    (SELECT count(*) FROM (SELECT pg_notify('gale_changed', $12 || ' ' || run_id)
                                        FROM (SELECT DISTINCT run_id FROM t) r WHERE $13) n)",
                            &[
                                &ids, &tries, &workers, &states, &retry_at, &outputs, &outcomes,
                                &codes, &messages, &pids, &commands, &origin, &announce,
                            ],
                        )
                        .await?;
                    let ids: Vec<i64> = row.get(0);
                    let tries: Vec<i32> = row.get(1);
                    Ok(ids.into_iter().zip(tries).collect::<Vec<_>>())
                })
            })
            .await?;
        // By task instance and try: two tries of one task instance can be in
        // one batch (a late result of a reaped try beside its retry's).
        let recorded: std::collections::HashSet<(i64, i32)> = recorded.into_iter().collect();
        Ok(finishes
            .iter()
            .map(|f| recorded.contains(&(f.ti.0, i32_of(f.try_number))))
            .collect())
    }

    async fn expired_attempts(&self, lease: Duration) -> Result<Vec<TaskRow>> {
        let secs = lease.as_secs_f64();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TI_COLS} FROM task_instances
                     WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => greatest($1,
                         coalesce((SELECT n.attempt_lease_ms FROM nodes n
                                   WHERE n.node_id = task_instances.worker_id), 0) / 1000.0::float8))
                     ORDER BY heartbeat_at LIMIT 1000"
                );
                Ok(c.rows(&sql, &[&secs]).await?.iter().map(ti_row).collect())
            })
        })
        .await
    }

    async fn worker_attempts(&self, worker_id: &str) -> Result<Vec<TaskRow>> {
        let worker_id = worker_id.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TI_COLS} FROM task_instances WHERE state = 'running' AND worker_id = $1"
                );
                Ok(c.rows(&sql, &[&worker_id]).await?.iter().map(ti_row).collect())
            })
        })
        .await
    }

    async fn reap_attempt(&self, reap: &Reap) -> Result<bool> {
        let r = reap.clone();
        let try_number = i32_of(r.try_number);
        // Zero: whatever the heartbeat.
        let lease: Option<f64> = (!r.lease.is_zero()).then_some(r.lease.as_secs_f64());
        let refund = i32::from(r.refund_try);
        let origin = self.origin.clone();
        self.single(move |c| {
            Box::pin(async move {
                let row = c
                    .one(
                        "WITH t AS (
                             UPDATE task_instances SET state = $4, retry_at = $5, ended_at = now(),
                                 updated_at = now(), max_tries = max_tries + $7
                             WHERE id = $1 AND try_number = $2 AND worker_id = $3 AND state = 'running'
                               AND ($6::float8 IS NULL
                                    OR heartbeat_at < now() - make_interval(secs => greatest($6,
                                        coalesce((SELECT n.attempt_lease_ms FROM nodes n
                                                  WHERE n.node_id = $3), 0) / 1000.0::float8)))
                             RETURNING id, run_id),
                         a AS (
                             UPDATE attempts SET state = $8, message = $9, ended_at = now()
                             WHERE ti_id = $1 AND try_number = $2 AND EXISTS (SELECT 1 FROM t))
                         SELECT (SELECT count(*) FROM t),
                                (SELECT count(*) FROM (SELECT pg_notify('gale_changed', $10 || ' ' || run_id) FROM t) n)",
                        &[
                            &r.ti.0,
                            &try_number,
                            &r.worker_id,
                            &r.to.as_str(),
                            &r.retry_at,
                            &lease,
                            &refund,
                            &r.outcome,
                            &r.message,
                            &origin,
                        ],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0) > 0)
            })
        })
        .await
    }

    async fn attempts(&self, ti: TiId) -> Result<Vec<AttemptRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT ti_id, try_number, run_id, task_id, worker_id, host, pid, state,
                             exit_code, message, command, started_at, ended_at
                         FROM attempts WHERE ti_id = $1 ORDER BY try_number",
                        &[&ti.0],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| AttemptRow {
                        ti_id: TiId(r.get(0)),
                        try_number: u32_of(r.get(1)),
                        run_id: RunId(r.get(2)),
                        task_id: TaskId(r.get(3)),
                        worker_id: r.get(4),
                        host: r.get(5),
                        pid: r.get(6),
                        state: r.get(7),
                        exit_code: r.get(8),
                        message: r.get(9),
                        command: r.get(10),
                        started_at: r.get(11),
                        ended_at: r.get(12),
                    })
                    .collect())
            })
        })
        .await
    }
}

#[async_trait]
impl Logs for PgStore {
    async fn append_logs(&self, ti: TiId, try_number: u32, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let try_number = i32_of(try_number);
        let ts: Vec<Timestamp> = lines.iter().map(|l| l.ts).collect();
        let streams: Vec<&str> = lines.iter().map(|l| l.stream.as_str()).collect();
        // PostgreSQL text cannot hold NUL.
        let texts: Vec<String> = lines
            .iter()
            .map(|l| l.text.replace('\0', "\u{fffd}"))
            .collect();
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO logs (ti_id, try_number, ts, stream, line)
                     SELECT $1, $2, u.ts, u.stream, u.line
                     FROM unnest($3::timestamptz[], $4::text[], $5::text[]) WITH ORDINALITY
                         AS u(ts, stream, line, ord)
                     ORDER BY u.ord",
                    &[&ti.0, &try_number, &ts, &streams, &texts],
                )
                .await?;
                Ok(())
            })
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
        let try_number = i32_of(try_number);
        let limit = i64::from(limit);
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT id, ts, stream, line FROM logs
                         WHERE ti_id = $1 AND try_number = $2 AND id > $3 ORDER BY id LIMIT $4",
                        &[&ti.0, &try_number, &after_seq, &limit],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| LogRow {
                        seq: r.get(0),
                        ts: r.get(1),
                        stream: Stream::parse(r.get(2)),
                        text: r.get(3),
                    })
                    .collect())
            })
        })
        .await
    }
}

#[async_trait]
impl Nodes for PgStore {
    async fn register_node(&self, node: &NodeRow) -> Result<()> {
        let n = node.clone();
        let roles = n.roles.join(",");
        let lease_ms = i64::try_from(n.attempt_lease_ms).unwrap_or(i64::MAX);
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO nodes (node_id, host, pid, roles, version, state, started_at,
                         heartbeat_at, clock_skew_us, attempt_lease_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, now(), 0, $8)
                     ON CONFLICT (node_id) DO UPDATE SET host = $2, pid = $3, roles = $4,
                         version = $5, state = $6, started_at = $7, heartbeat_at = now(),
                         attempt_lease_ms = $8",
                    &[
                        &n.node_id,
                        &n.host,
                        &n.pid,
                        &roles,
                        &n.version,
                        &n.state,
                        &n.started_at,
                        &lease_ms,
                    ],
                )
                .await?;
                // Forget nodes that stopped more than a day ago.
                tx.exec(
                    "DELETE FROM nodes WHERE heartbeat_at < now() - interval '1 day'",
                    &[],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn heartbeat_node(&self, node_id: &str, local_now: Timestamp) -> Result<()> {
        let node_id = node_id.to_owned();
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE nodes SET heartbeat_at = now(),
                         clock_skew_us = (extract(epoch FROM $2::timestamptz - clock_timestamp()) * 1e6)::bigint
                     WHERE node_id = $1",
                    &[&node_id, &local_now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn set_node_state(&self, node_id: &str, state: &str) -> Result<()> {
        let (node_id, state) = (node_id.to_owned(), state.to_owned());
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE nodes SET state = $2, heartbeat_at = now() WHERE node_id = $1",
                    &[&node_id, &state],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRow>> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT n.node_id, n.host, n.pid, n.roles, n.version, n.state, n.started_at,
                             n.heartbeat_at, n.clock_skew_us,
                             (SELECT count(*) FROM task_instances t
                              WHERE t.state = 'running' AND t.worker_id = n.node_id),
                             n.attempt_lease_ms
                         FROM nodes n ORDER BY n.started_at DESC LIMIT 500",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| NodeRow {
                        node_id: r.get(0),
                        host: r.get(1),
                        pid: r.get(2),
                        roles: r
                            .get::<_, &str>(3)
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        version: r.get(4),
                        state: r.get(5),
                        started_at: r.get(6),
                        heartbeat_at: r.get(7),
                        clock_skew_us: r.get(8),
                        running_attempts: u32::try_from(r.get::<_, i64>(9)).unwrap_or(0),
                        attempt_lease_ms: u64::try_from(r.get::<_, i64>(10)).unwrap_or(0),
                    })
                    .collect())
            })
        })
        .await
    }
}

#[async_trait]
impl Pools for PgStore {
    async fn set_pool(&self, name: &str, slots: u32, description: Option<&str>) -> Result<()> {
        let (name, description) = (name.to_owned(), description.map(str::to_owned));
        let slots = i32_of(slots);
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO pools (name, slots, description, updated_at) VALUES ($1, $2, $3, now())
                     ON CONFLICT (name) DO UPDATE SET slots = $2, description = $3, updated_at = now()",
                    &[&name, &slots, &description],
                )
                .await?;
                // More room may let waiting task instances be queued.
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&origin]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .exec("DELETE FROM pools WHERE name = $1", &[&name])
                    .await?
                    > 0)
            })
        })
        .await
    }

    async fn list_pools(&self) -> Result<Vec<PoolRow>> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT p.name, p.slots, p.description,
                             (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'queued'),
                             (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'running')
                         FROM pools p ORDER BY p.name",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| PoolRow {
                        name: r.get(0),
                        slots: u32_of(r.get(1)),
                        description: r.get(2),
                        queued: u32::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                        running: u32::try_from(r.get::<_, i64>(4)).unwrap_or(0),
                    })
                    .collect())
            })
        })
        .await
    }
}

#[async_trait]
impl Slots for PgStore {
    async fn record_slots(
        &self,
        dag_id: &DagId,
        status: SlotStatus,
        slots: &[(Timestamp, Timestamp)],
    ) -> Result<usize> {
        if slots.is_empty() {
            return Ok(0);
        }
        let id = dag_id.0.clone();
        let starts: Vec<Timestamp> = slots.iter().map(|s| s.0).collect();
        let ends: Vec<Timestamp> = slots.iter().map(|s| s.1).collect();
        let last_end = ends.iter().max().copied();
        let status = status.as_str();
        self.write(move |tx| {
            Box::pin(async move {
                let n = tx
                    .exec(
                        "INSERT INTO schedule_slots (dag_id, logical_date, interval_end, status, recorded_at)
                         SELECT $1, u.s, u.e, $4, now() FROM unnest($2::timestamptz[], $3::timestamptz[]) AS u(s, e)
                         ON CONFLICT (dag_id, logical_date) DO NOTHING",
                        &[&id, &starts, &ends, &status],
                    )
                    .await?;
                tx.exec(
                    "UPDATE dags SET last_interval_end = greatest(coalesce(last_interval_end, $2), $2)
                     WHERE dag_id = $1",
                    &[&id, &last_end],
                )
                .await?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
        })
        .await
    }

    async fn list_slots(&self, dag_id: &DagId, limit: u32) -> Result<Vec<SlotRow>> {
        let id = dag_id.0.clone();
        let limit = i64::from(limit.clamp(1, 10_000));
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT logical_date, interval_end, status, run_id, recorded_at
                         FROM schedule_slots WHERE dag_id = $1 ORDER BY logical_date DESC LIMIT $2",
                        &[&id, &limit],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| SlotRow {
                        dag_id: DagId(id.clone()),
                        logical_date: r.get(0),
                        interval_end: r.get(1),
                        status: SlotStatus::parse(r.get(2)),
                        run_id: r.get::<_, Option<i64>>(3).map(RunId),
                        recorded_at: r.get(4),
                    })
                    .collect())
            })
        })
        .await
    }
}

#[async_trait]
impl Operator for PgStore {
    async fn mark_run(&self, run_id: RunId, mark: RunMark, by: &str) -> Result<bool> {
        let (outcome, message) = mark_words(mark, by);
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (run_state, from) = match mark {
                    RunMark::Success => ("success", "state <> 'success'"),
                    RunMark::Failed => ("failed", "state <> 'failed'"),
                    RunMark::Cancel => ("failed", "state IN ('queued', 'running')"),
                };
                let changed = tx
                    .exec(
                        &format!(
                            "UPDATE runs SET state = $2, ended_at = now()
                             WHERE id = $1 AND {from}"
                        ),
                        &[&run_id.0, &run_state],
                    )
                    .await?;
                if changed == 0 {
                    return Ok(false);
                }
                // Lock the run's unfinished task instances first: a claim that
                // commits after this statement skips them, and one in progress is
                // waited for, so the attempt it opened is ended below (instead of
                // its task failing under an attempt left `running`).
                tx.exec(
                    "SELECT 1 FROM task_instances
                     WHERE run_id = $1
                       AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')
                     FOR UPDATE",
                    &[&run_id.0],
                )
                .await?;
                tx.exec(
                    "UPDATE attempts a SET state = $2, message = $3, ended_at = now()
                     FROM task_instances t
                     WHERE t.run_id = $1 AND t.state = 'running'
                       AND a.ti_id = t.id AND a.try_number = t.try_number",
                    &[&run_id.0, &outcome, &message],
                )
                .await?;
                let sql = match mark {
                    RunMark::Success => {
                        "UPDATE task_instances SET state = 'success', ended_at = now(), updated_at = now(),
                             retry_at = NULL
                         WHERE run_id = $1
                           AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                    }
                    RunMark::Failed | RunMark::Cancel => {
                        "UPDATE task_instances SET
                             state = CASE WHEN state IN ('queued', 'running') THEN 'failed' ELSE 'skipped' END,
                             ended_at = now(), updated_at = now(), retry_at = NULL
                         WHERE run_id = $1
                           AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                    }
                };
                tx.exec(sql, &[&run_id.0]).await?;
                let payload = format!("{origin} {}", run_id.0);
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&payload])
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn mark_task(&self, ti: TiId, to: TaskState, by: &str) -> Result<bool> {
        if !matches!(to, TaskState::Success | TaskState::Failed) {
            return Err(Error::Invalid(format!(
                "a task can be marked success or failed, not {to}"
            )));
        }
        let outcome = format!("marked_{to}");
        let message = format!("marked {to} by {by}");
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let Some(row) = tx
                    .opt(
                        "SELECT state, try_number, run_id FROM task_instances WHERE id = $1 FOR UPDATE",
                        &[&ti.0],
                    )
                    .await?
                else {
                    return Ok(false);
                };
                let (state, try_number, run_id): (String, i32, i64) =
                    (row.get(0), row.get(1), row.get(2));
                if state == to.as_str() {
                    return Ok(false);
                }
                tx.exec(
                    "UPDATE task_instances SET state = $2, ended_at = now(), updated_at = now(),
                         retry_at = NULL
                     WHERE id = $1",
                    &[&ti.0, &to.as_str()],
                )
                .await?;
                if state == "running" {
                    tx.exec(
                        "UPDATE attempts SET state = $3, message = $4, ended_at = now()
                         WHERE ti_id = $1 AND try_number = $2",
                        &[&ti.0, &try_number, &outcome, &message],
                    )
                    .await?;
                }
                let payload = format!("{origin} {run_id}");
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&payload])
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn clear_tasks(&self, run_id: RunId, tasks: &[ClearTask]) -> Result<usize> {
        let ids: Vec<i64> = tasks
            .iter()
            .filter(|t| t.from.is_terminal())
            .map(|t| t.ti.0)
            .collect();
        let froms: Vec<&'static str> = tasks
            .iter()
            .filter(|t| t.from.is_terminal())
            .map(|t| t.from.as_str())
            .collect();
        let tries: Vec<i32> = tasks
            .iter()
            .filter(|t| t.from.is_terminal())
            .map(|t| i32_of(t.max_tries))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let cleared = tx
                    .exec(
                        "UPDATE task_instances t SET state = 'none', max_tries = c.tries,
                             worker_id = NULL, heartbeat_at = NULL, queued_at = NULL,
                             started_at = NULL, ended_at = NULL, retry_at = NULL, outputs = NULL,
                             updated_at = now()
                         FROM unnest($2::bigint[], $3::text[], $4::int[]) AS c(id, from_state, tries)
                         WHERE t.id = c.id AND t.run_id = $1 AND t.state = c.from_state",
                        &[&run_id.0, &ids, &froms, &tries],
                    )
                    .await?;
                if cleared > 0 {
                    tx.exec(
                        "UPDATE runs SET state = 'queued', ended_at = NULL
                         WHERE id = $1 AND state IN ('success', 'failed')",
                        &[&run_id.0],
                    )
                    .await?;
                    let payload = format!("{origin} {}", run_id.0);
                    tx.exec("SELECT pg_notify('gale_changed', $1)", &[&payload])
                        .await?;
                }
                Ok(usize::try_from(cleared).unwrap_or(0))
            })
        })
        .await
    }
}

#[async_trait]
impl Backfills for PgStore {
    async fn create_backfill(
        &self,
        dag_id: &DagId,
        from: Timestamp,
        to: Timestamp,
        by: Option<&str>,
    ) -> Result<i64> {
        let (dag_id, by) = (dag_id.0.clone(), by.map(str::to_owned));
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.one(
                    "INSERT INTO backfills (dag_id, from_date, to_date, created_by, created_at)
                     VALUES ($1, $2, $3, $4, now()) RETURNING id",
                    &[&dag_id, &from, &to, &by],
                )
                .await?
                .get(0))
            })
        })
        .await
    }

    async fn list_backfills(&self, dag_id: Option<&DagId>, limit: u32) -> Result<Vec<BackfillRow>> {
        let dag_id = dag_id.map(|d| d.0.clone());
        let limit = i64::from(if limit == 0 { 100 } else { limit.min(1000) });
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {BACKFILL_COLS} FROM backfills b
                     WHERE $1::text IS NULL OR b.dag_id = $1 ORDER BY b.id DESC LIMIT $2"
                );
                Ok(c.rows(&sql, &[&dag_id, &limit])
                    .await?
                    .iter()
                    .map(backfill_row)
                    .collect())
            })
        })
        .await
    }

    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {BACKFILL_COLS} FROM backfills b WHERE b.id = $1");
                Ok(c.opt(&sql, &[&id]).await?.as_ref().map(backfill_row))
            })
        })
        .await
    }
}

#[async_trait]
impl Auth for PgStore {
    async fn create_user(&self, name: &str, role: &str, password_hash: &str) -> Result<bool> {
        let (name, role, hash) = (name.to_owned(), role.to_owned(), password_hash.to_owned());
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.exec(
                    "INSERT INTO users (name, role, password_hash, created_at)
                     VALUES ($1, $2, $3, now()) ON CONFLICT (name) DO NOTHING",
                    &[&name, &role, &hash],
                )
                .await?
                    > 0)
            })
        })
        .await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRow>> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.opt(
                    "SELECT name, role, password_hash, created_at FROM users WHERE name = $1",
                    &[&name],
                )
                .await?
                .as_ref()
                .map(user_row))
            })
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<UserRow>> {
        self.single(|c| {
            Box::pin(async move {
                Ok(c.rows(
                    "SELECT name, role, password_hash, created_at FROM users ORDER BY name",
                    &[],
                )
                .await?
                .iter()
                .map(user_row)
                .collect())
            })
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.exec("DELETE FROM users WHERE name = $1", &[&name])
                    .await?
                    > 0)
            })
        })
        .await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let changed = tx
                    .exec(
                        "UPDATE users SET password_hash = $2 WHERE name = $1",
                        &[&name, &hash],
                    )
                    .await?;
                // A new password ends every session of the old one.
                tx.exec("DELETE FROM sessions WHERE user_name = $1", &[&name])
                    .await?;
                Ok(changed > 0)
            })
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
            Box::pin(async move {
                tx.exec("DELETE FROM sessions WHERE expires_at <= now()", &[])
                    .await?;
                tx.exec(
                    "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at)
                     VALUES ($1, $2, $3, now(), $4)",
                    &[&id, &user, &csrf, &expires_at],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        let id = id_hash.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.opt(
                    "SELECT s.user_name, u.role, s.csrf_token, s.expires_at
                     FROM sessions s JOIN users u ON u.name = s.user_name
                     WHERE s.id_hash = $1 AND s.expires_at > now()",
                    &[&id],
                )
                .await?
                .map(|r| SessionRow {
                    user: r.get(0),
                    role: r.get(1),
                    csrf_token: r.get(2),
                    expires_at: r.get(3),
                }))
            })
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let id = id_hash.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                c.exec("DELETE FROM sessions WHERE id_hash = $1", &[&id])
                    .await?;
                Ok(())
            })
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
        self.single(move |c| {
            Box::pin(async move {
                let row = c
                    .opt(
                        "INSERT INTO api_tokens (name, user_name, secret_hash, created_at, expires_at)
                         SELECT $1, name, $3, now(), $4 FROM users WHERE name = $2
                         RETURNING id",
                        &[&name, &user, &hash, &expires_at],
                    )
                    .await?;
                match row {
                    Some(r) => Ok(r.get(0)),
                    None => Err(Error::Invalid(format!("no user {user:?}"))),
                }
            })
        })
        .await
    }

    async fn get_token(&self, secret_hash: &str) -> Result<Option<TokenRow>> {
        let hash = secret_hash.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE t.secret_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now())"
                );
                Ok(c.opt(&sql, &[&hash]).await?.as_ref().map(token_row))
            })
        })
        .await
    }

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>> {
        let user = user.map(str::to_owned);
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE $1::text IS NULL OR t.user_name = $1 ORDER BY t.id"
                );
                Ok(c.rows(&sql, &[&user])
                    .await?
                    .iter()
                    .map(token_row)
                    .collect())
            })
        })
        .await
    }

    async fn revoke_token(&self, id: i64) -> Result<bool> {
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.exec("DELETE FROM api_tokens WHERE id = $1", &[&id])
                    .await?
                    > 0)
            })
        })
        .await
    }
}

#[async_trait]
impl Database for PgStore {
    async fn schema_version(&self) -> Result<i64> {
        self.single(|c| {
            Box::pin(async move {
                Ok(
                    c.one("SELECT coalesce(max(version), 0) FROM gale_schema", &[])
                        .await?
                        .get(0),
                )
            })
        })
        .await
    }

    fn endpoint(&self) -> String {
        endpoint_of(&self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_safe_defaults_and_never_show_passwords() {
        let cfg = parse_url("postgres://gale:s3cret@db1:5432,db2:5433/gale").expect("parse");
        assert_eq!(
            cfg.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert!(cfg.get_keepalives());
        assert!(
            cfg.get_options()
                .unwrap_or("")
                .contains("statement_timeout")
        );
        let shown = endpoint_of(&cfg);
        assert_eq!(shown, "postgres://gale@db1:5432,db2:5433/gale");
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn a_url_with_its_own_settings_keeps_them() {
        let cfg = parse_url(
            "host=a,b port=5432 user=u dbname=d connect_timeout=7 options='-c statement_timeout=1'",
        )
        .expect("parse");
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(cfg.get_options(), Some("-c statement_timeout=1"));
        assert_eq!(endpoint_of(&cfg), "postgres://u@a:5432,b:5432/d");
    }

    #[test]
    fn bad_urls_are_explained() {
        let err = parse_url("postgres://[::1")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("invalid PostgreSQL URL"), "{err}");
        let err = parse_url("dbname=x").expect_err("no host").to_string();
        assert!(err.contains("names no host"), "{err}");
    }
}
