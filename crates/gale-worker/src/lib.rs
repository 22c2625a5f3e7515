//! The worker role: claims queued attempts up to its concurrency, runs each one
//! (a shell command in its own process group, or an HTTP request), streams its
//! output into the store, heart-beats its leases, and reports the result through
//! a fenced write.
//!
//! A worker that cannot renew an attempt's lease kills the attempt before the
//! lease ends (self-fencing), so a retry elsewhere never runs beside it; when
//! the worker itself is frozen, its guard process does so (see [`guard`]). A
//! result that arrives after the attempt was reaped is rejected by the store and
//! only logged; a worker that thaws after an attempt's fence deadline reports
//! nothing for it.

mod direct;
mod execute;
pub mod guard;
mod logs;
mod report;
mod specs;
mod task_env;

use std::collections::HashMap;

use specs::Spec;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gale_model::DagId;
use gale_model::TaskState;
use gale_store::prelude::{Alerts, Clock, Dags, Logs, Queue, Runs};
use gale_store::{Notifier, Reap, TiId, WorkerId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

pub use execute::{EXIT_SKIP, Outcome, OutcomeKind, run_task_once};
pub use task_env::{RunAs, TaskEnv};

/// The parts of the store a worker uses: the clock its leases are measured on,
/// the DAG versions it runs, a run's task instances (for upstream outputs), the
/// attempt queue and the logs. Any full [`gale_store::Store`] is one.
pub trait WorkerStore: Clock + Dags + Runs + Queue + Logs + Alerts {}

impl<T: Clock + Dags + Runs + Queue + Logs + Alerts + ?Sized> WorkerStore for T {}

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The id this worker claims under: the node id of its process.
    pub worker_id: WorkerId,
    pub host: String,
    pub queues: Vec<String>,
    /// Most attempts running at once.
    pub concurrency: usize,
    pub heartbeat_interval: Duration,
    pub attempt_lease: Duration,
    /// Longest wait between two claims when nothing wakes the worker
    /// (jittered by a fifth when longer than a second).
    pub poll_interval: Duration,
    /// After SIGTERM on timeout, how long before SIGKILL.
    pub kill_grace: Duration,
    /// On shutdown, how long running attempts may take before they are handed back.
    pub shutdown_grace: Duration,
    /// Working directory of tasks that set no `cwd`.
    pub default_cwd: PathBuf,
    /// A program that, run with the argument `__guard`, is this worker's guard
    /// (see [`guard`]): the `gale` binary itself. None: no guard.
    pub guard_program: Option<PathBuf>,
    pub limits: Limits,
    /// Who task processes run as and what environment they start with.
    pub task_env: TaskEnv,
    /// Where the variables and connections tasks name are looked up; none:
    /// a task that names one fails saying it does not exist.
    pub resolver: Option<Arc<gale_secrets::Resolver>>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Log lines kept per attempt; later lines are dropped after a marker line.
    pub log_lines: usize,
    /// Log bytes kept per attempt.
    pub log_bytes: usize,
    /// Longest single log line kept (longer ones are cut).
    pub line_bytes: usize,
    /// Largest `$GALE_OUTPUT` file read.
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            log_lines: 100_000,
            log_bytes: 16 * 1024 * 1024,
            line_bytes: 16 * 1024,
            output_bytes: 64 * 1024,
        }
    }
}

impl WorkerOptions {
    /// Left between an attempt's fence and the end of its lease, for the kill
    /// to take effect: two heartbeat intervals, at least a second.
    fn fence_margin(&self) -> Duration {
        (self.heartbeat_interval * 2).max(Duration::from_secs(1))
    }

    /// How long after a renewal was sent (the moment its lease starts, at the
    /// earliest, on the store's clock) the worker kills the attempt if no later
    /// renewal succeeded.
    pub fn fence_after(&self) -> Duration {
        self.attempt_lease.saturating_sub(self.fence_margin())
    }

    /// When the guard kills the attempt's process group if the worker has not
    /// (it is frozen): half-way between the worker's own fence and the lease's
    /// end, so that the worker, when it runs, fences first and says why.
    pub fn guard_after(&self) -> Duration {
        self.attempt_lease.saturating_sub(self.fence_margin() / 2)
    }

