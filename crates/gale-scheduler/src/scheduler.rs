//! The scheduler's shell: the loop that reads the store, asks [`crate::core`]
//! what to do, writes the actions it returns (each a conditional write) and
//! then performs what follows them (waking workers, logging). Beyond when to
//! look (how often, and which runs to read), it decides nothing itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gale_model::alerts::{self, RunEvent, TaskEvent};
use gale_model::time::rfc3339;
use gale_model::{Dag, DagId, RunId, RunState, TaskState};
use gale_store::alert_events::{AlertEvent, DefaultsCache};
use gale_store::{
    Alerts, Clock, Dags, Logs, NewDelivery, Nodes, Notifier, Pools, Queue, RunRow, RunType, Runs,
    Slots, TaskRow,
};
use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::core::{self, RunAction, Tracker, topo_order};

#[path = "scheduler_due.rs"]
mod due_pass;
#[path = "scheduler_runs.rs"]
mod runs_pass;

#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Longest wait between two passes when nothing wakes the loop.
    pub poll_interval: Duration,
    /// A running attempt whose heartbeat is older than this is lost.
    pub attempt_lease: Duration,
    /// Most running runs looked at in one pass.
    pub max_runs_per_pass: u32,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            poll_interval: Duration::from_secs(1),
            attempt_lease: Duration::from_secs(10),
            max_runs_per_pass: 1000,
        }
    }
}

/// The shortest rest after a pass that found nothing to do.
const MIN_REST: Duration = Duration::from_millis(2);

/// How often a busy scheduler creates due runs, starts queued ones and reaps.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// How often runs are checked against their deadlines.
const DEADLINES_EVERY: Duration = Duration::from_secs(5);
/// Parsed versions kept at least (more with more DAGs).
const VERSIONS_CACHED: usize = 1000;
/// How many queued runs (the newest) a deadline check looks at.
const QUEUED_CHECKED: u32 = 1_000;
/// Runs with at most this many tasks are planned in batches (see
/// `advance_small_runs`); larger ones one by one, read only when their
/// state counts say a plan can move something.
const SMALL_RUN: usize = 64;
/// How long a large version nobody used stays cached, and any other.
const LARGE_VERSIONS_KEPT: Duration = Duration::from_secs(30);
const VERSIONS_KEPT: Duration = Duration::from_secs(600);
/// Runs (or DAGs) read in one query.
const RUNS_PER_READ: usize = 256;

/// The parts of the store a scheduler uses: DAG versions, runs and their task
/// instances, the queue (enqueue, reap), the slot ledger, pools, and nodes (for
/// start-up recovery).
pub trait SchedulerStore:
    Clock + Dags + Runs + Queue + Slots + Pools + Nodes + Alerts + Logs
{
}

impl<T: Clock + Dags + Runs + Queue + Slots + Pools + Nodes + Alerts + Logs + ?Sized> SchedulerStore
    for T
{
}

/// A parsed DAG version and its task order, cached by (dag id, version hash).
pub struct CachedDag {
    pub dag: Dag,
    pub order: Vec<usize>,
    /// Its schedule, parsed once per version.
    pub schedule: Option<gale_model::schedule::Schedule>,
}

