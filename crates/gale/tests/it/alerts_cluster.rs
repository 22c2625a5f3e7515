//! Alerts on a PostgreSQL cluster: with three schedulers SIGKILLed at random
//! while runs end (and alerts are written and sent), every run's alert still
//! arrives, and a duplicate only ever carries the same key; with every
//! scheduler stopped a live worker sends the "no live scheduler" alert once,
//! and tasks on a queue no worker serves alert once.
//!
//! Without PostgreSQL binaries these tests print SKIPPED and pass, except
//! under `CI=true`, where they fail (see `gale_pgtest`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gale_pgtest::server_or_skip;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::alerts::hook_events;
use crate::harness::{Home, wait_until};
use crate::pg::{Pg, Role};
use crate::receivers::Hook;

const LEASE: &str = "3s";

/// A key file in `home` (owner-only), for every process and the CLI.
fn key_file(home: &Home) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let key = home.ok(&["secrets", "new-key"]).stdout.trim().to_owned();
    let path = home.path().join("alerts.key");
    std::fs::write(&path, format!("{key}\n")).expect("writing the key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// Adds a webhook channel to `hook` through the CLI.
fn add_hook(cli: &Pg, home: &Home, key: &Path, hook: &Hook, defaults: &[&str]) {
    let file = home.file("hook.json");
    let spec = json!({"name": "hook", "kind": "webhook", "url": hook.url, "defaults": defaults});
    std::fs::write(&file, spec.to_string()).expect("write the channel");
    let key = key.display().to_string();
    cli.ok(&[
        "--secret-key-file",
        &key,
        "alerts",
        "channels",
        "add",
        "--from-json",
        &file,
    ]);
}

fn seed() -> u64 {
    std::env::var("GALE_IT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("a clock after 1970")
                .as_nanos() as u64
        })
}

