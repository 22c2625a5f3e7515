//! The failure-injection suite: the local cluster of `deploy/local-cluster`
//! (3 etcd, 3 Patroni-managed PostgreSQL 15, HAProxy, 3 `gale node`) under
//! continuous load, broken in ten ways one after another, each measured:
//!
//! 1. SIGKILL the busiest scheduler (the node running most attempts), restart it;
//! 2. SIGKILL a worker mid-task, restart it once the others took its work over;
//! 3. SIGKILL a webserver behind HAProxy while a client polls the API through it;
//! 4. `patronictl switchover`;
//! 5. hard crash of the primary (its Patroni and PostgreSQL SIGKILLed), then rejoin;
//! 6. a whole node lost (its Gale node, Patroni and PostgreSQL), then brought back;
//! 7. a worker cut off from the network in its own network namespace: it kills
//!    its attempt before its lease ends, the retry runs elsewhere, its late
//!    result is rejected;
//! 8. etcd losing its majority for 20 s (Patroni demotes the primary), restored;
//! 9. the primary's Patroni alone SIGKILLed, its PostgreSQL left running and
//!    writable to direct connections (no watchdog): through HAProxy, Gale
//!    leaves it and nothing written is lost when it rejoins. Needs
//!    `GALE_CLUSTER_DB=haproxy` (a multi-host URL is not protected);
//! 10. the primary's database host stalled for 30 s (SIGSTOP on its
//!     Patroni, postmaster and every backend): connections to it stay open
//!     and nothing answers; Patroni promotes a standby, Gale gives the frozen
//!     server up (its probe, per-host connect bounds) and resumes on the new
//!     primary. Needs Patroni 3.0.3 or later: an older one without a watchdog
//!     lets the thawed host take the leader back and rewinds the promoted
//!     node, discarding writes it acknowledged (skipped then, a failure under
//!     `CI=true`).
//!
//! Before the first scenario, every PostgreSQL of the cluster and HAProxy's
//! port to the primary must refuse Gale's role and the superuser without a
//! password or with a wrong one (scram-sha-256, no trust), and let them in
//! with theirs.
//!
//! The load: a DAG scheduled every 5 s and a DAG triggered every second through
//! HAProxy's HTTP frontend, both a chain with a fan-out of short tasks. A probe
//! writes a row every 100 ms through the database URL Gale uses. After the last
//! scenario the load stops, every run must end `success`, no two attempts of a
//! task instance may overlap and nothing may be left queued or running. The
//! figures go to stdout and `$CARGO_TARGET_TMPDIR/ha-figures.md`.
//!
//! Needs `patroni etcd-server etcd-client haproxy postgresql-15 curl jq` and,
//! for scenario 7, root and `ip` (iproute2). Without them the suite prints
//! `*** SKIPPED` and passes, except under `CI=true`, where it fails.
//! `GALE_HA_KEEP=1` keeps the cluster's state directory (logs) afterwards,
//! `GALE_HA_PORT_BASE` forces the port base (default: a free one between 26000
//! and 32600). Gale (and the probe) reach PostgreSQL through HAProxy
//! (`GALE_CLUSTER_DB=haproxy`, the suite's default); `GALE_CLUSTER_DB=multihost`
//! runs scenarios 1-8 with the multi-host URL and skips scenario 9 (a failure
//! under `CI=true`).

mod cluster;
mod figures;
mod load;
mod netns;
mod probe;
mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use cluster::{Cluster, NODES, alive};
use figures::Record;
use load::{Http, LoadGen, Poller};
use netns::{Netns, Proc, Relay};
use probe::Probe;
use util::{epoch_now, wait_for, wait_until};

/// The lease every Gale node runs with (the default).
const LEASE_S: f64 = 10.0;

const FENCE_MESSAGE: &str =
    "cannot reach the store to renew leases: killing running attempts before their lease ends";
const LATE_MESSAGE: &str = "late result rejected: the attempt was reaped or changed while it ran";

/// Failed polls through HAProxy allowed when a webserver dies: at 10 polls/s,
/// about a third of those sent before HAProxy's check marks it down (fall 2,
/// 0.5-1 s) may reach it.
const MAX_FAILED_POLLS: usize = 5;

const LOAD_DAG: &str = "ha_load";
const SCHED_DAG: &str = "ha_sched";
const CHECK_DAG: &str = "ha_check";

const TOOLS: &[&str] = &[
    "etcd",
    "etcdctl",
    "patroni",
    "patronictl",
    "haproxy",
    "curl",
    "jq",
];

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `tool` is on the PATH (or in /usr/sbin, /sbin, where haproxy and
/// ip live and an ordinary user's PATH may not look).
fn have(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(tool).is_file())
}

/// What is missing to run the suite, if anything.
fn missing() -> Vec<String> {
    let mut missing: Vec<String> = TOOLS
        .iter()
        .filter(|t| !have(t))
        .map(|t| t.to_string())
        .collect();
    let pg_bin = std::env::var_os("GALE_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    for b in ["postgres", "psql", "pg_rewind"] {
        if !pg_bin.join(b).is_file() {
            missing.push(pg_bin.join(b).display().to_string());
        }
    }
    missing
}

/// Why the network-namespace scenario cannot run here, if it cannot.
fn netns_unsupported() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root (ip netns and veth need CAP_NET_ADMIN)".into());
    }
    if !have("ip") {
        return Some("no `ip` command (apt-get install -y iproute2)".into());
    }
    None
}

