//! The operator's view of a cluster and the knobs shared across DAGs:
//!
//! - `gale cluster status` and `gale cluster check` on PostgreSQL, while the
//!   processes are healthy, after one is SIGKILLed (unresponsive), after one is
//!   SIGTERMed (stopped), and against a database that cannot be reached;
//! - a clean stop (SIGTERM) leaves no attempt `running`: what outlives the
//!   shutdown grace is handed back and its process is gone, what ends within it
//!   succeeds;
//! - pools cap how many tasks of several DAGs run at once, and a task naming a
//!   pool that does not exist waits until it is created;
//! - the schedule-slot ledger of a DAG without catchup: the slots before its
//!   first run are `skipped`, the latest gets a run.
//!
//! The PostgreSQL tests print SKIPPED and pass without PostgreSQL binaries,
//! except under `CI=true` (see `gale_pgtest`).

use std::time::{Duration, Instant};

use gale_pgtest::shared_database;
use jiff::{SignedDuration, Timestamp};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{Home, Out, alive_in_group, task, wait_until};
use crate::pg::{Pg, Role};

/// The lease every process here runs with (the smallest Gale accepts).
const LEASE: &str = "3s";
/// A password in every URL: trust authentication ignores it, and no output may show it.
const PASSWORD: &str = "s3cret-pw";

/// A fresh database on the shared test server: (URL with a password, the
/// endpoint Gale should show for it). `None`: skip the test.
fn database(test: &str) -> Option<(String, String)> {
    let url = shared_database(test)?;
    let with_password = url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PASSWORD}@"),
        1,
    );
    assert_ne!(with_password, url, "unexpected test database URL {url}");
    Some((with_password, url))
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a timestamp: {v}: {e}"))
}

/// The findings of `gale cluster check` in its table form: (ok, line).
fn check_lines(out: &Out) -> Vec<(bool, String)> {
    out.stdout
        .lines()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("FAIL ") {
                Some((false, rest.trim().to_owned()))
            } else {
                l.strip_prefix("ok ")
                    .map(|rest| (true, rest.trim().to_owned()))
            }
        })
        .collect()
}

/// Whether a finding of `cluster check` for `check` has this outcome and a
/// detail containing `detail`.
fn has_finding(out: &Out, ok: bool, check: &str, detail: &str) -> bool {
    check_lines(out).iter().any(|(o, line)| {
        *o == ok
            && line
                .strip_prefix(check)
                .is_some_and(|rest| rest.starts_with("  ") && rest.contains(detail))
    })
}

