//! Faults beyond a crash, on PostgreSQL with real `gale` processes:
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
//!   exits, a CLI command says what is wrong.
//!
//! Without PostgreSQL binaries these tests print SKIPPED and pass, except under
//! `CI=true`, where they fail (see `gale_pgtest`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gale_pgtest::server_or_skip;
use nix::sys::signal::Signal;

use crate::harness::{Home, wait_until};
use crate::pg::{Pg, sql};

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

    // The record: the first try lost on W1 and ended by its lease's end, before
    // the retry started on W2; W1 reported nothing for it.
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
    assert!(
        first_last <= ended + 0.05 && ended < retried,
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
    let mark = |id: &str, up: &str| {
        format!(
            "  {id}:\n    retries: 2\n    retry_delay: 1s\n{up}    run: |\n      \
             echo \"$GALE_RUN_ID {id} $GALE_TRY_NUMBER start $(date +%s.%N)\" >> {marks}\n      \
             sleep 0.3\n      \
             echo \"$GALE_RUN_ID {id} $GALE_TRY_NUMBER end $(date +%s.%N)\" >> {marks}\n"
        )
    };
    let mut yaml = String::from("tasks:\n");
    yaml.push_str(&mark("first", ""));
    for i in 0..4 {
        yaml.push_str(&mark(&format!("wide{i}"), "    needs: [first]\n"));
    }
    yaml.push_str(&mark("last", "    needs: [wide0, wide1, wide2, wide3]\n"));
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

    // By the tasks' own records: every try that started ended, and the tries
    // of one task never ran at once.
    let text = std::fs::read_to_string(&marks).expect("the tasks' marks");
    let mut spans: BTreeMap<(String, String), BTreeMap<u32, (f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [run, task, try_number, what, at] = w[..] else {
            panic!("a malformed mark: {line:?}");
        };
        let span = spans
            .entry((run.to_owned(), task.to_owned()))
            .or_default()
            .entry(try_number.parse().expect("a try number"))
            .or_insert((f64::NAN, f64::NAN));
        let at: f64 = at.parse().expect("a time");
        match what {
            "start" => span.0 = at,
            _ => span.1 = at,
        }
    }
    assert_eq!(spans.len(), runs.len() * 6, "every task ran");
    let mut retried = 0;
    for ((run, task), tries) in &spans {
        let mut prev_end = f64::MIN;
        for (n, (start, end)) in tries {
            // Nothing here kills a task: every try that started ran to its end.
            assert!(
                start.is_finite() && end.is_finite(),
                "try {n} of {task} in run {run} did not both start and end: {start} to {end}"
            );
            assert!(
                *start >= prev_end,
                "try {n} of {task} in run {run} started at {start}, before the previous try ended at {prev_end}"
            );
            prev_end = *end;
        }
        retried += tries.len() - 1;
    }
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

/// Another session holds `task_instances` in an ACCESS EXCLUSIVE lock for
/// 12 s: Gale's statements give up at `lock_timeout` and retry instead of
/// queueing behind it for good, nothing exits, and everything started then
/// ends once the lock is gone.
#[test]
fn a_table_locked_by_a_long_transaction_stalls_no_role_for_good() {
    let Some(server) =
        server_or_skip("a_table_locked_by_a_long_transaction_stalls_no_role_for_good")
    else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let home = Home::new();
    home.write_dag("locked_chain.yaml", CHAIN);
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut scheduler = pg.start_registered("scheduler", &["scheduler", "--dags-folder", &dags]);
    let mut worker = pg.start_registered("worker", &["worker", "--concurrency", "4"]);
    pg.wait_dag("locked_chain");
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
    let Some(server) =
        server_or_skip("postgres_out_of_connections_makes_processes_wait_not_give_up")
    else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let home = Home::new();
    home.write_dag("conn_chain.yaml", CHAIN);
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut scheduler = pg.start_registered("scheduler", &["scheduler", "--dags-folder", &dags]);
    let mut w1 = pg.start_registered("w1", &["worker", "--concurrency", "4"]);
    pg.wait_dag("conn_chain");
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