    pub fn new(worker_id: WorkerId, host: String) -> Self {
        WorkerOptions {
            worker_id,
            host,
            queues: vec!["default".into()],
            concurrency: 16,
            heartbeat_interval: Duration::from_secs(2),
            attempt_lease: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            kill_grace: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            default_cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            guard_program: None,
            limits: Limits::default(),
            task_env: TaskEnv::filtered(),
            resolver: None,
        }
    }
}

/// An attempt's lease as this worker knows it, on [`guard::boot_ms`].
#[derive(Debug)]
pub(crate) struct Lease {
    /// When the claim was sent: the attempt's start on the store's clock came
    /// after it.
    pub(crate) claimed: u64,
    /// When the claim or the last successful renewal was sent.
    renewed: std::sync::atomic::AtomicU64,
    /// The attempt's process group, once it runs (0 before).
    pgid: std::sync::atomic::AtomicU32,
}

impl Lease {
    fn new(sent: u64) -> Arc<Lease> {
        Arc::new(Lease {
            claimed: sent,
            renewed: std::sync::atomic::AtomicU64::new(sent),
            pgid: std::sync::atomic::AtomicU32::new(0),
        })
    }

    fn renewed(&self) -> u64 {
        self.renewed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The moment `after` (a fence or guard delay) from the last renewal.
    pub(crate) fn deadline(&self, after: Duration) -> u64 {
        self.renewed()
            .saturating_add(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
    }
}

/// One attempt this worker is running.
struct Held {
    try_number: u32,
    lease: Arc<Lease>,
    /// Cancelled to kill the attempt's process group (fenced, timed out, shutdown).
    kill: CancellationToken,
    /// Why it was killed, when it was: the result is then not reported as normal.
    kill_reason: Arc<Mutex<Option<KillReason>>>,
    /// Set for fences: SIGKILL at once instead of SIGTERM and a grace.
    hard_kill: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillReason {
    /// The store no longer lists this attempt as ours: someone reaped it.
    Fenced,
    /// We could not renew leases for too long.
    SelfFenced,
    /// Shutdown grace ran out: the attempt is handed back for a retry elsewhere.
    HandedBack,
}

pub(crate) struct Shared<S: ?Sized> {
    store: Arc<S>,
    notifier: Arc<Notifier>,
    opts: WorkerOptions,
    held: Mutex<HashMap<TiId, Held>>,
    /// Attempts whose process ended and whose result is being reported: no longer
    /// heart-beaten, but still ours (not to be handed back as never started).
    /// By task instance and try: a late report of a reaped try may still be
    /// going when this worker claims the retry.
    reporting: Mutex<std::collections::HashSet<(TiId, u32)>>,
    specs: specs::Specs,
    /// Held while a DAG version is fetched: the attempts of a new run all start
    /// at once, and one fetch of a large version serves them all.
    spec_fetch: tokio::sync::Mutex<()>,
    slot_freed: tokio::sync::Notify,
    http: reqwest::Client,
    guard: guard::Guard,
    reporter: Arc<report::Reporter<S>>,
    /// The alert channel defaults, as last read.
    alert_defaults: gale_store::alert_events::DefaultsCache,
}

pub struct Worker<S: ?Sized> {
    shared: Arc<Shared<S>>,
}

impl<S: WorkerStore + ?Sized> Worker<S> {
    pub fn new(store: Arc<S>, notifier: Arc<Notifier>, opts: WorkerOptions) -> Self {
        let guard = guard::Guard::start(opts.guard_program.as_deref());
        Worker {
            shared: Arc::new(Shared {
                store: store.clone(),
                notifier,
                opts,
                held: Mutex::new(HashMap::new()),
                reporting: Mutex::new(std::collections::HashSet::new()),
                specs: specs::Specs::default(),
                spec_fetch: tokio::sync::Mutex::new(()),
                slot_freed: tokio::sync::Notify::new(),
                http: reqwest::Client::new(),
                guard,
                reporter: report::Reporter::new(store.clone()),
                alert_defaults: Default::default(),
            }),
        }
    }

    /// Runs until `cancel`, then stops claiming, lets running attempts finish within
    /// the shutdown grace, and hands the rest back.
    pub async fn run(self, cancel: CancellationToken) {
        let shared = self.shared;
        let tracker = TaskTracker::new();
        let heartbeat_stop = CancellationToken::new();
        let hb = tokio::spawn(heartbeat_loop(shared.clone(), heartbeat_stop.clone()));
        let mut backoff = Duration::from_millis(100);
        // A claim that failed may still have committed (its answer was lost with the
        // connection): the store may list attempts as ours that we never started.
        let mut reconcile = false;
        // Consecutive failed claims: the first is a warning, then one in twenty.
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            if reconcile {
                reconcile = !shared.hand_back_unknown().await;
            }
            let free = shared.opts.concurrency.saturating_sub(shared.held_count());
            let mut claimed_full = false;
            if free > 0 {
                // A claim's lease starts when the store runs it: after this.
                let sent = guard::boot_ms();
                match shared
                    .store
                    .claim(
                        &shared.opts.worker_id,
                        &shared.opts.host,
                        &shared.opts.queues,
                        free as u32,
                    )
                    .await
                {
                    Ok(claims) => {
                        backoff = Duration::from_millis(100);
                        if failures > 0 {
                            info!(failed_claims = failures, "claiming works again");
                            failures = 0;
                        }
                        claimed_full = claims.len() == free;
                        for claim in claims {
                            let kill = CancellationToken::new();
                            let kill_reason = Arc::new(Mutex::new(None));
                            let hard_kill = Arc::new(std::sync::atomic::AtomicBool::new(false));
                            let lease = Lease::new(sent);
                            shared
                                .held
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(
                                    claim.task.id,
                                    Held {
                                        try_number: claim.task.try_number,
                                        lease: lease.clone(),
                                        kill: kill.clone(),
                                        kill_reason: kill_reason.clone(),
                                        hard_kill: hard_kill.clone(),
                                    },
                                );
                            let shared = shared.clone();
                            tracker.spawn(async move {
                                let (ti, run) = (claim.task.id, claim.task.run_id);
                                let try_number = claim.task.try_number;
                                execute::execute(
                                    &shared,
                                    claim,
                                    lease,
                                    kill,
                                    kill_reason,
                                    hard_kill,
                                )
                                .await;
                                // Only this try's entries: a retry of the same task
                                // instance may run here by now.
                                shared.unhold(ti, try_number);
                                shared
                                    .reporting
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&(ti, try_number));
                                shared.slot_freed.notify_one();
                                shared.notifier.run_changed(run);
                            });
                        }
                    }
                    Err(e) => {
                        reconcile = true;
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(20) {
                            warn!(error = %e, failed_claims = failures, "claiming attempts failed; retrying every 0.5s at most");
                        } else {
                            debug!(error = %e, "claiming attempts failed");
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_millis(500));
                        continue;
                    }
                }
            }
            if claimed_full && shared.held_count() < shared.opts.concurrency {
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = shared.notifier.workers.notified() => {}
                _ = shared.slot_freed.notified() => {}
                _ = tokio::time::sleep(jittered(shared.opts.poll_interval)) => {}
            }
        }

        // Shutdown: no more claims. Let running attempts finish within the grace.
        tracker.close();
        let running = shared.held_count();
        if running > 0 {
            info!(
                running,
                grace_s = shared.opts.shutdown_grace.as_secs(),
                "worker stopping: waiting for running attempts"
            );
        }
        if tokio::time::timeout(shared.opts.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            let held: Vec<(TiId, u32)> = shared.held_list();
            warn!(
                count = held.len(),
                "shutdown grace over: handing running attempts back"
            );
            for (ti, _) in &held {
                shared.kill(*ti, KillReason::HandedBack);
            }
            tracker.wait().await;
        }
        heartbeat_stop.cancel();
        let _ = hb.await;
    }
}

impl<S: WorkerStore + ?Sized> Shared<S> {
    fn held_count(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn holds(&self, ti: TiId, try_number: u32) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ti)
            .is_some_and(|h| h.try_number == try_number)
    }