/// Healthy, then a crashed worker, then a stopped scheduler, then no database.
#[test]
fn cluster_status_and_check_on_postgres() {
    let test = "cluster_status_and_check_on_postgres";
    let Some((url, endpoint)) = database(test) else {
        return;
    };
    let home = Home::new();
    std::fs::create_dir_all(home.dags()).expect("creating the DAG folder");
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut scheduler = pg.start_registered(
        "scheduler",
        &[
            "scheduler",
            "--dags-folder",
            &dags,
            "--attempt-lease",
            LEASE,
        ],
    );
    let mut worker = pg.start_registered(
        "worker",
        &["worker", "--attempt-lease", LEASE, "--concurrency", "3"],
    );
    let (spid, wpid) = (scheduler.pid(), worker.pid());
    let host = nix::unistd::gethostname()
        .expect("the host name")
        .into_string()
        .expect("a UTF-8 host name");

    // Both processes, as they are.
    let status = pg.status(false);
    assert_eq!(status["database"], endpoint.as_str(), "{status:#}");
    let text = status.to_string();
    assert!(!text.contains(PASSWORD), "the password shows: {status:#}");
    let nodes = status["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 2, "exactly the two processes: {status:#}");
    let node = |pid: u32| -> &Value {
        nodes
            .iter()
            .find(|n| n["pid"] == pid)
            .unwrap_or_else(|| panic!("no node with pid {pid}: {status:#}"))
    };
    let (snode, wnode) = (node(spid), node(wpid));
    assert_eq!(
        snode["roles"],
        serde_json::json!(["scheduler"]),
        "{snode:#}"
    );
    assert_eq!(wnode["roles"], serde_json::json!(["worker"]), "{wnode:#}");
    assert_eq!(snode["attempt_lease_ms"], 0, "no worker role: {snode:#}");
    assert_eq!(wnode["attempt_lease_ms"], 3000, "{wnode:#}");
    for n in [snode, wnode] {
        assert_eq!(n["health"], "running", "{n:#}");
        assert_eq!(n["state"], "running", "{n:#}");
        assert_eq!(n["host"], host.as_str(), "{n:#}");
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"), "{n:#}");
        assert_eq!(n["running_attempts"], 0, "{n:#}");
        let age = n["heartbeat_age_s"].as_f64().expect("heartbeat_age_s");
        assert!((0.0..10.0).contains(&age), "heartbeat age {age}: {n:#}");
        assert!(ts(&n["heartbeat_at"]) >= ts(&n["started_at"]), "{n:#}");
        let skew = n["clock_skew_us"].as_i64().expect("clock_skew_us");
        assert!(
            skew.abs() < 1_000_000,
            "same machine, skew {skew} us: {n:#}"
        );
    }
    let sid = snode["node_id"].as_str().expect("node_id").to_owned();
    let wid = wnode["node_id"].as_str().expect("node_id").to_owned();
    assert_ne!(sid, wid);

    // Heartbeats go on (every 5 s).
    let first_beat = ts(&wnode["heartbeat_at"]);
    wait_until("the worker's heartbeat to move on", || {
        let n = pg.node(wpid)?;
        (ts(&n["heartbeat_at"]) > first_beat).then_some(())
    });

    // The table: the database, a header, one row per process.
    let out = pg.ok(&["cluster", "status"]);
    assert!(
        out.stdout
            .lines()
            .next()
            .is_some_and(|l| l == format!("database: {endpoint}")),
        "{out}"
    );
    for header in [
        "NODE",
        "HOST",
        "PID",
        "ROLES",
        "STATE",
        "HEARTBEAT",
        "RUNNING",
    ] {
        assert!(out.stdout.contains(header), "no {header} column: {out}");
    }
    for (id, pid, role) in [(&sid, spid, "scheduler"), (&wid, wpid, "worker")] {
        let row = out
            .stdout
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("no row for {id}: {out}"));
        assert!(row.contains(&pid.to_string()), "{row}");
        assert!(row.contains(role), "{row}");
        assert!(row.contains("running"), "{row}");
    }
    assert!(!out.stdout.contains(PASSWORD), "{out}");

    // Healthy.
    let out = pg.gale(&["cluster", "check"]);
    assert_eq!(out.code, 0, "a healthy cluster: {out}");
    assert_eq!(out.stdout.lines().last(), Some("cluster healthy"), "{out}");
    assert!(!out.stdout.contains("FAIL"), "{out}");
    assert!(has_finding(&out, true, "database", &endpoint), "{out}");
    assert!(has_finding(&out, true, "schema", "version"), "{out}");
    // The test server has TLS off; the default sslmode (prefer) allows that.
    assert!(
        has_finding(
            &out,
            true,
            "database TLS",
            "none: the connection is plaintext (sslmode=prefer)"
        ),
        "{out}"
    );
    assert!(has_finding(&out, true, "schedulers", "1 live"), "{out}");
    assert!(has_finding(&out, true, "workers", "1 live"), "{out}");
    for id in [&sid, &wid] {
        assert!(has_finding(&out, true, "clock", id), "{out}");
    }
    assert!(!out.stdout.contains(PASSWORD), "{out}");
    let findings = pg.gale(&["cluster", "check", "--output", "json"]);
    assert_eq!(findings.code, 0, "{findings}");
    let findings = findings.json();
    let findings = findings.as_array().expect("a list of findings");
    assert!(findings.iter().all(|f| f["ok"] == true), "{findings:#?}");
    for check in [
        "database",
        "clock (this machine)",
        "schema",
        "database TLS",
        "schedulers",
        "workers",
    ] {
        assert!(
            findings.iter().any(|f| f["check"] == check),
            "no {check} finding: {findings:#?}"
        );
    }
    assert_eq!(
        findings.iter().filter(|f| f["check"] == "clock").count(),
        2,
        "one clock finding per process: {findings:#?}"
    );

    // The worker crashes: it stays listed as running until its heartbeat is
    // older than 10 s, then shows as unresponsive.
    worker.crash();
    let crashed = Instant::now();
    let wnode = wait_until("the crashed worker to show as unresponsive", || {
        let n = pg.node(wpid).expect("the crashed worker is still listed");
        if n["health"] == "running" {
            return None;
        }
        Some(n)
    });
    let silent = crashed.elapsed();
    assert_eq!(wnode["health"], "unresponsive", "{wnode:#}");
    assert_eq!(wnode["state"], "running", "not stopped cleanly: {wnode:#}");
    let age = wnode["heartbeat_age_s"].as_f64().expect("heartbeat_age_s");
    assert!(age > 10.0, "unresponsive at a heartbeat age of {age}s");
    assert!(
        silent > Duration::from_secs(4),
        "unresponsive only {silent:?} after the crash (its last heartbeat was < 5 s before)"
    );
    let snode = pg.node(spid).expect("the scheduler is listed");
    assert_eq!(snode["health"], "running", "{snode:#}");
    let out = pg.ok(&["cluster", "status"]);
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains(wid.as_str()))
        .unwrap_or_else(|| panic!("no row for {wid}: {out}"));
    assert!(row.contains("unresponsive"), "{row}");

    let out = pg.gale(&["cluster", "check"]);
    assert_eq!(out.code, 1, "a crashed worker and no live one: {out}");
    assert!(
        has_finding(
            &out,
            false,
            "heartbeat",
            &format!("{wid} ({host} pid {wpid})")
        ),
        "no FAIL heartbeat line naming the worker: {out}"
    );
    assert!(
        has_finding(&out, false, "workers", "no live worker"),
        "{out}"
    );
    assert!(has_finding(&out, true, "schedulers", "1 live"), "{out}");
    assert!(has_finding(&out, true, "database", ""), "{out}");
    assert_eq!(
        out.stdout.lines().last(),
        Some("cluster has problems (see FAIL above)"),
        "{out}"
    );
    assert!(
        !check_lines(&out)
            .iter()
            .any(|(_, l)| l.starts_with("clock ") && l.contains(wid.as_str())),
        "the clock of an unresponsive node is not checked: {out}"
    );

    // The scheduler stops cleanly: exit 0, shown as stopped.
    scheduler.signal(Signal::SIGTERM);
    let (exit, took) = scheduler.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "SIGTERM: {exit}");
    eprintln!("scheduler stopped {took:?} after SIGTERM");
    let snode = pg.node(spid).expect("a stopped scheduler is still listed");
    assert_eq!(snode["state"], "stopped", "{snode:#}");
    assert_eq!(snode["health"], "stopped", "{snode:#}");
    let wnode = pg.node(wpid).expect("the crashed worker is still listed");
    assert_eq!(wnode["health"], "unresponsive", "{wnode:#}");
    let out = pg.ok(&["cluster", "status"]);
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains(sid.as_str()))
        .unwrap_or_else(|| panic!("no row for {sid}: {out}"));
    assert!(row.contains("stopped"), "{row}");
    let out = pg.gale(&["cluster", "check"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        has_finding(&out, false, "schedulers", "no live scheduler"),
        "{out}"
    );
    assert!(
        !check_lines(&out)
            .iter()
            .any(|(_, l)| l.starts_with("heartbeat") && l.contains(sid.as_str())),
        "a cleanly stopped node is not a heartbeat problem: {out}"
    );

    // No database: a FAIL line, soon, and never the password.
    let unreachable = format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/gale");
    let started = Instant::now();
    let out = home.gale(&["--database-url", &unreachable, "cluster", "check"]);
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{out}");
    assert!(
        has_finding(&out, false, "database", "127.0.0.1:1"),
        "no FAIL database line: {out}"
    );
    assert_eq!(
        out.stdout.lines().last(),
        Some("cluster has problems (see FAIL above)"),
        "{out}"
    );
    assert!(
        !out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD),
        "{out}"
    );
    assert!(
        took < Duration::from_secs(15),
        "cluster check took {took:?} on an unreachable database"
    );
    let out = home.gale(&[
        "--database-url",
        &unreachable,
        "cluster",
        "check",
        "--output",
        "json",
    ]);
    assert_eq!(out.code, 1, "{out}");
    let findings = out.json();
    assert!(
        findings.as_array().is_some_and(|f| f
            .iter()
            .any(|f| f["check"] == "database" && f["ok"] == false)),
        "{findings:#}"
    );
}

