//! Runs `gale` against PostgreSQL: CLI commands with `--database-url`, and the
//! long-running processes of a cluster (`gale node`, `gale scheduler`,
//! `gale worker`), which a test crashes (SIGKILL), starts again and stops
//! (SIGTERM). Each process runs in its own process group and is SIGKILLed with
//! it when the test ends; its home then kills the task processes it left
//! behind.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gale_pgtest::PgServer;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::{Home, Out, wait_until};

/// Environment variables that would change what a `gale` process does, beyond
/// the ones `Home::command` already removes.
const MORE_GALE_VARS: &[&str] = &[
    "GALE_DATABASE_URL",
    "GALE_SHUTDOWN_GRACE",
    "GALE_CONNECT_WAIT",
];

/// How many lines of a process's log are printed when a test fails.
const LOG_TAIL: usize = 100;

/// Runs `sql` on `server` in database `gale`, panicking on an error.
pub fn sql(server: &PgServer, sql: &str) -> String {
    server
        .psql("gale", sql)
        .unwrap_or_else(|e| panic!("psql `{sql}`: {e}"))
}

/// `gale` commands on a home, each given `--database-url URL`.
pub struct Pg<'a> {
    home: &'a Home,
    url: String,
}

impl<'a> Pg<'a> {
    pub fn new(home: &'a Home, url: &str) -> Pg<'a> {
        Pg {
            home,
            url: url.to_owned(),
        }
    }

    /// `args` after `--database-url URL`.
    fn args<'b>(&'b self, args: &[&'b str]) -> Vec<&'b str> {
        let mut all = vec!["--database-url", self.url.as_str()];
        all.extend_from_slice(args);
        all
    }

    /// Runs a CLI command to its end (see [`Home::gale`]).
    pub fn gale(&self, args: &[&str]) -> Out {
        self.home.gale(&self.args(args))
    }

    /// Runs a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Out {
        self.home.ok(&self.args(args))
    }

    /// Runs a command with `--output json` that must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        self.home.json(&self.args(args))
    }

    /// Waits until a DAG processor has stored `dag_id`.
    pub fn wait_dag(&self, dag_id: &str) {
        self.wait_dags(&[dag_id]);
    }

    /// Waits until a DAG processor has stored every one of `dag_ids`.
    pub fn wait_dags(&self, dag_ids: &[&str]) {
        let plural = if dag_ids.len() == 1 { "" } else { "s" };
        let what = format!("DAG{plural} {} to be loaded", dag_ids.join(", "));
        wait_until(&what, || {
            let out = self.gale(&["dags", "list", "--output", "json"]);
            if out.code != 0 {
                return None;
            }
            let listed = out.json();
            let listed = listed["dags"].as_array()?;
            dag_ids
                .iter()
                .all(|id| {
                    listed
                        .iter()
                        .any(|d| d["dag_id"] == *id && d["active"] == true)
                })
                .then_some(())
        });
    }

    /// Creates a manual run (without waiting for it) and returns its id;
    /// `extra` goes after the DAG id (e.g. `--conf`).
    pub fn trigger(&self, dag_id: &str, extra: &[&str]) -> i64 {
        let mut args = extra.to_vec();
        args.extend(["--database-url", self.url.as_str()]);
        self.home.trigger(dag_id, &args)
    }

    /// `gale tasks list RUN --output json`: task instances with their attempts.
    pub fn tasks(&self, run_id: i64) -> Vec<Value> {
        self.json(&["tasks", "list", &run_id.to_string()])
            .as_array()
            .expect("tasks list prints an array")
            .clone()
    }

    /// `gale cluster status [--all] --output json`.
    pub fn status(&self, all: bool) -> Value {
        let mut args = vec!["cluster", "status"];
        if all {
            args.push("--all");
        }
        self.json(&args)
    }

    /// The nodes `gale cluster status` lists.
    pub fn nodes(&self) -> Vec<Value> {
        self.status(false)["nodes"]
            .as_array()
            .expect("cluster status lists nodes")
            .clone()
    }

    /// The node of the `gale` process with this pid, if it is listed.
    pub fn node(&self, pid: u32) -> Option<Value> {
        self.nodes().into_iter().find(|n| n["pid"] == pid)
    }

    /// The node id of the `gale` process with this pid, once it registered.
    pub fn node_id(&self, pid: u32) -> String {
        wait_until(&format!("process {pid} to register"), || {
            self.node(pid)?["node_id"].as_str().map(str::to_owned)
        })
    }

