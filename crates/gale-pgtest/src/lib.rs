//! Throwaway PostgreSQL servers for tests, started from the machine's own
//! PostgreSQL binaries (nothing is downloaded).
//!
//! The binaries are found through `GALE_PG_BIN`, else `pg_config --bindir`,
//! else the highest `/usr/lib/postgresql/*/bin` holding `initdb`. PostgreSQL
//! refuses to run as root, so when the tests run as root every server-side
//! command (`initdb`, `pg_ctl`, `pg_basebackup`) runs as the `postgres` OS user
//! through `runuser` (or `setpriv`), and the temp dirs are chowned to it.
//!
//! Every server lives in its own temp dir (data dir, unix socket, `server.log`)
//! and listens on a free port on 127.0.0.1, so tests can run in parallel.
//! Dropping a [`PgServer`] stops it and removes the dir.
//!
//! By default every connection is trusted (the server is on 127.0.0.1, in a
//! private temp dir, and lives as long as a test). [`PgServer::start_with`]
//! can ask TCP connections for the superuser's password (scram-sha-256) and
//! turn TLS on with a given certificate, for the tests of those two. Each dir also has a
//! small watchdog shell (in its own process group, so a Ctrl-C of the test
//! run does not reach it) that polls the test process once a second; when the
//! process is gone it stops the server and removes the dir. That covers
//! killed test runs and the process-wide server of [`shared_server`], which
//! lives in a `static` and is therefore never dropped.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;

/// Appended to `postgresql.conf`. Port and socket dir go on the command line,
/// so that a standby (which copies this file) can override them.
/// `synchronous_commit` stays on: with `fsync = off` it costs only a write(2),
/// and it makes `stop_immediate` a faithful crash that keeps committed data.
const CONF: &str = "\n# gale-pgtest
listen_addresses = '127.0.0.1'
max_connections = 200
wal_level = replica
max_wal_senders = 10
hot_standby = on
fsync = off
synchronous_commit = on
full_page_writes = off
logging_collector = off
cluster_name = 'gale-pgtest'
";

const INSTALL: &str = "; install the `postgresql` package or set GALE_PG_BIN to its bin dir";

const HBA: &str = "local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
";

/// With a password: TCP connections must prove it (the unix socket, which
/// only this machine's `postgres` user and root reach, stays trusted).
const HBA_SCRAM: &str = "local all all trust
local replication all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
";

/// What a server is set up with beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// The superuser's password: TCP connections must give it
    /// (scram-sha-256), and [`PgServer::url`] carries it. Keep it URL-safe.
    pub password: Option<String>,
    /// TLS on (`ssl = on`), serving this certificate chain and key (PEM).
    /// Plaintext is still accepted: the client chooses.
    pub tls: Option<ServerTls>,
    /// `max_connections` other than the default 200.
    pub max_connections: Option<u32>,
}

/// A server certificate chain and its private key, PEM.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How to run the PostgreSQL binaries on this machine.
struct Env {
    bin: PathBuf,
    /// Command prefix running a program as `postgres`, when we are root.
    as_postgres: &'static [&'static str],
    /// `postgres` uid/gid to chown temp dirs to, when we are root.
    owner: Option<(u32, u32)>,
}

fn env() -> Result<&'static Env, String> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let bin = find_bin_dir()?;
        if !nix::unistd::geteuid().is_root() {
            let (as_postgres, owner) = (&[][..], None);
            return Ok(Env {
                bin,
                as_postgres,
                owner,
            });
        }
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or("running as root, but there is no `postgres` OS user to run PostgreSQL as")?;
        let as_postgres: &[&str] = if on_path("runuser") {
            &["runuser", "-u", "postgres", "--"]
        } else if on_path("setpriv") {
            &[
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
            ]
        } else {
            return Err("running as root, but neither `runuser` nor `setpriv` is on PATH".into());
        };
        let owner = Some((user.uid.as_raw(), user.gid.as_raw()));
        Ok(Env {
            bin,
            as_postgres,
            owner,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("GALE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return match dir.join("initdb").is_file() {
            true => Ok(dir),
            false => Err(format!("initdb not found in GALE_PG_BIN={}", dir.display()) + INSTALL),
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let versions = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten();
    let best = versions
        .filter(|e| e.path().join("bin/initdb").is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key: Vec<u32> = name.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            (key, e.path().join("bin"))
        })
        .max();
    best.map(|(_, dir)| dir).ok_or_else(|| {
        "initdb not found (GALE_PG_BIN unset, no usable `pg_config --bindir`, nothing in \
         /usr/lib/postgresql/*/bin)"
            .to_owned()
            + INSTALL
    })
}

fn on_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(name).is_file())
}