    fn held_list(&self) -> Vec<(TiId, u32)> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(ti, h)| (*ti, h.try_number))
            .collect()
    }

    fn held_leases(&self) -> Vec<(TiId, u32, Arc<Lease>)> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(ti, h)| (*ti, h.try_number, h.lease.clone()))
            .collect()
    }

    /// The attempt's process ended: stop renewing its lease; its result is
    /// reported next (the attempt stays ours until then).
    fn release(&self, ti: TiId, try_number: u32) {
        self.reporting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((ti, try_number));
        self.unhold(ti, try_number);
    }

    /// Forgets this try of `ti` as running here (not another try of it).
    fn unhold(&self, ti: TiId, try_number: u32) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.get(&ti).is_some_and(|h| h.try_number == try_number) {
            held.remove(&ti);
        }
    }

    /// Kills the attempt held for `ti`; true when it was not being killed yet.
    fn kill(&self, ti: TiId, reason: KillReason) -> bool {
        let mut first = false;
        if let Some(h) = self.held.lock().unwrap_or_else(|p| p.into_inner()).get(&ti) {
            let mut r = h.kill_reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() {
                *r = Some(reason);
                first = true;
            }
            if matches!(reason, KillReason::Fenced | KillReason::SelfFenced) {
                h.hard_kill
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            h.kill.cancel();
        }
        first
    }

    pub(crate) async fn spec(
        &self,
        dag_id: &DagId,
        hash: &str,
    ) -> gale_store::Result<Option<Arc<Spec>>> {
        if let Some(d) = self.specs.get(dag_id, hash) {
            return Ok(Some(d));
        }
        let _fetching = self.spec_fetch.lock().await;
        if let Some(d) = self.specs.get(dag_id, hash) {
            return Ok(Some(d));
        }
        let Some(version) = self.store.get_version(dag_id, hash).await? else {
            return Ok(None);
        };
        let dag = Arc::new(Spec::new(version.spec));
        self.specs.insert(dag_id, hash, dag.clone());
        Ok(Some(dag))
    }

    /// Hands back attempts the store lists as running here that this worker does
    /// not hold. Returns false when the store could not be asked.
    async fn hand_back_unknown(&self) -> bool {
        let listed = match self.store.worker_attempts(&self.opts.worker_id).await {
            Ok(listed) => listed,
            Err(e) => {
                debug!(error = %e, "cannot list this worker's attempts yet");
                return false;
            }
        };
        for t in listed {
            // Checked in the order `release` changes them, so an attempt moving
            // from held to reporting is seen in one or the other.
            let held = self.holds(t.id, t.try_number)
                || self
                    .reporting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&(t.id, t.try_number));
            if !held {
                self.hand_back(
                    t.id,
                    t.try_number,
                    "claimed while the database connection failed; never started",
                )
                .await;
            }
        }
        true
    }

    /// Ends an attempt this worker gives up on without a result of its own.
    async fn hand_back(&self, ti: TiId, try_number: u32, message: &str) {
        let reap = Reap {
            alerts: Vec::new(),
            ti,
            try_number,
            worker_id: self.opts.worker_id.clone(),
            lease: Duration::ZERO,
            to: TaskState::UpForRetry,
            retry_at: None,
            outcome: gale_store::Outcome::HandedBack,
            message: message.to_owned(),
            refund_try: true,
        };
        match self.store.reap_attempt(&reap).await {
            Ok(true) => info!(%ti, try_number, "attempt handed back for a retry elsewhere"),
            Ok(false) => debug!(%ti, "attempt was no longer ours to hand back"),
            Err(e) => {
                error!(%ti, error = %e, "handing an attempt back failed; its lease will expire")
            }
        }
    }
}

