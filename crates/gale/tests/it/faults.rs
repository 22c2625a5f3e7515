//! Faults beyond a crash, with real `gale` processes. On PostgreSQL:
//!
//! - a worker frozen (SIGSTOP) for twice its lease while its task runs: its
//!   guard kills the task at the fence deadline, so the retry elsewhere never
//!   runs beside it (measured by the task's own ticks, not by Gale's records);
//!   thawed, the worker reports nothing for the fenced attempt and runs what
//!   it claims afterwards to success;
//! - a scheduler frozen for twice the lease while runs flow through another:
//!   thawed, its stale view writes nothing that sticks: every run succeeds,
//!   every task has exactly one successful try and no two tries of one
//!   overlap (again by the tasks' own records);
//! - a table locked by another session's long transaction: statements give up
//!   at `lock_timeout` and retry, no role stalls for good;
//! - every PostgreSQL connection slot taken: processes wait and recover, none
//!   exits, a CLI command says what is wrong;
//! - a webserver frozen while another serves: thawed, it answers with the
//!   current state and writes through it work;
//! - workers on a slow, lossy link (200 ms ± 100 ms each way, 5 % of chunks a
//!   retransmission late), then a flapping one (down 2 s in every 5 s; see
//!   `common/link.rs`): every run succeeds, no try overlaps another, and on
//!   the slow link no lease is lost;
//! - a scheduler whose wall clock is 5 minutes ahead and a worker whose clock
//!   is 3 minutes behind (libfaketime): every run succeeds, no attempt is
//!   lost, a retry waits its delay on the database's clock, a 5-second cron
//!   yields one run per slot with no gap, each created once its interval
//!   ended on the database's clock; `gale cluster check` reports both skews
//!   and fails on them.
//!
//! - wall clocks that jump mid-run (the scheduler's 10 minutes ahead, the
//!   worker's 7 back): no slot moves, repeats or comes early, no task runs
//!   twice, no lease is lost.
//!
//! On SQLite:
//!
//! - `gale standalone` with its database, DAG folder and own log on an 8 MiB
//!   tmpfs that fills up while runs flow: it keeps running, every refused
//!   write (CLI and API) says the disk is full, and once space returns it
//!   resumes by itself: new runs succeed, the runs caught by the fill end,
//!   the runs from before keep their success and the file passes
//!   `PRAGMA integrity_check`.
//!
//! Without PostgreSQL binaries, libfaketime (the clock test) or the right to
//! mount a tmpfs (root, for the full disk) these tests print SKIPPED and pass,
//! except under `CI=true`, where they fail.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use gale_pgtest::server_or_skip;
use nix::sys::signal::Signal;

use crate::faketime::{jumping, libfaketime, skewed};
use crate::harness::{Home, states, wait_until};
use crate::marks::{assert_tries_never_overlap, ticking_task, tries_from_marks};
use crate::pg::{Pg, Role, sql};

/// The lease every process here runs with (the smallest Gale accepts).
const LEASE: &str = "3s";
const LEASE_S: f64 = 3.0;

const GUARD_MESSAGE: &str = "gale guard: killed task process group";

/// The lines `TRY EPOCH` a ticking task wrote, by try.
fn ticks_by_try(path: &str) -> BTreeMap<u32, Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut by_try: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(t), Some(at)) = (words.next(), words.next()) else {
            continue;
        };
        if let (Ok(t), Ok(at)) = (t.parse(), at.parse()) {
            by_try.entry(t).or_default().push(at);
        }
    }
    by_try
}

