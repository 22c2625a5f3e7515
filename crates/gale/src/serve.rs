//! The long-running commands: `gale standalone` (every role, SQLite by default,
//! example DAGs), `gale node` (every role, as each node of a cluster runs),
//! `gale scheduler` and `gale worker` (one role each).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::cli::{open_store_waiting, parse_span};
use crate::engine::{self, EngineOptions};
use crate::{Paths, examples, exit};

/// `eprintln!` that ignores a failed write: a process whose output goes to a
/// file on a full disk must not panic over its banner or a parting line.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Settings shared by the long-running commands (each uses those of its roles).
#[derive(Args, Debug, Clone)]
pub struct RoleArgs {
    /// The DAG folder this process parses into the store (scheduler role). Other
    /// nodes need not see it: workers read DAG versions from the store.
    #[arg(long, env = "GALE_DAGS_FOLDER")]
    pub dags_folder: Option<PathBuf>,
    /// Follow this git repository's DAG files (scheduler role): a URL git
    /// can fetch (https://, ssh://, user@host:path, or a local path). Every
    /// scheduler given the same repository stores the same commits, newest
    /// only; no DAG folder is needed.
    #[arg(long, env = "GALE_DAGS_GIT")]
    pub dags_git: Option<String>,
    /// The branch or tag followed [default: the remote's default branch].
    #[arg(long, env = "GALE_DAGS_GIT_REF", requires = "dags_git")]
    pub dags_git_ref: Option<String>,
    /// The repository's folder the DAG files are in [default: all of it].
    #[arg(long, env = "GALE_DAGS_GIT_PATH", requires = "dags_git")]
    pub dags_git_path: Option<String>,
    /// How often the repository is fetched (a webhook on
    /// /api/v1/dags/sources/NAME/refresh asks for a fetch at once).
    #[arg(long, env = "GALE_DAGS_GIT_INTERVAL", default_value = "60s", value_parser = parse_span)]
    pub dags_git_interval: Duration,
    /// The source's name, the same on every scheduler that follows it
    /// [default: the repository's name, from the URL].
    #[arg(long, env = "GALE_DAGS_GIT_NAME", requires = "dags_git")]
    pub dags_git_name: Option<String>,
    /// A file holding the password or token of an HTTPS remote (the user
    /// name is the URL's, else `git`); read at each fetch.
    #[arg(
        long,
        env = "GALE_DAGS_GIT_PASSWORD_FILE",
        requires = "dags_git",
        conflicts_with = "dags_git_connection"
    )]
    pub dags_git_password_file: Option<PathBuf>,
    /// A Gale connection whose login and password authenticate to an HTTPS
    /// remote (`gale connections add`); looked up at each fetch.
    #[arg(long, env = "GALE_DAGS_GIT_CONNECTION", requires = "dags_git")]
    pub dags_git_connection: Option<String>,
    /// A private key file for an SSH remote.
    #[arg(long, env = "GALE_DAGS_GIT_SSH_KEY", requires = "dags_git")]
    pub dags_git_ssh_key: Option<PathBuf>,
    /// New DAGs start paused unless their file says `is_paused_upon_creation:
    /// false` (Airflow's default); without it they start unpaused.
    #[arg(long, env = "GALE_DAGS_PAUSED_AT_CREATION")]
    pub dags_paused_at_creation: bool,
    /// Most task attempts running at once (worker role).
    #[arg(long, env = "GALE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Comma-separated queues this worker serves.
    #[arg(
        long,
        env = "GALE_QUEUES",
        default_value = "default",
        value_delimiter = ','
    )]
    pub queues: Vec<String>,
    /// A running attempt whose worker is silent this long is retried elsewhere
    /// (at least 3s). A worker that cannot renew kills its attempts before its
    /// lease ends; a scheduler never reaps sooner than the worker's lease.
    #[arg(long, env = "GALE_ATTEMPT_LEASE", default_value = "10s", value_parser = parse_span)]
    pub attempt_lease: Duration,
    /// On shutdown, how long running attempts may finish before they are handed back.
    #[arg(long, env = "GALE_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_span)]
    pub shutdown_grace: Duration,
    /// How long to wait for the database at start-up before giving up.
    #[arg(long, env = "GALE_CONNECT_WAIT", default_value = "60s", value_parser = parse_span)]
    pub connect_wait: Duration,
    /// Comma-separated names of this process's environment that tasks get,
    /// beyond PATH, HOME, LANG, LANGUAGE, LC_*, TZ, TMPDIR, USER, LOGNAME,
    /// SHELL and TERM (worker role). No GALE_* setting ever reaches a task.
    #[arg(long, env = "GALE_TASK_ENV", value_delimiter = ',')]
    pub task_env: Vec<String>,
    /// Run task processes as this user, with its groups and home (worker
    /// role; the worker must run as root, and the user be neither root nor
    /// in group 0). They then cannot read Gale's configuration, database file
    /// or processes. Tasks that set no `cwd` run in the user's home.
    #[arg(long, env = "GALE_RUN_AS")]
    pub run_as: Option<String>,
}

