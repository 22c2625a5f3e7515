//! The local cluster of `deploy/local-cluster` (3 etcd, 3 Patroni + PostgreSQL
//! 15, HAProxy, 3 `gale node`), brought up by `up.sh` in a state directory of
//! its own on a port base of its own, driven with `ctl.sh`, and always brought
//! down by `down.sh --purge` when the [`Cluster`] is dropped (a panic included;
//! the tail of every log is printed first).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Out, run, tail, wait_for, wait_until};

/// The Gale nodes (and Patroni members, and etcd members): 1, 2, 3.
pub const NODES: [u8; 3] = [1, 2, 3];

/// How many ports a cluster uses from its base (B..B+34).
const PORTS: u16 = 35;

/// Keep the state directory (logs, data) after the test: `down.sh` still
/// stops everything, without `--purge`.
const KEEP_VAR: &str = "GALE_HA_KEEP";

/// How Gale (and the probe) reach PostgreSQL: `haproxy` (the default here)
/// or `multihost` (up.sh's own default), from `GALE_CLUSTER_DB`.
fn db_mode() -> String {
    match std::env::var("GALE_CLUSTER_DB") {
        Ok(v) if !v.is_empty() => v,
        _ => "haproxy".to_owned(),
    }
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local-cluster")
}

/// A running local cluster. Dropping it runs `down.sh --purge`.
pub struct Cluster {
    pub dir: PathBuf,
    pub port_base: u16,
    /// The database URL every Gale node uses (`ctl.sh env`: GALE_DATABASE_URL).
    pub url: String,
    /// HAProxy's HTTP frontend, `http://127.0.0.1:B+1`.
    pub http: String,
    /// The admin's API token.
    pub token: String,
    /// The copy of the gale binary the cluster runs.
    pub gale_bin: PathBuf,
    pub pg_bin: PathBuf,
    /// `haproxy` or `multihost`: the GALE_CLUSTER_DB the cluster runs with.
    pub db_mode: String,
    /// More logs to show when the test fails (processes the test started).
    extra_logs: Mutex<Vec<(String, PathBuf)>>,
    keep: bool,
    /// Brings the cluster down if this process dies without dropping it.
    watchdog: Option<std::process::Child>,
}