#[test]
fn frozen_worker_is_fenced_by_its_guard_and_runs_new_claims_after_thaw() {
    let Some(server) =
        server_or_skip("frozen_worker_is_fenced_by_its_guard_and_runs_new_claims_after_thaw")
    else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let home = Home::new();
    let ticks = home.file("ticks");
    // The first try ticks until it is killed; the retry ticks ten times and ends.
    home.write_dag(
        "freeze_ticks.yaml",
        &format!(
            r#"tasks:
  tick:
    retries: 2
    retry_delay: 1s
    run: |
      n=0
      while true; do
        echo "$GALE_TRY_NUMBER $(date +%s.%N)" >> {ticks}
        if [ "$GALE_TRY_NUMBER" -gt 1 ]; then
          n=$((n + 1))
          if [ "$n" -ge 10 ]; then exit 0; fi
        fi
        sleep 0.2
      done
"#
        ),
    );
    // Claimed by the frozen worker the moment it thaws; each outlives several
    // heartbeats, so a fence left over from the freeze would kill it.
    home.write_dag(
        "after_thaw.yaml",
        r#"tasks:
  a: {retries: 0, run: sleep 2}
  b: {retries: 0, run: sleep 2}
  c: {retries: 0, run: sleep 2}
"#,
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
    let worker_args = ["worker", "--concurrency", "4", "--attempt-lease", LEASE];
    let mut w1 = pg.start("w1", &worker_args);
    pg.wait_dags(&["freeze_ticks", "after_thaw"]);
    let w1_id = pg.node_id(w1.pid());

    let run = pg.trigger("freeze_ticks", &[]);
    wait_until("the first try to tick on W1", || {
        ticks_by_try(&ticks)
            .get(&1)
            .is_some_and(|t| t.len() >= 3)
            .then_some(())
    });
    w1.signal(Signal::SIGSTOP);
    let frozen = Instant::now();
    eprintln!("FREEZE: W1 stopped");

    let mut w2 = pg.start_registered("w2", &worker_args);
    let w2_id = pg.node_id(w2.pid());
    wait_until("the retry to succeed on W2", || {
        scheduler.assert_running();
        w2.assert_running();
        let state = sql(&server, &format!("SELECT state FROM runs WHERE id = {run}"));
        (state == "success").then_some(())
    });
    // W2 leaves, so that the next run waits for W1.
    w2.signal(Signal::SIGTERM);
    w2.wait_exit(Duration::from_secs(60));
    let after = pg.trigger("after_thaw", &[]);
    let freeze = Duration::from_secs_f64(2.0 * LEASE_S);
    if let Some(rest) = freeze.checked_sub(frozen.elapsed()) {
        std::thread::sleep(rest);
    }
    w1.signal(Signal::SIGCONT);
    eprintln!(
        "FREEZE: W1 thawed after {:.1}s",
        frozen.elapsed().as_secs_f64()
    );

    // The tries never ran at once, by the task's own ticks.
    let by_try = ticks_by_try(&ticks);
    let first = by_try.get(&1).expect("ticks of the first try");
    let retry = by_try.get(&2).expect("ticks of the retry");
    let first_last = first.iter().copied().fold(f64::MIN, f64::max);
    let retry_first = retry.iter().copied().fold(f64::MAX, f64::min);
    eprintln!(
        "FREEZE: the first try's last tick came {:.2}s before the retry's first",
        retry_first - first_last
    );
    assert!(
        first_last < retry_first,
        "two tries ran at once: the first ticked until {first_last}, the retry from {retry_first}"
    );
    assert_eq!(retry.len(), 10, "the retry ran to its end: {retry:?}");

    // Thawed, W1 runs its new claims to success, each on its first try.
    wait_until("the run claimed after the thaw to end", || {
        w1.assert_running();
        let state = sql(
            &server,
            &format!("SELECT state FROM runs WHERE id = {after}"),
        );
        (state == "success" || state == "failed").then_some(())
    });
    for t in pg.tasks(after) {
        assert_eq!(t["state"], "success", "{t:#}");
        let attempts = t["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{t:#}");
        assert_eq!(attempts[0]["worker_id"], w1_id.as_str(), "{t:#}");
    }

    // The record: the first try lost on W1, ended when its guard killed it
    // (as W1 measured once thawed), before the retry started on W2; W1
    // reported no result for it.
    wait_until("W1 to record when its fenced try stopped", || {
        let message = sql(
            &server,
            &format!(
                "SELECT coalesce(a.message, '') FROM attempts a JOIN task_instances ti \
                 ON ti.id = a.ti_id WHERE ti.run_id = {run} AND a.try_number = 1"
            ),
        );
        message.contains("measured by its worker").then_some(())
    });
    let tasks = pg.tasks(run);
    let attempts = tasks[0]["attempts"].as_array().expect("attempts").clone();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0]["worker_id"], w1_id.as_str(), "{attempts:#?}");
    assert_eq!(attempts[0]["state"], "lost", "{attempts:#?}");
    assert_eq!(attempts[1]["worker_id"], w2_id.as_str(), "{attempts:#?}");
    assert_eq!(attempts[1]["state"], "success", "{attempts:#?}");
    let times = sql(
        &server,
        &format!(
            "SELECT extract(epoch FROM a1.ended_at) || '|' || extract(epoch FROM a2.started_at) \
             FROM task_instances ti \
             JOIN attempts a1 ON a1.ti_id = ti.id AND a1.try_number = 1 \
             JOIN attempts a2 ON a2.ti_id = ti.id AND a2.try_number = 2 \
             WHERE ti.run_id = {run}"
        ),
    );
    let (ended, retried) = times.split_once('|').expect("two times");
    let (ended, retried): (f64, f64) = (ended.parse().unwrap(), retried.parse().unwrap());
    eprintln!(
        "FREEZE: the first try's record ends {:.2}s after its last tick, {:.2}s before the retry started",
        ended - first_last,
        retried - ended
    );
    assert!(
        first_last <= ended + 0.05 && ended - first_last < 2.0 && ended < retried,
        "the first try's record ends at {ended}: its last tick was at {first_last}, the retry started at {retried}"
    );
    let log = w1.log();
    assert!(
        log.contains(GUARD_MESSAGE),
        "W1's guard must have killed the frozen attempt:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("attempt finished") && l.contains("tick")),
        "W1 must report nothing for the fenced attempt:\n{log}"
    );
    w1.assert_running();
}

/// A scheduler frozen for twice the lease while another keeps the runs moving.
#[test]
fn frozen_scheduler_writes_nothing_stale_after_thaw() {
    let Some(server) = server_or_skip("frozen_scheduler_writes_nothing_stale_after_thaw") else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let home = Home::new();
    let marks = home.file("marks");
    // A chain and a fan-out; each try records when it started and ended.
    let mut yaml = String::from("tasks:\n");
    yaml.push_str(&ticking_task("first", &[], &marks, 3));
    for i in 0..4 {
        yaml.push_str(&ticking_task(&format!("wide{i}"), &["first"], &marks, 3));
    }
    yaml.push_str(&ticking_task(
        "last",
        &["wide0", "wide1", "wide2", "wide3"],
        &marks,
        3,
    ));
    home.write_dag("frozen_sched.yaml", &yaml);
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let sched_args = [
        "scheduler",
        "--dags-folder",
        &dags,
        "--attempt-lease",
        LEASE,
    ];
    let mut s1 = pg.start_registered("s1", &sched_args);
    let mut s2 = pg.start_registered("s2", &sched_args);
    let mut worker = pg.start(
        "worker",
        &["worker", "--concurrency", "8", "--attempt-lease", LEASE],
    );
    pg.wait_dag("frozen_sched");

    let mut runs = Vec::new();
    for _ in 0..4 {
        runs.push(pg.trigger("frozen_sched", &[]));
    }
    std::thread::sleep(Duration::from_millis(700));
    s1.signal(Signal::SIGSTOP);
    let frozen = Instant::now();
    for _ in 0..4 {
        runs.push(pg.trigger("frozen_sched", &[]));
        std::thread::sleep(Duration::from_millis(500));
    }
    let freeze = Duration::from_secs_f64(2.0 * LEASE_S);
    if let Some(rest) = freeze.checked_sub(frozen.elapsed()) {
        std::thread::sleep(rest);
    }
    s1.signal(Signal::SIGCONT);
    for _ in 0..4 {
        runs.push(pg.trigger("frozen_sched", &[]));
    }
    let ids = runs
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    wait_until("every run to end", || {
        s1.assert_running();
        s2.assert_running();
        worker.assert_running();
        let open = sql(
            &server,
            &format!(
                "SELECT count(*) FROM runs WHERE id IN ({ids}) AND state NOT IN ('success', 'failed')"
            ),
        );
        (open == "0").then_some(())
    });
    let failed = sql(
        &server,
        &format!("SELECT count(*) FROM runs WHERE id IN ({ids}) AND state <> 'success'"),
    );
    assert_eq!(failed, "0", "every run must succeed");
    let doubles = sql(
        &server,
        &format!(
            "SELECT count(*) FROM (SELECT ti_id FROM attempts WHERE run_id IN ({ids}) \
             AND state = 'success' GROUP BY ti_id HAVING count(*) <> 1) d"
        ),
    );
    assert_eq!(doubles, "0", "every task has exactly one successful try");
    let tis = sql(
        &server,
        &format!("SELECT count(*) FROM task_instances WHERE run_id IN ({ids})"),
    );
    assert_eq!(tis, (runs.len() * 6).to_string());

    // By the tasks' own records: every try ran to its end (nothing here kills
    // a task), and the tries of one task never ran at once.
    let spans = tries_from_marks(&marks);
    assert_eq!(spans.len(), runs.len() * 6, "every task ran");
    for ((run, task), tries) in &spans {
        for (n, t) in tries {
            assert!(
                t.ended,
                "try {n} of {task} in run {run} did not run to its end: {t:?}"
            );
        }
    }
    let retried = assert_tries_never_overlap(&spans);
    eprintln!(
        "FROZEN SCHEDULER: {} runs, {} task instances, {retried} retries",
        runs.len(),
        spans.len()
    );
    let log = s1.log();
    assert!(!log.contains("panicked"), "S1 panicked:\n{log}");
}

