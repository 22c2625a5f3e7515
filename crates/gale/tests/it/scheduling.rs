//! Which runs exist and when they may run: max_active_runs, catchup, backfill,
//! pause.

use jiff::Timestamp;
use serde_json::Value;

use crate::harness::{Home, utc_date, wait_until};

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a timestamp: {v}: {e}"))
}

fn count(runs: &[Value], field: &str, value: &str) -> usize {
    runs.iter().filter(|r| r[field] == value).count()
}

#[test]
fn max_active_runs_one_at_a_time() {
    let home = Home::new();
    home.write_dag(
        "serial.yaml",
        "max_active_runs: 1\ntasks:\n  nap:\n    run: sleep 2\n",
    );
    let _gale = home.start();
    home.wait_dag("serial");
    for d in ["2025-01-01", "2025-01-02", "2025-01-03"] {
        home.trigger("serial", &["--logical-date", d]);
    }

    let runs = wait_until("the three runs to succeed", || {
        let runs = home.runs("serial");
        let running = count(&runs, "state", "running");
        assert!(running <= 1, "{running} runs running at once: {runs:#?}");
        (runs.len() == 3 && count(&runs, "state", "success") == 3).then_some(runs)
    });

    // The recorded times agree: each run started after the previous one ended.
    let mut spans: Vec<(Timestamp, Timestamp)> = runs
        .iter()
        .map(|r| (ts(&r["started_at"]), ts(&r["ended_at"])))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "runs overlapped: {runs:#?}");
    }
}

#[test]
fn catchup_creates_one_run_per_missed_slot() {
    let home = Home::new();
    let start = utc_date(-5);
    let dag = |catchup: bool| {
        format!(
            "schedule: \"@daily\"\nstart_date: {start}\ncatchup: {catchup}\ntasks:\n  day:\n    run: echo \"day {{{{ ds }}}}\"\n"
        )
    };
    home.write_dag("with_catchup.yaml", &dag(true));
    home.write_dag("without_catchup.yaml", &dag(false));
    let today = utc_date(0);
    let _gale = home.start();

    let runs = wait_until("five successful catchup runs", || {
        let runs = home.runs("with_catchup");
        (runs.len() >= 5 && count(&runs, "state", "success") == runs.len()).then_some(runs)
    });
    wait_until("the run of the DAG without catchup to succeed", || {
        let runs = home.runs("without_catchup");
        (!runs.is_empty() && count(&runs, "state", "success") == runs.len()).then_some(())
    });
    if utc_date(0) != today {
        // Midnight passed during the test: one more slot became due.
        eprintln!("the UTC date changed during the test; not counting runs");
        return;
    }

    // By now the scheduler has made many passes over both DAGs.
    let runs_after = home.runs("with_catchup");
    assert_eq!(runs_after.len(), 5, "one run per slot: {runs_after:#?}");
    assert_eq!(runs.len(), 5);
    let mut dates: Vec<Timestamp> = runs_after.iter().map(|r| ts(&r["logical_date"])).collect();
    dates.sort();
    let first: Timestamp = format!("{start}T00:00:00Z").parse().expect("a timestamp");
    for (i, d) in dates.iter().enumerate() {
        let want = first + jiff::SignedDuration::from_hours(24 * i as i64);
        assert_eq!(*d, want, "slot {i}: {runs_after:#?}");
    }
    for r in &runs_after {
        assert_eq!(r["run_type"], "scheduled");
        assert_eq!(r["state"], "success");
    }
    let oldest = runs_after
        .iter()
        .find(|r| ts(&r["logical_date"]) == first)
        .expect("the first slot's run");
    let log = home.logs(oldest["run_id"].as_i64().expect("id"), "day", None);
    assert!(log.contains(&format!("day {start}")), "{log}");

    let without = home.runs("without_catchup");
    assert_eq!(
        without.len(),
        1,
        "without catchup only the latest slot runs: {without:#?}"
    );
    assert_eq!(without[0]["run_type"], "scheduled");
    let yesterday: Timestamp = format!("{}T00:00:00Z", utc_date(-1))
        .parse()
        .expect("a timestamp");
    assert_eq!(ts(&without[0]["logical_date"]), yesterday);
}

