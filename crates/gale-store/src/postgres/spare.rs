//! What keeps an idle process at one connection: the pool closes connections
//! unused for [`POOL_IDLE_CLOSE`] (by default), and the few light statements
//! an idle process sends (its node heartbeat, a worker's claim, the alert
//! deliverer's look, the cluster watch's reads) run on the notification
//! connection ([`PgStore::light`]), so they keep no pooled connection open.
//! A worker's lease renewals run there too, so that they never wait for a
//! pooled connection busy with results and logs. Real work (a result, a run)
//! opens pool connections again. [`Activity`] counts the calls in flight and
//! when the server last answered, so the listener's probe runs only when it can
//! tell something: a call is waiting, or nothing has been heard for a while.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use super::*;

/// A pooled connection unused this long is closed (`PgOptions::idle_close`).
pub(super) const POOL_IDLE_CLOSE: Duration = Duration::from_secs(10);

/// The notification connection, lent to light calls while it is up.
pub(super) struct Spare {
    pub(super) client: tokio_postgres::Client,
    /// Its prepared statements (a handful: only light calls run here).
    statements: std::sync::Mutex<HashMap<String, Statement>>,
}

/// At most this many statements are kept prepared on the spare connection.
const SPARE_STATEMENTS: usize = 32;

impl Spare {
    pub(super) fn new(client: tokio_postgres::Client) -> Spare {
        Spare {
            client,
            statements: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Conn for Spare {
    async fn stmt(&self, sql: &str) -> Result<Statement> {
        let cached = self
            .statements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sql)
            .cloned();
        if let Some(st) = cached {
            return Ok(st);
        }
        let st = self.client.prepare(sql).await?;
        let mut statements = self
            .statements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if statements.len() >= SPARE_STATEMENTS {
            statements.clear();
        }
        statements.insert(sql.to_owned(), st.clone());
        Ok(st)
    }
    async fn run_query(&self, st: &Statement, p: Params<'_>) -> Result<Vec<Row>> {
        Ok(self.client.query(st, p).await?)
    }
    async fn run_exec(&self, st: &Statement, p: Params<'_>) -> Result<u64> {
        Ok(self.client.execute(st, p).await?)
    }
}

/// Calls in flight and the last time the server answered one.
pub(super) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last answer (0: none yet).
    answered_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            answered_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// A call starts; it counts as in flight until the guard is dropped.
    pub(super) fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    /// Milliseconds since this process's epoch: a moment to compare with.
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    pub(super) fn answered(&self) {
        let ms = self.now_ms();
        self.answered_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// Whether the server answered a call after `ms` (a [`Activity::now_ms`]).
    pub(super) fn answered_after(&self, ms: u64) -> bool {
        self.answered_ms.load(Ordering::Acquire) > ms
    }

    /// Whether a probe can tell something: a call is waiting for the server,
    /// or it has not been heard from for `quiet`.
    pub(super) fn worth_probing(&self, quiet: Duration) -> bool {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return true;
        }
        match self.answered_ms.load(Ordering::Acquire) {
            0 => true,
            ms => self.epoch.elapsed() >= Duration::from_millis(ms) + quiet,
        }
    }
}

pub(super) struct InFlight<'a>(&'a Activity);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PgStore {
    /// Runs a light call (one cheap statement, autocommit) on the notification
    /// connection while it is up, so that the pool's connections are left to
    /// close once real work stops; otherwise as [`PgStore::single`] does.
    pub(super) async fn light<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: for<'a> FnOnce(&'a dyn Conn) -> BoxFut<'a, Result<T>> + Send,
    {
        let spare = self
            .spare
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(spare) = spare {
            let mut outages = self.outages.subscribe();
            let out = self.bounded(&mut outages, f(&*spare)).await;
            if let Err(e) = &out {
                crate::telemetry::count_error("postgres", e);
                // The server went read-only, away or out of sessions: stop
                // lending this connection, and have the listener connect
                // again (to the primary, wherever it is now). The caller
                // retries on the pool meanwhile.
                if e.is_retryable() {
                    self.set_spare(None);
                    self.reconnect.notify_one();
                }
            }
            return out;
        }
        self.single(move |c| f(c)).await
    }

    /// The notification connection is up (`Some`) or gone (`None`).
    pub(super) fn set_spare(&self, spare: Option<Arc<Spare>>) {
        *self
            .spare
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = spare;
    }

    /// Closes the pooled connections unused for `PgOptions::idle_close`.
    pub(super) fn close_idle(&self) {
        let idle = self.opts.idle_close;
        self.pool.retain(|_, metrics| metrics.last_used() < idle);
    }

    /// Connections this process has open in its pool (the notification
    /// connection aside).
    pub fn pool_open(&self) -> usize {
        self.pool.status().size
    }
}