/// A DAG of three chained tasks that print and end, retried if a fault kills
/// one.
const CHAIN: &str = r#"tasks:
  one: {retries: 3, retry_delay: 1s, run: echo one}
  two: {retries: 3, retry_delay: 1s, needs: [one], run: echo two}
  three: {retries: 3, retry_delay: 1s, needs: [two], run: echo three}
"#;

/// Waits until every run of `ids` has ended and asserts each succeeded.
fn all_succeed(server: &gale_pgtest::PgServer, ids: &[i64], alive: &mut dyn FnMut()) {
    let ids = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    wait_until("every run to end", || {
        alive();
        let open = sql(
            server,
            &format!(
                "SELECT count(*) FROM runs WHERE id IN ({ids}) AND state NOT IN ('success', 'failed')"
            ),
        );
        (open == "0").then_some(())
    });
    let failed = sql(
        server,
        &format!("SELECT count(*) FROM runs WHERE id IN ({ids}) AND state <> 'success'"),
    );
    assert_eq!(failed, "0", "every run must succeed");
}

/// A fresh database of its own on a test server, or `None` after a loud skip.
fn database(test: &str) -> Option<(gale_pgtest::PgServer, String)> {
    let server = server_or_skip(test)?;
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    Some((server, url))
}

/// [`CHAIN`] as `dag`, a scheduler and a worker (4 slots) on `url`, once the
/// DAG is loaded.
fn chain_cluster<'h>(home: &'h Home, url: &str, dag: &str) -> (Pg<'h>, Role<'h>, Role<'h>) {
    home.write_dag(&format!("{dag}.yaml"), CHAIN);
    let pg = Pg::new(home, url);
    let dags = home.dags().display().to_string();
    let scheduler = pg.start_registered("scheduler", &["scheduler", "--dags-folder", &dags]);
    let worker = pg.start_registered("worker", &["worker", "--concurrency", "4"]);
    pg.wait_dag(dag);
    (pg, scheduler, worker)
}

/// Another session holds `task_instances` in an ACCESS EXCLUSIVE lock for
/// 12 s: Gale's statements give up at `lock_timeout` and retry instead of
/// queueing behind it for good, nothing exits, and everything started then
/// ends once the lock is gone.
#[test]
fn a_table_locked_by_a_long_transaction_stalls_no_role_for_good() {
    let Some((server, url)) =
        database("a_table_locked_by_a_long_transaction_stalls_no_role_for_good")
    else {
        return;
    };
    let home = Home::new();
    let (pg, mut scheduler, mut worker) = chain_cluster(&home, &url, "locked_chain");
    let mut runs = vec![pg.trigger("locked_chain", &[])];
    all_succeed(&server, &runs, &mut || {});

    std::thread::scope(|s| {
        let locker = s.spawn(|| {
            server.psql(
                "gale",
                "BEGIN; LOCK TABLE task_instances IN ACCESS EXCLUSIVE MODE; \
                 SELECT pg_sleep(12); COMMIT;",
            )
        });
        wait_until("the lock to be held", || {
            let held = sql(
                &server,
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = 'task_instances' AND l.mode = 'AccessExclusiveLock' AND l.granted",
            );
            (held == "1").then_some(())
        });
        // Triggered while the lock is held: each either goes through or says
        // what is wrong.
        for _ in 0..3 {
            let out = pg.gale(&["dags", "trigger", "locked_chain"]);
            if out.code == 0 {
                runs.push(out.stdout.trim().parse().expect("a run id"));
            } else {
                assert!(
                    out.stderr.contains("lock timeout") || out.stderr.contains("did not answer"),
                    "a trigger that failed under the lock must say why: {out}"
                );
            }
        }
        let held = locker.join().expect("the locking session");
        assert!(held.is_ok(), "the locking session: {held:?}");
    });
    runs.push(pg.trigger("locked_chain", &[]));
    all_succeed(&server, &runs, &mut || {
        scheduler.assert_running();
        worker.assert_running();
    });
    let logs = format!("{}{}", scheduler.log(), worker.log());
    assert!(
        logs.contains("lock timeout"),
        "some statement must have given up at lock_timeout while the table was locked:\n{logs}"
    );
}

/// Every connection slot of PostgreSQL taken by someone else: running
/// processes keep what they have and wait for more, a process started then
/// waits to connect instead of exiting, a CLI command says what is wrong, and
/// everything resumes once slots are free.
#[test]
fn postgres_out_of_connections_makes_processes_wait_not_give_up() {
    let Some((server, url)) =
        database("postgres_out_of_connections_makes_processes_wait_not_give_up")
    else {
        return;
    };
    let home = Home::new();
    let (pg, mut scheduler, mut w1) = chain_cluster(&home, &url, "conn_chain");
    let mut runs = vec![pg.trigger("conn_chain", &[])];
    all_succeed(&server, &runs, &mut || {});

    // Take every free slot (superuser ones included).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut fillers = Vec::new();
    let refused = rt.block_on(async {
        loop {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    let driver = tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    fillers.push((client, driver));
                }
                Err(e) => break format!("{e:?}"),
            }
            assert!(fillers.len() < 1000, "no connection limit reached");
        }
    });
    eprintln!(
        "CONNECTIONS: {} taken, then refused: {refused}",
        fillers.len()
    );

    // A worker started now must wait for a slot, not exit.
    let mut w2 = pg.start("w2", &["worker", "--concurrency", "4"]);
    let out = pg.gale(&["dags", "trigger", "conn_chain"]);
    assert_ne!(
        out.code, 0,
        "no slot is free, yet the trigger worked: {out}"
    );
    assert!(
        out.stderr.contains("too many clients") || out.stderr.contains("connection"),
        "the failed trigger must say why: {out}"
    );
    std::thread::sleep(Duration::from_secs(5));
    w2.assert_running();
    scheduler.assert_running();
    w1.assert_running();

    // Slots come back: everything resumes.
    rt.block_on(async {
        for (client, driver) in fillers.drain(..) {
            drop(client);
            let _ = driver.await;
        }
    });
    w2.wait_registered();
    for _ in 0..3 {
        runs.push(pg.trigger("conn_chain", &[]));
    }
    all_succeed(&server, &runs, &mut || {
        scheduler.assert_running();
        w1.assert_running();
        w2.assert_running();
    });
}

