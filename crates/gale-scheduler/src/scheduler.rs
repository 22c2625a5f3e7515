//! The scheduling loop: create due runs, start queued runs within
//! `max_active_runs`, move task instances along, queue ready ones within
//! `max_active_tasks`, finish runs, and reap attempts whose lease expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gale_model::schedule::{Cursor, intervals_between, next_due_interval};
use gale_model::state::after_failure;
use gale_model::time::rfc3339;
use gale_model::{Dag, DagId, RunId, TaskState};
use gale_store::{NewRun, NewTask, Notifier, Reap, RunRow, RunType, SlotStatus, Store};
use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::plan::{plan_run, topo_order};

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

/// Most slots recorded for one gap in a DAG's schedule (the newest ones).
const MAX_SLOTS_PASSED_OVER: usize = 1000;

/// How often a busy scheduler creates due runs, starts queued ones and reaps.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);

/// A parsed DAG version and its task order, cached by (dag id, version hash).
pub struct CachedDag {
    pub dag: Dag,
    pub order: Vec<usize>,
}

pub struct Scheduler<S: ?Sized> {
    store: Arc<S>,
    notifier: Arc<Notifier>,
    opts: SchedulerOptions,
    versions: HashMap<(DagId, String), Arc<CachedDag>>,
    /// Each running run's task-state counts as of its last plan: a run whose counts
    /// have not moved (and has no retry waiting) has nothing new to plan.
    planned: HashMap<RunId, Vec<(TaskState, u32)>>,
    last_housekeeping: Option<std::time::Instant>,
    /// The store's clock as last read, and when: `now` between readings.
    clock: Option<(Timestamp, std::time::Instant)>,
    last_pool_check: Option<std::time::Instant>,
    /// Running runs planned on every pass, not only when they change: some of
    /// their tasks wait for room (`max_active_tasks`, a pool) or a retry time.
    watch: std::collections::HashSet<RunId>,
    /// (DAG, pool) pairs already warned about: a task names a pool that does not exist.
    warned_pools: std::collections::HashSet<(DagId, String)>,
}

/// Transitions written per statement. A plan of thousands of ready tasks is
/// written in several, so workers can claim the first while the rest follow.
const TRANSITION_CHUNK: usize = 256;

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