/// Creates GALE_HOME, its owner's only: it holds the SQLite database and
/// its WAL, and is the working directory of tasks that set no `cwd` (when
/// they run as Gale's own user).
fn ensure_home(paths: &Paths) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&paths.home)
        .with_context(|| format!("creating GALE_HOME {}", paths.home.display()))
}

/// Who tasks run as and what they inherit, checked before anything starts.
fn task_env(args: &RoleArgs) -> anyhow::Result<gale_worker::TaskEnv> {
    let run_as = args
        .run_as
        .as_deref()
        .map(gale_worker::RunAs::lookup)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    gale_worker::TaskEnv::new(&args.task_env, run_as).map_err(anyhow::Error::msg)
}

/// Settings of the web UI and API.
#[derive(Args, Debug, Clone)]
pub struct WebArgs {
    /// The port of the web UI and API (0: any free port).
    #[arg(long, env = "GALE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on [default: 127.0.0.1 for standalone, 0.0.0.0 otherwise].
    #[arg(long, env = "GALE_BIND")]
    pub bind: Option<IpAddr>,
    /// Let anyone in without logging in (refused unless --bind is a loopback address).
    #[arg(long)]
    pub no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "GALE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "GALE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Browsers reach this server over HTTPS through a TLS-terminating proxy:
    /// the session cookie is `Secure` and named `__Host-gale_session`, and
    /// answers carry Strict-Transport-Security (always so with --tls-cert).
    #[arg(long, env = "GALE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// A login unused this long ends (checked on the store's clock, so every
    /// webserver agrees).
    #[arg(long, env = "GALE_SESSION_IDLE_TIMEOUT", default_value = "12h", value_parser = parse_span)]
    pub session_idle_timeout: Duration,
    /// A connection must send a whole request head within this time of its
    /// first byte (or of opening), or it is closed.
    #[arg(long, env = "GALE_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_span)]
    pub http_header_timeout: Duration,
    /// A request not answered within this time gets a 408.
    #[arg(long, env = "GALE_HTTP_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_span)]
    pub http_request_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed.
    #[arg(long, env = "GALE_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_span)]
    pub http_idle_timeout: Duration,
    /// Most connections open at once; more wait until one closes.
    #[arg(long, env = "GALE_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub http_max_connections: usize,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub roles: RoleArgs,
    #[command(flatten)]
    pub web: WebArgs,
    /// Do not serve the web UI and API from this node.
    #[arg(long)]
    pub no_webserver: bool,
}

#[derive(Args, Debug)]
pub struct WebserverArgs {
    #[command(flatten)]
    pub web: WebArgs,
    /// How long to wait for the database at start-up before giving up.
    #[arg(long, env = "GALE_CONNECT_WAIT", default_value = "60s", value_parser = parse_span)]
    pub connect_wait: Duration,
}

#[derive(Args, Debug)]
pub struct StandaloneArgs {
    #[command(flatten)]
    pub roles: RoleArgs,
    #[command(flatten)]
    pub web: WebArgs,
    /// Do not write the example DAGs into a new DAG folder.
    #[arg(long)]
    pub no_examples: bool,
}