/// Workers reach PostgreSQL over a slow, lossy link (200 ms ± 100 ms each
/// way, 5 % of chunks a 200 ms retransmission late), then over one that goes
/// down for 2 s every 5 s: work goes on at reduced speed, every run succeeds,
/// no two tries of a task run at once (by the tasks' own marks), and on the
/// slow link no lease is lost.
#[test]
fn slow_lossy_and_flapping_links_lose_nothing() {
    let Some(server) = server_or_skip("slow_lossy_and_flapping_links_lose_nothing") else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let seed = std::env::var("GALE_IT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    eprintln!("LINK: seed {seed} (GALE_IT_SEED replays it)");
    let link = crate::link::Link::start(server.port(), seed);
    link.shape(crate::link::Shape {
        delay: Duration::from_millis(200),
        jitter: Duration::from_millis(100),
        loss: 0.05,
        rto: Duration::from_millis(200),
    });
    let shaped = url.replacen(
        &format!(":{}/", server.port()),
        &format!(":{}/", link.port()),
        1,
    );
    assert_ne!(shaped, url, "the workers' URL goes through the link");

    let home = Home::new();
    let marks = home.file("marks");
    let mut yaml = String::from("tasks:\n");
    yaml.push_str(&ticking_task("first", &[], &marks, 5));
    for i in 0..3 {
        yaml.push_str(&ticking_task(&format!("wide{i}"), &["first"], &marks, 5));
    }
    yaml.push_str(&ticking_task(
        "last",
        &["wide0", "wide1", "wide2"],
        &marks,
        5,
    ));
    home.write_dag("linked.yaml", &yaml);
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut scheduler = pg.start_registered("scheduler", &["scheduler", "--dags-folder", &dags]);
    let far = Pg::new(&home, &shaped);
    let mut w1 = far.start_registered("w1", &["worker", "--concurrency", "4"]);
    let mut w2 = far.start_registered("w2", &["worker", "--concurrency", "4"]);
    pg.wait_dag("linked");
    let mut alive = || {
        scheduler.assert_running();
        w1.assert_running();
        w2.assert_running();
    };

    // The slow, lossy link.
    let slow: Vec<i64> = (0..4).map(|_| pg.trigger("linked", &[])).collect();
    all_succeed(&server, &slow, &mut alive);
    let ids = |runs: &[i64]| {
        runs.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let lost = sql(
        &server,
        &format!(
            "SELECT count(*) FROM attempts WHERE run_id IN ({}) AND state <> 'success'",
            ids(&slow)
        ),
    );
    assert_eq!(lost, "0", "at 200 ms each way no lease may be lost");

    // The flapping link: down 2 s, up 3 s, for 30 s.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let flapping: Vec<i64> = std::thread::scope(|s| {
        s.spawn(|| {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30)
                && !stop.load(std::sync::atomic::Ordering::SeqCst)
            {
                link.set_down(true);
                std::thread::sleep(Duration::from_secs(2));
                link.set_down(false);
                std::thread::sleep(Duration::from_secs(3));
            }
        });
        let runs = (0..6)
            .map(|_| {
                std::thread::sleep(Duration::from_secs(4));
                pg.trigger("linked", &[])
            })
            .collect();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        runs
    });
    link.set_down(false);
    all_succeed(&server, &flapping, &mut alive);
    let lost = sql(
        &server,
        &format!(
            "SELECT count(*) FROM attempts WHERE run_id IN ({}) AND state = 'lost'",
            ids(&flapping)
        ),
    );

    let tries = tries_from_marks(&marks);
    assert_eq!(
        tries.len(),
        (slow.len() + flapping.len()) * 5,
        "every task ran"
    );
    let retried = assert_tries_never_overlap(&tries);
    eprintln!(
        "LINK: {} runs over the slow link, {} over the flapping one ({lost} tries lost there), \
         {retried} retries in all",
        slow.len(),
        flapping.len()
    );
}

/// A webserver frozen (SIGSTOP) while another serves: meanwhile runs are
/// triggered and finish through the other; thawed, the frozen one answers with
/// the current state (nothing it held from before is served as current) and
/// writes through it work.
#[test]
fn a_frozen_webserver_serves_the_current_state_after_thaw() {
    let Some((server, url)) = database("a_frozen_webserver_serves_the_current_state_after_thaw")
    else {
        return;
    };
    let home = Home::new();
    let (pg, mut scheduler, mut worker) = chain_cluster(&home, &url, "web_chain");
    let web_args = [
        "webserver",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-auth",
    ];
    let mut ws1 = pg.start_registered("ws1", &web_args);
    let mut ws2 = pg.start_registered("ws2", &web_args);
    let w1 = crate::web::Web::new(&crate::web::wait_url("ws1", || ws1.log()));
    let w2 = crate::web::Web::new(&crate::web::wait_url("ws2", || ws2.log()));
    w1.wait_ready();
    w2.wait_ready();
    let before = w1.post(
        "/api/v1/dags/web_chain/runs",
        &serde_json::json!({"conf": {}}),
    );
    let before = before.expect(201)["run_id"].as_i64().expect("a run id");
    // Read through ws1 while the run is young: what it may hold from then.
    w1.get(&format!("/api/v1/runs/{before}")).expect(200);

    ws1.signal(Signal::SIGSTOP);
    // A signal takes effect a moment after it is sent: stopped once the
    // kernel says so.
    wait_until("ws1 to be stopped", || {
        let (state, _) = crate::harness::proc_stat(ws1.pid() as i32)?;
        (state == 'T').then_some(())
    });
    // Frozen: it accepts the connection in its kernel and answers nothing.
    let base = w1.base().trim_start_matches("http://").to_owned();
    let addr = base.split('/').next().expect("host:port").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).expect("the kernel still accepts");
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("a read timeout");
    std::io::Write::write_all(
        &mut stream,
        b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("a request");
    let mut buf = [0u8; 64];
    let answered = std::io::Read::read(&mut stream, &mut buf).is_ok_and(|n| n > 0);
    assert!(!answered, "a frozen webserver answered");
    let during: Vec<i64> = (0..2)
        .map(|_| {
            w2.post(
                "/api/v1/dags/web_chain/runs",
                &serde_json::json!({"conf": {}}),
            )
            .expect(201)["run_id"]
                .as_i64()
                .expect("a run id")
        })
        .collect();
    let mut all = vec![before];
    all.extend(&during);
    all_succeed(&server, &all, &mut || {
        scheduler.assert_running();
        worker.assert_running();
        ws2.assert_running();
    });
    ws1.signal(Signal::SIGCONT);

    // Thawed: the current state, and writes work.
    for id in &all {
        let run = w1.get(&format!("/api/v1/runs/{id}")).expect(200);
        let state = if run.get("run").is_some() {
            run["run"]["state"].clone()
        } else {
            run["state"].clone()
        };
        assert_eq!(state, "success", "ws1 after the thaw, run {id}: {run:#}");
    }
    let listed = w1
        .get("/api/v1/runs?dag_id=web_chain&limit=100")
        .expect(200);
    let text = listed.to_string();
    for id in &during {
        assert!(
            text.contains(&format!("\"run_id\":{id}")) || text.contains(&format!("\"id\":{id}")),
            "ws1 lists run {id} created while it was frozen: {listed:#}"
        );
    }
    let after = w1
        .post(
            "/api/v1/dags/web_chain/runs",
            &serde_json::json!({"conf": {}}),
        )
        .expect(201)["run_id"]
        .as_i64()
        .expect("a run id");
    all_succeed(&server, &[after], &mut || ws1.assert_running());
}