/// Waits (polling fast) until `path` exists and holds a pid.
fn wait_pid_file(path: &str, role: &mut Role) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        if let Some(status) = role.exited() {
            panic!(
                "gale {} exited ({status}) before the task started",
                role.name()
            );
        }
        if start.elapsed() > crate::harness::DEADLINE {
            panic!("no task wrote {path}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM to a node: an attempt that outlives the shutdown grace is handed back
/// (its process ended, the task up for retry, then run by another node); one
/// that ends within the grace succeeds.
#[test]
fn sigterm_leaves_no_attempt_running() {
    let test = "sigterm_leaves_no_attempt_running";
    let Some((url, _)) = database(test) else {
        return;
    };
    let home = Home::new();
    let pid_file = home.file("long.pid");
    // The first try runs for 30 s (its shell execs `sleep`, so the pid it
    // writes is the sleeping process and its process group); a retry, seeing
    // the pid file, ends at once.
    home.write_dag(
        "long.yaml",
        &format!(
            "id: long\ntasks:\n  nap:\n    run: |\n      \
             if [ -e {pid_file} ]; then echo retried; exit 0; fi\n      \
             echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\n      \
             exec sleep 30\n"
        ),
    );
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut node = pg.start_registered(
        "node-1",
        &[
            "node",
            "--dags-folder",
            &dags,
            "--attempt-lease",
            LEASE,
            "--shutdown-grace",
            "1s",
        ],
    );
    let node_pid = node.pid();
    pg.wait_dag("long");
    let run = pg.trigger("long", &[]);
    let task_pid = wait_pid_file(&pid_file, &mut node);
    assert!(alive_in_group(task_pid, task_pid), "the task runs");
    let attempt = wait_until("the attempt to be running", || {
        let tasks = pg.tasks(run);
        let nap = task(&tasks, "nap");
        (nap["state"] == "running").then(|| nap["attempts"][0].clone())
    });
    assert_eq!(attempt["state"], "running", "{attempt:#}");
    let node_id = pg
        .node(node_pid)
        .and_then(|n| n["node_id"].as_str().map(str::to_owned))
        .expect("the node is listed");
    assert_eq!(attempt["worker_id"], node_id.as_str(), "{attempt:#}");

    node.signal(Signal::SIGTERM);
    let (exit, took) = node.wait_exit(Duration::from_secs(30));
    eprintln!("node-1 exited {took:?} after SIGTERM (grace 1s)");
    assert!(exit.success(), "SIGTERM: {exit}");
    assert!(
        took < Duration::from_secs(10),
        "a 1s grace, yet the node took {took:?} to exit"
    );
    assert!(
        node.log()
            .contains("shutdown grace over: handing running attempts back"),
        "the grace ran out while the task slept"
    );
    assert!(
        !alive_in_group(task_pid, task_pid),
        "the task process {task_pid} outlived its node: {:?}",
        crate::harness::proc_stat(task_pid)
    );
    assert!(
        crate::harness::live_group_members(task_pid).is_empty(),
        "processes left in the task's group"
    );

    let tasks = pg.tasks(run);
    let nap = task(&tasks, "nap");
    assert!(tasks.iter().all(|t| t["state"] != "running"), "{tasks:#?}");
    // Up for retry; the stopping node's scheduler may have queued it again in
    // the moment between the hand-back and its own stop.
    assert!(
        matches!(
            nap["state"].as_str(),
            Some("up_for_retry" | "scheduled" | "queued")
        ),
        "handed back for a retry: {nap:#}"
    );
    let attempts = nap["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{nap:#}");
    let a = &attempts[0];
    assert_eq!(a["state"], "handed_back", "{a:#}");
    assert_eq!(a["worker_id"], node_id.as_str(), "{a:#}");
    assert!(
        a["ended_at"].is_string() && ts(&a["ended_at"]) >= ts(&a["started_at"]),
        "{a:#}"
    );
    let run_state = pg.json(&["runs", "show", &run.to_string()])["run"]["state"].clone();
    assert_eq!(
        run_state, "running",
        "a handed-back task does not end its run"
    );
    let log = pg.ok(&["tasks", "logs", &run.to_string(), "nap"]).stdout;
    assert!(
        log.contains("handed back for a retry"),
        "the attempt's log says why it stopped: {log}"
    );
    let status = pg.status(true);
    let n = status["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node_id"] == node_id.as_str()))
        .unwrap_or_else(|| panic!("{node_id} not listed: {status:#}"));
    assert_eq!(n["state"], "stopped", "{n:#}");
    assert_eq!(n["health"], "stopped", "{n:#}");
    assert_eq!(n["running_attempts"], 0, "{n:#}");

    // Another node retries it, at once.
    let mut other = pg.start_registered(
        "node-2",
        &[
            "node",
            "--dags-folder",
            &dags,
            "--attempt-lease",
            LEASE,
            "--shutdown-grace",
            "10s",
        ],
    );
    let other_pid = other.pid();
    let tasks = wait_until("the handed-back task to be retried", || {
        let tasks = pg.tasks(run);
        (task(&tasks, "nap")["state"] == "success").then_some(tasks)
    });
    let nap = task(&tasks, "nap");
    let attempts = nap["attempts"].as_array().expect("attempts");
    let states: Vec<&str> = attempts
        .iter()
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert_eq!(states, ["handed_back", "success"], "{nap:#}");
    assert_ne!(attempts[1]["worker_id"], node_id.as_str(), "{nap:#}");
    let log = pg.ok(&["tasks", "logs", &run.to_string(), "nap"]).stdout;
    assert!(log.contains("retried"), "{log}");

    // A short task ends within the grace: it succeeds while the node stops.
    let started_file = home.file("short.started");
    home.write_dag(
        "short.yaml",
        &format!("id: short\ntasks:\n  quick:\n    run: echo $$ > {started_file}; sleep 2\n"),
    );
    pg.wait_dag("short");
    let run = pg.trigger("short", &[]);
    let quick_pid = wait_pid_file(&started_file, &mut other);
    other.signal(Signal::SIGTERM);
    let (exit, took) = other.wait_exit(Duration::from_secs(30));
    eprintln!("node-2 exited {took:?} after SIGTERM (grace 10s, task sleeping 2s)");
    assert!(exit.success(), "SIGTERM: {exit}");
    let log = other.log();
    assert!(
        log.contains("worker stopping: waiting for running attempts"),
        "SIGTERM came while the task ran: {log}"
    );
    assert!(!log.contains("handing running attempts back"), "{log}");
    assert!(!alive_in_group(quick_pid, quick_pid));
    let tasks = pg.tasks(run);
    let quick = task(&tasks, "quick");
    assert_eq!(quick["state"], "success", "{quick:#}");
    let attempts = quick["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{quick:#}");
    assert_eq!(attempts[0]["state"], "success", "{quick:#}");
    let status = pg.status(true);
    let nodes = status["nodes"].as_array().expect("nodes");
    let n = nodes
        .iter()
        .find(|n| n["pid"] == other_pid)
        .unwrap_or_else(|| panic!("node-2 not listed: {status:#}"));
    assert_eq!(n["state"], "stopped", "{n:#}");
    assert!(
        nodes.iter().all(|n| n["health"] == "stopped"),
        "both nodes stopped: {status:#}"
    );
}