impl Cluster {
    /// Brings a cluster up with `up.sh` in a new directory under the system's
    /// temp dir (PostgreSQL runs as `postgres` when we are root, so the
    /// directory must not be under a private home) on a free port base.
    pub fn up() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("gale-ha-")
            .tempdir_in(std::env::temp_dir())
            .expect("creating the cluster's state directory")
            .keep();
        let port_base = free_port_base();
        let pg_bin = std::env::var_os("GALE_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        let mut cluster = Cluster {
            dir,
            port_base,
            url: String::new(),
            http: String::new(),
            token: String::new(),
            gale_bin: PathBuf::new(),
            pg_bin,
            db_mode: db_mode(),
            extra_logs: Mutex::new(Vec::new()),
            keep: std::env::var_os(KEEP_VAR).is_some(),
            watchdog: None,
        };
        cluster.watchdog = Some(cluster.start_watchdog());
        eprintln!(
            "HA: bringing the cluster up in {} on ports {}..{}, Gale reaching PostgreSQL by {} \
             (GALE_CLUSTER_DB={})",
            cluster.dir.display(),
            port_base,
            port_base + PORTS - 1,
            if cluster.haproxy() {
                "HAProxy"
            } else {
                "a multi-host URL"
            },
            cluster.db_mode
        );
        let out = run(cluster.script("up.sh", &[]), Duration::from_secs(300));
        assert!(out.ok, "up.sh did not bring the cluster up: {out}");
        // The values are shell-quoted: let the shell read them.
        let mut cmd = cluster.command("bash");
        cmd.args([
            "-c",
            r#"eval "$("$0" env)" && printf '%s\n' "$GALE_DATABASE_URL" "$GALE_BIN" "$GALE_URL" "$GALE_TOKEN""#,
        ])
        .arg(deploy_dir().join("ctl.sh"));
        let env = run(cmd, Duration::from_secs(30));
        assert!(env.ok, "ctl.sh env failed: {env}");
        let lines: Vec<&str> = env.stdout.lines().collect();
        assert_eq!(lines.len(), 4, "ctl.sh env printed: {env}");
        cluster.url = lines[0].to_owned();
        cluster.gale_bin = PathBuf::from(lines[1]);
        cluster.http = lines[2].trim_end_matches('/').to_owned();
        cluster.token = lines[3].to_owned();
        assert!(
            cluster.token.starts_with("gale_"),
            "no API token in the state directory: {env}"
        );
        cluster
    }

    /// A shell that waits for this process to end and then stops what it
    /// left: the processes the test started itself (pid files in
    /// `ha-test/procs`, removed when they are stopped), the
    /// network namespace of scenario 7, and the cluster (`down.sh --purge`).
    /// Its command line does not name the state directory (down.sh checks
    /// that nothing naming it runs): it gets it from its environment. In a
    /// process group of its own, so that a Ctrl-C of the test run reaches it
    /// not.
    fn start_watchdog(&self) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let tag = self.netns_tag();
        let mut cmd = self.command("bash");
        cmd.args([
            "-c",
            r#"while kill -0 "$TEST_PID" 2>/dev/null; do sleep 1; done
for f in "$GALE_CLUSTER_DIR"/ha-test/procs/*; do
    [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
done
ip route del blackhole "127.200.$TAG.2/32" 2>/dev/null
ip netns del "gale-ha-$TAG" 2>/dev/null
ip link del "galeha${TAG}h" 2>/dev/null
exec bash "$DOWN" --purge"#,
        ])
        .env("TEST_PID", std::process::id().to_string())
        .env("TAG", tag.to_string())
        .env("DOWN", deploy_dir().join("down.sh"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
        cmd.spawn().expect("starting the cluster's watchdog")
    }

    /// What picks scenario 7's addresses and names (0..=249), by port base.
    pub fn netns_tag(&self) -> u16 {
        (self.port_base / 100) % 250
    }

    /// `bash deploy/local-cluster/SCRIPT ARGS` for this cluster (see [`Cluster::command`]).
    pub fn script(&self, script: &str, args: &[&str]) -> Command {
        let mut cmd = self.command("bash");
        cmd.arg(deploy_dir().join(script)).args(args);
        cmd
    }

    /// Whether Gale reaches PostgreSQL through HAProxy.
    pub fn haproxy(&self) -> bool {
        self.db_mode == "haproxy"
    }

    /// `program` with this cluster's settings in its environment and no other
    /// Gale setting (but GALE_PG_BIN; GALE_CLUSTER_DB is the suite's own,
    /// `haproxy` unless set).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GALE_")
                && k != "GALE_PG_BIN"
                && k != "GALE_CLUSTER_DB"
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("GALE_CLUSTER_DIR", &self.dir)
            .env("GALE_CLUSTER_DB", &self.db_mode)
            .env("GALE_CLUSTER_PORT_BASE", self.port_base.to_string())
            .env("GALE_BIN", env!("CARGO_BIN_EXE_gale"))
            .env("GALE_STOP_TIMEOUT", "20");
        cmd
    }

    /// `ctl.sh ARGS`, which must succeed; returns what it printed.
    pub fn ctl(&self, args: &[&str]) -> Out {
        let out = run(self.script("ctl.sh", args), Duration::from_secs(240));
        assert!(
            out.ok,
            "ctl.sh {} failed: {out}\n(the logs' tails follow)",
            args.join(" ")
        );
        out
    }

    /// The port of HAProxy's stats page.
    pub fn stats_port(&self) -> u16 {
        self.port_base + 2
    }

    /// The current primary's node number, per Patroni (`ctl.sh primary`).
    pub fn primary(&self) -> u8 {
        let out = self.ctl(&["primary"]);
        let name = out.stdout.split_whitespace().next().unwrap_or_default();
        name.strip_prefix("pg")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("ctl.sh primary printed no pgN: {out}"))
    }

    /// The primary, or `None` while Patroni has none.
    pub fn try_primary(&self) -> Option<u8> {
        let out = run(self.script("ctl.sh", &["primary"]), Duration::from_secs(20));
        if !out.ok {
            return None;
        }
        out.stdout
            .split_whitespace()
            .next()?
            .strip_prefix("pg")?
            .parse()
            .ok()
    }

    /// A database URL for libpq (psql): every host, the primary only.
    fn libpq_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}target_session_attrs=read-write&connect_timeout=2&application_name=gale-ha-test",
            self.url
        )
    }

    /// Runs `sql` on the primary in database `gale` (psql, unaligned, tuples only).
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.psql(&self.libpq_url(), sql)
    }

    /// Runs `sql` on node `n`'s PostgreSQL itself, whatever its role (not
    /// through HAProxy nor the multi-host URL).
    pub fn try_sql_on(&self, n: u8, sql: &str) -> Result<String, String> {
        let port = self.port_base + 10 * u16::from(n) + 2;
        self.psql(
            &format!(
                "postgres://gale@127.0.0.1:{port}/gale?connect_timeout=2&application_name=gale-ha-test"
            ),
            sql,
        )
    }

    fn psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(self.pg_bin.join("psql"));
        cmd.arg(url)
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            // The cluster's passwords, for URLs that do not carry gale's.
            .env("PGPASSFILE", self.dir.join("pgpass"))
            .env("PGCONNECT_TIMEOUT", "2")
            .env("PGOPTIONS", "-c statement_timeout=20000");
        let out = run(cmd, Duration::from_secs(30));
        if out.ok {
            Ok(out.stdout.trim_end().to_owned())
        } else {
            Err(format!("{}{}", out.stderr.trim(), out.stdout.trim()))
        }
    }

    /// Every PostgreSQL of the cluster, and HAProxy's port to the primary,
    /// refuses Gale's role and the superuser over TCP without their password
    /// or with a wrong one (scram-sha-256, never trust), and lets them in
    /// with it: a task that knows the ports but not a password gets nothing.
    pub fn assert_passwords_required(&self) {
        let ports = NODES
            .iter()
            .map(|n| self.port_base + 10 * u16::from(*n) + 2)
            .chain([self.port_base]);
        for port in ports {
            for user in ["gale", "postgres"] {
                let attempt = |password: Option<&str>, passfile: &Path| {
                    let mut cmd = Command::new(self.pg_bin.join("psql"));
                    cmd.args([
                        "-w",
                        "-XAtq",
                        "-h",
                        "127.0.0.1",
                        "-d",
                        "postgres",
                        "-U",
                        user,
                    ])
                    .args(["-p", &port.to_string(), "-c", "SELECT current_user"])
                    .env_remove("PGPASSWORD")
                    .env("PGPASSFILE", passfile)
                    .env("PGCONNECT_TIMEOUT", "5");
                    if let Some(p) = password {
                        cmd.env("PGPASSWORD", p);
                    }
                    run(cmd, Duration::from_secs(30))
                };
                let none = Path::new("/dev/null");
                let out = attempt(None, none);
                assert!(
                    !out.ok && out.stderr.contains("no password supplied"),
                    "port {port} must ask {user} for a password: {out}"
                );
                let out = attempt(Some("not-the-password"), none);
                assert!(
                    !out.ok
                        && out.stderr.contains(&format!(
                            "password authentication failed for user \"{user}\""
                        )),
                    "port {port} must refuse {user} with a wrong password: {out}"
                );
                let out = attempt(None, &self.dir.join("pgpass"));
                assert!(
                    out.ok && out.stdout.trim() == user,
                    "port {port} must let {user} in with its password: {out}"
                );
            }
        }
    }

    /// [`Cluster::try_sql`], retried for up to a minute (the database may be
    /// failing over), then panicking.
    pub fn sql(&self, sql: &str) -> String {
        let mut last = String::new();
        let got = wait_for(
            Duration::from_secs(60),
            Duration::from_millis(500),
            || match self.try_sql(sql) {
                Ok(v) => Some(v),
                Err(e) => {
                    last = e;
                    None
                }
            },
        );
        got.unwrap_or_else(|| panic!("psql `{sql}` kept failing for 60 s: {last}"))
    }

    /// The pid of Gale node `n`, from its pid file, if that process is alive.
    pub fn gale_pid(&self, n: u8) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.dir.join(format!("run/gale{n}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    /// `gale cluster status --output json` on this cluster.
    pub fn status(&self) -> Option<Value> {
        let mut cmd = Command::new(&self.gale_bin);
        cmd.args([
            "--database-url",
            &self.url,
            "-o",
            "json",
            "cluster",
            "status",
        ]);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GALE_") {
                cmd.env_remove(k);
            }
        }
        let out = run(cmd, Duration::from_secs(30));
        if !out.ok {
            return None;
        }
        serde_json::from_str(&out.stdout).ok()
    }

    /// Gale node number (1..3) of each running Gale process, by node id.
    pub fn node_numbers(&self) -> Vec<(String, u8)> {
        let Some(status) = self.status() else {
            return Vec::new();
        };
        let pids: Vec<(i32, u8)> = NODES
            .iter()
            .filter_map(|n| Some((self.gale_pid(*n)?, *n)))
            .collect();
        status["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|node| {
                let pid = node["pid"].as_i64()? as i32;
                let n = pids.iter().find(|(p, _)| *p == pid)?.1;
                Some((node["node_id"].as_str()?.to_owned(), n))
            })
            .collect()
    }

    /// Whether each of the 3 Gale processes in the pid files is alive and
    /// listed as running by `gale cluster status` (by pid: a killed node's
    /// row stays "running" until its heartbeat is old).
    pub fn gale_nodes_running(&self) -> bool {
        let Some(status) = self.status() else {
            return false;
        };
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        NODES.iter().all(|n| {
            self.gale_pid(*n).is_some_and(|pid| {
                nodes
                    .iter()
                    .any(|node| node["pid"] == pid && node["health"] == "running")
            })
        })
    }

    /// Waits until Patroni has a leader with two streaming replicas
    /// (`ctl.sh wait`) and the three Gale nodes run.
    pub fn wait_healthy(&self, after: &str) {
        let out = run(
            self.script("ctl.sh", &["wait", "240"]),
            Duration::from_secs(300),
        );
        assert!(
            out.ok,
            "after {after}: expected a Patroni leader with two streaming replicas and 3 running \
             Gale nodes within 240 s (ctl.sh wait): {out}\n(the logs' tails follow)"
        );
        wait_until(
            &format!("the 3 Gale nodes of the pid files to run (after {after})"),
            Duration::from_secs(120),
            Duration::from_millis(500),
            || self.gale_nodes_running().then_some(()),
            || format!("cluster status: {:#}", self.status().unwrap_or_default()),
        );
    }

    /// Writes a DAG file into every Gale node's DAG folder (`nodeN/gale/dags`:
    /// one shared folder by default, a copy per node with
    /// GALE_CLUSTER_DAGS=copies).
    pub fn write_dag(&self, file: &str, yaml: &str) {
        let mut folders: Vec<PathBuf> = NODES
            .iter()
            .map(|n| {
                let dags = self.dir.join(format!("node{n}/gale/dags"));
                std::fs::canonicalize(&dags)
                    .unwrap_or_else(|e| panic!("no DAG folder {}: {e}", dags.display()))
            })
            .collect();
        folders.sort();
        folders.dedup();
        for dags in folders {
            // Written aside, then renamed: a processor never reads half a file.
            let tmp = dags.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, yaml).expect("writing a DAG file");
            std::fs::rename(&tmp, dags.join(file)).expect("renaming a DAG file");
        }
    }

    /// A directory of the test's own in the state directory.
    pub fn test_dir(&self) -> PathBuf {
        let d = self.dir.join("ha-test");
        std::fs::create_dir_all(&d).expect("creating the test's directory");
        d
    }

    /// Shows this log's tail too when the test fails.
    pub fn add_log(&self, name: &str, path: &Path) {
        self.extra_logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), path.to_path_buf()));
    }

    /// The tail of every Gale node's and Patroni's log (and the test's own
    /// processes'), for failure messages.
    pub fn tails(&self) -> String {
        let mut s = String::new();
        let mut add = |name: &str, path: PathBuf, n: usize| {
            s += &format!(
                "\n--- last {n} lines of {name} ({}):\n{}\n",
                path.display(),
                tail(&path, n)
            );
        };
        for n in NODES {
            add(
                &format!("gale node {n}"),
                self.dir.join(format!("node{n}/gale/gale.log")),
                60,
            );
        }
        for n in NODES {
            add(
                &format!("Patroni {n}"),
                self.dir.join(format!("node{n}/pg/patroni.log")),
                25,
            );
        }
        add("HAProxy", self.dir.join("haproxy/haproxy.log"), 15);
        let extra = self
            .extra_logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, path) in extra {
            add(&name, path, 60);
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!("{}", self.tails());
        }
        let args: &[&str] = if self.keep { &[] } else { &["--purge"] };
        let out = run(self.script("down.sh", args), Duration::from_secs(240));
        if self.keep {
            eprintln!(
                "HA: cluster stopped; its state is kept in {} ({KEEP_VAR} is set)",
                self.dir.display()
            );
        } else if out.ok {
            eprintln!("HA: cluster stopped and {} removed", self.dir.display());
        }
        if !out.ok {
            let msg = format!("down.sh did not stop the cluster cleanly: {out}");
            if panicking {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// A port base whose 35 ports are all free, below the ephemeral range (so a
/// client's outgoing connection never holds one) and away from the default
/// base 25000 that a cluster started by hand uses. `GALE_HA_PORT_BASE` forces one.
fn free_port_base() -> u16 {
    if let Some(base) = std::env::var("GALE_HA_PORT_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return base;
    }
    // Bases 26000, 26100, ..., 32600, starting at one chosen by our pid, so
    // two test runs at once are unlikely to try the same one first.
    let bases: Vec<u16> = (0..67).map(|i| 26000 + 100 * i).collect();
    let start = std::process::id() as usize % bases.len();
    for i in 0..bases.len() {
        let base = bases[(start + i) % bases.len()];
        let free = (base..base + PORTS).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free port base between 26000 and 32634 for the cluster");
}

/// Whether a process exists and is not a zombie.
/// Whether the `patroni` on the PATH is 3.0.3 or later: before it, a primary
/// that stalled past its leader key's TTL takes the key back when it thaws
/// (patroni/patroni#2689), and the promoted node's acknowledged writes are
/// rewound away.
pub fn patroni_fixed() -> Result<(), String> {
    let out = Command::new("patroni")
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run `patroni --version`: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version: Vec<u32> = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect();
    if version.len() >= 3 && version[..3] >= [3, 0, 3][..] {
        Ok(())
    } else {
        Err(format!(
            "needs Patroni 3.0.3 or later (found {:?}): pip install \
             'patroni[etcd3]==3.0.4' psycopg2-binary (.ci/run installs it in /opt/patroni)",
            text.trim()
        ))
    }
}

pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return false;
    };
    !matches!(rest.chars().next(), Some('Z' | 'X') | None)
}
