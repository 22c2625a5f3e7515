//! High availability on PostgreSQL, with real `gale` processes and real servers:
//!
//! - a failover of the database (primary crashed, streaming standby promoted)
//!   while runs are flowing: every run still succeeds, every task instance has
//!   exactly one successful attempt, no two attempts of one overlap, and no
//!   attempt that ran is recorded as never started;
//! - a worker cut off from the database (through a TCP proxy inside the test):
//!   it kills its attempts before their lease ends, the retries run on another
//!   worker, and the result it reports once healed is rejected by the fence.
//!
//! Without PostgreSQL binaries these tests print SKIPPED and pass, except under
//! `CI=true`, where they fail (see `gale_pgtest`).

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gale_pgtest::{PgServer, server_or_skip};
use serde_json::Value;

use crate::harness::{Home, alive_in_group, task, wait_until};
use crate::pg::{Pg, Role, sql};

/// The lease every process here runs with (the smallest Gale accepts).
const LEASE: &str = "3s";
const LEASE_S: f64 = 3.0;

const FENCE_MESSAGE: &str =
    "cannot reach the store to renew leases: killing running attempts before their lease ends";
const LATE_MESSAGE: &str = "late result rejected: the attempt was reaped or changed while it ran";

/// Seconds since the Unix epoch on this machine's clock (the servers run here
/// too, so this compares with their `now()`).
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