#[test]
fn failure_injection_under_load() {
    let missing = missing();
    if !missing.is_empty() {
        let msg = format!(
            "the HA suite needs {} (apt-get install -y patroni etcd-server etcd-client haproxy \
             postgresql-15 curl jq)",
            missing.join(", ")
        );
        assert!(!ci(), "{msg}; CI=true makes this a failure");
        eprintln!("*** SKIPPED failure_injection_under_load: {msg}");
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::up();
    eprintln!("HA: cluster up in {:.0}s", started.elapsed().as_secs_f64());
    cluster.assert_passwords_required();
    let mut suite = Suite::new(cluster);
    suite.run_all();
    eprintln!("HA: suite done in {:.0}s", started.elapsed().as_secs_f64());
}

struct Suite {
    // Fields drop in order: the cluster (down.sh) last, after the threads stopped.
    probe: Probe,
    load: LoadGen,
    http: Http,
    records: Vec<Record>,
    /// The Gale nodes killed so far, so the next Gale scenario picks another.
    victims: Vec<u8>,
    cluster: Cluster,
}

impl Suite {
    fn new(cluster: Cluster) -> Suite {
        let dir = cluster.test_dir();
        install_dags(&cluster, &dir);
        cluster.sql(probe::TABLE_SQL);
        let http = Http::new(&cluster.http, &cluster.token, Duration::from_secs(5));
        let want = [LOAD_DAG, SCHED_DAG, CHECK_DAG, "ha_hold", "ha_quick"];
        wait_until(
            "the test's DAGs to be listed by the API",
            Duration::from_secs(90),
            Duration::from_millis(500),
            || {
                let v = http.json("GET", "/api/v1/dags?limit=100", None).ok()?;
                let ids: Vec<&str> = v["dags"]
                    .as_array()?
                    .iter()
                    .filter(|d| d["active"] == true)
                    .filter_map(|d| d["dag_id"].as_str())
                    .collect();
                want.iter().all(|w| ids.contains(w)).then_some(())
            },
            || {
                format!(
                    "import errors: {:?}",
                    http.send("GET", "/api/v1/import-errors", None)
                )
            },
        );
        let probe = Probe::start(&cluster.url);
        wait_until(
            "the write probe's first write",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || probe.writing().then_some(()),
            String::new,
        );
        let load = LoadGen::start(&cluster.http, &cluster.token, LOAD_DAG);
        Suite {
            probe,
            load,
            http,
            records: Vec::new(),
            victims: Vec::new(),
            cluster,
        }
    }

    fn run_all(&mut self) {
        let load_start = epoch_now();
        // The load is flowing: runs of both DAGs succeed.
        wait_until(
            "a triggered and a scheduled run to succeed under load",
            Duration::from_secs(120),
            Duration::from_millis(500),
            || {
                let n = self.cluster.try_sql(&format!(
                    "SELECT count(DISTINCT dag_id) FROM runs WHERE state = 'success' \
                     AND dag_id IN ('{LOAD_DAG}', '{SCHED_DAG}')"
                ));
                (n.ok()? == "2").then_some(())
            },
            String::new,
        );
        self.fresh_run("the start");

        self.scenario(
            load_start,
            "1. SIGKILL the busiest scheduler, restart it",
            false,
            Suite::kill_busiest,
        );
        self.scenario(
            epoch_now(),
            "2. SIGKILL a worker mid-task, restart it",
            false,
            Suite::kill_worker,
        );
        self.scenario(
            epoch_now(),
            "3. SIGKILL a webserver behind HAProxy",
            false,
            Suite::kill_webserver,
        );
        self.scenario(
            epoch_now(),
            "4. patronictl switchover",
            true,
            Suite::switchover,
        );
        self.scenario(
            epoch_now(),
            "5. hard crash of the primary (Patroni + PostgreSQL)",
            true,
            Suite::crash_primary,
        );
        self.scenario(
            epoch_now(),
            "6. a whole node lost (Gale + Patroni + PostgreSQL)",
            true,
            Suite::lose_node,
        );
        self.scenario(
            epoch_now(),
            "7. a worker cut off from the network (netns)",
            false,
            Suite::partition_worker,
        );
        self.scenario(
            epoch_now(),
            "8. etcd loses its majority for 20 s",
            true,
            Suite::etcd_quorum_loss,
        );
        self.scenario(
            epoch_now(),
            "9. the primary's Patroni alone SIGKILLed (its PostgreSQL keeps running)",
            true,
            Suite::kill_primary_patroni,
        );

        // Before 3.0.3, Patroni lets the stalled host take the leader key back
        // when it thaws and rewinds the promoted node, discarding writes it
        // acknowledged (docs/ha.md): the suite would report Patroni's loss.
        match cluster::patroni_fixed() {
            Ok(()) => self.scenario(
                epoch_now(),
                "10. the primary's database host stalled for 30 s",
                true,
                Suite::freeze_primary,
            ),
            Err(why) => {
                assert!(!ci(), "scenario 10 {why}; CI=true makes this a failure");
                eprintln!("*** SKIPPED scenario 10 (a stalled primary host): {why}");
            }
        }

        // Stop the load and let everything drain.
        self.load.stop();
        let paused = self.http.json(
            "PATCH",
            &format!("/api/v1/dags/{SCHED_DAG}"),
            Some(&json!({"paused": true})),
        );
        assert!(paused.is_ok(), "pausing {SCHED_DAG}: {paused:?}");
        let drain_start = Instant::now();
        let drained = wait_for(Duration::from_secs(180), Duration::from_millis(500), || {
            let open = self
                .cluster
                .try_sql("SELECT count(*) FROM runs WHERE state NOT IN ('success', 'failed')")
                .ok()?;
            (open == "0").then_some(())
        })
        .is_some();
        eprintln!(
            "HA: load stopped; runs {} in {:.0}s",
            if drained { "drained" } else { "NOT drained" },
            drain_start.elapsed().as_secs_f64()
        );

        // What became of the attempts of each killed or cut-off Gale process
        // (their retries have all started by now).
        for i in 0..self.records.len() {
            if let Some((node_id, since)) = self.records[i].victim.clone() {
                let what = self.interrupted(&node_id, since);
                self.records[i].notes.push(what);
            }
        }
        let stats = self.load.stats();
        let report = figures::account(&self.cluster, &mut self.records, &stats);
        println!("{}", report.markdown);
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ha-figures.md");
        std::fs::write(&out, &report.markdown).expect("writing ha-figures.md");
        eprintln!("HA: figures written to {}", out.display());

        assert!(
            drained,
            "expected every run to end within 180 s of stopping the load; still open:\n{}\n(the logs' tails follow)",
            report.open_runs
        );
        assert!(
            report.problems.is_empty(),
            "expected every run to succeed, no attempts of a task instance to overlap and \
             nothing to be left queued or running, in every scenario:\n{}\n\n{}",
            report.problems.join("\n"),
            report.markdown
        );
    }

    /// Runs one scenario: `inject` breaks something and waits until it is
    /// repaired, returning what it noted; then the cluster must be healthy
    /// again and a fresh run must succeed. Runs created from `start` on count
    /// toward this scenario.
    fn scenario(&mut self, start: f64, name: &str, db: bool, inject: fn(&mut Suite, &mut Record)) {
        eprintln!("HA: === {name}");
        let mut rec = Record::new(name, db, start);
        rec.injected = epoch_now();
        let t = Instant::now();
        inject(self, &mut rec);
        if rec.skipped.is_none() {
            self.cluster.wait_healthy(name);
            self.fresh_run(name);
        }
        rec.recovered = epoch_now();
        rec.outage = self.probe.outage(rec.injected, rec.recovered);
        if let (true, Some(o), None) = (db, rec.outage, rec.first_start) {
            rec.first_start = self.first_start_after(o.first_ok);
        }
        rec.trigger_failures = self
            .load
            .stats()
            .failures_between(rec.injected, rec.recovered);
        eprintln!(
            "HA: {name}: done in {:.0}s; write outage {}; first task start after writes resume {}; {}",
            t.elapsed().as_secs_f64(),
            rec.outage.map_or("none".into(), |o| format!(
                "{:.2}s ({} failed writes)",
                o.seconds(),
                o.failed
            )),
            rec.first_start.map_or("-".into(), |s| format!("{s:.2}s")),
            rec.notes.join("; ")
        );
        self.records.push(rec);
    }

    /// Seconds from `resumed` (the server's clock) to the first attempt that
    /// started at or after it.
    fn first_start_after(&self, resumed: f64) -> Option<f64> {
        let first = self
            .cluster
            .try_sql(&format!(
                "SELECT coalesce(extract(epoch FROM min(started_at))::float8::text, '') \
             FROM attempts WHERE started_at >= to_timestamp({resumed})"
            ))
            .ok()?;
        first.parse::<f64>().ok().map(|t| t - resumed)
    }

    /// Triggers the check DAG through HAProxy and waits for its run to succeed.
    fn fresh_run(&self, after: &str) {
        let run_id = self.trigger(CHECK_DAG, &format!("a fresh run (after {after})"));
        let tasks = format!(
            "SELECT string_agg(task_id || '=' || state, ' ') FROM task_instances \
             WHERE run_id = {run_id}"
        );
        let last = std::cell::RefCell::new(String::new());
        wait_until(
            &format!("fresh run {run_id} of {CHECK_DAG} to succeed (after {after})"),
            Duration::from_secs(120),
            Duration::from_millis(250),
            || {
                let state = self.http.run_state(run_id);
                match state.as_deref() {
                    Ok("success") => return Some(()),
                    Ok("failed") => panic!(
                        "expected fresh run {run_id} of {CHECK_DAG} to succeed (after {after}); \
                         it failed: {}",
                        self.cluster.sql(&tasks)
                    ),
                    _ => {}
                }
                *last.borrow_mut() = state.unwrap_or_else(|e| e);
                None
            },
            || format!("last answer: {}", last.borrow()),
        );
    }

    /// Triggers `dag_id` through HAProxy, retrying for up to 90 s.
    fn trigger(&self, dag_id: &str, what: &str) -> i64 {
        let last = std::cell::RefCell::new(String::new());
        wait_until(
            &format!("the API to take a run of {dag_id} ({what})"),
            Duration::from_secs(90),
            Duration::from_millis(250),
            || {
                self.http
                    .trigger(dag_id)
                    .map_err(|e| *last.borrow_mut() = e)
                    .ok()
            },
            || format!("last answer: {}", last.borrow()),
        )
    }

    /// Running attempts per Gale node: (node number, node id, count), busiest first.
    fn running_by_node(&self) -> Vec<(u8, String, usize)> {
        let numbers = self.cluster.node_numbers();
        let Ok(rows) = self.cluster.try_sql(
            "SELECT worker_id || ' ' || count(*) FROM task_instances \
             WHERE state = 'running' GROUP BY worker_id ORDER BY count(*) DESC, worker_id",
        ) else {
            return Vec::new();
        };
        rows.lines()
            .filter_map(|l| {
                let (id, n) = l.split_once(' ')?;
                let node = numbers.iter().find(|(nid, _)| nid == id)?.1;
                Some((node, id.to_owned(), n.parse().ok()?))
            })
            .collect()
    }

    /// How many attempts node `node_id` runs now.
    fn running_on(&self, node_id: &str) -> usize {
        self.cluster
            .sql(&format!(
                "SELECT count(*) FROM task_instances WHERE state = 'running' AND worker_id = '{node_id}'"
            ))
            .parse()
            .unwrap_or(0)
    }

    /// Waits until node `node_id` (killed or cut off) is listed as running no
    /// attempt any more: the others reaped them (or a restart recovered them).
    /// Seconds since `since`.
    fn wait_taken_over(&self, node_id: &str, since: f64, limit: Duration) -> f64 {
        wait_until(
            &format!("the attempts of node {node_id} to be reaped"),
            limit,
            Duration::from_millis(100),
            || {
                (self.cluster.try_sql(&format!(
                "SELECT count(*) FROM task_instances WHERE state = 'running' AND worker_id = '{node_id}'"
            )).ok()? == "0").then_some(())
            },
            String::new,
        );
        epoch_now() - since
    }

    /// What became of the attempts node `node_id` had when it was killed (or
    /// cut off) at `since`: how many were interrupted, and when the last of
    /// their retries started.
    fn interrupted(&self, node_id: &str, since: f64) -> String {
        let v = self.cluster.sql(&format!(
            "SELECT count(*) || ' ' || count(n.started_at) || ' ' \
               || coalesce(max(extract(epoch FROM n.started_at))::float8::text, '') \
             FROM attempts a LEFT JOIN attempts n ON n.ti_id = a.ti_id AND n.try_number = a.try_number + 1 \
             WHERE a.worker_id = '{node_id}' AND a.state NOT IN ('success', 'failed', 'running') \
               AND coalesce(a.ended_at, 'infinity') >= to_timestamp({since})"
        ));
        let f: Vec<&str> = v.split(' ').collect();
        let (total, retried) = (f[0], f.get(1).copied().unwrap_or("0"));
        let last = f.get(2).and_then(|t| t.parse::<f64>().ok());
        match last {
            Some(t) => format!(
                "{total} of its attempts interrupted, {retried} retried, the last retry started {:.1}s after",
                t - since
            ),
            None => format!("{total} of its attempts interrupted"),
        }
    }

    /// Picks the Gale node running most attempts among those `wanted`: one
    /// running at least 3 if that happens within 20 s, else at least 1.
    fn pick_busy(&self, what: &str, wanted: impl Fn(u8) -> bool) -> (u8, String, usize) {
        let start = Instant::now();
        wait_until(
            &format!("a Gale node running attempts ({what})"),
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                let busy = self.running_by_node();
                let best = busy.into_iter().find(|(n, _, _)| wanted(*n))?;
                let enough = if start.elapsed() < Duration::from_secs(20) {
                    3
                } else {
                    1
                };
                (best.2 >= enough).then_some(best)
            },
            String::new,
        )
    }

    // ------------------------------------------------------------ scenarios

    fn kill_busiest(&mut self, rec: &mut Record) {
        let (n, node_id, running) = self.pick_busy("the busiest", |_| true);
        let killed = epoch_now();
        self.cluster.ctl(&["kill-gale", &n.to_string()]);
        self.cluster.ctl(&["start-gale", &n.to_string()]);
        self.victims.push(n);
        rec.victim = Some((node_id.clone(), killed));
        // Restarted on the same host, it recovers the dead process's attempts at once.
        let took = self.wait_taken_over(&node_id, killed, Duration::from_secs(60));
        rec.notes.push(format!(
            "node {n} killed while running {running} attempts and restarted at once; they were \
             recovered {took:.1}s after the kill"
        ));
    }

    fn kill_worker(&mut self, rec: &mut Record) {
        let (n, node_id, running) =
            self.pick_busy("one not killed before", |n| !self.victims.contains(&n));
        let killed = epoch_now();
        self.cluster.ctl(&["kill-gale", &n.to_string()]);
        self.victims.push(n);
        rec.victim = Some((node_id.clone(), killed));
        // The others reap its attempts once their lease ran out, and retry them.
        let took = self.wait_taken_over(&node_id, killed, Duration::from_secs(90));
        self.cluster.ctl(&["start-gale", &n.to_string()]);
        rec.notes.push(format!(
            "node {n} killed while running {running} attempts; the other nodes reaped them \
             {took:.1}s after the kill (lease {LEASE_S:.0}s); then restarted"
        ));
    }

    fn kill_webserver(&mut self, rec: &mut Record) {
        let n = NODES
            .iter()
            .copied()
            .find(|n| !self.victims.contains(n))
            .unwrap_or(3);
        let server = format!("gale{n}");
        let poller = Poller::start(
            &self.cluster.http,
            &self.cluster.token,
            "/api/v1/dags/ha_load",
        );
        let baseline = wait_until(
            "2 s of polls before the kill",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                (poller.polls().len() >= 20)
                    .then(|| poller.polls().iter().filter(|p| !p.ok()).count())
            },
            String::new,
        );
        let killed = epoch_now();
        self.cluster.ctl(&["kill-gale", &n.to_string()]);
        self.victims.push(n);
        wait_until(
            &format!("HAProxy to mark {server} DOWN"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || (self.haproxy_status(&server)?.starts_with("DOWN")).then_some(()),
            String::new,
        );
        let down_after = epoch_now() - killed;
        let polls_at = poller.polls().len();
        wait_until(
            "2 s of polls after HAProxy marked the server down",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || (poller.polls().len() >= polls_at + 20).then_some(()),
            String::new,
        );
        self.cluster.ctl(&["start-gale", &n.to_string()]);
        wait_until(
            &format!("HAProxy to mark {server} UP again"),
            Duration::from_secs(90),
            Duration::from_millis(100),
            || (self.haproxy_status(&server)?.starts_with("UP")).then_some(()),
            String::new,
        );
        let polls_at = poller.polls().len();
        wait_until(
            "2 s of polls after the server came back",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || (poller.polls().len() >= polls_at + 20).then_some(()),
            String::new,
        );
        let polls = poller.stop();
        let after: Vec<_> = polls.iter().filter(|p| p.at >= killed).collect();
        let failed: Vec<_> = after.iter().filter(|p| !p.ok()).collect();
        let span = match (failed.first(), failed.last()) {
            (Some(a), Some(b)) => format!(
                ", from {:.2}s to {:.2}s after the kill",
                a.at - killed,
                b.at - killed
            ),
            _ => String::new(),
        };
        let kinds: Vec<String> = failed
            .iter()
            .map(|p| match &p.result {
                Ok(s) => format!("HTTP {s}"),
                Err(e) => e.chars().take(80).collect(),
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        rec.polls = Some((failed.len(), after.len()));
        assert!(
            failed.len() <= MAX_FAILED_POLLS,
            "expected at most {MAX_FAILED_POLLS} failed API polls through HAProxy after killing \
             {server}; {} of {} failed: {kinds:?}",
            failed.len(),
            after.len()
        );
        rec.notes.push(format!(
            "node {n}'s web server killed; {} of {} API polls through HAProxy failed{span} ({}); \
             HAProxy marked it down after {down_after:.1}s; {baseline} polls failed before the kill",
            failed.len(),
            after.len(),
            if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
        ));
    }

    /// HAProxy's status (`UP`, `DOWN`, ...) of a server of the `gale` backend.
    fn haproxy_status(&self, server: &str) -> Option<String> {
        let http = Http::new(
            &format!("http://127.0.0.1:{}", self.cluster.stats_port()),
            "",
            Duration::from_secs(2),
        );
        let (_, csv) = http.send("GET", "/;csv", None).ok()?;
        csv.lines().find_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 17 && f[0] == "gale" && f[1] == server).then(|| f[17].to_owned())
        })
    }

    fn switchover(&mut self, rec: &mut Record) {
        let old = self.cluster.primary();
        self.cluster.ctl(&["switchover"]);
        let new = wait_until(
            "Patroni to name a new primary after the switchover",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || self.cluster.try_primary().filter(|p| *p != old),
            String::new,
        );
        self.wait_writes(rec.injected, "the switchover");
        rec.notes
            .push(format!("primary moved from node {old} to node {new}"));
    }

    fn crash_primary(&mut self, rec: &mut Record) {
        let old = self.cluster.primary();
        self.cluster.ctl(&["kill-db", &old.to_string()]);
        self.wait_failover(rec.injected, old);
        self.cluster.ctl(&["start-patroni", &old.to_string()]);
        rec.notes.push(format!(
            "node {old}'s Patroni and PostgreSQL SIGKILLed; node {} promoted; node {old} rejoined",
            self.cluster.primary()
        ));
    }

    /// Scenario 10: the primary's PostgreSQL and Patroni stop answering
    /// without closing anything; they thaw 30 s later, after a standby was
    /// promoted.
    fn freeze_primary(&mut self, rec: &mut Record) {
        let old = self.cluster.primary();
        let frozen = Instant::now();
        self.cluster.ctl(&["freeze-db", &old.to_string()]);
        self.wait_failover(rec.injected, old);
        let promoted = frozen.elapsed().as_secs_f64();
        let new = self.cluster.primary();
        // Measured now, on the promoted primary: should the thawed host take
        // the leader back (Patroni without a watchdog, before 3.0.3), what
        // was written meanwhile is rewound away, these attempts with it.
        let resumed = self
            .probe
            .samples()
            .iter()
            .skip_while(|s| s.at < rec.injected || s.db.is_some())
            .find_map(|s| s.db);
        if let Some(resumed) = resumed {
            rec.first_start = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
                self.first_start_after(resumed)
            });
        }
        if let Some(rest) = Duration::from_secs(30).checked_sub(frozen.elapsed()) {
            std::thread::sleep(rest);
        }
        self.cluster.ctl(&["thaw-db", &old.to_string()]);
        rec.notes.push(format!(
            "node {old}'s Patroni and PostgreSQL frozen for 30 s; node {new} promoted and \
             writable {promoted:.1}s after the freeze; node {old} thawed and rejoined"
        ));
    }

    fn lose_node(&mut self, rec: &mut Record) {
        let old = self.cluster.primary();
        let numbers = self.cluster.node_numbers();
        let node_id = numbers
            .iter()
            .find(|(_, n)| *n == old)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no Gale node {old} in cluster status"));
        // Lost while it runs attempts, if it gets some within 20 s.
        let start = Instant::now();
        let running = wait_for(Duration::from_secs(60), Duration::from_millis(50), || {
            let n = self.running_on(&node_id);
            let enough = if start.elapsed() < Duration::from_secs(20) {
                2
            } else {
                0
            };
            (n >= enough).then_some(n)
        })
        .unwrap_or(0);
        let killed = epoch_now();
        self.cluster.ctl(&["kill-gale", &old.to_string()]);
        self.cluster.ctl(&["kill-db", &old.to_string()]);
        self.victims.push(old);
        rec.victim = Some((node_id.clone(), killed));
        self.wait_failover(rec.injected, old);
        let took = self.wait_taken_over(&node_id, killed, Duration::from_secs(90));
        self.cluster.ctl(&["start-patroni", &old.to_string()]);
        self.cluster.ctl(&["start-gale", &old.to_string()]);
        rec.notes.push(format!(
            "node {old} (the primary's) lost while its Gale ran {running} attempts; node {} promoted; \
             the other nodes reaped its attempts {took:.1}s after the loss; node {old} brought back",
            self.cluster.primary()
        ));
    }

    /// Waits until a node other than `old` is the primary and the probe writes again.
    fn wait_failover(&self, since: f64, old: u8) {
        wait_until(
            &format!("a replica to be promoted after node {old}'s database died"),
            Duration::from_secs(90),
            Duration::from_millis(200),
            || self.cluster.try_primary().filter(|p| *p != old),
            String::new,
        );
        self.wait_writes(since, "the failover");
    }

    /// Waits until the probe writes again (after failing since `since`, if it did).
    fn wait_writes(&self, since: f64, what: &str) {
        wait_until(
            &format!("the database to accept writes again after {what}"),
            Duration::from_secs(120),
            Duration::from_millis(100),
            || {
                let failed = self.probe.failures_since(since) > 0;
                let ok = if failed {
                    self.probe.recovered_since(since)
                } else {
                    self.probe.writing()
                };
                (ok && self.probe.writing()).then_some(())
            },
            String::new,
        );
    }

    fn etcd_quorum_loss(&mut self, rec: &mut Record) {
        let primary = self.cluster.primary();
        // Two members other than the primary's node's, if it matters at all.
        let stop: Vec<u8> = NODES.iter().copied().filter(|n| *n != primary).collect();
        for n in &stop {
            self.cluster.ctl(&["stop-etcd", &n.to_string()]);
        }
        let lost = epoch_now();
        // The scenario is 20 s without a majority, whatever happens in them.
        std::thread::sleep(Duration::from_secs(20));
        let first_fail = self
            .probe
            .samples()
            .iter()
            .find(|s| s.at >= lost && s.db.is_none())
            .map(|s| s.at - lost);
        for n in &stop {
            self.cluster.ctl(&["start-etcd", &n.to_string()]);
        }
        let restored = epoch_now();
        self.wait_writes(rec.injected, "etcd got its majority back");
        let back = self
            .probe
            .samples()
            .iter()
            .find(|s| s.at >= restored && s.db.is_some())
            .map(|s| s.at - restored);
        rec.notes.push(format!(
            "etcd members {} stopped for 20 s; {}; writes back {} after etcd was restored; \
             primary now node {}",
            stop.iter().map(u8::to_string).collect::<Vec<_>>().join(" and "),
            match first_fail {
                Some(s) => format!("Patroni demoted the primary (writes failed) {s:.1}s after the majority was lost"),
                None => "writes never failed (the primary was not demoted)".into(),
            },
            secs(back),
            self.cluster.primary()
        ));
    }

    /// Only Patroni dies on the primary: its PostgreSQL keeps running and
    /// stays writable to direct connections after a replica is promoted (no
    /// watchdog). Through HAProxy (whose check asks that node's dead Patroni)
    /// Gale and the probe must leave it at once, so nothing written after
    /// the kill is lost when it rejoins (demoted, rewound). A multi-host URL
    /// is not protected against this: the scenario needs
    /// GALE_CLUSTER_DB=haproxy.
    fn kill_primary_patroni(&mut self, rec: &mut Record) {
        // The cluster replicates synchronously, so a write the old primary
        // acknowledged in the second before HAProxy noticed its Patroni was gone
        // is on the standby that is promoted.
        if !self.cluster.haproxy() {
            let why = format!(
                "needs GALE_CLUSTER_DB=haproxy (a multi-host URL is not protected against a \
                 Patroni-only death without a watchdog; this run: {})",
                self.cluster.db_mode
            );
            assert!(!ci(), "scenario 9 {why}; CI=true makes this a failure");
            eprintln!("*** SKIPPED scenario 9: {why}");
            rec.skipped = Some(why);
            return;
        }
        let old = self.cluster.primary();
        let since = rec.injected;
        self.cluster.ctl(&["kill-patroni", &old.to_string()]);
        self.wait_failover(since, old);
        let new = self.cluster.primary();
        // The old primary's PostgreSQL is still up and still a primary.
        let old_role = self
            .cluster
            .try_sql_on(
                old,
                "SELECT CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END",
            )
            .unwrap_or_else(|e| format!("unreachable ({e})"));
        // Anything sent its way after the promotion would land within a few
        // seconds: give it those, then read what it has since the kill.
        std::thread::sleep(Duration::from_secs(3));
        let t0 = since - 1.0;
        let probe_sql = format!(
            "SELECT id || ' ' || extract(epoch FROM at)::float8 FROM ha_write_probe \
             WHERE at >= to_timestamp({t0}) ORDER BY id"
        );
        let attempts_sql = format!(
            "SELECT ti_id || ' ' || try_number || ' ' || extract(epoch FROM started_at)::float8 \
             || ' ' || state || ' ' || coalesce(extract(epoch FROM ended_at)::float8::text, '-') \
             FROM attempts WHERE started_at >= to_timestamp({t0}) \
                OR ended_at >= to_timestamp({t0}) ORDER BY 1"
        );
        let runs_sql =
            format!("SELECT id::text FROM runs WHERE created_at >= to_timestamp({t0}) ORDER BY id");
        let on_old = |sql: &str, what: &str| -> Vec<String> {
            self.cluster
                .try_sql_on(old, sql)
                .unwrap_or_else(|e| {
                    panic!("reading {what} from node {old}'s PostgreSQL before it rejoins: {e}")
                })
                .lines()
                .map(str::to_owned)
                .collect()
        };
        let old_probe = on_old(&probe_sql, "the probe's rows");
        let old_attempts = on_old(&attempts_sql, "attempts");
        let old_runs = on_old(&runs_sql, "runs");
        // The last write the old primary took, relative to the promotion
        // (the first write on the new primary).
        let first_new = self
            .probe
            .samples()
            .iter()
            .filter(|s| s.at >= since)
            .skip_while(|s| s.db.is_some())
            .find_map(|s| s.db);
        let last_old = old_probe
            .last()
            .and_then(|l| l.split(' ').nth(1)?.parse::<f64>().ok());

        self.cluster.ctl(&["start-patroni", &old.to_string()]);
        self.cluster
            .wait_healthy(&format!("node {old}'s Patroni was started again"));
        wait_until(
            &format!("node {old}'s PostgreSQL to rejoin as a replica"),
            Duration::from_secs(120),
            Duration::from_millis(500),
            || {
                (self
                    .cluster
                    .try_sql_on(old, "SELECT pg_is_in_recovery()")
                    .ok()?
                    == "t")
                    .then_some(())
            },
            String::new,
        );

        // Nothing the old primary took, nor any write the probe saw acknowledged,
        // may be missing from the cluster now. What was acknowledged is read
        // before the cluster is: the probe and the load keep writing, and a write
        // acknowledged after the cluster's rows were read is not in them.
        let acked: Vec<String> = self
            .probe
            .samples()
            .iter()
            .filter(|s| s.at >= since)
            .filter_map(|s| Some(format!("{} {}", s.id?, s.db?)))
            .collect();
        let created: Vec<i64> = self
            .load
            .stats()
            .runs
            .iter()
            .filter(|(_, t)| *t >= since)
            .map(|(id, _)| *id)
            .collect();
        let now_set = |sql: &str| -> std::collections::HashSet<String> {
            self.cluster.sql(sql).lines().map(str::to_owned).collect()
        };
        let mut lost = Vec::new();
        let probe_now = now_set(&probe_sql);
        let probe_ids_now: std::collections::HashSet<&str> = probe_now
            .iter()
            .filter_map(|l| l.split(' ').next())
            .collect();
        for a in &acked {
            let id = a.split(' ').next().unwrap_or_default();
            if !probe_ids_now.contains(id) {
                lost.push(format!("probe write {a} (acknowledged to the probe)"));
            }
        }
        for r in &old_probe {
            if !probe_now.contains(r) {
                lost.push(format!("probe row {r} (on node {old}'s old primary)"));
            }
        }
        let attempts_now: std::collections::HashMap<String, String> = now_set(&attempts_sql)
            .into_iter()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(3, ' ').collect();
                Some((
                    format!("{} {}", f.first()?, f.get(1)?),
                    f.get(2)?.to_string(),
                ))
            })
            .collect();
        for r in &old_attempts {
            let f: Vec<&str> = r.split(' ').collect();
            let key = format!("{} {}", f[0], f.get(1).unwrap_or(&""));
            let ended = matches!(f.get(3), Some(&"success" | &"failed"));
            let ok = attempts_now.get(&key).is_some_and(|now| {
                let n: Vec<&str> = now.split(' ').collect();
                n.first() == f.get(2) && (!ended || (n.get(1) == f.get(3) && n.get(2) == f.get(4)))
            });
            if !ok {
                lost.push(format!(
                    "attempt {r} (on node {old}'s old primary; now {:?})",
                    attempts_now.get(&key)
                ));
            }
        }
        let runs_now = now_set(&runs_sql);
        for r in &old_runs {
            if !runs_now.contains(r) {
                lost.push(format!("run {r} (on node {old}'s old primary)"));
            }
        }
        for id in &created {
            if !runs_now.contains(&id.to_string()) {
                lost.push(format!("run {id} (created through the API)"));
            }
        }
        assert!(
            lost.is_empty(),
            "expected nothing written since node {old}'s Patroni was killed to be lost when it \
             rejoined; missing now:\n  {}",
            lost.join("\n  ")
        );
        rec.notes.push(format!(
            "node {old}'s Patroni SIGKILLed, its PostgreSQL left running ({old_role} after node \
             {new} was promoted); its last write {} the promotion; {} probe rows, {} attempts and \
             {} runs it held since the kill, {} acknowledged probe writes and {} runs created \
             through the API all present after node {old} rejoined as a replica",
            match (last_old, first_new) {
                (Some(o), Some(n)) if o <= n => format!("{:.1}s before", n - o),
                (Some(o), Some(n)) => format!("{:.1}s AFTER", o - n),
                _ => "-".into(),
            },
            old_probe.len(),
            old_attempts.len(),
            old_runs.len(),
            acked.len(),
            created.len()
        ));
    }

    fn partition_worker(&mut self, rec: &mut Record) {
        if let Some(why) = netns_unsupported() {
            assert!(
                !ci(),
                "scenario 7 cannot run: {why}; CI=true makes this a failure"
            );
            eprintln!("*** SKIPPED scenario 7: {why}");
            rec.skipped = Some(why);
            return;
        }
        let ns = match Netns::create(self.cluster.netns_tag()) {
            Ok(ns) => ns,
            Err(why) => {
                assert!(
                    !ci(),
                    "scenario 7 cannot set up its network namespace: {why}; CI=true makes this a failure"
                );
                eprintln!("*** SKIPPED scenario 7: {why}");
                rec.skipped = Some(why);
                return;
            }
        };
        // The worker's URL is the cluster's, each 127.0.0.1:PORT in it
        // reached through the relay on the host's end of the veth pair.
        let ports: Vec<u16> = self
            .cluster
            .url
            .split("127.0.0.1:")
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        assert!(
            !ports.is_empty(),
            "no 127.0.0.1 port in {}",
            self.cluster.url
        );
        let relay =
            Relay::start(&ns.host_ip, &ports).unwrap_or_else(|e| panic!("starting the relay: {e}"));
        let ns_url = self
            .cluster
            .url
            .replace("127.0.0.1:", &format!("{}:", ns.host_ip));
        let dir = self.cluster.test_dir();
        let gale_bin = self.cluster.gale_bin.clone();

        // The cut-off worker serves the default queue (the load) and ha_netns,
        // which only it serves until the cut.
        let mut cmd = ns.command(&gale_bin);
        cmd.args([
            "worker",
            "--queues",
            "default,ha_netns",
            "--concurrency",
            "4",
        ]);
        gale_env(&mut cmd, &ns_url, &dir.join("netns-worker"));
        let log = dir.join("netns-worker.log");
        self.cluster
            .add_log("the worker in the network namespace", &log);
        let mut w = Proc::spawn(
            "the worker in the network namespace",
            cmd,
            log,
            dir.join("procs/netns-worker"),
        );
        let w_id = self.wait_node_id(&mut w);

        let hold_pid_file = dir.join("hold.pid");
        let quick_pid_file = dir.join("quick.pid");
        let hold_run = self.trigger("ha_hold", "scenario 7");
        let hold_pid: i32 = wait_until(
            "ha_hold's task to start on the worker in the namespace",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                w.assert_running();
                std::fs::read_to_string(&hold_pid_file)
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            },
            String::new,
        );
        let quick_run = self.trigger("ha_quick", "scenario 7");
        wait_until(
            "ha_quick's task to start on the worker in the namespace",
            Duration::from_secs(60),
            Duration::from_millis(10),
            || std::fs::metadata(&quick_pid_file).ok(),
            String::new,
        );
        let running_on_w = self.running_on(&w_id);
        ns.cut()
            .unwrap_or_else(|e| panic!("cutting the namespace off: {e}"));
        let cut = Instant::now();
        let cut_epoch = epoch_now();
        rec.victim = Some((w_id.clone(), cut_epoch));
        eprintln!("HA: worker {w_id} cut off with {running_on_w} attempts running");

        // Self-fencing: it kills `hold` before its lease can end.
        wait_until(
            "the cut-off worker to kill its attempt",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || (!alive(hold_pid)).then_some(()),
            || w.tail(40),
        );
        let killed_after = cut.elapsed().as_secs_f64();
        let killed_epoch = epoch_now();
        assert!(
            killed_after < LEASE_S,
            "expected the cut-off worker to kill its attempt within its {LEASE_S}s lease; it took {killed_after:.2}s"
        );
        wait_until(
            "the cut-off worker to log its self-fencing",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || w.log_text().contains(FENCE_MESSAGE).then_some(()),
            || w.tail(40),
        );

        // The retries of ha_netns run on another worker, on the host.
        let mut cmd = std::process::Command::new(&gale_bin);
        cmd.args(["worker", "--queues", "ha_netns", "--concurrency", "2"]);
        gale_env(&mut cmd, &self.cluster.url, &dir.join("host-worker"));
        let log = dir.join("host-worker.log");
        self.cluster
            .add_log("the ha_netns worker on the host", &log);
        let mut h = Proc::spawn(
            "the ha_netns worker on the host",
            cmd,
            log,
            dir.join("procs/host-worker"),
        );
        let h_id = self.wait_node_id(&mut h);
        wait_until(
            "both retries to succeed on the host's worker",
            Duration::from_secs(90),
            Duration::from_millis(200),
            || {
                w.assert_running();
                h.assert_running();
                let done = self
                    .cluster
                    .try_sql(&format!(
                        "SELECT count(*) FROM runs WHERE id IN ({hold_run}, {quick_run}) AND state = 'success'"
                    ))
                    .ok()?;
                (done == "2").then_some(())
            },
            String::new,
        );
        let retried_after = cut.elapsed().as_secs_f64();
        ns.heal()
            .unwrap_or_else(|e| panic!("healing the namespace: {e}"));
        let healed = Instant::now();

        // Once healed, its report of `quick` reaches the store and is rejected.
        wait_until(
            "the healed worker's late result to be rejected",
            Duration::from_secs(90),
            Duration::from_millis(100),
            || {
                w.log_text()
                    .lines()
                    .any(|l| l.contains(LATE_MESSAGE) && l.contains("quick"))
                    .then_some(())
            },
            || w.tail(40),
        );
        let rejected_after = healed.elapsed().as_secs_f64();

        for (run_id, task) in [(hold_run, "hold"), (quick_run, "quick")] {
            let rows = self.cluster.sql(&format!(
                "SELECT a.try_number || ' ' || a.worker_id || ' ' || a.state FROM attempts a \
                 JOIN task_instances ti ON ti.id = a.ti_id \
                 WHERE ti.run_id = {run_id} AND ti.task_id = '{task}' ORDER BY a.try_number"
            ));
            let want = format!("1 {w_id} lost\n2 {h_id} success");
            assert_eq!(
                rows, want,
                "{task}: expected try 1 lost on the cut-off worker and try 2 successful on the host's worker"
            );
        }
        let times = self.cluster.sql(&format!(
            "SELECT extract(epoch FROM a1.ended_at)::float8 || ' ' || extract(epoch FROM a2.started_at)::float8 \
             FROM task_instances ti \
             JOIN attempts a1 ON a1.ti_id = ti.id AND a1.try_number = 1 \
             JOIN attempts a2 ON a2.ti_id = ti.id AND a2.try_number = 2 \
             WHERE ti.run_id = {hold_run} AND ti.task_id = 'hold'"
        ));
        // The first try's record ends at its lease's end, or, once the worker
        // is back, when it says the process stopped: before the retry, which
        // started only after the kill.
        let (reaped, retried) = times.split_once(' ').expect("two times");
        let (reaped, retried): (f64, f64) = (
            reaped.parse().expect("a time"),
            retried.parse().expect("a time"),
        );
        assert!(
            retried > killed_epoch && reaped <= retried,
            "expected hold's retry ({retried}) to start only after the cut-off worker killed the \
             first try ({killed_epoch}), and the first try's record to end before it ({reaped})"
        );
        let log = w.log_text();
        assert!(
            !log.lines()
                .any(|l| l.contains("attempt finished") && l.contains("quick")),
            "the cut-off worker must not have recorded a result for quick"
        );
        rec.notes.push(format!(
            "worker cut off with {running_on_w} attempts running; it killed its attempt {killed_after:.1}s \
             after the cut (lease {LEASE_S:.0}s); recorded as ended {:.1}s and retried on another worker {:.1}s \
             after the cut; retries done {retried_after:.1}s after the cut; its late result rejected \
             {rejected_after:.1}s after the network came back",
            reaped - cut_epoch,
            retried - cut_epoch
        ));
        let stopped = w.stop(Duration::from_secs(45)) & h.stop(Duration::from_secs(45));
        assert!(
            stopped,
            "the test's workers did not drain and exit within 45 s of SIGTERM"
        );
        drop(relay);
        drop(ns);
    }

    /// Waits until a process the test started registered, and returns its node id.
    fn wait_node_id(&self, p: &mut Proc) -> String {
        let pid = p.pid();
        let log = p.log.clone();
        wait_until(
            &format!("{} to register", p.name),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                p.assert_running();
                let status = self.cluster.status()?;
                status["nodes"]
                    .as_array()?
                    .iter()
                    .find(|n| n["pid"] == pid && n["health"] == "running")?["node_id"]
                    .as_str()
                    .map(str::to_owned)
            },
            || util::tail(&log, 40),
        )
    }
}

