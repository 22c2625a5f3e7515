//! Runs the real `gale` binary: a temporary GALE_HOME per test, CLI commands with
//! a deadline, and `gale standalone` as a child process that is killed (with its
//! process group and every task process it left behind) when the test ends.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// How long any awaited condition may take. Generous: tests run in parallel on
/// small, loaded machines. Only eventual outcomes are asserted, never durations.
pub const DEADLINE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);

/// Variables of the environment that would change what `gale` does.
const GALE_VARS: &[&str] = &[
    "GALE_HOME",
    "GALE_TASK_ENV",
    "GALE_RUN_AS",
    "GALE_DATABASE",
    "GALE_DAGS_FOLDER",
    "GALE_DAGS_PAUSED_AT_CREATION",
    "GALE_CONCURRENCY",
    "GALE_QUEUES",
    "GALE_ATTEMPT_LEASE",
    "GALE_LOG",
    "GALE_BIND",
    "GALE_TLS_CERT",
    "GALE_TLS_KEY",
    "GALE_SECURE_COOKIES",
    "GALE_SESSION_IDLE_TIMEOUT",
    "GALE_HTTP_HEADER_TIMEOUT",
    "GALE_HTTP_REQUEST_TIMEOUT",
    "GALE_HTTP_IDLE_TIMEOUT",
    "GALE_HTTP_MAX_CONNECTIONS",
    "GALE_SECRET_KEY",
    "GALE_SECRET_KEY_FILE",
    "GALE_SECRETS_DIR",
    "GALE_BASE_URL",
    "GALE_SMTP_URL",
    "GALE_SMTP_FROM",
    // Where systemd hands a service its key file.
    "CREDENTIALS_DIRECTORY",
];

/// Prefixes of variables that give a `gale` process variables and connections.
const GALE_VAR_PREFIXES: &[&str] = &["GALE_VAR_", "GALE_CONN_", "GALE_ALERT_"];

/// Polls `check` until it returns `Some`, or panics after [`DEADLINE`].
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > DEADLINE {
            panic!("gave up after {DEADLINE:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// What a finished CLI command printed.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A temporary GALE_HOME (database `gale.db`, DAG folder `dags`).
pub struct Home {
    dir: tempfile::TempDir,
    started: AtomicUsize,
}

impl Home {
    pub fn new() -> Home {
        Home::new_in(&std::env::temp_dir())
    }

    /// A temporary GALE_HOME inside `parent` (e.g. a small file system).
    pub fn new_in(parent: &Path) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("gale-it-")
            .tempdir_in(parent)
            .expect("creating a temporary GALE_HOME");
        Home {
            dir,
            started: AtomicUsize::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn dags(&self) -> PathBuf {
        self.path().join("dags")
    }

    /// A file in the home for tasks to write to, as a string for DAG files.
    pub fn file(&self, name: &str) -> String {
        self.path().join(name).display().to_string()
    }

    pub fn write_dag(&self, file: &str, yaml: &str) {
        std::fs::create_dir_all(self.dags()).expect("creating the DAG folder");
        std::fs::write(self.dags().join(file), yaml).expect("writing a DAG file");
    }

    /// A `gale` command on this home, with no other Gale settings from the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gale"));
        for v in GALE_VARS {
            cmd.env_remove(v);
        }
        for (k, _) in std::env::vars_os() {
            if let Some(k) = k.to_str()
                && GALE_VAR_PREFIXES.iter().any(|p| k.starts_with(p))
            {
                cmd.env_remove(k);
            }
        }
        // Every web UI a test starts listens on a free port of its own.
        cmd.env("GALE_HOME", self.path())
            .env("GALE_PORT", "0")
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a CLI command to its end (killed and failed after [`DEADLINE`]).
    pub fn gale(&self, args: &[&str]) -> Out {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting gale");
        let pipe = |p: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut p) = p {
                    let _ = p.read_to_string(&mut s);
                }
                s
            })
        };
        let out = pipe(child.stdout.take().map(|p| Box::new(p) as _));
        let err = pipe(child.stderr.take().map(|p| Box::new(p) as _));
        let start = Instant::now();
        let status: ExitStatus = loop {
            if let Some(s) = child.try_wait().expect("waiting for gale") {
                break s;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`gale {}` did not end within {DEADLINE:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Out {
            code: status.code().unwrap_or(-1),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }

    /// Runs a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.gale(args);
        assert_eq!(out.code, 0, "`gale {}` failed: {out}", args.join(" "));
        out
    }

    /// Runs a command with `--output json` that must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        self.ok(&all).json()
    }

    /// Starts `gale standalone --no-examples --attempt-lease 3s` on this home's DAG folder.
    pub fn start(&self) -> Standalone {
        let dags = self.dags().display().to_string();
        self.start_with(&[
            "--dags-folder",
            &dags,
            "--no-examples",
            "--attempt-lease",
            "3s",
        ])
    }

    /// Starts `gale standalone` with these arguments, in its own process group,
    /// its output going to `standalone-N.log` in the home.
    pub fn start_with(&self, args: &[&str]) -> Standalone {
        self.start_with_env(args, &[])
    }

    /// [`Home::start_with`], with more variables in its environment.
    pub fn start_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Standalone {
        use std::os::unix::process::CommandExt;
        let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let log = self.path().join(format!("standalone-{n}.log"));
        let file = File::create(&log).expect("creating the standalone log");
        let mut all = vec!["standalone"];
        all.extend_from_slice(args);
        let child = self
            .command(&all)
            .envs(env.iter().copied())
            .stdout(Stdio::from(
                file.try_clone().expect("cloning a file handle"),
            ))
            .stderr(Stdio::from(file))
            .process_group(0)
            .spawn()
            .expect("starting gale standalone");
        Standalone {
            child: Some(child),
            log,
            home: self.path().to_path_buf(),
        }
    }

    /// Waits until the DAG processor has stored `dag_id`.
    pub fn wait_dag(&self, dag_id: &str) {
        wait_until(&format!("DAG {dag_id} to be loaded"), || {
            let out = self.gale(&["dags", "list", "--output", "json"]);
            (out.code == 0
                && out.json()["dags"]
                    .as_array()?
                    .iter()
                    .any(|d| d["dag_id"] == dag_id && d["active"] == true))
            .then_some(())
        });
    }

    /// Creates a manual run (without waiting for it) and returns its id.
    pub fn trigger(&self, dag_id: &str, extra: &[&str]) -> i64 {
        let mut args = vec!["dags", "trigger", dag_id];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        out.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("trigger printed no run id: {out}"))
    }

    /// `gale runs show RUN --output json`: `{"run": .., "tasks": [..]}`.
    pub fn run_json(&self, run_id: i64) -> Value {
        self.json(&["runs", "show", &run_id.to_string()])
    }

    /// Waits until a run is finished and returns `gale runs show --output json`.
    pub fn wait_run(&self, run_id: i64) -> Value {
        wait_until(&format!("run {run_id} to finish"), || {
            let out = self.gale(&["runs", "show", &run_id.to_string(), "--output", "json"]);
            if out.code != 0 {
                return None;
            }
            let v = out.json();
            matches!(
                v["run"]["state"].as_str(),
                Some("success" | "failed" | "cancelled")
            )
            .then_some(v)
        })
    }

    /// `gale runs list --dag DAG --output json`, newest first; none while
    /// the DAG is not stored yet (exit 4).
    pub fn runs(&self, dag_id: &str) -> Vec<Value> {
        let out = self.gale(&[
            "runs", "list", "--dag", dag_id, "--limit", "1000", "--output", "json",
        ]);
        if out.code == 4 {
            return Vec::new();
        }
        assert_eq!(out.code, 0, "`gale runs list --dag {dag_id}` failed: {out}");
        out.json()
            .as_array()
            .expect("runs list prints an array")
            .clone()
    }

    /// `gale tasks list RUN --output json`: task instances with their attempts.
    pub fn tasks(&self, run_id: i64) -> Vec<Value> {
        self.json(&["tasks", "list", &run_id.to_string()])
            .as_array()
            .expect("tasks list prints an array")
            .clone()
    }

    /// The text of a task's log (the latest attempt, or `attempt`).
    pub fn logs(&self, run_id: i64, task_id: &str, attempt: Option<u32>) -> String {
        let run = run_id.to_string();
        let n = attempt.map(|a| a.to_string());
        let mut args = vec!["tasks", "logs", &run, task_id];
        if let Some(n) = &n {
            args.extend(["--attempt", n]);
        }
        self.ok(&args).stdout
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        kill_leftovers(self.path());
        if std::env::var_os("GALE_IT_KEEP").is_some() {
            // Kept for a look at its database and standalone logs.
            let path = std::mem::replace(
                &mut self.dir,
                tempfile::TempDir::new().expect("a temporary directory"),
            )
            .keep();
            eprintln!("kept GALE_HOME {}", path.display());
        }
    }
}

