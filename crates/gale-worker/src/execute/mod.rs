//! Runs one attempt: renders it, starts it (a shell command in its own process
//! group, or an HTTP request), waits within its timeout, collects its outputs, and
//! reports the result through the store's fence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gale_model::mask::Masker;
use gale_model::state::{AfterFailure, RetryPolicy};
use gale_model::template::{self, Context, TaskOutputs, isoformat};
use gale_model::time::rfc3339;
use gale_model::{Dag, HttpSpec, Task, TaskKind, TaskState};
use gale_store::{AttemptState, Claim, Finish, RunRow, Stream};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

mod http;
mod prev;
mod process;
mod secrets;

use http::run_http;
pub use process::run_shell;
#[cfg(test)]
use process::{pump, read_outputs};

use crate::logs::{LineTx, LogSink};
use crate::{KillReason, Limits, Shared, WorkerStore};

/// A shell task still running this long after it started gets its pid recorded
/// at once; shorter ones have it recorded with their result.
const RECORD_PROCESS_AFTER: Duration = Duration::from_millis(200);

/// A task that exits with this code is `skipped`, not failed.
pub const EXIT_SKIP: i32 = 99;

/// How an attempt ended, before the retry policy is applied.
#[derive(Debug)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub outputs: BTreeMap<String, String>,
    /// The shell's pid (its process group id), for shell tasks that started.
    pub pid: Option<u32>,
    /// The rendered command, for shell tasks.
    pub command: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Success,
    Skipped,
    Failed,
    TimedOut,
    /// Killed on request (fenced, shutdown).
    Killed,
}

impl OutcomeKind {
    /// What the attempt record says.
    fn recorded(self) -> gale_store::Outcome {
        match self {
            OutcomeKind::Success => gale_store::Outcome::Success,
            OutcomeKind::Skipped => gale_store::Outcome::Skipped,
            OutcomeKind::Failed => gale_store::Outcome::Failed,
            OutcomeKind::TimedOut => gale_store::Outcome::TimedOut,
            OutcomeKind::Killed => gale_store::Outcome::Killed,
        }
    }
}

fn failed(message: String) -> Outcome {
    Outcome {
        kind: OutcomeKind::Failed,
        exit_code: None,
        message: Some(message),
        outputs: BTreeMap::new(),
        pid: None,
        command: None,
    }
}

/// The template context of one attempt, `schedule` the DAG's parsed.
pub fn context(
    dag: &Dag,
    schedule: Option<&gale_model::schedule::Schedule>,
    task: &Task,
    run: &RunRow,
    try_number: u32,
    upstream: BTreeMap<String, TaskOutputs>,
) -> Context {
    let mut params = dag.params.clone();
    for (k, v) in &run.conf {
        params.insert(k.clone(), v.clone());
    }
    let logical = run.logical_date;
    let ts = isoformat(logical);
    Context {
        dag_id: dag.id.0.clone(),
        task_id: task.id.0.clone(),
        run_id: gale_model::run::airflow_run_id(run.run_type, logical),
        run_number: run.id.0,
        run_type: run.run_type.as_str().to_owned(),
        try_number,
        ds: logical.strftime("%Y-%m-%d").to_string(),
        ds_nodash: logical.strftime("%Y%m%d").to_string(),
        logical_date: ts.clone(),
        ts,
        data_interval_start: isoformat(run.interval_start),
        data_interval_end: isoformat(run.interval_end),
        params,
        conf: run.conf.clone(),
        tasks: upstream,
        lookup: None,
        prev: prev::names(schedule, run),
    }
}

/// Environment variables every task gets.
fn gale_env(ctx: &Context, output: &Path) -> Vec<(String, String)> {
    vec![
        ("GALE_DAG_ID".into(), ctx.dag_id.clone()),
        ("GALE_RUN_ID".into(), ctx.run_number.to_string()),
        ("GALE_TASK_ID".into(), ctx.task_id.clone()),
        ("GALE_TRY_NUMBER".into(), ctx.try_number.to_string()),
        ("GALE_LOGICAL_DATE".into(), ctx.ts.clone()),
        ("GALE_OUTPUT".into(), output.display().to_string()),
    ]
}