/// A command for one of the PostgreSQL binaries, with `PG*` variables
/// removed from its environment; `server` ones run as `postgres` under root.
fn pg_command(env: &Env, prog: &str, server: bool) -> Command {
    let exe = env.bin.join(prog);
    let mut cmd = match env.as_postgres.split_first() {
        Some((runner, args)) if server => {
            let mut cmd = Command::new(runner);
            cmd.args(args).arg(exe);
            cmd
        }
        _ => Command::new(exe),
    };
    // `postgres` may not be able to enter the test's working directory.
    cmd.current_dir("/");
    let pg_vars = std::env::vars_os().map(|(k, _)| k);
    for key in pg_vars.filter(|k| k.to_string_lossy().starts_with("PG")) {
        cmd.env_remove(key);
    }
    cmd
}

/// Runs `cmd`; returns its trimmed stdout, or an error naming the command,
/// its exit status and its stderr.
fn run(mut cmd: Command) -> Result<String, String> {
    let mut line: Vec<OsString> = vec![cmd.get_program().into()];
    line.extend(cmd.get_args().map(Into::into));
    let line = line.join(" ".as_ref()).to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run `{line}`: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(format!("`{line}` failed ({}): {stderr}", out.status))
}

/// A server's temp dir (data dir, socket, log), watched from its creation by
/// a shell that stops the server and removes the dir once the test process is
/// gone. The shell leads its own process group, so a Ctrl-C of the test run
/// does not reach it; server-side commands run in that group too, so that it
/// can kill an orphaned `initdb` or `pg_basebackup` before removing the dir.
/// (The postmaster itself is in its own session, made by `pg_ctl`.)
struct Scratch {
    watchdog: Child,
    dir: TempDir,
}

