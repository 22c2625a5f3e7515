//! Assembles roles into one process: the DAG processor, the scheduler and the
//! worker over one store (any of them), plus this process's entry in the `nodes`
//! table. Used by `gale standalone`, `gale node`, `gale scheduler`, `gale worker`
//! and `gale bench`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gale_scheduler::recovery::recover_dead_local_nodes;
use gale_scheduler::{DagProcessor, Scheduler, SchedulerOptions};
use gale_store::{NodeRow, NodeState, Notifier, Store};
use gale_worker::{Worker, WorkerOptions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug)]
pub struct EngineOptions {
    /// Run the scheduler role (and the DAG processor, when a folder is given).
    pub scheduler: bool,
    /// Run the worker role.
    pub worker: bool,
    pub dags_folder: Option<PathBuf>,
    /// A git repository to follow (scheduler role).
    pub git: Option<gale_scheduler::GitOptions>,
    pub concurrency: usize,
    pub queues: Vec<String>,
    pub attempt_lease: Duration,
    pub heartbeat_interval: Duration,
    pub poll_interval: Duration,
    /// The store announces new work to every process (PostgreSQL's NOTIFY):
    /// a worker's own look for work is then a slow safety net, and a
    /// worker-only process looks for alerts and cluster trouble rarely.
    pub announced: bool,
    pub parse_interval: Duration,
    /// New DAGs that do not say otherwise start paused.
    pub dags_paused_at_creation: bool,
    pub shutdown_grace: Duration,
    pub task_cwd: PathBuf,
    /// Who tasks run as and what environment they start with.
    pub task_env: gale_worker::TaskEnv,
    /// Serve the web UI and API on this (already bound) listener.
    pub web: Option<Web>,
    /// The store's variables and connections under this process's keys (for
    /// the webserver), and where tasks' are looked up (for the worker).
    pub vault: Option<gale_secrets::Vault>,
    pub resolver: Option<Arc<gale_secrets::Resolver>>,
    /// Look for cluster trouble to alert about (every process but a bench's).
    pub watch: Option<crate::watch::WatchOptions>,
    /// Deliver alerts from the outbox (every process but a bench's), with
    /// these settings; needs `vault` to open the channels.
    pub alerts: Option<AlertOptions>,
}

/// How this process delivers alerts.
#[derive(Clone, Debug)]
pub struct AlertOptions {
    pub settings: gale_alerts::Settings,
    /// A channel that sent is held back this long (the digest window).
    pub window: Duration,
    /// A delivery failing for now is given up after this many attempts.
    pub max_attempts: u32,
    /// The longest one send may take; a claim holds twice as long.
    pub send_timeout: Duration,
    /// Sent and failed deliveries are kept this long.
    pub keep: Duration,
}

/// The webserver role: where it listens, and how.
#[derive(Debug)]
pub struct Web {
    pub listener: std::net::TcpListener,
    pub tls: Option<gale_server::TlsFiles>,
    pub auth: bool,
    /// Browsers come over HTTPS (TLS here, or at a proxy).
    pub secure_cookies: bool,
    pub session_idle: jiff::SignedDuration,
    pub limits: gale_server::HttpLimits,
}

/// How often a process says it is alive (the `nodes` row).
pub const NODE_HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// A worker's look for work when nothing woke it, on a store that announces
/// new work (`EngineOptions::announced`); jittered by the worker.
pub const ANNOUNCED_POLL: Duration = Duration::from_secs(30);

/// How often a worker-only process on an announcing store looks for alerts
/// to deliver and for cluster trouble: the schedulers and webservers look
/// every second and every five; these are for when none is up.
pub const BACKSTOP_EVERY: Duration = Duration::from_secs(30);

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