pub(crate) async fn execute<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
    claim: Claim,
    lease: Arc<crate::Lease>,
    kill: CancellationToken,
    kill_reason: Arc<Mutex<Option<KillReason>>>,
    hard_kill: Arc<std::sync::atomic::AtomicBool>,
) {
    let Claim { task: row, run } = claim;
    let (ti, try_number) = (row.id, row.try_number);
    let telemetry = gale_store::telemetry::telemetry();
    let claimed = std::time::Instant::now();
    if let (Some(queued), Some(started)) = (row.queued_at, row.started_at) {
        telemetry
            .queue_wait
            .observe(started.duration_since(queued).as_secs_f64().max(0.0));
    }
    // Set when the process (or request) starts: claim-to-start, then the duration.
    let began = std::sync::OnceLock::new();
    let sink = LogSink::start(shared.store.clone(), ti, try_number, shared.opts.limits);

    // Read again while the store is unavailable: a transient outage must not
    // fail a task whose process has not started.
    let spec = match read_retrying(&kill, || shared.spec(&run.dag_id, &run.version_hash)).await {
        Ok(Some(spec)) => Ok(spec),
        Ok(None) => Err(format!(
            "DAG version {} of {} is missing from the store",
            run.version_hash, run.dag_id
        )),
        Err(e) => Err(format!("cannot load DAG version: {e}")),
    };
    let task = spec.as_ref().map_err(Clone::clone).and_then(|d| {
        d.task(row.task_id.as_str()).cloned().ok_or_else(|| {
            format!(
                "task {} is not in DAG version {}",
                row.task_id, run.version_hash
            )
        })
    });

    // A task is not run with its inputs missing: failed, and retried by its
    // policy.
    let upstream = match (&spec, &task) {
        (Ok(spec), Ok(t)) if spec.names(t.id.as_str()).upstream_outputs => {
            upstream_outputs(shared, &run, &spec.dag, t, &kill).await
        }
        _ => Ok(BTreeMap::new()),
    };
    let outcome = match (&spec, &task, upstream) {
        (Ok(spec), Ok(task), Ok(upstream)) => 'ran: {
            let mut ctx = context(
                &spec.dag,
                spec.schedule.as_ref(),
                task,
                &run,
                try_number,
                upstream,
            );
            if spec.names(task.id.as_str()).prev_success {
                prev::success(shared, &run, &mut ctx.prev).await;
            }
            let prepared =
                secrets::prepare(shared.opts.resolver.as_deref(), task, &mut ctx, &kill).await;
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    sink.set_mask(Masker::of_attempt(&spec.dag, task, &ctx));
                    break 'ran failed(e);
                }
            };
            let task = prepared.task.as_ref().unwrap_or(task);
            sink.set_mask(Masker::of_attempt(&spec.dag, task, &ctx).with(&prepared.secrets));
            let work = Work {
                opts_cwd: &shared.opts.default_cwd,
                kill_grace: shared.opts.kill_grace,
                hard_kill: &hard_kill,
                limits: shared.opts.limits,
                http: &shared.http,
                task_env: &shared.opts.task_env,
            };
            match &task.kind {
                TaskKind::Shell { run: template_text } => {
                    match template::render(template_text, &ctx, template::Escape::Shell) {
                        Ok(command) => {
                            // Stored and shown masked; run as rendered.
                            let shown = sink.masked(&command);
                            let output = output_path(ti.0, try_number);
                            let started = Arc::new(std::sync::atomic::AtomicBool::new(true));
                            let on_start = |pid: Option<u32>| {
                                if began.set(std::time::Instant::now()).is_ok() {
                                    telemetry
                                        .claim_to_start
                                        .observe(claimed.elapsed().as_secs_f64());
                                }
                                if let Some(pid) = pid {
                                    // Watched before a renewal can see the
                                    // pid: its extension then follows the start.
                                    shared
                                        .guard
                                        .watch(pid, lease.deadline(shared.opts.guard_after()));
                                    lease.pgid.store(pid, std::sync::atomic::Ordering::Release);
                                }
                                let store = shared.store.clone();
                                let command = shown.clone();
                                let running = started.clone();
                                async move {
                                    // Most tasks end within moments and their pid and
                                    // command go into the result write; only a task still
                                    // running after a short while costs a write of its own
                                    // (recovery needs its pid to end its process group).
                                    tokio::spawn(async move {
                                        tokio::time::sleep(RECORD_PROCESS_AFTER).await;
                                        if !running.load(std::sync::atomic::Ordering::Acquire) {
                                            return;
                                        }
                                        if let Err(e) = store
                                            .record_process(
                                                ti,
                                                try_number,
                                                pid.map(i64::from),
                                                &command,
                                            )
                                            .await
                                        {
                                            warn!(%ti, error = %e, "could not record the attempt's process");
                                        }
                                    });
                                }
                            };
                            let outcome = run_shell(
                                &work,
                                task,
                                &command,
                                &ctx,
                                &output,
                                sink.sender(),
                                kill.clone(),
                                on_start,
                            )
                            .await;
                            started.store(false, std::sync::atomic::Ordering::Release);
                            if let Some(pid) = outcome.pid {
                                // Renewals after this list it no more (one
                                // that read it already extends nothing: the
                                // guard extends only what it still holds).
                                lease.pgid.store(0, std::sync::atomic::Ordering::Release);
                                shared.guard.forget(pid);
                            }
                            Outcome {
                                command: Some(shown),
                                ..outcome
                            }
                        }
                        Err(e) => failed(e),
                    }
                }
                TaskKind::Http(h) => {
                    let _ = began.set(std::time::Instant::now());
                    telemetry
                        .claim_to_start
                        .observe(claimed.elapsed().as_secs_f64());
                    run_http(&work, task, h, &ctx, sink.sender(), kill.clone()).await
                }
            }
        }
        (Err(e), _, _) | (_, Err(e), _) => failed(e.clone()),
        (_, _, Err(e)) => failed(format!("cannot read the upstream tasks' outputs: {e}")),
    };

    // When the process was seen to end: before anything below waits on the
    // store (its log, its result), which a partition can hold up for long.
    let ended = crate::guard::boot_ms();
    if let Some(began) = began.get() {
        telemetry
            .task_duration
            .observe(began.elapsed().as_secs_f64());
    }
    // Messages and outputs are stored as shown: masked.
    let outcome = Outcome {
        message: outcome.message.as_deref().map(|m| sink.masked(m)),
        outputs: outcome
            .outputs
            .into_iter()
            .map(|(k, v)| {
                let v = sink.masked(&v);
                (k, v)
            })
            .collect(),
        ..outcome
    };
    if let Some(m) = &outcome.message {
        sink.system(format!("[gale] {m}")).await;
    }
    // A worker frozen past the attempt's fence deadline (its guard killed the
    // process meanwhile, or it ended on its own at a moment nobody can tell):
    // the lease may have ended and a retry may run elsewhere, so nothing is
    // reported as this attempt's result.
    let reason = {
        let mut reason = kill_reason.lock().unwrap_or_else(|p| p.into_inner());
        if reason.is_none() && lease.deadline(shared.opts.fence_after()) <= crate::guard::boot_ms()
        {
            warn!(%ti, try_number, "the attempt's lease went unrenewed past its fence deadline while this worker was stalled: reporting nothing for it");
            *reason = Some(KillReason::SelfFenced);
        }
        *reason
    };
    match reason {
        Some(KillReason::Fenced) => {
            sink.system("[gale] attempt killed: the store no longer lists it as running on this worker (it was reaped, cancelled or marked by an operator); its result is discarded").await;
            sink.close().await;
            return;
        }
        Some(KillReason::SelfFenced) => {
            sink.system("[gale] attempt killed: this worker could not renew its lease; it will be retried elsewhere").await;
            sink.close().await;
            record_stop(shared, &row, &lease, outcome.pid, ended).await;
            return;
        }
        Some(KillReason::HandedBack) => {
            sink.system("[gale] attempt stopped: the worker shut down before it finished; handed back for a retry").await;
            sink.close().await;
            shared
                .hand_back(
                    ti,
                    try_number,
                    "worker shut down before the attempt finished",
                )
                .await;
            return;
        }
        None => {}
    }

    let (state, retry_at) = match outcome.kind {
        OutcomeKind::Success => (TaskState::Success, None),
        OutcomeKind::Skipped => (TaskState::Skipped, None),
        OutcomeKind::Failed | OutcomeKind::TimedOut | OutcomeKind::Killed => {
            match &task {
                Ok(t) => {
                    let next = RetryPolicy::of(t, row.max_tries).after_failure(try_number);
                    let retry_at = match next {
                        AfterFailure::Retry { .. } => {
                            // The store's clock, as for every time a scheduler compares.
                            store_now(shared, ti, row.started_at, &lease)
                                .await
                                .and_then(|now| next.retry_at(now))
                        }
                        AfterFailure::Fail => None,
                    };
                    (next.state(), retry_at)
                }
                Err(_) => (TaskState::Failed, None),
            }
        }
    };
    if state == TaskState::UpForRetry
        && let Some(at) = retry_at
    {
        sink.system(format!("[gale] will retry at {}", rfc3339(at)))
            .await;
    }
    sink.close().await;
    // The process is gone: stop renewing its lease before reporting, so the
    // heartbeat never mistakes our own finished attempt for a fenced one.
    shared.release(ti, try_number);

    let alerts = match (&spec, &task) {
        (Ok(spec), Ok(t)) => {
            let message = outcome.message.as_deref();
            attempt_alerts(shared, &spec.dag, t, (&run, &row), state, message).await
        }
        _ => Vec::new(),
    };
    let finish = Finish {
        alerts,
        ti,
        try_number,
        worker_id: shared.opts.worker_id.clone(),
        state,
        retry_at,
        outcome: outcome.kind.recorded(),
        exit_code: outcome.exit_code,
        message: outcome.message.clone(),
        outputs: outcome.outputs,
        pid: outcome.pid.map(i64::from),
        command: outcome.command,
    };
    let mut delay = Duration::from_millis(100);
    // Past the lease the attempt may have been reaped; the report is still sent
    // (the fence then rejects it, and says so), just not forever.
    let deadline =
        tokio::time::Instant::now() + (shared.opts.attempt_lease * 3).max(Duration::from_secs(30));
    let mut retried = false;
    loop {
        match shared.reporter.finish(finish.clone()).await {
            Ok(true) => {
                info!(%ti, dag_id = %run.dag_id, task_id = %row.task_id, try_number, state = %state, "attempt finished");
                gale_store::telemetry::telemetry()
                    .attempts_finished
                    .get_or_create(&gale_store::telemetry::StateLabels {
                        state: state.as_str(),
                    })
                    .inc();
                return;
            }
            Ok(false) if retried && recorded(shared, &finish).await => {
                // An earlier try's COMMIT went through before its answer was lost.
                info!(%ti, dag_id = %run.dag_id, task_id = %row.task_id, try_number, state = %state, "attempt finished");
                return;
            }
            Ok(false) => {
                warn!(%ti, dag_id = %run.dag_id, task_id = %row.task_id, try_number, "late result rejected: the attempt was reaped or changed while it ran");
                return;
            }
            // A retried write is safe: the fence makes it apply at most once.
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                retried = true;
                warn!(%ti, error = %e, "reporting the result failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                warn!(%ti, error = %e, "could not report the result; the lease will expire and the reaper retries it");
                return;
            }
        }
    }
}

