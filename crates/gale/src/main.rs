//! The `gale` binary: command-line interface, configuration, and the standalone
//! mode that runs every role in one process.

mod bench;
mod bench_idle;
mod bench_web;
mod cli;
mod cluster;
mod engine;
mod examples;
mod memory;
mod secrets;
mod serve;
mod users;
mod watch;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Gale: workflows (DAGs of tasks) scheduled and run, highly available by construction.
#[derive(Parser, Debug)]
#[command(name = "gale", version, about, propagate_version = true)]
pub struct Cli {
    /// Gale's home: the SQLite database and the default DAG folder live here.
    #[arg(long, global = true, env = "GALE_HOME")]
    home: Option<PathBuf>,
    /// The metadata database: a SQLite file path (default: $GALE_HOME/gale.db).
    #[arg(long, global = true, env = "GALE_DATABASE")]
    database: Option<PathBuf>,
    /// A PostgreSQL metadata database instead of SQLite, e.g.
    /// postgres://gale@db1:5432,db2:5432/gale (several hosts: Gale finds the primary).
    #[arg(long, global = true, env = "GALE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Most PostgreSQL connections this process opens for its work, besides
    /// its one notification connection (idle ones close after 10 s). Lower it
    /// on workers to run hundreds of them within the server's
    /// `max_connections` (docs/ha.md, "Many workers").
    #[arg(long, global = true, env = "GALE_DATABASE_POOL", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    database_pool: u16,
    /// The secret key file: one key per line, the first seals and every one
    /// opens (default: $GALE_HOME/secret.key when it exists, which `gale
    /// standalone` creates; else $CREDENTIALS_DIRECTORY/gale-secret-key).
    /// GALE_SECRET_KEY may hold the keys instead.
    #[arg(long, global = true, env = "GALE_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// A secrets directory: `variables/<name>` and `connections/<name>`, one
    /// file each, looked at after the environment and before the store.
    #[arg(long, global = true, env = "GALE_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every role in one process, on SQLite, with example DAGs on first start.
    Standalone(serve::StandaloneArgs),
    /// Run every role in one process (web UI included), as each node of a cluster does.
    Node(serve::NodeArgs),
    /// Run the scheduler role (and parse a DAG folder, if given).
    Scheduler(serve::RoleArgs),
    /// Run the worker role: claim and run task attempts.
    Worker(serve::RoleArgs),
    /// Run the web UI and REST API only (stateless: run any number).
    Webserver(serve::WebserverArgs),
    /// Users of the web UI and API.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// API tokens (`Authorization: Bearer ...`).
    #[command(subcommand)]
    Tokens(users::TokensCmd),
    /// The cluster: every Gale process and the database.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// DAGs: list, show, validate, errors, trigger, pause, unpause.
    #[command(subcommand)]
    Dags(cli::DagsCmd),
    /// DAG runs: list, show, slots.
    #[command(subcommand)]
    Runs(cli::RunsCmd),
    /// Task instances: list, logs, test.
    #[command(subcommand)]
    Tasks(cli::TasksCmd),
    /// Pools: slots shared by the tasks that name them, across DAGs.
    #[command(subcommand)]
    Pools(cli::PoolsCmd),
    /// Variables: named values DAGs read as `{{ var.NAME }}`, secret ones
    /// sealed at rest.
    #[command(subcommand)]
    Variables(cli::VariablesCmd),
    /// Connections: Airflow-style connection records DAGs read as
    /// `{{ conn.NAME.host }}` or in `env_from`, passwords sealed at rest.
    #[command(subcommand)]
    Connections(cli::ConnectionsCmd),
    /// The secret key variables and connections are sealed under: new-key,
    /// rotate-key, status.
    #[command(subcommand)]
    Secrets(cli::SecretsCmd),
    /// Alerts: channels (e-mail, webhook, Slack, a command), a test message
    /// through one, and the deliveries of the outbox.
    #[command(subcommand)]
    Alerts(cli::AlertsCmd),
    /// Create one run per schedule slot between two dates and follow them
    /// (`gale backfill DAG_ID --from D --to D`); list or cancel backfills.
    Backfill(cli::BackfillArgs),
    /// The metadata database.
    #[command(subcommand)]
    Db(cli::DbCmd),
    /// The audit log: who changed what, when and from where.
    #[command(subcommand)]
    Audit(cli::AuditCmd),
    /// Measure scheduling latency and throughput (temporary SQLite, or
    /// --database-url); `gale bench web`: page times on a long history.
    Bench(bench::BenchArgs),
    /// Print the version.
    Version,
    /// Print a shell completion script: `gale completion bash >
    /// /etc/bash_completion.d/gale` (or zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    /// Print the manual page (roff): `gale man | man -l -`. With --dir,
    /// write gale.1 and a page for every command (gale-dags-trigger.1, ...)
    /// into that folder, e.g. /usr/local/share/man/man1.
    Man {
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// `gale man`: the manual page on standard output, or every command's page
/// written into `dir`.
fn man(dir: Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    match dir {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| {
                anyhow::anyhow!("cannot write the pages into {}: {e}", dir.display())
            })?;
            eprintln!("manual pages written to {}", dir.display());
        }
    }
    Ok(exit::OK)
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// The command did what was asked (for `--wait`: the run succeeded).
    pub const OK: u8 = 0;
    /// The run failed, a DAG file has errors, or the command failed.
    pub const FAILED: u8 = 1;
    /// Bad usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The DAG, run, task, variable or connection does not exist.
    pub const NOT_FOUND: u8 = 4;
}