/// Which roles a long-running command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Node,
    Scheduler,
    Worker,
    Webserver,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Node => "node",
            Mode::Scheduler => "scheduler",
            Mode::Worker => "worker",
            Mode::Webserver => "webserver",
        }
    }
    fn scheduler(self) -> bool {
        matches!(self, Mode::Standalone | Mode::Node | Mode::Scheduler)
    }
    fn worker(self) -> bool {
        matches!(self, Mode::Standalone | Mode::Node | Mode::Worker)
    }
}

pub async fn standalone(paths: &Paths, args: StandaloneArgs) -> anyhow::Result<u8> {
    // Examples go only into the default folder: never into one the user named.
    let named = args.roles.dags_folder.is_some();
    let folder = args
        .roles
        .dags_folder
        .clone()
        .unwrap_or_else(|| paths.home.join("dags"));
    ensure_home(paths)?;
    let examples = !args.no_examples && !named;
    let created = examples::ensure_dags_folder(&folder, examples)
        .with_context(|| format!("creating the DAG folder {}", folder.display()))?;
    let note = match (created, examples) {
        (true, true) => " (created, with example DAGs)",
        (true, false) => " (created, empty)",
        _ => "",
    };
    if let Some(key) = crate::secrets::ensure_key(paths)? {
        say!(
            "created the secret key {} (owner-only): secrets in the database open only with it, so back it up",
            key.display()
        );
    }
    let mut roles = args.roles;
    roles.dags_folder = Some(folder);
    serve(paths, Mode::Standalone, roles, Some(args.web), note).await
}

pub async fn node(paths: &Paths, args: NodeArgs) -> anyhow::Result<u8> {
    let web = (!args.no_webserver).then_some(args.web);
    serve(paths, Mode::Node, args.roles, web, "").await
}

pub async fn role(paths: &Paths, mode: Mode, args: RoleArgs) -> anyhow::Result<u8> {
    serve(paths, mode, args, None, "").await
}

pub async fn webserver(paths: &Paths, args: WebserverArgs) -> anyhow::Result<u8> {
    let roles = RoleArgs {
        dags_folder: None,
        dags_git: None,
        dags_git_ref: None,
        dags_git_path: None,
        dags_git_interval: Duration::from_secs(60),
        dags_git_name: None,
        dags_git_password_file: None,
        dags_git_connection: None,
        dags_git_ssh_key: None,
        dags_paused_at_creation: false,
        concurrency: 1,
        queues: vec!["default".into()],
        attempt_lease: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
        connect_wait: args.connect_wait,
        task_env: Vec::new(),
        run_as: None,
    };
    serve(paths, Mode::Webserver, roles, Some(args.web), "").await
}