/// The alerts a try's end causes: its failure, its retry, its success and,
/// on a try after a failed one, its recovery, to the channels its task (or
/// DAG, or the defaults) names.
async fn attempt_alerts<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
    dag: &gale_model::Dag,
    task: &gale_model::Task,
    (run, row): (&gale_store::RunRow, &gale_store::TaskRow),
    state: TaskState,
    message: Option<&str>,
) -> Vec<gale_store::NewDelivery> {
    use gale_model::alerts::{TaskEvent, task_channels, task_may_alert};
    let events: &[TaskEvent] = match state {
        TaskState::Failed => &[TaskEvent::Failed],
        TaskState::UpForRetry => &[TaskEvent::Retry],
        TaskState::Success
            if row.try_number > 1
                && task_may_alert(dag, task, TaskEvent::Recovered)
                && after_a_failure(shared, row).await =>
        {
            &[TaskEvent::Success, TaskEvent::Recovered]
        }
        TaskState::Success => &[TaskEvent::Success],
        _ => &[],
    };
    let mut out = Vec::new();
    for &event in events {
        if !task_may_alert(dag, task, event) {
            continue;
        }
        let defaults = alert_defaults(shared).await;
        let channels = task_channels(dag, task, event, &defaults);
        let event = gale_store::alert_events::AlertEvent::task(
            event,
            run,
            row.id,
            &row.task_id,
            row.try_number,
            state.as_str(),
            message,
            jiff::Timestamp::now(),
        );
        out.extend(event.deliveries(&channels));
    }
    out
}