pub struct Scheduler<S: ?Sized> {
    store: Arc<S>,
    notifier: Arc<Notifier>,
    opts: SchedulerOptions,
    /// Parsed versions, each with when it was last used.
    versions: HashMap<(DagId, String), (Arc<CachedDag>, std::time::Instant)>,
    last_versions_sweep: Option<std::time::Instant>,
    /// Which running runs are worth reading and planning.
    tracker: Tracker,
    last_housekeeping: Option<std::time::Instant>,
    /// The store's clock as last read, and when: `now` between readings.
    clock: Option<(Timestamp, std::time::Instant)>,
    last_pool_check: Option<std::time::Instant>,
    /// (DAG, pool) pairs already warned about: a task names a pool that does not exist.
    warned_pools: HashSet<(DagId, String)>,
    /// The alert channel defaults, as last read.
    alert_defaults: DefaultsCache,
    last_deadline_check: Option<std::time::Instant>,
    /// Runs whose missed deadline this scheduler has written (or found
    /// nobody to tell of): each is written once per run, by whoever sees it.
    deadlines_seen: HashSet<RunId>,
    /// When each scheduled DAG is next looked at.
    agenda: core::Agenda,
    /// The store's clock at the last read of the DAGs, and when every DAG
    /// was last listed.
    changes_read_at: Option<Timestamp>,
    last_full_listing: Option<std::time::Instant>,
    /// Most parsed versions kept, and how many DAGs the last full listing
    /// found.
    versions_cap: usize,
    dags_listed: usize,
    /// The pools as last read, the DAG version each DAG was last checked
    /// against them in, and the versions listed since, to check.
    pools_known: Option<HashSet<String>>,
    pools_checked: HashMap<DagId, String>,
    pools_pending: HashMap<DagId, String>,
    /// The last running run the sweep read (0: it starts from the first).
    swept_to: RunId,
}

/// What one pass did, for tests and logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassReport {
    pub runs_created: usize,
    pub runs_started: usize,
    pub transitions: usize,
    pub queued: usize,
    pub runs_finished: usize,
    pub reaped: usize,
}

impl PassReport {
    fn changed(&self) -> bool {
        self.runs_created
            + self.runs_started
            + self.transitions
            + self.queued
            + self.runs_finished
            + self.reaped
            > 0
    }
}