/// libfaketime, or `None` after a loud SKIPPED line when it is not installed
/// (a failure under `CI=true`).
fn libfaketime_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let lib = libfaketime();
    if lib.is_none() {
        skip_unless_ci(
            test,
            "libfaketime is not installed (apt-get install faketime)",
        );
    }
    lib
}

/// Wall clocks that jump while runs flow: the scheduler's 10 minutes ahead,
/// the worker's 7 minutes back, with tasks running and a 5-second cron
/// ticking. No slot moves, repeats or is skipped, no scheduled run is created
/// for a time still to come on the database's clock, no task runs twice (by
/// the tasks' own marks), no lease is lost, and every run succeeds.
#[test]
fn clocks_that_jump_mid_run_move_no_slot_and_run_nothing_twice() {
    const TEST: &str = "clocks_that_jump_mid_run_move_no_slot_and_run_nothing_twice";
    let Some(lib) = libfaketime_or_skip(TEST) else {
        return;
    };
    let Some((server, url)) = database(TEST) else {
        return;
    };
    let lib = lib.display().to_string();
    let home = Home::new();
    let marks = home.file("marks");
    let mut chain = String::from("tasks:\n");
    chain.push_str(&ticking_task("one", &[], &marks, 15));
    chain.push_str(&ticking_task("two", &["one"], &marks, 15));
    home.write_dag("jump_manual.yaml", &chain);
    let start = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() / 5 * 5)
        .expect("a time in range");
    home.write_dag(
        "jump_cron.yaml",
        &format!(
            "schedule: \"*/5 * * * * *\"\nstart_date: \"{start}\"\ncatchup: true\n\
             max_active_runs: 8\ntasks:\n  tick:\n    run: echo tick\n"
        ),
    );
    let (sched_clock, worker_clock) = (
        home.file("scheduler.faketime"),
        home.file("worker.faketime"),
    );
    std::fs::write(&sched_clock, "+0\n").expect("writing an offset");
    std::fs::write(&worker_clock, "+0\n").expect("writing an offset");
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut scheduler = pg.start_with_env(
        "scheduler",
        &[
            "scheduler",
            "--dags-folder",
            &dags,
            "--attempt-lease",
            LEASE,
        ],
        &jumping(&lib, &sched_clock),
    );
    let mut worker = pg.start_with_env(
        "worker",
        &["worker", "--concurrency", "8", "--attempt-lease", LEASE],
        &jumping(&lib, &worker_clock),
    );
    scheduler.wait_registered();
    worker.wait_registered();
    pg.wait_dags(&["jump_manual", "jump_cron"]);

    let mut runs: Vec<i64> = (0..3).map(|_| pg.trigger("jump_manual", &[])).collect();
    wait_until("tasks to be running", || {
        (tries_from_marks(&marks).len() >= 3).then_some(())
    });
    // The jump, with tasks running.
    std::fs::write(&sched_clock, "+10m\n").expect("writing an offset");
    std::fs::write(&worker_clock, "-7m\n").expect("writing an offset");
    // The jump took: the processes' next heartbeats say so.
    let (sid, wid) = (pg.node_id(scheduler.pid()), pg.node_id(worker.pid()));
    wait_until("the jumped clocks to show in `gale cluster check`", || {
        let out = pg.gale(&["cluster", "check", "--output", "json"]);
        let findings = out.json();
        let (s, _) = skew_finding(&findings, &sid)?;
        let (w, _) = skew_finding(&findings, &wid)?;
        ((s - 600.0).abs() < 30.0 && (w + 420.0).abs() < 30.0).then_some(())
    });
    eprintln!("JUMP: the scheduler's clock jumped 10 minutes ahead, the worker's 7 back");
    std::thread::sleep(Duration::from_secs(2));
    runs.extend((0..3).map(|_| pg.trigger("jump_manual", &[])));
    all_succeed(&server, &runs, &mut || {
        scheduler.assert_running();
        worker.assert_running();
    });
    std::thread::sleep(Duration::from_secs(5));
    // The cron ran across the jump for at least five slots, however fast the
    // manual runs went.
    wait_until("five slots of jump_cron", || {
        let n: i64 = sql(
            &server,
            "SELECT count(*) FROM runs WHERE dag_id = 'jump_cron'",
        )
        .parse()
        .ok()?;
        (n >= 5).then_some(())
    });

    // No task ran twice, no lease was lost.
    let tries = tries_from_marks(&marks);
    assert_eq!(tries.len(), runs.len() * 2, "every task ran");
    assert_eq!(
        assert_tries_never_overlap(&tries),
        0,
        "no task was tried twice"
    );
    let lost = sql(
        &server,
        "SELECT count(*) FROM attempts WHERE state <> 'success'",
    );
    assert_eq!(lost, "0", "no lease was lost, no try failed");

    // The slots: 5 s apart from the start, none skipped, moved or doubled, and
    // none for a time still to come on the database's clock.
    let rows = sql(
        &server,
        "SELECT extract(epoch FROM logical_date)::bigint || ' ' || (interval_end <= created_at) \
         || ' ' || (logical_date <= now()) FROM runs WHERE dag_id = 'jump_cron' ORDER BY logical_date",
    );
    let slots: Vec<(i64, bool, bool)> = rows
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (
                w[0].parse().expect("epoch seconds"),
                w[1] == "true",
                w[2] == "true",
            )
        })
        .collect();
    assert!(slots.len() >= 5, "{slots:?}");
    assert_eq!(slots[0].0, start.as_second(), "{slots:?}");
    for pair in slots.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            5,
            "slots 5 s apart, none moved: {slots:?}"
        );
    }
    assert!(
        slots.iter().all(|(_, ended, past)| *ended && *past),
        "a scheduled run was created early by the database's clock: {slots:?}"
    );
    for role in [&scheduler, &worker] {
        assert!(
            !role.log().contains("panicked"),
            "gale {} panicked",
            role.name()
        );
    }
}

