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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use super::*;

/// A pooled connection unused this long is closed (`PgOptions::idle_close`).
pub(super) const POOL_IDLE_CLOSE: Duration = Duration::from_secs(10);

/// The notification connection, lent to light calls while it is up.
pub(super) struct Spare {
    pub(super) client: tokio_postgres::Client,
    /// Its prepared statements (a handful: only light calls run here).
    statements: std::sync::Mutex<HashMap<String, Statement>>,
    /// A call on it failed as a lost connection would.
    lost: AtomicBool,
    /// Taken out of use ([`PgStore::retire`]): its listener connects again.
    pub(super) retired: tokio::sync::Notify,
    /// The store's record of when the server last answered.
    activity: Arc<Activity>,
}

/// At most this many statements are kept prepared on the spare connection.
const SPARE_STATEMENTS: usize = 32;

impl Spare {
    pub(super) fn new(client: tokio_postgres::Client, activity: Arc<Activity>) -> Spare {
        Spare {
            client,
            statements: std::sync::Mutex::new(HashMap::new()),
            lost: AtomicBool::new(false),
            retired: tokio::sync::Notify::new(),
            activity,
        }
    }

    /// `e` came from this connection: remember whether it is still usable.
    /// A lock timeout, a deadlock or a cancelled statement leaves it as good
    /// as before; a broken link or a server shutting down, gone read-only or
    /// out of resources does not.
    ///
    /// Such a refusal is still the server answering. It counts as one here
    /// (the store counts only answers it will not retry): light calls queue
    /// on this connection, each may wait up to its lock timeout, and the
    /// probe behind them must not take that for a silent server.
    fn note<T>(&self, out: std::result::Result<T, tokio_postgres::Error>) -> Result<T> {
        out.map_err(|e| {
            if connection_failed(&e) {
                self.lost.store(true, Ordering::Release);
            } else if e.code().is_some() {
                self.activity.answered();
            }
            e.into()
        })
    }

    fn usable(&self) -> bool {
        !self.lost.load(Ordering::Acquire) && !self.client.is_closed()
    }
}

/// Whether `e` says the connection it came on is no good any more.
pub(super) fn connection_failed(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: the link broke or timed out (or a value did not
        // convert, which no light call sends).
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
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
        let st = self.note(self.client.prepare(sql).await)?;
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
        self.note(self.client.query(st, p).await)
    }
    async fn run_exec(&self, st: &Statement, p: Params<'_>) -> Result<u64> {
        self.note(self.client.execute(st, p).await)
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

/// The notification connection lent to one light call.
struct Borrowed<'a> {
    store: &'a PgStore,
    spare: &'a Arc<Spare>,
    done: bool,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.store.retire(self.spare);
        }
    }
}

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
            // Taken out of use unless the call runs to its end on a
            // connection still good: a call given up half-way (its caller's
            // timeout, this one's, an outage) may still be in flight there,
            // and every light call and probe after it would queue behind it.
            let mut borrowed = Borrowed {
                store: self,
                spare: &spare,
                done: false,
            };
            let finished = AtomicBool::new(false);
            let work = async {
                let out = f(&*spare).await;
                finished.store(true, Ordering::Release);
                out
            };
            let out = self.bounded(&mut outages, work).await;
            if let Err(e) = &out {
                crate::telemetry::count_error("postgres", e);
            }
            // The caller retries (on the pool, until the listener is back)
            // when the error is retryable.
            borrowed.done = finished.load(Ordering::Acquire) && spare.usable();
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

    /// Stops lending `spare` (if it is still the one lent) and has its
    /// listener connect again (to the primary, wherever it is now). A newer
    /// connection is left alone, and a retired one's wake-up dies with it.
    pub(super) fn retire(&self, spare: &Arc<Spare>) {
        {
            let mut current = self
                .spare
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, spare)) {
                *current = None;
            }
        }
        spare.retired.notify_one();
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