/// The most intervals `[s, e)` that overlap at one instant.
fn peak_overlap(intervals: &[(Timestamp, Timestamp)]) -> usize {
    intervals
        .iter()
        .map(|(s, _)| {
            intervals
                .iter()
                .filter(|(xs, xe)| xs <= s && s < xe)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn pool<'a>(pools: &'a Value, name: &str) -> Option<&'a Value> {
    pools.as_array()?.iter().find(|p| p["name"] == name)
}

/// Two DAGs share a pool of 2 slots; a task in a pool that does not exist
/// waits until it is created.
#[test]
fn pools_cap_concurrency_across_dags() {
    let home = Home::new();
    let out = home.ok(&[
        "pools",
        "set",
        "db",
        "2",
        "--description",
        "two connections",
    ]);
    assert!(out.stdout.contains("pool db: 2 slots"), "{out}");
    for dag in ["pool_a", "pool_b"] {
        let mut yaml = format!("id: {dag}\nmax_active_tasks: 8\ntasks:\n");
        for i in 1..=4 {
            yaml += &format!("  t{i}:\n    pool: db\n    run: sleep 1\n");
        }
        home.write_dag(&format!("{dag}.yaml"), &yaml);
    }
    home.write_dag(
        "pool_wait.yaml",
        "id: pool_wait\ntasks:\n  w:\n    pool: later\n    run: echo ran\n",
    );
    let gale = home.start();
    for dag in ["pool_a", "pool_b", "pool_wait"] {
        home.wait_dag(dag);
    }
    let waiting = home.trigger("pool_wait", &[]);
    let runs = [home.trigger("pool_a", &[]), home.trigger("pool_b", &[])];

    // Sampled while the runs go: never more than 2 of the pool's tasks queued
    // or running.
    let mut most = 0;
    wait_until("both pool runs to finish", || {
        let pools = home.json(&["pools", "list"]);
        let db = pool(&pools, "db").unwrap_or_else(|| panic!("no pool db: {pools:#}"));
        let used = db["running"].as_u64().unwrap_or(99) + db["queued"].as_u64().unwrap_or(99);
        assert!(used <= 2, "pool db over its 2 slots: {pools:#}");
        most = most.max(used);
        runs.iter()
            .all(|r| {
                matches!(
                    home.run_json(*r)["run"]["state"].as_str(),
                    Some("success" | "failed")
                )
            })
            .then_some(())
    });
    eprintln!("at most {most} pool slots in use while sampling");

    // The recorded attempts: all succeeded, at most 2 at once.
    let mut intervals = Vec::new();
    for run in runs {
        let show = home.run_json(run);
        assert_eq!(show["run"]["state"], "success", "{show:#}");
        for t in home.tasks(run) {
            assert_eq!(t["state"], "success", "{t:#}");
            let attempts = t["attempts"].as_array().expect("attempts");
            assert_eq!(attempts.len(), 1, "{t:#}");
            let a = &attempts[0];
            assert_eq!(a["state"], "success", "{a:#}");
            intervals.push((ts(&a["started_at"]), ts(&a["ended_at"])));
        }
    }
    assert_eq!(intervals.len(), 8);
    let peak = peak_overlap(&intervals);
    eprintln!("at most {peak} pool tasks ran at once");
    assert!(peak <= 2, "{peak} pool tasks ran at once: {intervals:#?}");
    assert_eq!(peak, 2, "the pool's 2 slots were used: {intervals:#?}");

    let pools = home.json(&["pools", "list"]);
    let db = pool(&pools, "db").unwrap_or_else(|| panic!("no pool db: {pools:#}"));
    assert_eq!(db["slots"], 2, "{pools:#}");
    assert_eq!(db["running"], 0, "{pools:#}");
    assert_eq!(db["queued"], 0, "{pools:#}");
    assert_eq!(db["description"], "two connections", "{pools:#}");
    assert!(pool(&pools, "later").is_none(), "{pools:#}");

    // Meanwhile the task in the missing pool waited, and the scheduler said so.
    let tasks = home.tasks(waiting);
    let w = task(&tasks, "w");
    assert_eq!(w["state"], "scheduled", "{w:#}");
    assert_eq!(w["attempts"], serde_json::json!([]), "{w:#}");
    let state = home.run_json(waiting)["run"]["state"].clone();
    assert!(state == "running" || state == "queued", "run {state}");
    // The scheduler looks for missing pools every 10 s.
    wait_until("a warning about pool `later`", || {
        gale.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("does not exist") && l.contains("later"))
            .then_some(())
    });
    let tasks = home.tasks(waiting);
    assert_eq!(task(&tasks, "w")["state"], "scheduled", "{tasks:#?}");

    home.ok(&["pools", "set", "later", "1"]);
    let show = home.wait_run(waiting);
    assert_eq!(show["run"]["state"], "success", "{show:#}");
    assert!(home.logs(waiting, "w", None).contains("ran"));
    let pools = home.json(&["pools", "list"]);
    let later = pool(&pools, "later").unwrap_or_else(|| panic!("no pool later: {pools:#}"));
    assert_eq!(later["slots"], 1, "{pools:#}");
    assert_eq!(later["running"], 0, "{pools:#}");
}