/// A process's clock skew as a `clock` finding of `gale cluster check` reports
/// it, in seconds, and whether the finding passed.
fn skew_finding(findings: &serde_json::Value, node_id: &str) -> Option<(f64, bool)> {
    let f = findings.as_array()?.iter().find(|f| {
        f["check"] == "clock" && f["detail"].as_str().is_some_and(|d| d.starts_with(node_id))
    })?;
    // "<node> on <host>: +300012.3 ms against the database"
    let detail = f["detail"].as_str()?;
    let ms: f64 = detail
        .rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((ms / 1000.0, f["ok"] == true))
}

/// A scheduler whose wall clock is 5 minutes ahead and a worker whose clock is
/// 3 minutes behind, on one PostgreSQL: leases, retry times, cron slots and
/// timeouts all use the database's clock (or durations), so nothing changes;
/// `gale cluster check` reports both skews.
#[test]
fn skewed_clocks_change_nothing_but_the_reported_skew() {
    const TEST: &str = "skewed_clocks_change_nothing_but_the_reported_skew";
    let Some(lib) = libfaketime_or_skip(TEST) else {
        return;
    };
    let Some(server) = server_or_skip(TEST) else {
        return;
    };
    let lib = lib.display().to_string();
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let home = Home::new();
    // Fails its first try; the retry is due 5 s after the failure.
    home.write_dag(
        "clock_manual.yaml",
        r#"tasks:
  flaky:
    retries: 2
    retry_delay: 5s
    run: |
      if [ "$GALE_TRY_NUMBER" -lt 2 ]; then echo "failing try $GALE_TRY_NUMBER"; exit 1; fi
      echo "try $GALE_TRY_NUMBER succeeds"
  long:
    retries: 2
    retry_delay: 1s
    timeout: 1m
    run: sleep 8
  after:
    needs: [flaky, long]
    run: echo done
"#,
    );
    // A slot every 5 s from a start just past; catch-up on, so a slot is never
    // passed over (a late pass makes up for it instead).
    let period_s = 5;
    let start = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() / 5 * 5)
        .expect("a time in range");
    home.write_dag(
        "clock_cron.yaml",
        &format!(
            r#"schedule: "*/5 * * * * *"
start_date: "{start}"
catchup: true
max_active_runs: 8
tasks:
  tick:
    run: echo "tick {{{{ ts }}}}"
"#
        ),
    );
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let ahead = skewed(&lib, "+5m");
    let behind = skewed(&lib, "-3m");
    let mut scheduler = pg.start_with_env(
        "scheduler",
        &[
            "scheduler",
            "--dags-folder",
            &dags,
            "--attempt-lease",
            LEASE,
        ],
        &ahead,
    );
    let mut worker = pg.start_with_env(
        "worker",
        &["worker", "--concurrency", "8", "--attempt-lease", LEASE],
        &behind,
    );
    scheduler.wait_registered();
    worker.wait_registered();
    let sid = pg.node_id(scheduler.pid());
    let wid = pg.node_id(worker.pid());
    pg.wait_dags(&["clock_manual", "clock_cron"]);

    let manual: Vec<i64> = (0..3).map(|_| pg.trigger("clock_manual", &[])).collect();
    wait_until("five scheduled runs to succeed", || {
        scheduler.assert_running();
        worker.assert_running();
        let done = sql(
            &server,
            "SELECT count(*) FROM runs WHERE dag_id = 'clock_cron' AND state = 'success'",
        );
        (done.parse::<u32>().ok()? >= 5).then_some(())
    });
    pg.ok(&["dags", "pause", "clock_cron"]);
    wait_until("every run to end", || {
        scheduler.assert_running();
        worker.assert_running();
        let open = sql(
            &server,
            "SELECT count(*) FROM runs WHERE state NOT IN ('success', 'failed')",
        );
        (open == "0").then_some(())
    });

    // Every run succeeded; no try was lost or handed back; every task has
    // exactly one successful try.
    let failed = sql(
        &server,
        "SELECT count(*) FROM runs WHERE state <> 'success'",
    );
    assert_eq!(failed, "0", "every run must succeed");
    let lost = sql(
        &server,
        "SELECT count(*) FROM attempts WHERE state IN ('lost', 'handed_back')",
    );
    assert_eq!(lost, "0", "no attempt may be lost (a lease reaped early)");
    let doubles = sql(
        &server,
        "SELECT count(*) FROM task_instances ti WHERE (SELECT count(*) FROM attempts a \
         WHERE a.ti_id = ti.id AND a.state = 'success') <> 1",
    );
    assert_eq!(doubles, "0", "every task has exactly one successful try");

    // The manual runs: `long` ran once, past two leases; `flaky` was retried
    // once, no sooner than its delay after its failure, by the database's clock.
    for run in &manual {
        let tasks = pg.tasks(*run);
        let long = crate::harness::task(&tasks, "long");
        assert_eq!(
            long["attempts"].as_array().map(Vec::len),
            Some(1),
            "{long:#}"
        );
        let flaky = crate::harness::task(&tasks, "flaky");
        let tries = flaky["attempts"].as_array().expect("attempts");
        assert_eq!(tries.len(), 2, "{flaky:#}");
        assert_eq!(tries[0]["state"], "failed", "{flaky:#}");
        assert_eq!(tries[1]["state"], "success", "{flaky:#}");
        let gap: f64 = sql(
            &server,
            &format!(
                "SELECT extract(epoch FROM a2.started_at - a1.ended_at) FROM task_instances ti \
                 JOIN attempts a1 ON a1.ti_id = ti.id AND a1.try_number = 1 \
                 JOIN attempts a2 ON a2.ti_id = ti.id AND a2.try_number = 2 \
                 WHERE ti.run_id = {run} AND ti.task_id = 'flaky'"
            ),
        )
        .parse()
        .expect("a number of seconds");
        eprintln!("CLOCKS: run {run}: the retry started {gap:.2}s after the failure");
        // The delay, less the moment between the worker's reading of the
        // store's clock and its result's commit (a clock minutes off would
        // make it about 0, or minutes).
        assert!(
            gap >= 4.0,
            "run {run}: the retry started {gap}s after the failure, before its 5 s delay"
        );
    }

    // The scheduled runs: one per slot from the start date, 5 s apart, none
    // skipped or doubled, each created once its interval had ended on the
    // database's clock.
    let rows = sql(
        &server,
        "SELECT extract(epoch FROM logical_date)::bigint || ' ' || \
         (interval_end <= created_at) FROM runs WHERE dag_id = 'clock_cron' ORDER BY logical_date",
    );
    let slots: Vec<(i64, bool)> = rows
        .lines()
        .map(|l| {
            let (at, ended) = l.split_once(' ').expect("two columns");
            (at.parse().expect("epoch seconds"), ended == "true")
        })
        .collect();
    assert!(slots.len() >= 5, "{slots:?}");
    assert_eq!(
        slots[0].0,
        start.as_second(),
        "the first slot is the start date: {slots:?}"
    );
    for pair in slots.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            period_s,
            "consecutive slots 5 s apart, none skipped or doubled: {slots:?}"
        );
    }
    assert!(
        slots.iter().all(|(_, ended)| *ended),
        "a scheduled run was created before its interval ended on the database's clock: {slots:?}"
    );
    let passed_over = sql(
        &server,
        "SELECT count(*) FROM schedule_slots WHERE dag_id = 'clock_cron' AND status <> 'run'",
    );
    assert_eq!(passed_over, "0", "no slot passed over in the ledger");

    // Each process's skew as `gale cluster check` reports it (its heartbeat
    // measures it against the database): a failure at the default 1 s, and
    // the only one.
    let (check, sched_skew, worker_skew) = wait_until("both skews to be reported", || {
        let out = pg.gale(&["cluster", "check", "--output", "json"]);
        let findings = out.json();
        let (s, s_ok) = skew_finding(&findings, &sid)?;
        let (w, w_ok) = skew_finding(&findings, &wid)?;
        ((s - 300.0).abs() < 20.0 && (w + 180.0).abs() < 20.0).then(|| {
            assert!(
                !s_ok && !w_ok,
                "skews of minutes must fail the check: {findings:#}"
            );
            (out, s, w)
        })
    });
    eprintln!("CLOCKS: skew reported: scheduler {sched_skew:+.1}s, worker {worker_skew:+.1}s");
    assert_eq!(
        check.code, 1,
        "skews of minutes fail `gale cluster check`: {check}"
    );
    let failing: Vec<String> = check
        .json()
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["ok"] != true)
        .map(|f| f["detail"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        failing.len(),
        2,
        "only the two skewed clocks fail: {failing:#?}"
    );
    let lenient = pg.gale(&["cluster", "check", "--max-clock-skew", "10m"]);
    assert_eq!(
        lenient.code, 0,
        "within a 10 minute allowance the cluster is healthy: {lenient}"
    );

    // A token made by a CLI whose clock is 5 minutes ahead expires an hour
    // after the database's now, not the CLI's.
    pg.ok(&["users", "create", "skewed-user"]);
    let mut cmd = home.command(&[
        "tokens",
        "create",
        "--user",
        "skewed-user",
        "--name",
        "skewed",
        "--expires-in",
        "1h",
        "--database-url",
        &url,
    ]);
    cmd.envs(ahead);
    let made = cmd.output().expect("running gale tokens create");
    assert!(
        made.status.success(),
        "tokens create under a skewed clock: {made:?}"
    );
    let left = sql(
        &server,
        "SELECT extract(epoch FROM expires_at - now())::int FROM api_tokens WHERE name = 'skewed'",
    );
    let left: i64 = left
        .parse()
        .unwrap_or_else(|_| panic!("a token expiry: {left:?}"));
    assert!(
        (3540..=3600).contains(&left),
        "the token expires {left} s after the database's now, not an hour after it"
    );

    for role in [&scheduler, &worker] {
        let log = role.log();
        assert!(
            !log.contains("panicked"),
            "gale {} panicked:\n{log}",
            role.name()
        );
    }
    scheduler.assert_running();
    worker.assert_running();
}