pub fn new_node_id(host: &str) -> String {
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Runs the chosen roles until `cancel`, then shuts down in order: stop claiming,
/// drain or hand back attempts, mark the node stopped. Whoever writes to the
/// store in this process (a triggered run, a database notification) wakes the
/// roles through `notifier`.
pub async fn run(
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    opts: EngineOptions,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let host = hostname();
    let node_id = new_node_id(&host);
    let backstop = opts.announced && opts.worker && !opts.scheduler && opts.web.is_none();
    let mut roles = Vec::new();
    if opts.scheduler {
        roles.push("scheduler".to_owned());
    }
    if opts.worker {
        roles.push("worker".to_owned());
    }
    if opts.web.is_some() {
        roles.push("webserver".to_owned());
    }
    // A TLS key that does not load stops the start, before anything registers.
    let tls = match opts.web.as_ref().and_then(|w| w.tls.as_ref()) {
        Some(files) => Some(gale_server::load_tls(files).await?),
        None => None,
    };
    let now = store.now().await?;
    store
        .register_node(&NodeRow {
            node_id: node_id.clone(),
            host: host.clone(),
            pid: i64::from(std::process::id()),
            roles,
            version: env!("CARGO_PKG_VERSION").into(),
            state: NodeState::Running,
            started_at: now,
            heartbeat_at: now,
            clock_skew_us: 0,
            running_attempts: 0,
            queues: if opts.worker {
                opts.queues.clone()
            } else {
                Vec::new()
            },
            attempt_lease_ms: if opts.worker {
                u64::try_from(opts.attempt_lease.as_millis()).unwrap_or(u64::MAX)
            } else {
                0
            },
        })
        .await?;
    info!(%node_id, "node registered");

    let mut scheduler = Scheduler::new(
        store.clone(),
        notifier.clone(),
        SchedulerOptions {
            poll_interval: opts.poll_interval,
            attempt_lease: opts.attempt_lease,
            ..SchedulerOptions::default()
        },
    );
    match recover_dead_local_nodes(&mut scheduler, &host, &node_id).await {
        Ok(0) => {}
        Ok(n) => info!(
            attempts = n,
            "recovered attempts of dead gale processes on this host"
        ),
        Err(e) => {
            warn!(error = %e, "recovering dead local processes failed; the reaper will catch their attempts")
        }
    }

    let roles_cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(mut watch) = opts.watch.clone() {
        if backstop {
            watch.every = watch.every.max(BACKSTOP_EVERY);
        }
        tasks.spawn(crate::watch::run(
            store.clone(),
            watch,
            roles_cancel.clone(),
        ));
    }
    let deliverer = match (&opts.alerts, &opts.vault) {
        (Some(alerts), Some(vault)) => {
            let mut options = gale_alerts::Options::new(node_id.clone(), alerts.settings.clone());
            options.window = alerts.window;
            options.max_attempts = alerts.max_attempts;
            options.send_timeout = alerts.send_timeout;
            options.lease = alerts.send_timeout * 2;
            options.keep = alerts.keep;
            if backstop {
                options.poll = options.poll.max(BACKSTOP_EVERY);
            }
            let d = gale_alerts::Deliverer::new(store.clone(), vault.clone(), options);
            tasks.spawn(d.clone().run(roles_cancel.clone()));
            Some(d)
        }
        _ => None,
    };
    if opts.scheduler {
        if let Some(folder) = opts.dags_folder.clone() {
            let processor = DagProcessor::new(store.clone(), folder, opts.parse_interval, &host)
                .with_resolver(opts.resolver.clone())
                .with_paused_at_creation(opts.dags_paused_at_creation);
            tasks.spawn(processor.run(roles_cancel.clone()));
        }
        if let Some(git) = opts.git.clone() {
            let follower = gale_scheduler::GitFollower::new(store.clone(), git, node_id.as_str())
                .with_resolver(opts.resolver.clone())
                .with_paused_at_creation(opts.dags_paused_at_creation);
            tasks.spawn(follower.run(roles_cancel.clone()));
        }
        tasks.spawn(scheduler.run(roles_cancel.clone()));
    }
    if let Some(web) = opts.web {
        let mut state = gale_server::AppState::new(store.clone());
        state.notifier = Some(notifier.clone());
        state.auth = web.auth;
        state.secure_cookies = web.secure_cookies;
        state.session_idle = web.session_idle;
        if let Some(vault) = opts.vault.clone() {
            state = state.with_vault(vault);
        }
        if let Some(alerts) = &opts.alerts {
            state.alert_settings = alerts.settings.clone();
        }
        state.alert_counters = deliverer.as_ref().map(gale_alerts::Deliverer::counters);
        let state = Arc::new(state);
        let stop = roles_cancel.clone();
        tasks.spawn(async move {
            let served = gale_server::serve(state, web.listener, tls, web.limits, stop.clone());
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the webserver failed");
            }
            // Ending before the node stops counts as a failure (see below).
            stop.cancelled().await;
        });
    }
    let mut wopts = WorkerOptions::new(node_id.as_str().into(), host.clone());
    wopts.concurrency = opts.concurrency;
    wopts.queues = opts.queues.clone();
    wopts.attempt_lease = opts.attempt_lease;
    wopts.heartbeat_interval = opts.heartbeat_interval;
    wopts.poll_interval = if opts.announced {
        ANNOUNCED_POLL
    } else {
        opts.poll_interval
    };
    wopts.shutdown_grace = opts.shutdown_grace;
    wopts.default_cwd = opts.task_cwd.clone();
    wopts.task_env = opts.task_env.clone();
    wopts.resolver = opts.resolver.clone();
    wopts.guard_program = std::env::current_exe().ok();
    let worker_cancel = CancellationToken::new();
    let worker = if opts.worker {
        tokio::spawn(Worker::new(store.clone(), notifier.clone(), wopts).run(worker_cancel.clone()))
    } else {
        // No worker: a task that ends only on shutdown stands in for it.
        let stop = worker_cancel.clone();
        tokio::spawn(async move { stop.cancelled().await })
    };

    let heartbeat = {
        let store = store.clone();
        let node_id = node_id.clone();
        let stop = roles_cancel.clone();
        let every = NODE_HEARTBEAT_EVERY;
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                // One warning per outage, and a line when it is over.
                match store.heartbeat_node(&node_id, jiff::Timestamp::now()).await {
                    Ok(()) if failing => {
                        info!("node heartbeat works again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        warn!(error = %e, "node heartbeat failed; retrying");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    };

    // A role only returns when cancelled: one that ends early (a bug, a panic) must
    // not leave a half-working node behind. Stop everything and report it, so a
    // supervisor (systemd, the operator) restarts the process.
    let mut failure = None;
    let mut worker = Some(worker);
    tokio::select! {
        _ = cancel.cancelled() => {}
        ended = tasks.join_next(), if !tasks.is_empty() => {
            failure = Some(match ended {
                Some(Err(e)) if e.is_panic() => "a role panicked".to_owned(),
                Some(Err(e)) => format!("a role was aborted: {e}"),
                _ => "a role stopped unexpectedly".to_owned(),
            });
        }
        ended = async { worker.as_mut().expect("set above").await } => {
            worker = None;
            failure = Some(match ended {
                Err(e) if e.is_panic() => "the worker panicked".to_owned(),
                _ => "the worker stopped unexpectedly".to_owned(),
            });
        }
    }
    if let Some(why) = &failure {
        tracing::error!("{why}: shutting down this node");
    }
    info!("shutting down: the worker stops claiming and drains its attempts");
    worker_cancel.cancel();
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    roles_cancel.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = heartbeat.await;
    if let Err(e) = store.set_node_state(&node_id, NodeState::Stopped).await {
        warn!(error = %e, "could not mark this node stopped");
    }
    info!("stopped");
    match failure {
        Some(why) => Err(anyhow::anyhow!("{why} (see the log above)")),
        None => Ok(()),
    }
}