#[test]
fn no_alert_is_lost_while_schedulers_are_killed() {
    let Some(server) = server_or_skip("no_alert_is_lost_while_schedulers_are_killed") else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let home = Home::new();
    let key = key_file(&home);
    let key_env = key.display().to_string();
    let hook = Hook::start();
    // Each send is in flight for a while, so kills land between a send and
    // its record too.
    hook.delay(Duration::from_millis(300));
    home.write_dag(
        "flip.yaml",
        "params: { n: 0 }\nalerts: { on_failure: [hook], on_success: [hook] }\n\
         tasks:\n  t: { run: 'sleep 0.2; exit $(( {{ params.n }} % 2 ))' }\n",
    );
    let cli = Pg::new(&home, &url);
    add_hook(&cli, &home, &key, &hook, &[]);
    let dags = home.dags().display().to_string();
    // A deliverer killed mid-send leaves its claim for 2 × 5 s.
    let env = [
        ("GALE_SECRET_KEY_FILE", key_env.as_str()),
        ("GALE_ALERT_WINDOW", "1s"),
        ("GALE_ALERT_SEND_TIMEOUT", "5s"),
    ];
    let homes: Vec<Home> = (0..4).map(|_| Home::new()).collect();
    let mut schedulers: Vec<Role> = (0..3)
        .map(|i| {
            Pg::new(&homes[i], &url).start_with_env(
                &format!("scheduler-{i}"),
                &[
                    "scheduler",
                    "--dags-folder",
                    &dags,
                    "--attempt-lease",
                    LEASE,
                ],
                &env,
            )
        })
        .collect();
    let _worker = Pg::new(&homes[3], &url).start_with_env(
        "worker",
        &["worker", "--concurrency", "8", "--attempt-lease", LEASE],
        &env,
    );
    cli.wait_dag("flip");

    let stop = AtomicBool::new(false);
    let kills = Mutex::new(0usize);
    let runs: Vec<i64> = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let mut x = seed() | 1;
            eprintln!("ALERT CHAOS: seed {x}");
            while !stop.load(Ordering::SeqCst) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(Duration::from_millis(800 + x % 1500));
                let victim = &mut schedulers[(x % 3) as usize];
                victim.crash();
                *kills.lock().expect("kills") += 1;
                std::thread::sleep(Duration::from_millis(x % 400));
                victim.restart();
            }
        });
        // The receiver refuses for a while at first: the retries too must
        // survive the kills.
        hook.answer(503);
        let runs: Vec<i64> = (0..60)
            .map(|n| {
                if n == 15 {
                    hook.answer(200);
                }
                let conf = format!("{{\"n\": {n}}}");
                let id = cli.trigger("flip", &["--conf", &conf]);
                std::thread::sleep(Duration::from_millis(150));
                id
            })
            .collect();
        wait_until("every run to end", || {
            let listed = cli.json(&["runs", "list", "--dag", "flip", "--limit", "100"]);
            let ended = listed
                .as_array()?
                .iter()
                .filter(|r| r["state"] == "success" || r["state"] == "failed")
                .count();
            (ended == runs.len()).then_some(())
        });
        // A few more kills while the last alerts go out.
        std::thread::sleep(Duration::from_secs(4));
        stop.store(true, Ordering::SeqCst);
        killer.join().expect("the killer panicked");
        runs
    });
    let kills = *kills.lock().expect("kills");
    assert!(kills >= 5, "only {kills} kills");

    // Every run's end arrives, as the run ended; all of one run's copies
    // carry one key.
    let states: BTreeMap<i64, String> = runs
        .iter()
        .map(|&id| {
            let run = cli.json(&["runs", "show", &id.to_string()]);
            (id, run["run"]["state"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let events = wait_until("every run's alert to arrive", || {
        let events = hook_events(&hook.seen());
        let seen: BTreeSet<i64> = events
            .iter()
            .filter_map(|(_, e)| e["run_id"].as_i64())
            .collect();
        runs.iter().all(|r| seen.contains(r)).then_some(events)
    });
    let mut keys: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut copies: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, e) in &events {
        let run = e["run_id"].as_i64().expect("a run id");
        let want = format!("run.{}", states[&run]);
        assert_eq!(
            e["kind"],
            want.as_str(),
            "run {run} ended {}: {e}",
            states[&run]
        );
        keys.entry(run)
            .or_default()
            .insert(e["key"].as_str().unwrap_or("").to_owned());
        *copies.entry(run).or_default() += 1;
    }
    for (run, k) in &keys {
        assert_eq!(
            k.len(),
            1,
            "run {run}'s alert came with different keys: {k:?}"
        );
    }
    let duplicated = copies.values().filter(|&&n| n > 1).count();
    eprintln!(
        "ALERT CHAOS: {kills} kills, {} runs, {} events received, {duplicated} runs' alert more than once",
        runs.len(),
        events.len()
    );
    // Nothing left undelivered, nothing given up.
    let key_arg = key.display().to_string();
    wait_until("every delivery to be recorded as sent", || {
        let rows = cli.json(&[
            "--secret-key-file",
            &key_arg,
            "alerts",
            "deliveries",
            "--limit",
            "1000",
        ]);
        let rows = rows.as_array()?.clone();
        (rows.len() == runs.len() && rows.iter().all(|d| d["state"] == "sent")).then_some(())
    });
}

#[test]
fn a_live_worker_tells_of_no_scheduler_and_of_a_queue_nobody_serves_once() {
    let Some(server) =
        server_or_skip("a_live_worker_tells_of_no_scheduler_and_of_a_queue_nobody_serves_once")
    else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let home = Home::new();
    let key = key_file(&home);
    let key_env = key.display().to_string();
    let hook = Hook::start();
    home.write_dag(
        "gpu_job.yaml",
        "tasks:\n  train: { run: 'true', queue: gpu }\n",
    );
    let cli = Pg::new(&home, &url);
    add_hook(&cli, &home, &key, &hook, &["cluster"]);
    let dags = home.dags().display().to_string();
    let env = [
        ("GALE_SECRET_KEY_FILE", key_env.as_str()),
        ("GALE_ALERT_WINDOW", "1s"),
        ("GALE_ALERT_NO_SCHEDULER_AFTER", "4s"),
        ("GALE_ALERT_UNSERVED_QUEUE_AFTER", "3s"),
    ];
    let (h1, h2) = (Home::new(), Home::new());
    let mut scheduler = Pg::new(&h1, &url).start_with_env(
        "scheduler",
        &[
            "scheduler",
            "--dags-folder",
            &dags,
            "--attempt-lease",
            LEASE,
        ],
        &env,
    );
    let _worker = Pg::new(&h2, &url).start_with_env(
        "worker",
        &["worker", "--queues", "default", "--attempt-lease", LEASE],
        &env,
    );
    cli.wait_dag("gpu_job");
    let of_kind = |kind: &str| -> Vec<Value> {
        hook_events(&hook.seen())
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e["kind"] == kind)
            .collect()
    };

    cli.trigger("gpu_job", &[]);
    let queue = wait_until("the unserved queue alert", || {
        of_kind("cluster.queue_unserved").into_iter().next()
    });
    assert_eq!(queue["details"]["queue"], "gpu", "{queue}");
    assert!(
        queue["message"].as_str().unwrap_or("").contains("gpu"),
        "{queue}"
    );

    let stopped = Instant::now();
    scheduler.signal(Signal::SIGTERM);
    scheduler.wait_exit(Duration::from_secs(30));
    let alert = wait_until("the no-scheduler alert", || {
        of_kind("cluster.no_scheduler").into_iter().next()
    });
    assert!(
        stopped.elapsed() >= Duration::from_secs(4),
        "before its time"
    );
    assert!(
        alert["message"]
            .as_str()
            .unwrap_or("")
            .contains("no live scheduler"),
        "{alert}"
    );
    // Several looks later, still once each; a stopped scheduler is not silent.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        of_kind("cluster.no_scheduler").len(),
        1,
        "{:#?}",
        hook.seen()
    );
    assert_eq!(
        of_kind("cluster.queue_unserved").len(),
        1,
        "{:#?}",
        hook.seen()
    );
    assert!(
        of_kind("cluster.node_silent").is_empty(),
        "{:#?}",
        hook.seen()
    );
}