/// Where things are.
#[derive(Clone, Debug)]
pub struct Paths {
    pub home: PathBuf,
    pub database: PathBuf,
    /// PostgreSQL, when given; else the SQLite file `database`.
    pub database_url: Option<String>,
    /// Most pooled PostgreSQL connections (`--database-pool`).
    pub database_pool: usize,
    /// The secret key file given (`--secret-key-file`), if any.
    pub secret_key_file: Option<PathBuf>,
    /// The secrets directory given (`--secrets-dir`), if any.
    pub secrets_dir: Option<PathBuf>,
}

impl Cli {
    fn paths(&self) -> Paths {
        let home = self.home.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".gale")
        });
        let database = self
            .database
            .clone()
            .unwrap_or_else(|| home.join("gale.db"));
        let database_url = self.database_url.clone().filter(|u| !u.trim().is_empty());
        Paths {
            home,
            database,
            database_url,
            database_pool: usize::from(self.database_pool),
            secret_key_file: self.secret_key_file.clone(),
            secrets_dir: self.secrets_dir.clone(),
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GALE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        // A line that cannot be written (its file's disk is full) is dropped.
        // The fallback would report that with `eprintln!` to the same stderr,
        // and a failed `eprintln!` panics whichever thread was logging.
        .log_internal_errors(false)
        .init();
}

fn main() -> ExitCode {
    memory::limit_arenas();
    // A worker's task guard (see gale_worker::guard): no runtime, no parsing.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__guard") {
        gale_worker::guard::guard_main();
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    let long_running = matches!(
        cli.command,
        Command::Standalone(_)
            | Command::Node(_)
            | Command::Scheduler(_)
            | Command::Worker(_)
            | Command::Webserver(_)
    );
    // A server logs what it does (info) to a file or a journal; in a
    // terminal, where its banner is, only what needs attention (warn).
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    init_tracing(if long_running && !terminal {
        "info"
    } else {
        "warn"
    });
    if !long_running {
        // A one-shot command piped into `head` ends quietly when the pipe
        // closes, as other command-line tools do, instead of panicking in println.
        // SAFETY: setting a signal's disposition to the default, before any
        // thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let paths = cli.paths();
    let output = cli.output;
    let code = runtime.block_on(async move {
        let res = match cli.command {
            Command::Standalone(args) => serve::standalone(&paths, args).await,
            Command::Node(args) => serve::node(&paths, args).await,
            Command::Scheduler(args) => serve::role(&paths, serve::Mode::Scheduler, args).await,
            Command::Worker(args) => serve::role(&paths, serve::Mode::Worker, args).await,
            Command::Webserver(args) => serve::webserver(&paths, args).await,
            Command::Users(cmd) => users::users(&paths, output, cmd).await,
            Command::Tokens(cmd) => users::tokens(&paths, output, cmd).await,
            Command::Cluster(cmd) => cluster::run(&paths, output, cmd).await,
            Command::Dags(cmd) => cli::dags(&paths, output, cmd).await,
            Command::Runs(cmd) => cli::runs(&paths, output, cmd).await,
            Command::Tasks(cmd) => cli::tasks(&paths, output, cmd).await,
            Command::Pools(cmd) => cli::pools(&paths, output, cmd).await,
            Command::Variables(cmd) => cli::variables(&paths, output, cmd).await,
            Command::Connections(cmd) => cli::connections(&paths, output, cmd).await,
            Command::Secrets(cmd) => cli::secrets(&paths, output, cmd).await,
            Command::Alerts(cmd) => cli::alerts(&paths, output, cmd).await,
            Command::Backfill(args) => cli::backfill(&paths, output, args).await,
            Command::Db(cmd) => cli::db(&paths, cmd).await,
            Command::Audit(cmd) => cli::audit(&paths, output, cmd).await,
            Command::Bench(args) => bench::run(&paths, output, args).await,
            Command::Completion { shell } => {
                use clap::CommandFactory as _;
                clap_complete::generate(shell, &mut Cli::command(), "gale", &mut std::io::stdout());
                Ok(exit::OK)
            }
            Command::Man { dir } => man(dir),
            Command::Version => {
                if output == Output::Json {
                    println!(
                        "{}",
                        serde_json::json!({"version": env!("CARGO_PKG_VERSION")})
                    );
                } else {
                    println!("gale {}", env!("CARGO_PKG_VERSION"));
                }
                Ok(exit::OK)
            }
        };
        match res {
            Ok(code) => code,
            Err(e) => {
                // Not `eprintln!`: failing to print must not turn an exit code into a panic.
                let _ = writeln!(std::io::stderr(), "error: {e:#}");
                if e.downcast_ref::<cli::NotFound>().is_some() {
                    exit::NOT_FOUND
                } else if e.downcast_ref::<cli::Usage>().is_some() {
                    exit::USAGE
                } else {
                    exit::FAILED
                }
            }
        }
    });
    // Don't wait for blocking threads (e.g. a follow loop's sleep) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}