/// The start of the minute `t` falls in.
fn minute_floor(t: Timestamp) -> Timestamp {
    let s = t.as_second();
    Timestamp::from_second(s - s.rem_euclid(60)).expect("a timestamp")
}

/// An every-minute DAG without catchup, started 3 hours ago: the slots before
/// its first run are skipped, the latest gets a run.
#[test]
fn slot_ledger_records_skipped_and_run_slots() {
    const HOURS: i64 = 3;
    let home = Home::new();
    let before = Timestamp::now();
    let start = minute_floor(before) - SignedDuration::from_hours(HOURS);
    home.write_dag(
        "minutely.yaml",
        &format!(
            "id: minutely\nschedule: \"* * * * *\"\nstart_date: {start}\ncatchup: false\n\
             tasks:\n  tick:\n    run: echo tick {{{{ ts }}}}\n"
        ),
    );
    let _gale = home.start();
    home.wait_dag("minutely");
    let first = wait_until("the first scheduled run", || {
        let slots = home.json(&["runs", "slots", "minutely", "--limit", "1000"]);
        let slots = slots.as_array()?.clone();
        slots.iter().any(|s| s["status"] == "run").then_some(slots)
    });
    let after = Timestamp::now();
    let minute = SignedDuration::from_mins(1);

    // That later passes record nothing more is the scheduler core's test
    // (`without_catchup_slots_before_the_first_run_are_skipped_and_a_gap_is_missed`).
    let slots = first;
    let skipped: Vec<&Value> = slots.iter().filter(|s| s["status"] == "skipped").collect();
    let ran: Vec<&Value> = slots.iter().filter(|s| s["status"] == "run").collect();
    assert!(
        slots
            .iter()
            .all(|s| s["status"] == "run" || s["status"] == "skipped"),
        "{slots:#?}"
    );

    // Newest first, one slot per minute with no gap, from start_date on.
    for s in &slots {
        assert_eq!(s["dag_id"], "minutely", "{s:#}");
        assert_eq!(
            ts(&s["interval_end"]),
            ts(&s["logical_date"]) + minute,
            "{s:#}"
        );
        assert!(s["recorded_at"].is_string(), "{s:#}");
    }
    for w in slots.windows(2) {
        assert_eq!(
            ts(&w[0]["logical_date"]),
            ts(&w[1]["logical_date"]) + minute,
            "slots out of order or with a gap: {:#} then {:#}",
            w[0],
            w[1]
        );
    }
    let oldest = slots.last().expect("slots");
    assert_eq!(ts(&oldest["logical_date"]), start, "{oldest:#}");

    // The newest slots have runs (one, or two if a minute passed meanwhile);
    // every older one was skipped.
    assert!(
        (1..=2).contains(&ran.len()),
        "{} slots with runs: {ran:#?}",
        ran.len()
    );
    for (i, s) in slots.iter().enumerate() {
        let want = if i < ran.len() { "run" } else { "skipped" };
        assert_eq!(s["status"], want, "slot {i}: {s:#}");
        assert_eq!(s["run_id"].is_i64(), want == "run", "slot {i}: {s:#}");
    }
    // The first run is the latest complete slot when the scheduler started.
    let first_run = ts(&ran.last().expect("a run")["logical_date"]);
    assert!(
        first_run >= minute_floor(before) - minute && first_run <= minute_floor(after) - minute,
        "first run for {first_run}, the scheduler ran from {before} to {after}"
    );
    let expected_skipped = (first_run.as_second() - start.as_second()) / 60;
    assert_eq!(skipped.len() as i64, expected_skipped);
    assert!(
        skipped.len() as i64 >= HOURS * 60 - 2,
        "{} skipped",
        skipped.len()
    );

    // The ledger's runs are the DAG's scheduled runs.
    let runs = home.runs("minutely");
    assert_eq!(runs.len(), ran.len(), "{runs:#?}");
    for s in &ran {
        let id = s["run_id"].as_i64().expect("run_id");
        let r = runs
            .iter()
            .find(|r| r["run_id"] == id)
            .unwrap_or_else(|| panic!("no run {id}: {runs:#?}"));
        assert_eq!(r["run_type"], "scheduled", "{r:#}");
        assert_eq!(ts(&r["logical_date"]), ts(&s["logical_date"]), "{r:#}");
    }
    let id = ran.last().expect("a run")["run_id"]
        .as_i64()
        .expect("run_id");
    let show = home.wait_run(id);
    assert_eq!(show["run"]["state"], "success", "{show:#}");

    // --limit keeps the newest.
    let two = home.json(&["runs", "slots", "minutely", "--limit", "2"]);
    let two = two.as_array().expect("slots list");
    assert_eq!(two.len(), 2);
    assert_eq!(two[0]["logical_date"], slots[0]["logical_date"]);
}