/// The database fails over while runs are flowing: the primary crashes, the
/// streaming standby is promoted, and the Gale processes (on a URL naming both)
/// carry on against it.
#[test]
fn database_failover_mid_load() {
    const RUNS: usize = 60;
    const TASKS: usize = 7;
    // Between the crash and the promotion, as a failover manager takes to
    // decide. Longer than the lease: attempts that end in the outage are
    // reported too late, and are reaped and retried.
    const OUTAGE: Duration = Duration::from_secs(4);
    let Some(primary) = server_or_skip("database_failover_mid_load") else {
        return;
    };
    primary
        .create_database("gale")
        .expect("creating database gale");
    let standby = PgServer::start_standby(&primary).expect("starting a streaming standby");
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/gale",
        primary.port(),
        standby.port()
    );

    let home = Home::new();
    // Every task process notes "RUN TASK TRY" when it starts. Retries cover
    // attempts lost or reaped in the failover.
    let started_file = home.file("started");
    let mut yaml = String::from(
        "id: failover_load\nmax_active_runs: 4\ndefaults:\n  retries: 3\n  retry_delay: 1s\ntasks:\n",
    );
    // A chain with a fan-out in the middle.
    let tasks = [
        ("extract", ""),
        ("part_1", "extract"),
        ("part_2", "extract"),
        ("part_3", "extract"),
        ("part_4", "extract"),
        ("merge", "part_1, part_2, part_3, part_4"),
        ("publish", "merge"),
    ];
    assert_eq!(tasks.len(), TASKS);
    for (id, needs) in tasks {
        yaml += &format!("  {id}:\n");
        if !needs.is_empty() {
            yaml += &format!("    needs: [{needs}]\n");
        }
        yaml += &format!(
            "    run: echo \"$GALE_RUN_ID $GALE_TASK_ID $GALE_TRY_NUMBER\" >> {started_file}; sleep 0.2\n"
        );
    }
    home.write_dag("failover_load.yaml", &yaml);
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let node_args = [
        "node",
        "--dags-folder",
        &dags,
        "--concurrency",
        "8",
        "--attempt-lease",
        LEASE,
    ];
    let mut nodes = [
        pg.start("node-1", &node_args),
        pg.start("node-2", &node_args),
    ];
    pg.wait_dag("failover_load");
    let started = Instant::now();
    let run_ids: Vec<i64> = (0..RUNS)
        .map(|_| pg.trigger("failover_load", &[]))
        .collect();

    // Mid-load: some runs done, task attempts running, most runs still to go.
    wait_until("runs to be flowing", || {
        let counts = primary
            .psql(
                "gale",
                "SELECT (SELECT count(*) FROM runs WHERE state = 'success'), \
                        (SELECT count(*) FROM task_instances WHERE state = 'running')",
            )
            .ok()?;
        let (done, running) = counts.split_once('|')?;
        let (done, running): (usize, usize) = (done.parse().ok()?, running.parse().ok()?);
        (done >= 3 && running >= 1).then_some(())
    });
    let before = sql(
        &primary,
        "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) \
         FROM (SELECT state, count(*) AS n FROM runs GROUP BY state) s",
    );
    eprintln!(
        "failing over {:.1}s after the first trigger; runs: {before}",
        started.elapsed().as_secs_f64()
    );

    let crash = Instant::now();
    primary.stop_immediate().expect("crashing the primary");
    std::thread::sleep(OUTAGE);
    standby.promote().expect("promoting the standby");
    // The promotion instant on the database's clock, which stamps attempts.
    let promoted: f64 = sql(&standby, "SELECT extract(epoch FROM clock_timestamp())")
        .parse()
        .expect("an epoch");
    eprintln!(
        "primary crashed; standby promoted {:.2}s later",
        crash.elapsed().as_secs_f64()
    );

    wait_until("every run to finish after the failover", || {
        for node in &mut nodes {
            node.assert_running();
        }
        let done = standby
            .psql(
                "gale",
                "SELECT count(*) FROM runs WHERE state IN ('success', 'failed')",
            )
            .ok()?;
        (done.parse::<usize>().ok()? == RUNS).then_some(())
    });
    let total = started.elapsed();

    let first_start = sql(
        &standby,
        &format!(
            "SELECT extract(epoch FROM min(started_at)) - {promoted} \
             FROM attempts WHERE started_at > to_timestamp({promoted})"
        ),
    );
    let first_start: f64 = first_start
        .parse()
        .unwrap_or_else(|_| panic!("no attempt started after the promotion: {first_start:?}"));
    eprintln!("FAILOVER: first task start {first_start:.2}s after promotion");
    let attempts = sql(
        &standby,
        "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) \
         FROM (SELECT state, count(*) AS n FROM attempts GROUP BY state) s",
    );
    eprintln!(
        "FAILOVER: {RUNS} runs finished {:.1}s after the first trigger; attempts: {attempts}",
        total.as_secs_f64()
    );
    let others = sql(
        &standby,
        "SELECT run_id || '/' || task_id || ' try ' || try_number || ' ' || state || ' on ' \
         || worker_id || ': ' || coalesce(message, '') \
         FROM attempts WHERE state <> 'success' ORDER BY started_at",
    );
    if !others.is_empty() {
        eprintln!("FAILOVER: attempts that did not succeed:\n{others}");
    }
    assert!(
        first_start < 30.0,
        "no task started within 30s of the promotion ({first_start:.2}s)"
    );

    // Every run and task instance succeeded.
    assert_eq!(
        sql(
            &standby,
            "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) \
             FROM (SELECT state, count(*) AS n FROM runs GROUP BY state) s"
        ),
        format!("success={RUNS}")
    );
    assert_eq!(
        sql(
            &standby,
            "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) \
             FROM (SELECT state, count(*) AS n FROM task_instances GROUP BY state) s"
        ),
        format!("success={}", RUNS * TASKS),
        "nothing may stay queued or running"
    );
    // Exactly one successful attempt per task instance.
    let not_once = sql(
        &standby,
        "SELECT ti.run_id || '/' || ti.task_id || ': ' || count(a.ti_id) FILTER (WHERE a.state = 'success') \
         FROM task_instances ti LEFT JOIN attempts a ON a.ti_id = ti.id \
         GROUP BY ti.id, ti.run_id, ti.task_id \
         HAVING count(a.ti_id) FILTER (WHERE a.state = 'success') <> 1",
    );
    assert_eq!(
        not_once, "",
        "task instances without exactly one successful attempt"
    );
    // Every attempt ended, and no two attempts of a task instance overlap.
    assert_eq!(
        sql(
            &standby,
            "SELECT count(*) FROM attempts WHERE state = 'running' OR ended_at IS NULL"
        ),
        "0",
        "attempts still open"
    );
    let overlaps = sql(
        &standby,
        "SELECT a.run_id || '/' || a.task_id || ' tries ' || a.try_number || ' and ' || b.try_number \
         FROM attempts a JOIN attempts b ON a.ti_id = b.ti_id AND a.try_number < b.try_number \
         WHERE b.started_at < a.ended_at AND a.started_at < b.ended_at",
    );
    assert_eq!(overlaps, "", "overlapping attempts of one task instance");

    // The CLI follows the failover too: runs and the cluster, on the same URL.
    let runs = pg.json(&["runs", "list", "--dag", "failover_load", "--limit", "1000"]);
    let runs = runs.as_array().expect("runs list prints an array");
    assert_eq!(runs.len(), RUNS);
    assert!(runs.iter().all(|r| r["state"] == "success"), "{runs:#?}");
    for id in [run_ids[0], run_ids[RUNS - 1]] {
        let tasks = pg.tasks(id);
        assert_eq!(tasks.len(), TASKS);
        assert!(tasks.iter().all(|t| t["state"] == "success"), "{tasks:#?}");
    }
    let pids: Vec<u32> = nodes.iter().map(Role::pid).collect();
    let status = wait_until("both nodes to show as running", || {
        let out = pg.gale(&["cluster", "status", "--output", "json"]);
        if out.code != 0 {
            return None;
        }
        let status = out.json();
        let listed = status["nodes"].as_array()?;
        pids.iter()
            .all(|pid| {
                listed
                    .iter()
                    .any(|n| n["pid"] == *pid && n["health"] == "running")
            })
            .then_some(status)
    });
    let endpoint = status["database"].as_str().unwrap_or_default();
    assert!(
        endpoint.contains(&standby.port().to_string()),
        "cluster status names the database: {status:#}"
    );
    for node in &mut nodes {
        node.assert_running();
    }

    // An attempt recorded as handed back because it "never started" must not
    // have started: one that ran has a result, and that result is what counts.
    let ran = std::fs::read_to_string(&started_file).expect("the started file");
    let ran: std::collections::HashSet<&str> = ran.lines().map(str::trim).collect();
    let never_started = sql(
        &standby,
        "SELECT run_id || ' ' || task_id || ' ' || try_number FROM attempts \
         WHERE state = 'handed_back' AND message LIKE '%never started%' ORDER BY 1",
    );
    let wrong: Vec<&str> = never_started
        .lines()
        .filter(|a| ran.contains(a.trim()))
        .collect();
    assert!(
        wrong.is_empty(),
        "attempts recorded as handed back and never started, although their task ran \
         (run task try): {wrong:?}; a worker whose claim failed in the outage hands back, \
         when it reconnects, attempts that finished but whose result it is still reporting"
    );
}