/// The task instance `task_id` in a list of them.
pub fn task<'a>(tasks: &'a [Value], task_id: &str) -> &'a Value {
    tasks
        .iter()
        .find(|t| t["task_id"] == task_id)
        .unwrap_or_else(|| panic!("no task {task_id} in {tasks:#?}"))
}

/// Each task's final state, e.g. `{"a": "success"}`.
pub fn states(tasks: &[Value]) -> std::collections::BTreeMap<String, String> {
    tasks
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap_or_default().to_owned(),
                t["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A running `gale standalone`.
pub struct Standalone {
    child: Option<Child>,
    log: PathBuf,
    home: PathBuf,
}

impl Standalone {
    /// Its exit status, if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// What it wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it as Ctrl-C or a service manager does (SIGTERM) and waits for
    /// it to end.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("a running standalone");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM standalone");
        let status = child.wait().expect("waiting for the standalone");
        kill_leftovers(&self.home);
        status
    }

    /// Simulates a crash: SIGKILL to the standalone process only (not its process
    /// group, not its tasks' groups), then reaps it so its pid is gone.
    pub fn crash(mut self) {
        if let Some(mut child) = self.child.take() {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL standalone");
            child.wait().expect("reaping the killed standalone");
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            kill_leftovers(&self.home);
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "--- last lines of {}:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// SIGKILLs every live process of this user whose environment has this
/// `GALE_HOME`: task processes run in process groups of their own, so a killed
/// standalone can leave some behind.
fn kill_leftovers(home: &Path) {
    let marker = format!("GALE_HOME={}", home.display()).into_bytes();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == marker.as_slice()) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// A process as /proc shows it: (state letter, process group).
pub fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid pgrp ...": comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Live (not zombie) processes in process group `pgid`. A zombie has ended; in a
/// container whose init does not reap orphans it can stay listed for good.
pub fn live_group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| matches!(proc_stat(pid), Some((s, g)) if g == pgid && s != 'Z' && s != 'X'))
        .collect()
}

/// Whether `pid` is a live process that still belongs to process group `pgid`
/// (a recycled pid in another group does not count).
pub fn alive_in_group(pid: i32, pgid: i32) -> bool {
    matches!(proc_stat(pid), Some((s, g)) if g == pgid && s != 'Z' && s != 'X')
}

/// Today's date in UTC, shifted by `days`, as `YYYY-MM-DD`.
pub fn utc_date(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .expect("a date in range")
        .to_string()
}

/// The lines of `--wait` output: task id and state, e.g. ("a", "success").
pub fn result_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}