/// The channel defaults; while the store cannot give them (never read
/// yet), asked again for up to [`DEFAULTS_PATIENCE`], as the result itself
/// would wait for the store. Only past that, none (with an error logged).
async fn alert_defaults<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
) -> std::sync::Arc<gale_model::alerts::Defaults> {
    let until = tokio::time::Instant::now() + DEFAULTS_PATIENCE;
    let mut delay = Duration::from_millis(100);
    loop {
        match shared.alert_defaults.get(&*shared.store).await {
            Ok(d) => return d,
            Err(e) if tokio::time::Instant::now() + delay < until => {
                debug!(error = %e, "cannot read the alert channels yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                error!(error = %e, "cannot read the alert channels: alerts routed by channel defaults are not written for this result");
                return Default::default();
            }
        }
    }
}

/// How long a result waits for the alert channel defaults.
const DEFAULTS_PATIENCE: Duration = Duration::from_secs(30);

/// Whether the try before this one (a refunded or cleared try does not
/// count as one) failed: a success then is a recovery. A store that cannot
/// answer says no.
async fn after_a_failure<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
    row: &gale_store::TaskRow,
) -> bool {
    use gale_store::{AttemptState, Outcome};
    let attempts = match shared.store.attempts(row.id).await {
        Ok(a) => a,
        Err(e) => {
            warn!(ti = %row.id, error = %e, "cannot read the task's tries: no recovery alert");
            return false;
        }
    };
    attempts
        .iter()
        .filter(|a| a.try_number < row.try_number)
        .max_by_key(|a| (a.try_number, a.started_at))
        .is_some_and(|a| {
            matches!(
                a.state,
                AttemptState::Ended(
                    Outcome::Failed | Outcome::TimedOut | Outcome::Lost | Outcome::Killed
                )
            )
        })
}