/// Binds the web listener (before anything else starts, so a port in use is
/// reported at once) and checks the authentication settings.
fn bind_web(mode: Mode, web: &WebArgs) -> anyhow::Result<engine::Web> {
    let default_bind = if mode == Mode::Standalone {
        IpAddr::from([127, 0, 0, 1])
    } else {
        IpAddr::from([0, 0, 0, 0])
    };
    let bind = web.bind.unwrap_or(default_bind);
    if web.no_auth && !bind.is_loopback() {
        bail!(
            "--no-auth is refused on {bind}: anyone who can reach it could run commands. \
             Bind to 127.0.0.1 (--bind 127.0.0.1) or keep authentication on"
        );
    }
    let tls = match (&web.tls_cert, &web.tls_key) {
        (Some(cert), Some(key)) => Some(gale_server::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    for (flag, d) in [
        ("--http-header-timeout", web.http_header_timeout),
        ("--http-request-timeout", web.http_request_timeout),
        ("--http-idle-timeout", web.http_idle_timeout),
        ("--session-idle-timeout", web.session_idle_timeout),
    ] {
        if d.is_zero() {
            bail!("{flag} must be more than 0");
        }
    }
    if web.http_max_connections == 0 {
        bail!("--http-max-connections must be at least 1");
    }
    let session_idle = jiff::SignedDuration::try_from(web.session_idle_timeout)
        .context("--session-idle-timeout is too long")?;
    Ok(engine::Web {
        listener: gale_server::bind(SocketAddr::new(bind, web.port))?,
        secure_cookies: web.secure_cookies || tls.is_some(),
        tls,
        auth: !web.no_auth,
        session_idle,
        limits: gale_server::HttpLimits {
            header_timeout: web.http_header_timeout,
            request_timeout: web.http_request_timeout,
            idle_timeout: web.http_idle_timeout,
            max_connections: web.http_max_connections,
        },
    })
}

async fn serve(
    paths: &Paths,
    mode: Mode,
    args: RoleArgs,
    web: Option<WebArgs>,
    folder_note: &str,
) -> anyhow::Result<u8> {
    if args.attempt_lease < Duration::from_secs(3) {
        bail!("--attempt-lease must be at least 3s");
    }
    if mode.worker() && args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if mode.worker() && args.queues.iter().any(|q| q.trim().is_empty()) {
        bail!("--queues must name at least one queue, without empty names");
    }
    if let Some(folder) = &args.dags_folder
        && mode.scheduler()
        && !folder.is_dir()
    {
        bail!("the DAG folder {} does not exist", folder.display());
    }
    let task_env = task_env(&args)?;
    let git = git_options(paths, &args)?.filter(|_| mode.scheduler());
    let web = web.map(|w| bind_web(mode, &w)).transpose()?;
    ensure_home(paths)?;
    // Signals are handled from the start: a stop while waiting for the database
    // is a clean exit too.
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(cancel.clone()));
    tokio::spawn(crate::memory::give_back(cancel.clone()));
    let opened = tokio::select! {
        opened = open_store_waiting(paths, args.connect_wait) => opened?,
        _ = cancel.cancelled() => return Ok(exit::OK),
    };
    say!("gale {} {}", mode.name(), env!("CARGO_PKG_VERSION"));
    say!("  database   {}", opened.store.endpoint());
    let keys = crate::secrets::key_source(paths)?;
    let vault = gale_secrets::Vault::new(opened.store.clone(), keys.clone());
    match &keys {
        Some(keys) => say!("  secrets    sealed by {}", keys.describe()),
        None => say!(
            "  secrets    no key: secret variables and connections can be neither stored nor read \
             (see `gale secrets new-key`)"
        ),
    }
    let resolver = Arc::new(crate::secrets::resolver(paths, vault.clone()));
    if mode.scheduler() {
        match &args.dags_folder {
            Some(folder) => say!("  DAG folder {}{folder_note}", folder.display()),
            None => say!("  DAG folder none (DAGs come from the store)"),
        }
        if let Some(g) = &git {
            let reference = if g.spec.reference.is_empty() {
                "default branch"
            } else {
                &g.spec.reference
            };
            say!(
                "  DAGs git   {} ({reference}{}) as source {}, every {}s",
                gale_server::api::sources::without_password(&g.spec.url),
                if g.spec.path.is_empty() {
                    String::new()
                } else {
                    format!(", folder {}", g.spec.path)
                },
                g.spec.name,
                g.interval.as_secs()
            );
        }
    }
    if mode.worker() {
        say!(
            "  worker     {} slots on queues {}",
            args.concurrency,
            args.queues.join(",")
        );
        match task_env.run_as() {
            Some(user) => say!("  tasks run  as {} (uid {})", user.name, user.uid),
            None if nix::unistd::geteuid().is_root() => say!(
                "  WARNING    tasks run as root: they can read Gale's configuration, database \
                 and processes; start workers with --run-as USER"
            ),
            None => {}
        }
    }
    if let Some(w) = &web {
        let addr = w.listener.local_addr()?;
        let scheme = if w.tls.is_some() { "https" } else { "http" };
        say!(
            "  web UI     {scheme}://{addr}/  (API: {scheme}://{addr}/api/v1, reference: /api/docs)"
        );
        if !w.auth {
            say!("  auth       OFF (--no-auth): anyone who can reach {addr} is an admin");
        } else if mode == Mode::Standalone {
            if let Some(password) = gale_server::ensure_admin(&*opened.store).await? {
                say!("  first start: created the user `admin` with the password");
                say!();
                say!("      {password}");
                say!();
                say!("  It is shown only this once. Change it with `gale users passwd admin`.");
            }
        } else if opened.store.list_users().await?.is_empty() {
            say!(
                "  note: there are no users yet: create one with `gale users create NAME --role admin`"
            );
        }
    }
    if mode.worker() {
        say!(
            "Stop with Ctrl-C or SIGTERM (running tasks get {}s to finish).",
            args.shutdown_grace.as_secs()
        );
    } else {
        say!("Stop with Ctrl-C or SIGTERM.");
    }

    let notifier = Arc::new(gale_store::Notifier::default());
    if let Some(pg) = &opened.pg {
        pg.announce_results(!mode.scheduler());
    }
    // The listener outlives the roles: a worker's last claims and results may
    // run on its connection while the roles drain.
    let listen_stop = CancellationToken::new();
    let listener = opened.pg.clone().map(|pg| {
        let (notifier, stop) = (notifier.clone(), listen_stop.clone());
        tokio::spawn(async move { pg.listen(notifier, stop).await })
    });
    let opts = EngineOptions {
        scheduler: mode.scheduler(),
        worker: mode.worker(),
        dags_folder: args.dags_folder.filter(|_| mode.scheduler()),
        git,
        concurrency: args.concurrency,
        queues: args.queues,
        attempt_lease: args.attempt_lease,
        heartbeat_interval: (args.attempt_lease / 5)
            .clamp(Duration::from_millis(500), Duration::from_secs(2)),
        poll_interval: Duration::from_secs(1),
        announced: opened.pg.is_some(),
        parse_interval: Duration::from_secs(2),
        dags_paused_at_creation: args.dags_paused_at_creation,
        shutdown_grace: args.shutdown_grace,
        // GALE_HOME is Gale's own (0700): another user's tasks start in
        // their home, or the temporary directory if it has none.
        task_cwd: match task_env.run_as() {
            None => paths.home.clone(),
            Some(u) if std::path::Path::new(&u.home).is_dir() => PathBuf::from(&u.home),
            Some(_) => std::env::temp_dir(),
        },
        task_env,
        web,
        vault: Some(vault),
        resolver: Some(resolver),
        watch: Some(watch_options()?),
        alerts: Some(alert_options()?),
    };
    let result = engine::run(opened.store, notifier, opts, cancel.clone()).await;
    cancel.cancel();
    listen_stop.cancel();
    if let Some(listener) = listener {
        let _ = listener.await;
    }
    result?;
    Ok(exit::OK)
}

/// The git source `--dags-git` names, checked.
fn git_options(
    paths: &Paths,
    args: &RoleArgs,
) -> anyhow::Result<Option<gale_scheduler::GitOptions>> {
    use gale_scheduler::git::{self, CredentialSource};
    let Some(url) = args.dags_git.clone() else {
        return Ok(None);
    };
    let url = url.trim().to_owned();
    if url.is_empty() || url.starts_with('-') {
        bail!("--dags-git needs a repository URL or path");
    }
    // A user name in an https URL is fine; a password there would be shown
    // and stored: it belongs in a file or a connection.
    let user = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo.to_owned());
    if user.as_deref().is_some_and(|u| u.contains(':')) {
        bail!(
            "--dags-git: the URL holds a password; put it in --dags-git-password-file or a \
             connection (--dags-git-connection) instead"
        );
    }
    let name = args
        .dags_git_name
        .clone()
        .unwrap_or_else(|| git::default_name(&url));
    git::check_name(&name).map_err(|e| anyhow::anyhow!("--dags-git-name: {e}"))?;
    let path = args
        .dags_git_path
        .clone()
        .unwrap_or_default()
        .trim_matches('/')
        .to_owned();
    if path.split('/').any(|p| p == "..") {
        bail!("--dags-git-path must stay inside the repository (no `..`)");
    }
    if args.dags_git_interval < Duration::from_secs(1) {
        bail!("--dags-git-interval must be at least 1s");
    }
    let credentials = match (&args.dags_git_password_file, &args.dags_git_connection) {
        (Some(file), _) => Some(CredentialSource::File {
            username: user.unwrap_or_else(|| "git".into()),
            path: file.clone(),
        }),
        (None, Some(conn)) => Some(CredentialSource::Connection(conn.clone())),
        (None, None) => None,
    };
    if let Some(CredentialSource::File { path, .. }) = &credentials {
        std::fs::metadata(path)
            .with_context(|| format!("--dags-git-password-file {}", path.display()))?;
    }
    Ok(Some(gale_scheduler::GitOptions {
        spec: gale_store::GitSourceSpec {
            name,
            url,
            reference: args.dags_git_ref.clone().unwrap_or_default(),
            path,
        },
        interval: args.dags_git_interval,
        cache: paths.home.join("git"),
        credentials,
        ssh_key: args.dags_git_ssh_key.clone(),
    }))
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn shutdown_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("signal received: shutting down gracefully (send it again to stop at once)");
    cancel.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    say!("second signal: exiting now");
    std::process::exit(130);
}