/// Skips `test` loudly with `why`, or fails it under `CI=true`.
fn skip_unless_ci(test: &str, why: &str) {
    if matches!(std::env::var("CI").as_deref(), Ok("true" | "1")) {
        panic!("{test}: {why}; it is required under CI=true");
    }
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {test}: {why} ***\n");
}

/// A tmpfs mounted on a directory of its own, unmounted on drop (also when the
/// test panics; lazily if something still holds a file on it).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `8m`), or returns
    /// `None` after a loud SKIPPED line when this process may not mount
    /// (a failure under `CI=true`).
    fn mount_or_skip(test: &str, size: &str) -> Option<Tmpfs> {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !root {
            skip_unless_ci(test, "mounting a small tmpfs needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("gale-it-tmpfs-")
            .tempdir()
            .expect("a mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            other => {
                skip_unless_ci(test, &format!("cannot mount a tmpfs: {other:?}"));
                None
            }
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut cmd = std::process::Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(self.dir.path()).status().is_ok_and(|s| s.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!(
                "could not unmount the tmpfs on {}",
                self.dir.path().display()
            );
        }
    }
}

/// Appends to `file` until the file system is full; returns the bytes written.
fn fill(file: &mut File) -> u64 {
    let mut written = 0;
    for chunk in [1 << 20, 4096, 512] {
        let block = vec![0x5a_u8; chunk];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    written
}

/// The states of every run of `dag_id` (`gale runs list`), by run id.
fn run_states(home: &Home, dag_id: &str) -> BTreeMap<i64, String> {
    home.runs(dag_id)
        .iter()
        .map(|r| {
            (
                r["run_id"].as_i64().expect("a run id"),
                r["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `gale standalone` on SQLite whose database, DAG folder and own log are on
/// an 8 MiB tmpfs, filled up while runs flow and freed again.
#[test]
fn a_full_disk_under_sqlite_fails_writes_clearly_and_gale_resumes_when_space_returns() {
    const TEST: &str =
        "a_full_disk_under_sqlite_fails_writes_clearly_and_gale_resumes_when_space_returns";
    let Some(disk) = Tmpfs::mount_or_skip(TEST, "8m") else {
        return;
    };
    let home = Home::new_in(disk.path());
    // Each try writes a few hundred lines of log into the database at once,
    // then a line every 0.2 s for two seconds.
    let talk = |id: &str, up: &str| {
        format!(
            "  {id}:\n    retries: 1\n    retry_delay: 1s\n{up}    run: |\n      \
             for i in $(seq 1 300); do echo \"run $GALE_RUN_ID {id} try $GALE_TRY_NUMBER line $i: some words for the log\"; done\n      \
             for i in $(seq 1 10); do echo \"still talking: $i\"; sleep 0.2; done\n"
        )
    };
    home.write_dag(
        "chatty.yaml",
        &format!(
            "max_active_runs: 16\ntasks:\n{}{}",
            talk("first", ""),
            talk("second", "    needs: [first]\n")
        ),
    );
    let (mut standalone, web) = crate::web::start(&home);
    home.wait_dag("chatty");

    // Committed before the disk fills: these must all survive.
    let before: Vec<i64> = (0..4).map(|_| home.trigger("chatty", &[])).collect();
    for run in &before {
        let v = home.wait_run(*run);
        assert_eq!(v["run"]["state"], "success", "{v:#}");
    }

    // Runs in flight, each with a task running, then the disk fills up.
    let mut in_flight: Vec<i64> = (0..3).map(|_| home.trigger("chatty", &[])).collect();
    for run in &in_flight {
        wait_until(&format!("a task of run {run} to run"), || {
            states(&home.tasks(*run))
                .values()
                .any(|s| s == "running")
                .then_some(())
        });
    }
    let filler_path = disk.path().join("filler");
    let mut filler = File::create(&filler_path).expect("creating the filler");
    let filled = fill(&mut filler);
    eprintln!("FULL DISK: the filler took {filled} bytes");

    // While full: writes fail (each naming the cause); Gale keeps running.
    let full_since = Instant::now();
    let (mut cli_errors, mut api_errors) = (Vec::new(), Vec::new());
    let mut attempts = 0;
    while full_since.elapsed() < Duration::from_secs(8)
        || cli_errors.is_empty()
        || api_errors.is_empty()
    {
        assert!(
            full_since.elapsed() < crate::harness::DEADLINE,
            "no write failed while the disk was full: CLI {cli_errors:?}, API {api_errors:?}"
        );
        if let Some(status) = standalone.exited() {
            panic!("gale standalone exited ({status}) while the disk was full");
        }
        // Whatever Gale freed (a checkpointed WAL) is taken again.
        fill(&mut filler);
        attempts += 1;
        let out = home.gale(&["dags", "trigger", "chatty"]);
        match out.code {
            0 => in_flight.push(out.stdout.trim().parse().expect("a run id")),
            _ => cli_errors.push(out.stderr.trim().to_owned()),
        }
        let resp = web.post("/api/v1/dags/chatty/runs", &serde_json::json!({}));
        match resp.status {
            200..=299 => in_flight.push(resp.json()["run_id"].as_i64().expect("a run id")),
            status => api_errors.push((status, resp.text())),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!(
        "FULL DISK: {attempts} rounds of writes while full: {} CLI and {} API calls failed",
        cli_errors.len(),
        api_errors.len()
    );
    for e in &cli_errors {
        assert!(
            e.contains("disk is full"),
            "a write refused for a full disk must say so: {e}"
        );
    }
    for (status, body) in &api_errors {
        assert_eq!(*status, 503, "a full disk is a passing outage: {body}");
        assert!(
            body.contains("disk is full"),
            "a write refused for a full disk must say so: {body}"
        );
    }

    // Space returns: Gale resumes on its own, without a restart.
    drop(filler);
    std::fs::remove_file(&filler_path).expect("removing the filler");
    eprintln!(
        "FULL DISK: space returned after {:.1}s",
        full_since.elapsed().as_secs_f64()
    );
    let after: Vec<i64> = (0..3).map(|_| home.trigger("chatty", &[])).collect();
    for run in &after {
        let v = home.wait_run(*run);
        assert_eq!(
            v["run"]["state"], "success",
            "a run after the space returned: {v:#}"
        );
    }
    // Every run in flight during the fill ends, one way or the other.
    let states = wait_until("every run to end", || {
        let states = run_states(&home, "chatty");
        states
            .values()
            .all(|s| s == "success" || s == "failed")
            .then_some(states)
    });
    for run in &in_flight {
        let state = states.get(run).map(String::as_str);
        let tasks = home.tasks(*run);
        let tries: Vec<String> = tasks
            .iter()
            .map(|t| {
                let tries: Vec<&str> = t["attempts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["state"].as_str())
                    .collect();
                format!("{}: {}", t["task_id"], tries.join(", "))
            })
            .collect();
        eprintln!("FULL DISK: run {run} in flight during the fill ended {state:?} ({tries:?})");
        if state == Some("failed") {
            // A failure says why, in the attempt's record.
            let said = tasks.iter().any(|t| {
                t["attempts"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|a| a["message"].as_str().is_some_and(|m| !m.is_empty()))
                })
            });
            assert!(said, "run {run} failed without a reason: {tasks:#?}");
        }
    }
    for run in &before {
        assert_eq!(
            states.get(run).map(String::as_str),
            Some("success"),
            "run {run}, committed before the fill, must keep its success"
        );
    }

    // The database file is intact.
    let db = rusqlite::Connection::open(home.path().join("gale.db")).expect("opening gale.db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("PRAGMA integrity_check");
    assert_eq!(check, "ok", "the database after a full disk");
    let kept: i64 = db
        .query_row(
            &format!(
                "SELECT count(*) FROM runs WHERE state = 'success' AND id IN ({})",
                before
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            [],
            |r| r.get(0),
        )
        .expect("counting runs");
    assert_eq!(kept, before.len() as i64);

    assert!(
        standalone.exited().is_none(),
        "gale standalone must still run"
    );
    let log = standalone.log();
    assert!(
        !log.contains("panicked"),
        "gale standalone panicked:\n{log}"
    );
}