impl<S: SchedulerStore + ?Sized> Scheduler<S> {
    pub fn new(store: Arc<S>, notifier: Arc<Notifier>, opts: SchedulerOptions) -> Self {
        Scheduler {
            store,
            notifier,
            opts,
            versions: HashMap::new(),
            last_versions_sweep: None,
            tracker: Tracker::default(),
            last_housekeeping: None,
            clock: None,
            last_pool_check: None,
            warned_pools: HashSet::new(),
            alert_defaults: DefaultsCache::default(),
            last_deadline_check: None,
            deadlines_seen: HashSet::new(),
            agenda: core::Agenda::default(),
            changes_read_at: None,
            last_full_listing: None,
            versions_cap: VERSIONS_CACHED,
            dags_listed: 0,
            pools_known: None,
            pools_checked: HashMap::new(),
            pools_pending: HashMap::new(),
            swept_to: RunId(0),
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut rest_until: Option<tokio::time::Instant> = None;
        // Consecutive failed passes: the first is a warning, the rest debug lines
        // (an outage fails a pass every half second), and recovery is logged.
        let mut failures = 0u32;
        loop {
            if let Some(until) = rest_until.take() {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
            let started = tokio::time::Instant::now();
            let outcome = self.pass().await;
            gale_store::telemetry::telemetry()
                .scheduler_pass
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(report) => {
                    backoff = Duration::from_millis(100);
                    if failures > 0 {
                        info!(failed_passes = failures, "scheduler passes succeed again");
                        failures = 0;
                    }
                    if report.changed() {
                        debug!(?report, "scheduler pass");
                        // Something moved: look again at once, it may unblock more.
                        if cancel.is_cancelled() {
                            return;
                        }
                        tokio::task::yield_now().await;
                        continue;
                    }
                    // A pass that found nothing to do rests a little before the next
                    // one: under load every finished attempt wakes the scheduler, and
                    // the wake-ups that arrive meanwhile are then handled by one pass.
                    // The rest is as long as the pass took (at least 2 ms, at most
                    // 50 ms): it grows with large runs, and stays below a task's own
                    // start-up time, so chains are not slowed.
                    let rest = started.elapsed().clamp(MIN_REST, Duration::from_millis(50));
                    rest_until = Some(tokio::time::Instant::now() + rest);
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        warn!(error = %e, failed_passes = failures, "scheduler pass failed; retrying every 0.5s at most");
                    } else {
                        debug!(error = %e, "scheduler pass failed");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    continue;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.notifier.scheduler.notified() => {}
                _ = tokio::time::sleep(self.opts.poll_interval) => {}
            }
        }
    }

    async fn version(
        &mut self,
        dag_id: &DagId,
        hash: &str,
    ) -> gale_store::Result<Option<Arc<CachedDag>>> {
        let key = (dag_id.clone(), hash.to_owned());
        if let Some((v, used)) = self.versions.get_mut(&key) {
            *used = std::time::Instant::now();
            return Ok(Some(v.clone()));
        }
        let Some(version) = self.store.get_version(dag_id, hash).await? else {
            return Ok(None);
        };
        if self.versions.len() >= self.versions_cap {
            self.versions.clear();
        }
        let order = topo_order(&version.spec);
        let schedule = version.spec.parsed_schedule();
        let cached = Arc::new(CachedDag {
            dag: version.spec,
            order,
            schedule,
        });
        self.versions
            .insert(key, (cached.clone(), std::time::Instant::now()));
        Ok(Some(cached))
    }

    /// Drops the versions unused for a while: a large one (over
    /// [`SMALL_RUN`] tasks: a 10,000-task fan-out's is megabytes, read again
    /// in a moment when its DAG runs again) after [`LARGE_VERSIONS_KEPT`],
    /// any other after [`VERSIONS_KEPT`] (a DAG whose schedule fires less
    /// often than that is read again when it does). Looks every half of the
    /// shorter.
    fn sweep_versions(&mut self) {
        let now = std::time::Instant::now();
        if self
            .last_versions_sweep
            .is_some_and(|at| now - at < LARGE_VERSIONS_KEPT / 2)
        {
            return;
        }
        self.last_versions_sweep = Some(now);
        self.versions.retain(|_, (v, used)| {
            let kept = if v.dag.tasks.len() <= SMALL_RUN {
                VERSIONS_KEPT
            } else {
                LARGE_VERSIONS_KEPT
            };
            now - *used < kept
        });
    }

    /// One scheduling pass over everything.
    pub async fn pass(&mut self) -> gale_store::Result<PassReport> {
        let mut report = PassReport::default();
        // Schedules tick in seconds and leases in seconds: creating due runs and
        // reaping are done a few times a second, not on every wake-up (one per
        // finished attempt under load).
        let housekeeping = self
            .last_housekeeping
            .is_none_or(|at| at.elapsed() >= HOUSEKEEPING_EVERY);
        // The store's clock is read at housekeeping; in between, this process's
        // monotonic clock carries it forward (no round trip per pass).
        let now = if housekeeping {
            let now = self.store.now().await?;
            self.clock = Some((now, std::time::Instant::now()));
            now
        } else {
            match self.carried_now() {
                Some(now) => now,
                None => self.store.now().await?,
            }
        };
        if housekeeping {
            self.last_housekeeping = Some(std::time::Instant::now());
            report.runs_created = self.create_due_runs(now).await?;
        }
        // Queued runs (triggered, backfilled, or waiting for `max_active_runs`) are
        // started on every pass; the store answers "none" without a write.
        let started = self.store.promote_runs().await?;
        report.runs_started = started.len();
        // Between sweeps (every housekeeping), only runs that something moved:
        // a task finished or was reaped, the run just started, or its last plan
        // left tasks waiting for room or for a retry time.
        let mut due = self.notifier.take_changed_runs();
        due.extend(started);
        due.extend(self.tracker.watched());
        // Housekeeping sweeps the running runs a page at a time (every run
        // within a few housekeepings however many run); every pass reads the
        // runs that something moved, wherever they are in that order.
        let mut runs = if housekeeping {
            self.sweep_page(now).await?
        } else {
            Vec::new()
        };
        let listed: HashSet<RunId> = runs.iter().map(|r| r.id).collect();
        let mut unlisted: Vec<RunId> = due.into_iter().filter(|id| !listed.contains(id)).collect();
        unlisted.sort_unstable();
        for ids in unlisted.chunks(RUNS_PER_READ) {
            let found = self.store.running_runs_by_id(ids).await?;
            let running: HashSet<RunId> = found.iter().map(|r| r.id).collect();
            for id in ids.iter().filter(|id| !running.contains(id)) {
                // Ended without this scheduler (cancelled, marked) or by it.
                self.tracker.finished(*id);
            }
            runs.extend(found);
        }
        self.advance_runs(&runs, now, &mut report).await?;
        if housekeeping {
            self.sweep_versions();
            // The store's clock carried forward past this pass's planning, so a
            // retry's time counts from about when the attempt is reaped.
            report.reaped = self.reap(self.carried_now().unwrap_or(now)).await?;
            if self
                .last_pool_check
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
            {
                self.last_pool_check = Some(std::time::Instant::now());
                self.check_pools().await?;
            }
        }
        if report.queued > 0 {
            // notify_one keeps a permit when the worker is busy claiming, so the
            // wake-up is never lost.
            self.notifier.workers.notify_one();
        }
        Ok(report)
    }

    /// Makes one write of a run's plan; returns how many rows it changed.
    async fn write(
        &mut self,
        action: &RunAction,
        (run, dag, tasks, now): (&RunRow, &Dag, &[TaskRow], Timestamp),
        report: &mut PassReport,
    ) -> gale_store::Result<usize> {
        Ok(match action {
            RunAction::Transitions(transitions) => {
                let n = self.store.apply_transitions(transitions).await?;
                report.transitions += n;
                let queued = transitions
                    .iter()
                    .filter(|t| t.to == TaskState::Queued)
                    .count();
                if n > 0 && queued > 0 {
                    // The count only wakes workers: a transition that raced another
                    // scheduler may be counted although the other one made it.
                    report.queued += queued.min(n);
                    self.notifier.workers.notify_one();
                }
                n
            }
            RunAction::Enqueue {
                dag_id,
                tis,
                max_active_tasks,
            } => {
                let n = self.store.enqueue(dag_id, tis, *max_active_tasks).await?;
                report.queued += n;
                n
            }
            RunAction::FinishRun {
                run_id,
                dag_id,
                state,
            } => {
                let alerts = self.run_alerts(run, dag, *state, tasks, now).await?;
                let finished = self.store.finish_run(*run_id, *state, &alerts).await?;
                if finished {
                    info!(%run_id, %dag_id, %state, "run finished");
                    gale_store::telemetry::telemetry()
                        .runs_finished
                        .get_or_create(&gale_store::telemetry::StateLabels {
                            state: state.as_str(),
                        })
                        .inc();
                    self.tracker.finished(*run_id);
                    report.runs_finished += 1;
                }
                usize::from(finished)
            }
        })
    }

    async fn reap(&mut self, now: Timestamp) -> gale_store::Result<usize> {
        let lease = self.opts.attempt_lease;
        let mut reaped = 0;
        for ti in self.store.expired_attempts(lease).await? {
            let worker = ti.worker_id.clone().unwrap_or_default();
            let message = core::lost_message(worker.as_str(), lease);
            if self
                .reap_at(&ti, worker.as_str(), lease, &message, now)
                .await?
            {
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// Ends a lost attempt (retry or fail, as its task's policy says), only if it
    /// is still running under `worker` with a heartbeat older than `lease` (zero:
    /// whatever its heartbeat).
    pub async fn reap_lost(
        &mut self,
        ti: &gale_store::TaskRow,
        worker: &str,
        lease: Duration,
        message: &str,
    ) -> gale_store::Result<bool> {
        let now = self.store.now().await?;
        self.reap_at(ti, worker, lease, message, now).await
    }

    async fn reap_at(
        &mut self,
        ti: &gale_store::TaskRow,
        worker: &str,
        lease: Duration,
        message: &str,
        now: Timestamp,
    ) -> gale_store::Result<bool> {
        let found = self.task_of(ti).await?;
        let task = found
            .as_ref()
            .and_then(|(_, dag)| dag.dag.task(ti.task_id.as_str()));
        let mut reap = core::lost_attempt(ti, task, worker, lease, message, now);
        if let (Some((run, cached)), Some(task)) = (&found, task) {
            let event = match reap.to {
                TaskState::Failed => Some(TaskEvent::Failed),
                TaskState::UpForRetry => Some(TaskEvent::Retry),
                _ => None,
            };
            if let Some(event) = event
                && alerts::task_may_alert(&cached.dag, task, event)
            {
                let defaults = self.alert_defaults.get(&*self.store).await?;
                let channels = alerts::task_channels(&cached.dag, task, event, &defaults);
                reap.alerts = AlertEvent::task(
                    event,
                    run,
                    ti.id,
                    &ti.task_id,
                    ti.try_number,
                    reap.to.as_str(),
                    Some(message),
                    now,
                )
                .deliveries(&channels);
            }
        }
        let applied = self.store.reap_attempt(&reap).await?;
        if applied {
            warn!(ti = %ti.id, dag_id = %ti.dag_id, task_id = %ti.task_id, try_number = ti.try_number, next = %reap.to, "{message}");
            // The try's log says how it ended, after its last line.
            let line = gale_store::LogLine {
                ts: now,
                stream: gale_store::Stream::System,
                text: format!("[gale] {message}"),
            };
            if let Err(e) = self.store.append_logs(ti.id, ti.try_number, &[line]).await {
                debug!(ti = %ti.id, error = %e, "cannot note the lost attempt in its log");
            }
            self.notifier.run_changed(ti.run_id);
        }
        Ok(applied)
    }

    /// The store's clock as last read, carried forward by the monotonic clock.
    fn carried_now(&self) -> Option<Timestamp> {
        self.clock
            .map(|(at, read)| at + SignedDuration::try_from(read.elapsed()).unwrap_or_default())
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The run of `ti` and its DAG version, if both still exist.
    async fn task_of(
        &mut self,
        ti: &gale_store::TaskRow,
    ) -> gale_store::Result<Option<(RunRow, Arc<CachedDag>)>> {
        let Some(run) = self.store.get_run(ti.run_id).await? else {
            return Ok(None);
        };
        Ok(self
            .version(&run.dag_id, &run.version_hash)
            .await?
            .map(|c| (run, c)))
    }

    /// The alerts a run's end causes: its failure (naming its failed tasks),
    /// its success, and its recovery when the DAG's run before it failed.
    async fn run_alerts(
        &mut self,
        run: &RunRow,
        dag: &Dag,
        state: RunState,
        tasks: &[TaskRow],
        now: Timestamp,
    ) -> gale_store::Result<Vec<NewDelivery>> {
        let defaults = self.alert_defaults.get(&*self.store).await?;
        let seq = now.as_millisecond();
        let ended = RunRow {
            state,
            ..run.clone()
        };
        let mut out = Vec::new();
        if state == RunState::Failed {
            let channels = alerts::run_channels(dag, RunEvent::Failed, &defaults);
            if !channels.is_empty() {
                let mut event = AlertEvent::run(RunEvent::Failed, &ended, seq, now);
                let failed: Vec<&TaskRow> = tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Failed)
                    .collect();
                if let Some(first) = failed.first() {
                    // The log shown is the first failed task's.
                    event.ti_id = Some(first.id);
                    event.try_number = Some(first.try_number);
                }
                event.details.insert(
                    "failed_tasks".into(),
                    failed
                        .iter()
                        .take(100)
                        .map(|t| {
                            serde_json::json!({
                                "task_id": t.task_id.0, "ti_id": t.id.0, "try_number": t.try_number
                            })
                        })
                        .collect(),
                );
                event
                    .details
                    .insert("failed_count".into(), failed.len().into());
                out.extend(event.deliveries(&channels));
            }
        } else if state == RunState::Success {
            let channels = alerts::run_channels(dag, RunEvent::Success, &defaults);
            out.extend(AlertEvent::run(RunEvent::Success, &ended, seq, now).deliveries(&channels));
            let channels = alerts::run_channels(dag, RunEvent::Recovered, &defaults);
            if !channels.is_empty()
                && let Some(previous) = self
                    .store
                    .previous_finished_run(&run.dag_id, run.id)
                    .await?
                && previous.state == RunState::Failed
            {
                let mut event = AlertEvent::run(RunEvent::Recovered, &ended, seq, now);
                event
                    .details
                    .insert("previous_run_id".into(), previous.id.0.into());
                out.extend(event.deliveries(&channels));
            }
        }
        Ok(out)
    }

    /// The deadline alerts of a page of the running runs (`whole`: every
    /// running run) and, every [`DEADLINES_EVERY`], of the queued ones (the
    /// newest [`QUEUED_CHECKED`]). A run without a deadline costs a look at
    /// its cached version.
    async fn deadlines(
        &mut self,
        running: &[RunRow],
        whole: bool,
        now: Timestamp,
    ) -> gale_store::Result<()> {
        self.check_deadlines(running, now).await?;
        if self
            .last_deadline_check
            .is_some_and(|at| at.elapsed() < DEADLINES_EVERY)
        {
            return Ok(());
        }
        self.last_deadline_check = Some(std::time::Instant::now());
        // A run waiting in the queue (behind `max_active_runs`) can miss
        // its deadline too.
        let queued = self
            .store
            .list_runs(&gale_store::RunFilter {
                state: Some(RunState::Queued),
                limit: QUEUED_CHECKED,
                ..Default::default()
            })
            .await?;
        if whole && queued.len() < QUEUED_CHECKED as usize {
            // Every unfinished run is listed: forget the ones that ended.
            let ids: HashSet<RunId> = running.iter().chain(&queued).map(|r| r.id).collect();
            self.deadlines_seen.retain(|id| ids.contains(id));
        }
        self.check_deadlines(&queued, now).await
    }

    /// Writes the deadline alert of each run past its DAG's `deadline:`
    /// (once per run: the outbox keeps one per run and channel).
    async fn check_deadlines(
        &mut self,
        running: &[RunRow],
        now: Timestamp,
    ) -> gale_store::Result<()> {
        for run in running {
            if self.deadlines_seen.contains(&run.id) {
                continue;
            }
            let Some(cached) = self.version(&run.dag_id, &run.version_hash).await? else {
                continue;
            };
            let Some(deadline) = cached.dag.deadline else {
                continue;
            };
            let after = SignedDuration::try_from(deadline.after.0).unwrap_or(SignedDuration::MAX);
            let anchor = match (deadline.from, run.run_type) {
                // A scheduled run counts from its interval's end, unless it
                // was made long after it (a catch-up run): then, as a
                // backfill or a manual run does, from when it was made.
                (alerts::DeadlineFrom::IntervalEnd, RunType::Scheduled)
                    if run.created_at
                        <= run
                            .interval_end
                            .saturating_add(after)
                            .unwrap_or(Timestamp::MAX) =>
                {
                    run.interval_end
                }
                _ => run.created_at,
            };
            let due = anchor.saturating_add(after).unwrap_or(Timestamp::MAX);
            if now < due {
                continue;
            }
            let defaults = self.alert_defaults.get(&*self.store).await?;
            let channels = alerts::run_channels(&cached.dag, RunEvent::Deadline, &defaults);
            let mut event = AlertEvent::run(RunEvent::Deadline, run, 0, now);
            event.message = Some(format!(
                "run {} of {} is not finished {} after {}",
                run.run_key,
                run.dag_id,
                deadline.after,
                rfc3339(anchor)
            ));
            event.details.insert("deadline".into(), rfc3339(due).into());
            let n = self
                .store
                .enqueue_alerts(&event.deliveries(&channels))
                .await?;
            if n > 0 {
                warn!(run_id = %run.id, dag_id = %run.dag_id, "run missed its deadline: alert written");
            }
            self.deadlines_seen.insert(run.id);
        }
        Ok(())
    }
}