impl Scratch {
    fn new(env: &Env) -> Result<Scratch, String> {
        let builder = tempfile::Builder::new().prefix("gale-pg-").tempdir();
        let dir = builder.map_err(|e| format!("temp dir: {e}"))?;
        if let Some((uid, gid)) = env.owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown {} to postgres: {e}", dir.path().display()))?;
        }
        let (path, data) = (quote(dir.path()), quote(&dir.path().join("data")));
        let stop = format!(
            "{} {}",
            env.as_postgres.join(" "),
            quote(&env.bin.join("pg_ctl"))
        );
        let script = format!(
            "trap '' TERM; while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             kill -TERM 0; sleep 1; for i in 1 2 3 4 5; do \
             {stop} stop -m immediate -D {data} >/dev/null 2>&1; \
             rm -rf {path} 2>/dev/null && break; sleep 1; done",
            pid = std::process::id(),
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).current_dir("/").process_group(0);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let watchdog = cmd
            .spawn()
            .map_err(|e| format!("starting the watchdog shell: {e}"))?;
        Ok(Scratch { watchdog, dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file only its owner can read, owned by `postgres` when we
    /// are root (PostgreSQL refuses a key file others can read).
    fn write(&self, env: &Env, path: &Path, content: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let err = |e: std::io::Error| format!("writing {}: {e}", path.display());
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        file.write_all(content).map_err(err)?;
        if let Some((uid, gid)) = env.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(err)?;
        }
        Ok(())
    }

    /// A server-side command, in the watchdog's process group.
    fn command(&self, env: &Env, prog: &str) -> Command {
        let mut cmd = pg_command(env, prog, true);
        cmd.process_group(self.watchdog.id() as i32);
        cmd
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port());
    port.map_err(|e| format!("finding a free port: {e}"))
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// A running throwaway PostgreSQL server; stopped and deleted on drop.
pub struct PgServer {
    env: &'static Env,
    data: PathBuf,
    port: u16,
    password: Option<String>,
    // Last, so the dir is removed only after `drop` stopped the server.
    dir: Scratch,
}

impl PgServer {
    /// Runs `initdb` (trust auth, superuser `postgres`, UTF8) into a temp dir
    /// and starts the server on a free 127.0.0.1 port.
    pub fn start() -> Result<PgServer, String> {
        Self::start_with(&Setup::default())
    }

    /// [`PgServer::start`], with a password and TLS as `setup` says.
    pub fn start_with(setup: &Setup) -> Result<PgServer, String> {
        let env = env()?;
        let dir = Scratch::new(env)?;
        let data = dir.path().join("data");
        let mut initdb = dir.command(env, "initdb");
        initdb.arg("-D").arg(&data);
        initdb.args("--auth=trust -U postgres --encoding=UTF8 --locale=C --no-sync".split(' '));
        if let Some(password) = &setup.password {
            let file = dir.path().join("pwfile");
            dir.write(env, &file, password.as_bytes())?;
            initdb.arg(format!("--pwfile={}", file.display()));
        }
        run(initdb)?;
        let _ = fs::remove_file(dir.path().join("pwfile"));
        let conf_err = |e: std::io::Error| format!("writing config in {}: {e}", data.display());
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(conf_err)?;
        conf.write_all(CONF.as_bytes()).map_err(conf_err)?;
        if let Some(n) = setup.max_connections {
            conf.write_all(format!("max_connections = {n}\n").as_bytes())
                .map_err(conf_err)?;
        }
        if let Some(tls) = &setup.tls {
            dir.write(env, &data.join("server.crt"), tls.cert_pem.as_bytes())?;
            dir.write(env, &data.join("server.key"), tls.key_pem.as_bytes())?;
            let ssl = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
            conf.write_all(ssl.as_bytes()).map_err(conf_err)?;
        }
        let hba = match setup.password {
            Some(_) => HBA_SCRAM,
            None => HBA,
        };
        fs::write(data.join("pg_hba.conf"), hba).map_err(conf_err)?;
        Self::launch(env, dir, data, setup.password.clone())
    }

    /// Starts a streaming standby of `primary` (`pg_basebackup -R -X stream`)
    /// on its own port; returns once it accepts read-only connections.
    pub fn start_standby(primary: &PgServer) -> Result<PgServer, String> {
        let env = env()?;
        let dir = Scratch::new(env)?;
        let data = dir.path().join("data");
        let mut backup = dir.command(env, "pg_basebackup");
        backup.args("-R -X stream -c fast --no-sync -h 127.0.0.1 -U postgres".split(' '));
        backup
            .arg("-p")
            .arg(primary.port.to_string())
            .arg("-D")
            .arg(&data);
        if let Some(password) = &primary.password {
            // -R writes it into the standby's primary_conninfo.
            backup.env("PGPASSWORD", password);
        }
        run(backup)?;
        Self::launch(env, dir, data, primary.password.clone())
    }

    /// Starts the server in `data`, retrying on another port (3 tries in all)
    /// when the chosen one was taken in the meantime.
    fn launch(
        env: &'static Env,
        dir: Scratch,
        data: PathBuf,
        password: Option<String>,
    ) -> Result<PgServer, String> {
        let port = free_port()?;
        let mut server = PgServer {
            env,
            data,
            port,
            password,
            dir,
        };
        let mut tries = 1;
        loop {
            let log_len = fs::read(server.log_path()).map_or(0, |log| log.len());
            match server.restart() {
                Err(_)
                    if tries < 3
                        && server.log_since(log_len).contains("Address already in use") =>
                {
                    tries += 1;
                    server.port = free_port()?;
                }
                result => return result.map(|()| server),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (`postgres:PASSWORD@`
    /// when the server has a password).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `db` (used verbatim: keep names URL-safe).
    pub fn url_for(&self, db: &str) -> String {
        let password = match &self.password {
            Some(p) => format!(":{p}"),
            None => String::new(),
        };
        format!("postgres://postgres{password}@127.0.0.1:{}/{db}", self.port)
    }

    /// The superuser's password, when TCP connections must give one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")),
        )?;
        Ok(self.url_for(name))
    }

    /// Runs `sql` in database `db` with `psql -X -v ON_ERROR_STOP=1 -At`;
    /// returns its trimmed stdout (one line per row, columns joined by `|`).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = pg_command(self.env, "psql", false);
        cmd.args("-X -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -U postgres".split(' '));
        cmd.args(["-p", &self.port.to_string(), "-d", db, "-c", sql]);
        if let Some(password) = &self.password {
            cmd.env("PGPASSWORD", password);
        }
        run(cmd)
    }

    /// Kills the server like a crash (`pg_ctl stop -m immediate`); the data
    /// dir stays, so [`restart`](Self::restart) recovers it on the same port.
    pub fn stop_immediate(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-w", "-m", "immediate"])
    }

    /// Clean shutdown (`pg_ctl stop -m fast`).
    pub fn stop_fast(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-w", "-m", "fast"])
    }

    /// Starts the (stopped) server again on the same port and waits until it
    /// accepts connections.
    pub fn restart(&self) -> Result<(), String> {
        let opts = format!("-p {} -k {}", self.port, quote(self.dir.path()));
        let log = self.log_path().to_string_lossy().into_owned();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &opts])
    }

    /// Promotes a standby to primary (`pg_ctl promote -w`).
    pub fn promote(&self) -> Result<(), String> {
        self.pg_ctl(&["promote", "-w", "-t", "60"])
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log_since(0);
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn log_since(&self, offset: usize) -> String {
        let log = fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(log.get(offset..).unwrap_or_default()).into_owned()
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = self.dir.command(self.env, "pg_ctl");
        cmd.args(args).arg("-D").arg(&self.data);
        run(cmd).map(drop).map_err(|e| {
            format!(
                "{e}\nserver log ({}):\n{}",
                self.log_path().display(),
                self.log_tail(20)
            )
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.stop_immediate();
    }
}

/// The directory of the PostgreSQL binaries the servers run from.
pub fn bin_dir() -> Result<PathBuf, String> {
    env().map(|env| env.bin.clone())
}

/// Under `CI=true` (or `1`) PostgreSQL is required: panics. Otherwise prints
/// a loud SKIPPED line to stderr.
fn unavailable(test: &str, reason: &str) {
    if matches!(std::env::var("CI").as_deref(), Ok("true" | "1")) {
        panic!("PostgreSQL is required under CI=true but could not be started: {reason}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!`.
    let line = format!("SKIPPED: {test}: PostgreSQL not available: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The standard entry for tests: a fresh server, or `None` when PostgreSQL
/// cannot be started and the test should skip (panics under `CI=true`).
pub fn server_or_skip(test: &str) -> Option<PgServer> {
    PgServer::start()
        .map_err(|reason| unavailable(test, &reason))
        .ok()
}

/// [`server_or_skip`] for a server set up as `setup` says.
pub fn server_with_or_skip(test: &str, setup: &Setup) -> Option<PgServer> {
    PgServer::start_with(setup)
        .map_err(|reason| unavailable(test, &reason))
        .ok()
}

/// One server per test process, started on first use and stopped by its
/// watchdog after the process exits; `None` (skip) as in [`server_or_skip`].
pub fn shared_server(test: &str) -> Option<&'static PgServer> {
    static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
    SHARED
        .get_or_init(PgServer::start)
        .as_ref()
        .map_err(|reason| unavailable(test, reason))
        .ok()
}

/// A fresh database on the [`shared_server`], named after `test`; returns its
/// URL, or `None` (skip). Panics if the database cannot be created.
pub fn shared_database(test: &str) -> Option<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = shared_server(test)?;
    let safe = |c: char| match c.is_ascii_alphanumeric() {
        true => c.to_ascii_lowercase(),
        false => '_',
    };
    let base: String = test.chars().map(safe).take(40).collect();
    let name = format!("{base}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    Some(
        server
            .create_database(&name)
            .unwrap_or_else(|e| panic!("{test}: creating database {name}: {e}")),
    )
}