impl<S: Store + ?Sized> Scheduler<S> {
    pub fn new(store: Arc<S>, notifier: Arc<Notifier>, opts: SchedulerOptions) -> Self {
        Scheduler {
            store,
            notifier,
            opts,
            versions: HashMap::new(),
            planned: HashMap::new(),
            last_housekeeping: None,
            clock: None,
            last_pool_check: None,
            watch: std::collections::HashSet::new(),
            warned_pools: std::collections::HashSet::new(),
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
        if let Some(v) = self.versions.get(&key) {
            return Ok(Some(v.clone()));
        }
        let Some(version) = self.store.get_version(dag_id, hash).await? else {
            return Ok(None);
        };
        if self.versions.len() > 1000 {
            self.versions.clear();
        }
        let order = topo_order(&version.spec);
        let cached = Arc::new(CachedDag {
            dag: version.spec,
            order,
        });
        self.versions.insert(key, cached.clone());
        Ok(Some(cached))
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
            match self.clock {
                Some((at, read)) => {
                    at + SignedDuration::try_from(read.elapsed()).unwrap_or_default()
                }
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
        due.extend(self.watch.iter().copied());
        for run in self.store.running_runs(self.opts.max_runs_per_pass).await? {
            if housekeeping || due.contains(&run.id) {
                self.advance_run(&run, now, &mut report).await?;
            }
        }
        if housekeeping {
            report.reaped = self.reap().await?;
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

    async fn create_due_runs(&mut self, now: Timestamp) -> gale_store::Result<usize> {
        let mut created = 0;
        for row in self.store.list_dags().await? {
            if !row.active
                || row.schedule.is_none()
                || (row.paused && row.last_interval_end.is_none())
            {
                continue;
            }
            let Some(cached) = self.version(&row.dag_id, &row.version_hash).await? else {
                continue;
            };
            let dag = &cached.dag;
            let Some(schedule) = dag.parsed_schedule() else {
                continue;
            };
            let mut cursor = Cursor {
                start_date: dag.start_date,
                end_date: dag.end_date,
                catchup: dag.catchup,
                last_end: row.last_interval_end,
            };
            if !dag.catchup {
                let passed = self.pass_over_slots(&row, &schedule, cursor, now).await?;
                if row.paused {
                    continue;
                }
                cursor.last_end = cursor.last_end.max(passed);
            } else if row.paused {
                continue;
            }
            let mut active = self.store.count_active_runs(&row.dag_id).await?;
            // Bounded: a catchup over years creates runs as earlier ones finish.
            for _ in 0..16 {
                if active >= dag.max_active_runs {
                    break;
                }
                let Some(interval) = next_due_interval(&schedule, cursor, now) else {
                    break;
                };
                let run = NewRun {
                    dag_id: row.dag_id.clone(),
                    run_key: format!("scheduled__{}", rfc3339(interval.start)),
                    run_type: RunType::Scheduled,
                    version_hash: row.version_hash.clone(),
                    logical_date: interval.start,
                    interval_start: interval.start,
                    interval_end: interval.end,
                    conf: serde_json::Map::new(),
                    tasks: NewTask::for_dag(dag),
                };
                if let Some(run_id) = self.store.create_run(&run).await? {
                    info!(dag_id = %row.dag_id, %run_id, logical_date = %rfc3339(interval.start), "created scheduled run");
                    created += 1;
                    active += 1;
                }
                cursor.last_end = Some(interval.end);
            }
        }
        Ok(created)
    }

    /// Warns (once per DAG and pool) about tasks that name a pool that does not
    /// exist: their task instances wait in `scheduled` until it is created.
    async fn check_pools(&mut self) -> gale_store::Result<()> {
        let pools: std::collections::HashSet<String> = self
            .store
            .list_pools()
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        for row in self.store.list_dags().await? {
            if !row.active {
                continue;
            }
            let Some(cached) = self.version(&row.dag_id, &row.version_hash).await? else {
                continue;
            };
            for task in &cached.dag.tasks {
                if let Some(pool) = &task.pool
                    && !pools.contains(pool)
                    && self.warned_pools.insert((row.dag_id.clone(), pool.clone()))
                {
                    warn!(dag_id = %row.dag_id, task_id = %task.id, %pool, "task names a pool that does not exist: its attempts wait until `gale pools set {pool} SLOTS` creates it");
                }
            }
        }
        Ok(())
    }

    /// Records in the slot ledger the slots a DAG without catchup will never run:
    /// those that passed while it was paused (`skipped`), before its first run
    /// (`skipped`), or while no scheduler ran (`missed`): the newest 1000 of them,
    /// since the cursor moves past all of them at once.
    /// Returns the end of the last slot passed over (the DAG's cursor moved there).
    async fn pass_over_slots(
        &mut self,
        row: &gale_store::DagRow,
        schedule: &gale_model::schedule::Schedule,
        cursor: Cursor,
        now: Timestamp,
    ) -> gale_store::Result<Option<Timestamp>> {
        let Some(latest) = next_due_interval(schedule, cursor, now) else {
            return Ok(None);
        };
        let earliest = match (cursor.last_end, cursor.start_date) {
            (Some(end), _) => Some(end),
            (None, Some(start)) => schedule.next_at_or_after(start),
            (None, None) => None,
        };
        let Some(mut from) = earliest else {
            return Ok(None);
        };
        // Paused: the latest slot is passed over too; running: it gets a run.
        let (until, last) = if row.paused {
            (latest.start, Some(latest.start))
        } else {
            (
                latest.start - SignedDuration::from_micros(1),
                schedule.prev_before(latest.start),
            )
        };
        if from > until {
            return Ok(None);
        }
        // A long gap (a year of a minutely schedule) keeps its newest slots.
        let mut oldest_kept = last;
        for _ in 1..MAX_SLOTS_PASSED_OVER {
            match oldest_kept.and_then(|t| schedule.prev_before(t)) {
                Some(t) if t >= from => oldest_kept = Some(t),
                _ => break,
            }
        }
        if let Some(t) = oldest_kept {
            from = from.max(t);
        }
        let slots: Vec<(Timestamp, Timestamp)> =
            intervals_between(schedule, from, until, MAX_SLOTS_PASSED_OVER)
                .into_iter()
                .map(|iv| (iv.start, iv.end))
                .collect();
        let status = if row.paused || cursor.last_end.is_none() {
            SlotStatus::Skipped
        } else {
            SlotStatus::Missed
        };
        let n = self.store.record_slots(&row.dag_id, status, &slots).await?;
        if n > 0 && status == SlotStatus::Missed {
            warn!(dag_id = %row.dag_id, slots = n, "schedule slots passed while no scheduler ran; catchup is off, so they are recorded as missed");
        }
        Ok(slots.last().map(|s| s.1))
    }

    async fn advance_run(
        &mut self,
        run: &RunRow,
        now: Timestamp,
        report: &mut PassReport,
    ) -> gale_store::Result<()> {
        let Some(cached) = self.version(&run.dag_id, &run.version_hash).await? else {
            warn!(run_id = %run.id, dag_id = %run.dag_id, "run's DAG version is missing from the store");
            return Ok(());
        };
        // Nothing waiting and something in flight: a plan would change nothing (a
        // run ends only when every task has). This check stops at the first
        // matching row, so a large fan-out costs nothing per finished task.
        let activity = self.store.run_activity(run.id).await?;
        if !activity.pending && activity.in_flight {
            self.watch.remove(&run.id);
            return Ok(());
        }
        // Reading a large run costs milliseconds; counting its states by index costs
        // less. Plan only when something a plan looks at has changed.
        let mut counts = self.store.run_state_counts(run.id).await?;
        counts.sort_by_key(|(s, _)| s.as_str());
        let count = |state: TaskState| {
            counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n)
        };
        let waiting = count(TaskState::None);
        // Scheduled ones may be held back by `max_active_tasks` or a pool, which
        // other runs' attempts free, and retries wait for their time: such runs
        // get planned every pass.
        let scheduled = count(TaskState::Scheduled);
        let retrying = count(TaskState::UpForRetry);
        if scheduled > 0 || retrying > 0 {
            self.watch.insert(run.id);
        } else {
            self.watch.remove(&run.id);
        }
        let in_flight = count(TaskState::Queued) + count(TaskState::Running);
        // States only move forward (a retry cycle ends in flight again), so equal
        // counts mean no upstream finished since the last plan.
        let unchanged = self.planned.get(&run.id) == Some(&counts);
        if scheduled == 0 && retrying == 0 && in_flight > 0 && (waiting == 0 || unchanged) {
            return Ok(());
        }
        if self.planned.len() > 10_000 {
            self.planned.clear();
        }
        self.planned.insert(run.id, counts);
        // A few rounds, so that chains of skips settle in one pass.
        let moved_before = report.transitions + report.queued;
        for _ in 0..4 {
            let tasks = self.store.run_tasks(run.id).await?;
            let plan = plan_run(&cached.dag, &cached.order, &tasks, now);
            // In chunks, queued tasks last and most urgent first (see `plan_run`):
            // workers start on the first chunk while the rest of a large
            // fan-out is still being written.
            let mut applied = 0;
            for chunk in plan.transitions.chunks(TRANSITION_CHUNK) {
                let n = self.store.apply_transitions(chunk).await?;
                applied += n;
                let queued = chunk.iter().filter(|t| t.to == TaskState::Queued).count();
                if n > 0 && queued > 0 {
                    // The count only wakes workers: a transition that raced another
                    // scheduler may be counted although the other one made it.
                    report.queued += queued.min(n);
                    self.notifier.workers.notify_one();
                }
            }
            report.transitions += applied;
            if !plan.enqueue.is_empty() {
                report.queued += self
                    .store
                    .enqueue(&run.dag_id, &plan.enqueue, cached.dag.max_active_tasks)
                    .await?;
            }
            if let Some(outcome) = plan.outcome {
                if applied == plan.transitions.len()
                    && self.store.finish_run(run.id, outcome).await?
                {
                    info!(run_id = %run.id, dag_id = %run.dag_id, state = %outcome, "run finished");
                    self.planned.remove(&run.id);
                    self.watch.remove(&run.id);
                    report.runs_finished += 1;
                }
                break;
            }
            if applied == 0 {
                break;
            }
        }
        // What this plan moved may let more move: look again next pass.
        if report.transitions + report.queued > moved_before {
            self.notifier.mark_run(run.id);
        }
        Ok(())
    }

    async fn reap(&mut self) -> gale_store::Result<usize> {
        let lease = self.opts.attempt_lease;
        let mut reaped = 0;
        for ti in self.store.expired_attempts(lease).await? {
            let worker = ti.worker_id.clone().unwrap_or_default();
            let message = format!(
                "attempt lost: worker {worker} stopped heart-beating for more than {}s",
                lease.as_secs()
            );
            if self
                .reap_lost(&ti, worker.as_str(), lease, &message)
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
        let (to, retry_at) = self.retry_policy(ti).await?;
        let applied = self
            .store
            .reap_attempt(&Reap {
                ti: ti.id,
                try_number: ti.try_number,
                worker_id: worker.into(),
                lease,
                to,
                retry_at,
                outcome: gale_store::Outcome::Lost,
                message: message.to_owned(),
                refund_try: false,
            })
            .await?;
        if applied {
            warn!(ti = %ti.id, dag_id = %ti.dag_id, task_id = %ti.task_id, try_number = ti.try_number, next = %to, "{message}");
            self.notifier.run_changed(ti.run_id);
        }
        Ok(applied)
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    async fn retry_policy(
        &mut self,
        ti: &gale_store::TaskRow,
    ) -> gale_store::Result<(TaskState, Option<Timestamp>)> {
        let run = self.store.get_run(ti.run_id).await?;
        let task = match run {
            Some(run) => self
                .version(&run.dag_id, &run.version_hash)
                .await?
                .and_then(|c| c.dag.task(ti.task_id.as_str()).cloned()),
            None => None,
        };
        let now = self.store.now().await?;
        Ok(match task {
            Some(t) => {
                let retries = ti.max_tries.saturating_sub(1);
                let (state, delay) = after_failure(
                    ti.try_number,
                    retries,
                    t.retry_delay.as_millis(),
                    t.retry_backoff,
                    t.max_retry_delay.map(|d| d.as_millis()),
                );
                (
                    state,
                    delay.map(|ms| now + SignedDuration::from_millis(ms as i64)),
                )
            }
            None => (TaskState::Failed, None),
        })
    }
}