/// The store's clock now, for a retry time. When the store cannot answer, the
/// attempt's start on the store's clock (`started_at`, from its claim) carried
/// forward by this machine's boot clock from the moment the claim was sent:
/// never this machine's wall clock, which may be minutes off. The claim ran
/// after it was sent, so the estimate is never behind the store's clock and a
/// retry never comes early. `None` only for a claim without a start time.
async fn store_now<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
    ti: gale_store::TiId,
    started_at: Option<jiff::Timestamp>,
    lease: &crate::Lease,
) -> Option<jiff::Timestamp> {
    match shared.store.now().await {
        Ok(now) => Some(now),
        Err(e) => {
            let since_claim = crate::guard::boot_ms().saturating_sub(lease.claimed);
            let now = started_at.map(|at| carried_forward(at, since_claim));
            warn!(%ti, error = %e, "cannot read the store's clock: the retry time is counted from the attempt's start on it");
            now
        }
    }
}

/// A fenced try's process stopped (its guard killed it at its deadline, or
/// this worker did, and saw it end at `ended`): once the scheduler has reaped the try as `lost`, its
/// record says when, on the store's clock (the try's start carried forward by
/// the boot clock, so never earlier than the truth). Asked again after a lease
/// while the try is not reaped yet; nothing else is reported for it.
async fn record_stop<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
    row: &gale_store::TaskRow,
    lease: &crate::Lease,
    pid: Option<u32>,
    ended: u64,
) {
    let killed = match pid {
        Some(pgid) => shared.guard.killed_at(pgid).await,
        None => None,
    };
    // The guard's kill, else when this worker saw the process end.
    let stopped_boot = killed.map_or(ended, |k| k.min(ended));
    let Some(start) = row.started_at else { return };
    let stopped = carried_forward(start, stopped_boot.saturating_sub(lease.claimed));
    let (store, worker) = (shared.store.clone(), shared.opts.worker_id.clone());
    let (ti, try_number) = (row.id, row.try_number);
    let wait = shared.opts.attempt_lease + Duration::from_secs(1);
    tokio::spawn(async move {
        for _ in 0..3 {
            match store.record_stop(ti, try_number, &worker, stopped).await {
                Ok(true) => {
                    info!(%ti, try_number, stopped_at = %rfc3339(stopped), by_guard = killed.is_some(), "recorded when the fenced attempt's process stopped");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(%ti, error = %e, "could not record when the fenced attempt's process stopped")
                }
            }
            tokio::time::sleep(wait).await;
        }
    });
}