/// `every`, give or take a fifth (one second or less exactly): many workers
/// started together do not look for work together.
fn jittered(every: Duration) -> Duration {
    if every <= Duration::from_secs(1) {
        return every;
    }
    every.mul_f64(rand::random_range(0.8..1.2))
}

/// Renews the leases of held attempts, kills those the store says are no longer
/// ours, and kills each one whose lease went unrenewed for too long
/// (self-fencing).
///
/// Each attempt's lease runs on the store's clock from the moment its claim or
/// last successful renewal was *sent*, so that is the moment counted from here
/// ([`Lease`]); the fence fires on its own deadline, not only after a slow
/// renewal gives up. A fence covers the attempts whose deadline passed and no
/// others: a worker that thaws after a freeze kills its old attempts (its
/// guard may have already) and runs the ones it claims afterwards normally.
async fn heartbeat_loop<S: WorkerStore + ?Sized>(shared: Arc<Shared<S>>, stop: CancellationToken) {
    let opts = &shared.opts;
    let fence_after = opts.fence_after();
    let guard_after = opts.guard_after();
    let until = |deadline: u64| {
        tokio::time::Instant::now()
            + Duration::from_millis(deadline.saturating_sub(guard::boot_ms()))
    };
    loop {
        let now = guard::boot_ms();
        let (expired, live): (Vec<_>, Vec<_>) = shared
            .held_leases()
            .into_iter()
            .partition(|(_, _, l)| l.deadline(fence_after) <= now);
        let mut fenced = 0usize;
        let mut silent_ms = 0u64;
        for (ti, _, lease) in &expired {
            if shared.kill(*ti, KillReason::SelfFenced) {
                fenced += 1;
                silent_ms = silent_ms.max(now.saturating_sub(lease.renewed()));
            }
        }
        if fenced > 0 {
            error!(
                attempts = fenced,
                silent_ms,
                "cannot reach the store to renew leases: killing running attempts before their lease ends"
            );
        }
        let mut renewed_ok = true;
        if !live.is_empty() {
            let sent = guard::boot_ms();
            let first_fence = live
                .iter()
                .map(|(_, _, l)| l.deadline(fence_after))
                .min()
                .unwrap_or(now);
            let give_up = (tokio::time::Instant::now()
                + opts.heartbeat_interval.max(Duration::from_secs(1)))
            .min(until(first_fence));
            let ids: Vec<(TiId, u32)> = live.iter().map(|(ti, n, _)| (*ti, *n)).collect();
            let renew = tokio::time::timeout_at(
                give_up,
                shared.store.heartbeat_attempts(&opts.worker_id, &ids),
            )
            .await;
            match renew {
                Ok(Ok(renewed)) => {
                    let mut pgids = Vec::with_capacity(live.len());
                    for (ti, try_number, lease) in &live {
                        if renewed.contains(ti) {
                            lease
                                .renewed
                                .fetch_max(sent, std::sync::atomic::Ordering::AcqRel);
                            let pgid = lease.pgid.load(std::sync::atomic::Ordering::Acquire);
                            if pgid != 0 {
                                pgids.push(pgid);
                            }
                        } else if shared.holds(*ti, *try_number) {
                            // One that ended meanwhile was released before its result
                            // was sent: only one still held was taken from us.
                            if shared.kill(*ti, KillReason::Fenced) {
                                warn!(%ti, try_number, "attempt is no longer ours (reaped or changed): killing it");
                            }
                        }
                    }
                    shared.guard.extend(
                        &pgids,
                        sent.saturating_add(u64::try_from(guard_after.as_millis()).unwrap_or(0)),
                    );
                }
                Ok(Err(e)) => {
                    renewed_ok = false;
                    warn!(error = %e, "renewing attempt leases failed");
                }
                Err(_) => {
                    renewed_ok = false;
                    warn!("renewing attempt leases timed out");
                }
            }
        }
        // The next beat, or an attempt's fence deadline if that comes first
        // (not one already passed: those are being killed).
        let now = guard::boot_ms();
        let next_fence = shared
            .held_leases()
            .iter()
            .map(|(_, _, l)| l.deadline(fence_after))
            .filter(|&d| d > now)
            .min();
        let mut wake = tokio::time::Instant::now() + opts.heartbeat_interval;
        if let Some(d) = next_fence {
            wake = wake.min(until(d));
        }
        if !renewed_ok {
            // A failed renewal is retried soon, but not in a tight loop.
            wake = wake.max(tokio::time::Instant::now() + Duration::from_millis(100));
        }
        shared.specs.sweep();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
