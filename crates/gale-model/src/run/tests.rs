//! Tests of new runs: their keys, intervals and first task instances.

use super::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn one_key_format_for_every_run_type() {
    let at = ts("2026-01-01T02:00:00Z");
    assert_eq!(
        run_key(RunType::Scheduled, at),
        "scheduled__2026-01-01T02:00:00Z"
    );
    assert_eq!(
        run_key(RunType::Backfill, at),
        "backfill__2026-01-01T02:00:00Z"
    );
    assert_eq!(run_key(RunType::Manual, at), "manual__2026-01-01T02:00:00Z");
    // A fraction of a second only when there is one: triggers a moment apart differ.
    assert_eq!(
        run_key(RunType::Manual, ts("2026-01-01T02:00:00.250Z")),
        "manual__2026-01-01T02:00:00.25Z"
    );
    assert_eq!(
        run_key(RunType::Manual, ts("2026-01-01T02:00:00.000001Z")),
        "manual__2026-01-01T02:00:00.000001Z"
    );
}

#[test]
fn constructors_fill_interval_conf_and_tasks() {
    let dag = crate::dag::parse(
        "t.yaml",
        "t",
        "tasks:\n  a:\n    run: x\n    retries: 2\n    pool: p\n  b:\n    run: x\n    needs: [a]\n",
    )
    .unwrap();
    let id = DagId("t".into());
    let interval = Interval {
        start: ts("2026-01-01T00:00:00Z"),
        end: ts("2026-01-02T00:00:00Z"),
    };
    let run = NewRun::scheduled(&id, "h1", &dag, interval);
    assert_eq!(run.run_type, RunType::Scheduled);
    assert_eq!(run.version_hash, "h1");
    assert_eq!(
        (run.interval_start, run.interval_end),
        (interval.start, interval.end)
    );
    assert_eq!(run.logical_date, interval.start);
    let tasks: Vec<_> = run
        .tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.max_tries, t.pool.as_deref()))
        .collect();
    assert_eq!(tasks, [("a", 3, Some("p")), ("b", 1, None)]);

    let backfill = NewRun::backfill(&id, "h1", &dag, interval);
    assert_eq!(backfill.run_key, "backfill__2026-01-01T00:00:00Z");

    let mut conf = serde_json::Map::new();
    conf.insert("k".into(), serde_json::json!(1));
    let at = ts("2026-03-01T10:00:00Z");
    let manual = NewRun::manual(&id, "h2", &dag, at, conf.clone());
    assert_eq!(manual.run_type, RunType::Manual);
    assert_eq!((manual.interval_start, manual.interval_end), (at, at));
    assert_eq!(manual.conf, conf);
    assert_eq!(manual.run_key, "manual__2026-03-01T10:00:00Z");
}