/// `start` moved on by `elapsed_ms`.
fn carried_forward(start: jiff::Timestamp, elapsed_ms: u64) -> jiff::Timestamp {
    let elapsed = jiff::SignedDuration::from_millis(i64::try_from(elapsed_ms).unwrap_or(i64::MAX));
    start
        .saturating_add(elapsed)
        .unwrap_or(jiff::Timestamp::MAX)
}

/// Whether the store already holds exactly this result (a retried report whose
/// first COMMIT succeeded but whose answer was lost with the connection).
async fn recorded<S: WorkerStore + ?Sized>(shared: &Shared<S>, finish: &Finish) -> bool {
    match shared.store.attempts(finish.ti).await {
        Ok(attempts) => attempts.iter().any(|a| {
            a.try_number == finish.try_number
                && a.worker_id == finish.worker_id
                && a.state == AttemptState::Ended(finish.outcome)
                && a.ended_at.is_some()
        }),
        Err(_) => false,
    }
}

/// The outputs of every task upstream of `task` (its ancestors, not only
/// the tasks it names in `needs`), as `tasks.<id>.outputs`.
async fn upstream_outputs<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
    run: &RunRow,
    dag: &gale_model::Dag,
    task: &Task,
    kill: &CancellationToken,
) -> gale_store::Result<BTreeMap<String, TaskOutputs>> {
    let mut out = BTreeMap::new();
    if task.needs.is_empty() {
        return Ok(out);
    }
    let upstream = dag.upstream_of(task.id.as_str());
    for r in read_retrying(kill, || shared.store.run_tasks(run.id)).await? {
        if upstream.contains(r.task_id.as_str()) {
            out.insert(r.task_id.0, TaskOutputs { outputs: r.outputs });
        }
    }
    Ok(out)
}