/// A duration setting from the environment (`30s`, `2m`), or `default`.
fn env_duration(name: &str, default: Duration) -> anyhow::Result<Duration> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => gale_model::duration::parse(v.trim())
            .map(|s| s.0)
            .map_err(|e| anyhow::anyhow!("{name}: {e}")),
        _ => Ok(default),
    }
}

/// When cluster alerts fire: `GALE_ALERT_NO_SCHEDULER_AFTER` and
/// `GALE_ALERT_UNSERVED_QUEUE_AFTER` (default 60 s each).
fn watch_options() -> anyhow::Result<crate::watch::WatchOptions> {
    let d = crate::watch::WatchOptions::default();
    Ok(crate::watch::WatchOptions {
        no_scheduler_after: env_duration("GALE_ALERT_NO_SCHEDULER_AFTER", d.no_scheduler_after)?,
        unserved_queue_after: env_duration(
            "GALE_ALERT_UNSERVED_QUEUE_AFTER",
            d.unserved_queue_after,
        )?,
        ..d
    })
}

/// How alerts are delivered: the digest window `GALE_ALERT_WINDOW` (default
/// 60 s), `GALE_ALERT_MAX_ATTEMPTS` (default 10), `GALE_ALERT_SEND_TIMEOUT`
/// (default 30 s; a claim's lease is twice it, so a delivery its deliverer
/// died sending is sent again after that), `GALE_ALERT_KEEP` (how long sent
/// and failed deliveries are kept, default 30 days), and [`alert_settings`].
fn alert_options() -> anyhow::Result<crate::engine::AlertOptions> {
    let max_attempts = match std::env::var("GALE_ALERT_MAX_ATTEMPTS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                anyhow::anyhow!("GALE_ALERT_MAX_ATTEMPTS: {v:?} is not a number from 1 to 1000")
            })?,
        _ => 10,
    };
    let send_timeout = env_duration("GALE_ALERT_SEND_TIMEOUT", Duration::from_secs(30))?;
    if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&send_timeout) {
        anyhow::bail!("GALE_ALERT_SEND_TIMEOUT must be from 1s to 5m");
    }
    let settings = alert_settings();
    if let Some(e) = settings.check().into_iter().next() {
        anyhow::bail!("{e}");
    }
    Ok(crate::engine::AlertOptions {
        settings,
        window: env_duration("GALE_ALERT_WINDOW", Duration::from_secs(60))?,
        max_attempts,
        send_timeout,
        keep: {
            let keep = env_duration("GALE_ALERT_KEEP", Duration::from_secs(30 * 86_400))?;
            if keep < Duration::from_secs(3600) {
                anyhow::bail!("GALE_ALERT_KEEP must be at least 1h");
            }
            keep
        },
    })
}

/// The process's alert settings, from the environment: `GALE_BASE_URL` (for
/// links), `GALE_SMTP_URL` and `GALE_SMTP_FROM` (for e-mail channels that
/// name no server or sender of their own).
pub fn alert_settings() -> gale_alerts::Settings {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    gale_alerts::Settings {
        base_url: var("GALE_BASE_URL").map(|u| u.trim_end_matches('/').to_owned()),
        smtp_url: var("GALE_SMTP_URL"),
        smtp_from: var("GALE_SMTP_FROM"),
    }
}