/// A TCP proxy in front of a PostgreSQL server, with a switch that cuts every
/// connection through it (and closes each new one at once) until healed.
struct Proxy {
    port: u16,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both sockets of every connection made so far (closed ones included).
    conns: Mutex<Vec<TcpStream>>,
}

impl ProxyState {
    fn close_all(&self) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for s in conns.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let state = Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if st.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let clones = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                );
                let (Ok(c1), Ok(s1), Ok(c2), Ok(s2)) = clones else {
                    continue;
                };
                {
                    // Registered, then the switch read under the same lock: a cut
                    // either sees this connection or this check sees the cut.
                    let mut conns = st.conns.lock().unwrap_or_else(|p| p.into_inner());
                    conns.push(c1);
                    conns.push(s1);
                    if st.cut.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        let _ = server.shutdown(Shutdown::Both);
                        continue;
                    }
                }
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        Proxy { port, state }
    }

    fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy; new ones are closed at once.
    fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.close_all();
    }

    /// Lets connections through again.
    fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies bytes one way until either side closes, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Polls `check` every 10 ms for up to `limit`.
fn poll_fast(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The attempts of the single task instance `task_id` of a run.
fn attempts_of(pg: &Pg, run_id: i64, task_id: &str) -> (Value, Vec<Value>) {
    let tasks = pg.tasks(run_id);
    let ti = task(&tasks, task_id).clone();
    let attempts = ti["attempts"].as_array().expect("attempts").clone();
    (ti, attempts)
}

/// A worker cut off from the database: it kills its running attempt before the
/// lease ends (self-fencing) and a retry runs on another worker; an attempt
/// that finished while it was cut off is reaped and retried elsewhere, and the
/// result the cut-off worker reports once healed is rejected.
#[test]
fn partitioned_worker_fences_itself_and_its_late_result_is_rejected() {
    let Some(server) =
        server_or_skip("partitioned_worker_fences_itself_and_its_late_result_is_rejected")
    else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let proxy = Proxy::start(server.port());
    let w1_url = format!("postgres://postgres@127.0.0.1:{}/gale", proxy.port());

    let home = Home::new();
    let hold_pid_file = home.file("hold.pid");
    let quick_pid_file = home.file("quick.pid");
    // `hold` runs until killed on its first try; `quick` ends on its own, soon
    // after the cut and well before its worker could fence it.
    home.write_dag(
        "fence_hold.yaml",
        &format!(
            r#"tasks:
  hold:
    retries: 2
    retry_delay: 1s
    run: |
      if [ "{{{{ try_number }}}}" -gt 1 ]; then echo "retried elsewhere"; exit 0; fi
      echo $$ > {hold_pid_file}
      exec sleep 60
"#
        ),
    );
    home.write_dag(
        "fence_quick.yaml",
        &format!(
            r#"tasks:
  quick:
    retries: 2
    retry_delay: 1s
    run: |
      if [ "$GALE_TRY_NUMBER" -gt 1 ]; then echo "retried elsewhere"; exit 0; fi
      echo $$ > {quick_pid_file}
      sleep 0.3
      echo "finished while cut off"
"#
        ),
    );
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut scheduler = pg.start(
        "scheduler",
        &[
            "scheduler",
            "--dags-folder",
            &dags,
            "--attempt-lease",
            LEASE,
        ],
    );
    let worker_args = ["worker", "--concurrency", "2", "--attempt-lease", LEASE];
    let mut w1 = Pg::new(&home, &w1_url).start("w1", &worker_args);
    pg.wait_dag("fence_hold");
    pg.wait_dag("fence_quick");
    let w1_id = pg.node_id(w1.pid());

    // Both attempts start on W1, the only worker so far.
    let hold_run = pg.trigger("fence_hold", &[]);
    let hold_pid: i32 = wait_until("hold to run on W1", || {
        std::fs::read_to_string(&hold_pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    let quick_run = pg.trigger("fence_quick", &[]);
    poll_fast("quick to start on W1", Duration::from_secs(60), || {
        std::fs::metadata(&quick_pid_file).is_ok()
    });
    proxy.cut();
    let t0 = Instant::now();
    let t0_epoch = epoch_now();

    // Self-fencing: W1 kills `hold` before its lease can end.
    poll_fast(
        "W1 to kill hold after the cut",
        Duration::from_secs(20),
        || !alive_in_group(hold_pid, hold_pid),
    );
    let killed_after = t0.elapsed().as_secs_f64();
    let killed_epoch = epoch_now();
    eprintln!("PARTITION: W1 killed its attempt {killed_after:.2}s after the cut");
    assert!(
        killed_after < LEASE_S,
        "W1 killed its attempt {killed_after:.2}s after the cut, not within the {LEASE} lease"
    );
    wait_until("W1 to log its self-fencing", || {
        w1.log().contains(FENCE_MESSAGE).then_some(())
    });

    // The retries run on W2 while W1 is still cut off.
    let mut w2 = pg.start("w2", &worker_args);
    wait_until("both retries to succeed", || {
        w1.assert_running();
        w2.assert_running();
        scheduler.assert_running();
        let done = server
            .psql(
                "gale",
                &format!(
                    "SELECT count(*) FROM runs WHERE id IN ({hold_run}, {quick_run}) \
                     AND state = 'success'"
                ),
            )
            .ok()?;
        (done == "2").then_some(())
    });
    let healed_after = t0.elapsed().as_secs_f64();
    proxy.heal();
    eprintln!("PARTITION: retries done; healed {healed_after:.2}s after the cut");

    // Once healed, W1's report of `quick` reaches the store and is rejected.
    wait_until("W1 to report its late result", || {
        w1.log()
            .lines()
            .any(|l| l.contains(LATE_MESSAGE) && l.contains("quick"))
            .then_some(())
    });
    eprintln!(
        "PARTITION: late result rejected {:.2}s after the cut",
        t0.elapsed().as_secs_f64()
    );
    let w2_id = pg.node_id(w2.pid());
    assert_ne!(w1_id, w2_id);

    for (run_id, task_id) in [(hold_run, "hold"), (quick_run, "quick")] {
        let (ti, attempts) = attempts_of(&pg, run_id, task_id);
        assert_eq!(ti["state"], "success", "{ti:#}");
        assert_eq!(attempts.len(), 2, "{ti:#}");
        assert_eq!(attempts[0]["worker_id"], w1_id.as_str(), "{ti:#}");
        assert_eq!(attempts[0]["state"], "lost", "{ti:#}");
        assert_eq!(attempts[1]["worker_id"], w2_id.as_str(), "{ti:#}");
        assert_eq!(attempts[1]["state"], "success", "{ti:#}");
        let successes = attempts.iter().filter(|a| a["state"] == "success").count();
        assert_eq!(successes, 1, "{ti:#}");
    }

    // The lease ran on: the retry started only after W1 had killed the first
    // try, and the first try's record ends before the retry began (at its
    // lease's end, or when W1, healed, says its process stopped).
    let times = sql(
        &server,
        &format!(
            "SELECT extract(epoch FROM a1.ended_at) || '|' || extract(epoch FROM a2.started_at) \
             FROM task_instances ti \
             JOIN attempts a1 ON a1.ti_id = ti.id AND a1.try_number = 1 \
             JOIN attempts a2 ON a2.ti_id = ti.id AND a2.try_number = 2 \
             WHERE ti.run_id = {hold_run} AND ti.task_id = 'hold'"
        ),
    );
    let (ended, retried) = times.split_once('|').expect("two times");
    let (ended, retried): (f64, f64) = (ended.parse().unwrap(), retried.parse().unwrap());
    eprintln!(
        "PARTITION: hold's first try recorded as ended {:.2}s and retried {:.2}s after the cut",
        ended - t0_epoch,
        retried - t0_epoch
    );
    assert!(
        retried > killed_epoch && ended <= retried,
        "the retry ({retried}) started before W1 killed the first try ({killed_epoch}), or the \
         first try's record ends after it ({ended})"
    );

    // W1 is healthy again and its rejected result changed nothing.
    wait_until("W1 to heartbeat again", || {
        pg.nodes()
            .iter()
            .any(|n| n["node_id"] == w1_id.as_str() && n["health"] == "running")
            .then_some(())
    });
    let (_, attempts) = attempts_of(&pg, quick_run, "quick");
    assert_eq!(attempts[0]["state"], "lost", "{attempts:#?}");
    assert_eq!(attempts[1]["state"], "success", "{attempts:#?}");
    w1.assert_running();
    let log = w1.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("attempt finished") && l.contains("quick")),
        "W1 must not have recorded a result for quick:\n{log}"
    );
}