/// `read` again while the store is unavailable (backing off up to a second)
/// until it answers or the attempt is killed (its lease fenced, the worker
/// shutting down): what an attempt reads before its process starts must not
/// fail it for an outage it can outwait.
async fn read_retrying<T, F, Fut>(kill: &CancellationToken, mut read: F) -> gale_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = gale_store::Result<T>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match read().await {
            Err(e) if e.is_retryable() && !kill.is_cancelled() => {
                tokio::select! {
                    _ = kill.cancelled() => return Err(e),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn output_path(ti: i64, try_number: u32) -> PathBuf {
    std::env::temp_dir().join(format!(
        "gale-output-{ti}-{try_number}-{:016x}",
        rand::random::<u64>()
    ))
}

/// What running a task needs from its worker.
pub struct Work<'a> {
    pub opts_cwd: &'a Path,
    pub kill_grace: Duration,
    /// Set before the kill token fires when the kill is a fence: the process group
    /// then gets SIGKILL at once, since a retry elsewhere may be about to start.
    pub hard_kill: &'a std::sync::atomic::AtomicBool,
    pub limits: Limits,
    pub http: &'a reqwest::Client,
    /// Who a task process runs as and what environment it starts with.
    pub task_env: &'a crate::TaskEnv,
}

/// Runs one task in the foreground for `gale tasks test`: output goes to this
/// process's stdout/stderr and nothing is recorded. Returns the outcome.
pub async fn run_task_once(
    dag: &Dag,
    task: &Task,
    run: &RunRow,
    cwd: &Path,
    resolver: Option<&gale_secrets::Resolver>,
) -> Outcome {
    let schedule = dag.parsed_schedule();
    let mut ctx = context(dag, schedule.as_ref(), task, run, 1, BTreeMap::new());
    let prepared = match secrets::prepare(resolver, task, &mut ctx, &CancellationToken::new()).await
    {
        Ok(p) => p,
        Err(e) => return failed(Masker::of_attempt(dag, task, &ctx).mask(&e)),
    };
    let task = prepared.task.as_ref().unwrap_or(task);
    let masker = Masker::of_attempt(dag, task, &ctx).with(&prepared.secrets);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Stream, String)>(1024);
    let printer = tokio::spawn(async move {
        while let Some((stream, text)) = rx.recv().await {
            let text = masker.mask(&text);
            match stream {
                Stream::Stdout => println!("{text}"),
                _ => eprintln!("{text}"),
            }
        }
    });
    let http = reqwest::Client::new();
    let hard_kill = std::sync::atomic::AtomicBool::new(false);
    let task_env = crate::TaskEnv::filtered();
    let work = Work {
        opts_cwd: cwd,
        kill_grace: Duration::from_secs(5),
        hard_kill: &hard_kill,
        limits: Limits::default(),
        http: &http,
        task_env: &task_env,
    };
    let outcome = match &task.kind {
        TaskKind::Shell { run } => match template::render(run, &ctx, template::Escape::Shell) {
            Ok(command) => {
                let _ = tx
                    .send((Stream::System, format!("[gale] $ {command}")))
                    .await;
                let output = output_path(0, 1);
                run_shell(
                    &work,
                    task,
                    &command,
                    &ctx,
                    &output,
                    tx.clone(),
                    CancellationToken::new(),
                    |_| async {},
                )
                .await
            }
            Err(e) => failed(e),
        },
        TaskKind::Http(h) => {
            run_http(&work, task, h, &ctx, tx.clone(), CancellationToken::new()).await
        }
    };
    drop(tx);
    let _ = printer.await;
    outcome
}

#[cfg(test)]
mod tests;