#[test]
fn backfill_creates_one_run_per_slot_once() {
    let home = Home::new();
    // Without catch-up the scheduler makes one run, of the latest slot: the
    // backfill's runs are the others.
    home.write_dag(
        "bf.yaml",
        "schedule: \"@daily\"\nstart_date: 2025-01-01\ncatchup: false\ntasks:\n  work:\n    run: echo \"backfilling {{ ds }}\"\n",
    );
    let _gale = home.start();
    home.wait_dag("bf");
    let backfills = || -> Vec<serde_json::Value> {
        home.runs("bf")
            .into_iter()
            .filter(|r| r["run_type"] == "backfill")
            .collect()
    };

    let out = home.gale(&[
        "backfill",
        "bf",
        "--from",
        "2025-03-01",
        "--to",
        "2025-03-03",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("3 run(s) created"), "{out}");
    let runs = backfills();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    let mut dates: Vec<String> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["run_type"], "backfill", "{r:#}");
            assert_eq!(r["state"], "success", "backfill waited for its runs: {r:#}");
            r["logical_date"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    dates.sort();
    assert_eq!(
        dates,
        vec![
            "2025-03-01T00:00:00Z",
            "2025-03-02T00:00:00Z",
            "2025-03-03T00:00:00Z"
        ]
    );
    let run_id = runs[0]["run_id"].as_i64().expect("id");
    let ds = &runs[0]["logical_date"].as_str().expect("date")[..10];
    assert!(
        home.logs(run_id, "work", None)
            .contains(&format!("backfilling {ds}"))
    );

    let again = home.gale(&[
        "backfill",
        "bf",
        "--from",
        "2025-03-01",
        "--to",
        "2025-03-03",
    ]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again
            .stderr
            .contains("0 run(s) created, 3 slot(s) already had a run"),
        "{again}"
    );
    let runs = backfills();
    assert_eq!(runs.len(), 3, "no new runs: {runs:#?}");
    assert_eq!(count(&runs, "run_type", "scheduled"), 0);
}

#[test]
fn paused_dag_runs_only_after_unpause() {
    let home = Home::new();
    home.write_dag("held.yaml", "tasks:\n  t:\n    run: echo held\n");
    home.write_dag("free.yaml", "tasks:\n  t:\n    run: echo free\n");
    let _gale = home.start();
    home.wait_dag("held");
    home.wait_dag("free");

    home.ok(&["dags", "pause", "held"]);
    let list = home.json(&["dags", "list"]);
    let held = list["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .find(|d| d["dag_id"] == "held")
        .expect("held is listed")
        .clone();
    assert_eq!(held["paused"], true, "{held:#}");

    let out = home.ok(&["dags", "trigger", "held"]);
    assert!(
        out.stderr.contains("paused"),
        "trigger says the DAG is paused: {out}"
    );
    let run_id: i64 = out.stdout.trim().parse().expect("run id");

    // The scheduler is working: another DAG's run goes through meanwhile.
    let free = home.gale(&["dags", "trigger", "free", "--wait"]);
    assert_eq!(free.code, 0, "{free}");
    // (That it keeps waiting is the scheduler core's test
    // `a_paused_dag_skips_its_slots_and_resumes_at_the_latest` and the store's
    // `promote_runs_skips_paused_dags`.)
    let v = home.run_json(run_id);
    assert_eq!(
        v["run"]["state"], "queued",
        "a paused DAG's run waits: {v:#}"
    );

    home.ok(&["dags", "unpause", "held"]);
    let v = home.wait_run(run_id);
    assert_eq!(v["run"]["state"], "success", "{v:#}");
}