/// A `gale` command's environment: no Gale setting but the database URL and home.
fn gale_env(cmd: &mut std::process::Command, url: &str, home: &Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GALE_") {
            cmd.env_remove(k);
        }
    }
    std::fs::create_dir_all(home).expect("creating a GALE_HOME");
    cmd.env("GALE_DATABASE_URL", url).env("GALE_HOME", home);
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.1}s"))
}

/// The load and probe DAGs, in every node's DAG folder.
fn install_dags(cluster: &Cluster, dir: &Path) {
    // Triggered every second: a chain with a fan-out of 10 (13 tasks, 4 deep).
    let mut load = String::from(
        "description: HA suite load, triggered every second.\nmax_active_runs: 32\n\
         max_active_tasks: 64\ntags: [ha]\ndefaults:\n  retries: 5\n  retry_delay: 1s\ntasks:\n  \
         extract: { run: \"sleep 0.4\" }\n",
    );
    let parts: Vec<String> = (1..=10).map(|i| format!("part_{i}")).collect();
    for p in &parts {
        load += &format!("  {p}: {{ needs: [extract], run: \"sleep 0.4\" }}\n");
    }
    load += &format!(
        "  merge: {{ needs: [{}], run: \"sleep 0.4\" }}\n",
        parts.join(", ")
    );
    load += "  publish: { needs: [merge], run: \"sleep 0.4\" }\n";
    cluster.write_dag("ha_load.yaml", &load);
    cluster.write_dag(
        "ha_sched.yaml",
        r#"description: HA suite load, every 5 s.
schedule: "*/5 * * * * *"
catchup: false
max_active_runs: 4
tags: [ha]
defaults:
  retries: 5
  retry_delay: 1s
tasks:
  a: { run: "sleep 0.4" }
  b1: { needs: [a], run: "sleep 0.4" }
  b2: { needs: [a], run: "sleep 0.4" }
  b3: { needs: [a], run: "sleep 0.4" }
  c: { needs: [b1, b2, b3], run: "sleep 0.4" }
  d: { needs: [c], run: "sleep 0.4" }
"#,
    );
    cluster.write_dag(
        "ha_check.yaml",
        r#"description: HA suite, a fresh run after each scenario.
max_active_runs: 4
tags: [ha]
tasks:
  one: { run: "echo one" }
  two: { needs: [one], run: "echo two" }
"#,
    );
    // Scenario 7: on queue ha_netns, which only the worker in the network
    // namespace serves until it is cut off. `hold` runs until killed on its
    // first try; `quick` ends on its own soon after the cut, long before its
    // worker could fence it.
    let hold = dir.join("hold.pid").display().to_string();
    let quick = dir.join("quick.pid").display().to_string();
    cluster.write_dag(
        "ha_hold.yaml",
        &format!(
            r#"tags: [ha]
tasks:
  hold:
    queue: ha_netns
    retries: 2
    retry_delay: 1s
    run: |
      if [ "$GALE_TRY_NUMBER" -gt 1 ]; then echo "retried elsewhere"; exit 0; fi
      echo $$ > {hold}
      exec sleep 120
"#
        ),
    );
    cluster.write_dag(
        "ha_quick.yaml",
        &format!(
            r#"tags: [ha]
tasks:
  quick:
    queue: ha_netns
    retries: 2
    retry_delay: 1s
    run: |
      if [ "$GALE_TRY_NUMBER" -gt 1 ]; then echo "retried elsewhere"; exit 0; fi
      echo $$ > {quick}
      sleep 1
      echo "finished while cut off"
"#
        ),
    );
}