/// More slots to pass over than the scheduler records for one gap (1000): the
/// ledger keeps the newest of them, with no hole before the first run.
#[test]
fn slot_ledger_has_no_hole_after_more_than_1000_slots() {
    const HOURS: i64 = 20;
    let home = Home::new();
    let start = minute_floor(Timestamp::now()) - SignedDuration::from_hours(HOURS);
    home.write_dag(
        "long_ago.yaml",
        &format!(
            "id: long_ago\nschedule: \"* * * * *\"\nstart_date: {start}\ncatchup: false\n\
             tasks:\n  tick:\n    run: 'true'\n"
        ),
    );
    let _gale = home.start();
    home.wait_dag("long_ago");
    wait_until("the first scheduled run", || {
        let slots = home.json(&["runs", "slots", "long_ago", "--limit", "5000"]);
        slots
            .as_array()?
            .iter()
            .any(|s| s["status"] == "run")
            .then_some(())
    });
    // That later passes add no hole is the scheduler core's test
    // (`a_gap_of_more_than_a_thousand_slots_keeps_the_newest_without_holes`).
    let slots = home.json(&["runs", "slots", "long_ago", "--limit", "5000"]);
    let slots = slots.as_array().expect("slots list");
    assert_eq!(slots[0]["status"], "run", "{:#}", slots[0]);
    assert!(slots.len() >= 1000, "{} slots", slots.len());
    let minute = SignedDuration::from_mins(1);
    let holes: Vec<String> = slots
        .windows(2)
        .filter(|w| ts(&w[0]["logical_date"]) != ts(&w[1]["logical_date"]) + minute)
        .map(|w| {
            let (newer, older) = (ts(&w[0]["logical_date"]), ts(&w[1]["logical_date"]));
            format!(
                "{} slots missing between {older} ({}) and {newer} ({})",
                (newer.as_second() - older.as_second()) / 60 - 1,
                w[1]["status"],
                w[0]["status"]
            )
        })
        .collect();
    assert!(holes.is_empty(), "holes in the slot ledger: {holes:#?}");
}
