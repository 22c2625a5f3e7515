//! The PostgreSQL backend: any number of schedulers, workers and webservers on
//! any number of nodes share one database, and follow it through a failover.
//!
//! - **Connections.** A pool (deadpool) built from one `tokio_postgres::Config`, so
//!   a multi-host URL (`host=a,b,c`) finds the primary by itself: Gale always asks
//!   for a read-write session, of every host at once, each bounded as a whole
//!   (see `connect`: a frozen host must not hold up the others). TCP keepalives,
//!   a TCP user timeout, a connect timeout and a statement timeout make a dead
//!   peer an error within seconds, not minutes; a server that stops answering
//!   with its connections open is noticed by the notification connection's
//!   probe, and every call in flight is given up at once. A call given up
//!   half-way (its caller's own timeout) closes its connection rather than
//!   lend it on with a statement still in flight. An error that says the server went away, restarted or is read-only
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
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Row, Statement};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::rules::*;
use crate::*;

mod alerts;
mod audit;
mod auth;
mod backfills;
mod clock;
mod connect;
mod dags;
mod database;
mod listen;
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
mod spare;
mod tls;
mod url;

pub use url::{PgUrl, RootCert, SslMode, TlsSettings, endpoint_of, parse_url};

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 14;

/// Tunables of a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Most connections this process keeps open.
    pub pool_size: usize,
    /// Longest time one store call may take (waiting for a connection included);
    /// after it the call fails as unavailable and its connection is dropped.
    pub call_timeout: Duration,
    /// A pooled connection unused this long is closed (see `spare`).
    pub idle_close: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 8,
            call_timeout: Duration::from_secs(15),
            idle_close: spare::POOL_IDLE_CLOSE,
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    /// The URL's TLS settings, and the connector built from them.
    tls_settings: TlsSettings,
    tls: tls::Tls,
    /// One config per host of `config`, tried all at once.
    hosts: Arc<Vec<tokio_postgres::Config>>,
    /// Bumped when the server stopped answering: calls in flight give up.
    outages: Arc<tokio::sync::watch::Sender<u64>>,
    opts: PgOptions,
    /// The payload of this handle's notifications: its own listener skips them,
    /// since in-process wake-ups already covered them.
    origin: String,
    /// Whether a finished attempt is announced to schedulers (`gale_changed`).
    /// A process that runs a scheduler itself wakes it in-process, and one
    /// scheduler is enough: only worker-only processes need to announce.
    announce_results: Arc<std::sync::atomic::AtomicBool>,
    /// The notification connection while it is up, for light calls.
    spare: Arc<std::sync::RwLock<Option<Arc<spare::Spare>>>>,
    /// Calls in flight and the server's last answer (see `spare`).
    activity: Arc<spare::Activity>,
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
    // TLS refusing the server (or the server TLS) is a setting to fix, not
    // an outage to wait out.
    if let Some(why) = tls::refusal(e) {
        return Error::Database(why);
    }
    let text = describe(e);
    let Some(code) = e.code() else {
        // The server asked for a password that the URL does not have.
        if text.contains("password missing") {
            return Error::Database(
                "the server asks for a password and the URL has none: \
                 postgres://USER:PASSWORD@HOST/DB (percent-encode @ : / ? in it)"
                    .into(),
            );
        }
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

/// How long one host may take to give a session (TCP, startup, authentication,
/// the read-write check): the URL's `connect_timeout`, 3 s unless it says.
fn per_host_timeout(config: &tokio_postgres::Config) -> Duration {
    config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(3))
}

/// How long one new connection may take in all: while no host gives a
/// read-write session, those that answer are asked again, so a standby
/// promoted meanwhile is found.
fn connect_budget(config: &tokio_postgres::Config) -> Duration {
    per_host_timeout(config) * 2
}

/// The pool's way to connect: every host at once (see `connect`).
struct RaceConnect {
    hosts: Arc<Vec<tokio_postgres::Config>>,
    tls: tls::Tls,
    per_host: Duration,
    budget: Duration,
}

impl deadpool_postgres::Connect for RaceConnect {
    fn connect(
        &self,
        _: &tokio_postgres::Config,
    ) -> Pin<
        Box<
            dyn Future<
                    Output = std::result::Result<
                        (tokio_postgres::Client, tokio::task::JoinHandle<()>),
                        tokio_postgres::Error,
                    >,
                > + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            let (client, connection) =
                connect::connect(&self.hosts, &self.tls, self.per_host, self.budget).await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    debug!(error = %e, "database connection ended");
                }
            });
            Ok((client, driver))
        })
    }
}

/// A pooled connection lent to one call. Back to the pool when the call ran to
/// its end; closed when the call was given up half-way (its future dropped by
/// a caller's timeout): a statement may still be in flight on it, and the next
/// call would queue behind it.
struct Lent {
    client: Option<deadpool_postgres::Object>,
    done: bool,
}

impl Lent {
    fn new(client: deadpool_postgres::Object) -> Lent {
        Lent {
            client: Some(client),
            done: false,
        }
    }