    /// Starts a long-running `gale` command (`node`, `scheduler`, `worker`) on
    /// this URL, its output going to `NAME.N.log` in the home.
    pub fn start(&self, name: &str, args: &[&str]) -> Role<'a> {
        self.start_logging_in(name, args, self.home.path())
    }

    /// [`Pg::start`], then waits until the process has registered (from then
    /// on it handles SIGTERM, and `gale cluster status` lists it).
    pub fn start_registered(&self, name: &str, args: &[&str]) -> Role<'a> {
        let mut role = self.start(name, args);
        role.wait_registered();
        role
    }

    /// [`Pg::start`], its output going to `NAME.N.log` in the folder `logs`.
    pub fn start_logging_in(&self, name: &str, args: &[&str], logs: &Path) -> Role<'a> {
        self.spawn_role(name, args, logs, &[])
    }

    /// [`Pg::start`] with these environment variables added (every start of
    /// the role gets them).
    pub fn start_with_env(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Role<'a> {
        self.spawn_role(name, args, self.home.path(), env)
    }

    fn spawn_role(&self, name: &str, args: &[&str], logs: &Path, env: &[(&str, &str)]) -> Role<'a> {
        let mut role = Role {
            name: name.to_owned(),
            home: self.home,
            args: self.args(args).into_iter().map(str::to_owned).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            logs: logs.to_path_buf(),
            starts: 0,
            child: None,
            log: PathBuf::new(),
        };
        role.spawn();
        role
    }
}

/// A long-running `gale` process (`node`, `scheduler` or `worker`), which can be
/// crashed and started again with the same arguments on the same home, each
/// start logging to a file of its own. SIGKILLed with its process group on drop
/// (its home then kills the task processes it left behind); the tail of its
/// current log is printed when the test fails.
pub struct Role<'h> {
    name: String,
    home: &'h Home,
    args: Vec<String>,
    /// Added to the environment of every start.
    env: Vec<(String, String)>,
    logs: PathBuf,
    starts: usize,
    child: Option<Child>,
    log: PathBuf,
}

impl Role<'_> {
    /// Starts the process, in its own process group, its output going to a new
    /// log file.
    fn spawn(&mut self) {
        self.starts += 1;
        self.log = self.logs.join(format!("{}.{}.log", self.name, self.starts));
        let file = File::create(&self.log).expect("creating a process log");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut cmd = self.home.command(&args);
        for v in MORE_GALE_VARS {
            cmd.env_remove(v);
        }
        let child = cmd
            .env("GALE_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(
                file.try_clone().expect("cloning a file handle"),
            ))
            .stderr(Stdio::from(file))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting gale {}: {e}", self.name));
        self.child = Some(child);
    }

    /// Starts the process again after it was crashed or has exited, logging to
    /// a new file.
    pub fn restart(&mut self) {
        if let Some(mut old) = self.child.take() {
            let ended = old.try_wait().ok().flatten();
            assert!(ended.is_some(), "gale {} is still running", self.name);
        }
        self.spawn();
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the current process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a started process").id()
    }

    /// What the current process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status, if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Panics if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("gale {} exited ({status}) while the test ran", self.name);
        }
    }

    /// Waits until the process has logged that it registered its node: from
    /// then on it handles SIGTERM. Panics if it exits first.
    pub fn wait_registered(&mut self) {
        wait_until(&format!("gale {} to register", self.name), || {
            if let Some(status) = self.exited() {
                panic!("gale {} exited ({status}) before it registered", self.name);
            }
            self.log().contains("node registered").then_some(())
        });
    }

    /// Sends `signal` to the gale process only (not its process group).
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal)
            .unwrap_or_else(|e| panic!("{signal} to gale {}: {e}", self.name));
    }

    /// A crash: SIGKILL to the gale process only (its tasks run in process
    /// groups of their own and are left behind), then reaped so its pid is gone.
    pub fn crash(&mut self) {
        self.signal(Signal::SIGKILL);
        let mut child = self.child.take().expect("a started process");
        child.wait().expect("reaping a killed gale process");
    }

    /// Waits up to `within` for the process to exit: its status and how long it
    /// took, or `None` if it is still running.
    pub fn exit_within(&mut self, within: Duration) -> Option<(ExitStatus, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return Some((status, start.elapsed()));
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Role::exit_within`], panicking if the process is still running.
    pub fn wait_exit(&mut self, within: Duration) -> (ExitStatus, Duration) {
        self.exit_within(within)
            .unwrap_or_else(|| panic!("gale {} did not exit within {within:?}", self.name))
    }
}

impl Drop for Role<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- last lines of gale {} ({}):\n{}",
                self.name,
                self.log.display(),
                lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
            );
        }
    }
}