    fn object(&mut self) -> &mut deadpool_postgres::Object {
        self.client
            .as_mut()
            .expect("a lent connection until dropped")
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let (Some(client), false) = (self.client.take(), self.done) {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl PgStore {
    /// The server stopped answering: every call in flight gives up, and no
    /// idle connection (all to that server) is lent again.
    pub(crate) fn outage(&self) {
        self.outages.send_modify(|n| *n += 1);
        self.pool.retain(|_, _| false);
    }

    fn per_host_timeout(&self) -> Duration {
        per_host_timeout(&self.config)
    }

    fn connect_budget(&self) -> Duration {
        connect_budget(&self.config)
    }

    /// Runs `work` within the call timeout, giving up at once on an outage.
    async fn bounded<T>(
        &self,
        outages: &mut tokio::sync::watch::Receiver<u64>,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let _in_flight = self.activity.begin();
        tokio::select! {
            out = tokio::time::timeout(self.opts.call_timeout, work) => match out {
                Ok(out) => {
                    // An answer, even a refusal, says the server is there.
                    if !matches!(&out, Err(e) if e.is_retryable()) {
                        self.activity.answered();
                    }
                    out
                }
                Err(_) => Err(Error::Unavailable("the database did not answer in time".into())),
            },
            _ = outages.changed() => Err(Error::Unavailable(
                "the database stopped answering (noticed by the connection probe)".into(),
            )),
        }
    }

    /// Connects (waiting up to `wait` for the database to come up) and brings the
    /// schema up to date.
    pub async fn connect(url: &str, wait: Duration) -> Result<PgStore> {
        PgStore::connect_with(url, wait, PgOptions::default()).await
    }

    pub async fn connect_with(url: &str, wait: Duration, opts: PgOptions) -> Result<PgStore> {
        let PgUrl {
            config,
            tls: tls_settings,
        } = parse_url(url)?;
        let tls = tls::Tls::new(&tls_settings)?;
        let hosts = Arc::new(connect::per_host(&config));
        let per_host = per_host_timeout(&config);
        let budget = connect_budget(&config);
        let manager = Manager::from_connect(
            config.clone(),
            RaceConnect {
                hosts: hosts.clone(),
                tls: tls.clone(),
                per_host,
                budget,
            },
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.call_timeout))
            .create_timeout(Some(budget + Duration::from_secs(1)))
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
            tls_settings,
            tls,
            hosts,
            outages: Arc::new(tokio::sync::watch::Sender::new(0)),
            opts,
            origin,
            announce_results: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            spare: Arc::default(),
            activity: Arc::default(),
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

    /// Runs `f` on a pooled connection in autocommit mode: for reads, and for
    /// writes that are one statement (atomic by themselves, and one round trip
    /// instead of three).
    async fn single<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: for<'a> FnOnce(&'a deadpool_postgres::ClientWrapper) -> BoxFut<'a, Result<T>> + Send,
    {
        let mut outages = self.outages.subscribe();
        let mut lent = Lent::new(self.client().await?);
        let out = self.bounded(&mut outages, f(lent.object())).await;
        self.settle(lent, &out);
        out
    }

    /// After a call: its connection back to the pool, or (after an outage
    /// error) dropped with every idle one.
    fn settle<T>(&self, mut lent: Lent, out: &Result<T>) {
        match out {
            Err(e) => {
                crate::telemetry::count_error("postgres", e);
                if e.is_retryable() {
                    // Not done: dropping it closes the connection.
                    self.pool.retain(|_, _| false);
                    return;
                }
                lent.done = true;
            }
            Ok(_) => lent.done = true,
        }
    }

    /// Runs `f` in one transaction, committed when it returns Ok. A failed COMMIT
    /// has an unknown outcome: every write is conditional, so the caller may retry.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: for<'a, 'b> FnOnce(&'a Tx<'b>) -> BoxFut<'a, Result<T>> + Send,
    {
        let mut outages = self.outages.subscribe();
        let mut lent = Lent::new(self.client().await?);
        let client = lent.object();
        let work = async {
            let tx = client.transaction().await?;
            let v = f(&tx).await?;
            tx.commit().await?;
            Ok(v)
        };
        let out = self.bounded(&mut outages, work).await;
        self.settle(lent, &out);
        out
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
     max_active_runs, description, tags, last_interval_end, updated_at, owner, \
     (SELECT v.origin FROM dag_versions v \
      WHERE v.dag_id = dags.dag_id AND v.version_hash = dags.version_hash)";

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
        owner: r.get(12),
        origin: r.get::<_, Option<&str>>(13).and_then(Origin::from_text),
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
        worker_id: r.get::<_, Option<String>>(9).map(WorkerId),
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
const BACKFILL_COLS: &str =
    "b.id, b.dag_id, b.from_date, b.to_date, b.created_by, b.created_at, b.cancelled_at, \
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
        cancelled_at: r.get(6),
        runs: serde_json::from_value(r.get(7)).unwrap_or_default(),
    }
}

fn user_row(r: &Row) -> UserRow {
    UserRow {
        name: r.get(0),
        role: stored_role(r.get(1)),
        password_hash: r.get(2),
        created_at: r.get(3),
        last_login_at: r.get(4),
    }
}

const TOKEN_COLS: &str =
    "t.id, t.name, t.user_name, u.role, t.created_at, t.expires_at, t.last_used_at";

const USER_COLS: &str = "name, role, password_hash, created_at, last_login_at";

fn token_row(r: &Row) -> TokenRow {
    TokenRow {
        id: r.get(0),
        name: r.get(1),
        user: r.get(2),
        role: stored_role(r.get(3)),
        created_at: r.get(4),
        expires_at: r.get(5),
        last_used_at: r.get(6),
    }
}

#[cfg(test)]
mod tests;
