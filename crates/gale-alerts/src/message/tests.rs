//! Tests of rendering: one event, a digest's counts and lines, Slack's
//! escapes, and the bounds.

use jiff::Timestamp;

use super::*;
use crate::event::EventKind;

fn failed(i: usize, run: i64) -> Event {
    let mut e = Event::new(
        format!("k{i}"),
        EventKind::TaskFailed,
        Timestamp::UNIX_EPOCH,
    );
    e.dag_id = Some("etl".into());
    e.run_id = Some(run);
    e.run_key = Some(format!("manual__{run}"));
    e.task_id = Some(format!("load_{i}"));
    e.try_number = Some(2);
    e.state = Some("failed".into());
    e.message = Some("exit code 1".into());
    e.link = Some(format!(
        "https://gale.example.com/runs/{run}/tasks/load_{i}?try=2"
    ));
    e
}

#[test]
fn one_event_has_its_facts_in_the_subject_and_body() {
    let mut e = failed(1, 42);
    e.log_tail = vec!["starting".into(), "boom <b>".into()];
    let b = Batch::one(e);
    assert_eq!(
        subject("[gale]", &b),
        "[gale] task.failed: etl / load_1 (try 2) in manual__42"
    );
    let body = text(&b);
    for want in [
        "State:    failed",
        "Run:      manual__42 (id 42)",
        "Task:     load_1, try 2",
        "https://gale.example.com/runs/42/tasks/load_1?try=2",
        "Last 2 log lines:\n  starting\n  boom <b>",
        "Event key: k1",
    ] {
        assert!(body.contains(want), "{want:?} not in:\n{body}");
    }
    let s = slack(&b);
    assert!(s.starts_with("*task.failed*: etl / load_1"), "{s}");
    assert!(
        s.contains("(<https://gale.example.com/runs/42/tasks/load_1?try=2|open>)"),
        "{s}"
    );
    assert!(s.contains("boom &lt;b&gt;"), "Slack's escapes: {s}");
}

#[test]
fn a_digest_counts_by_kind_and_run_and_lists_the_first_twenty() {
    let mut events: Vec<Event> = (0..25).map(|i| failed(i, 1 + (i % 2) as i64)).collect();
    let mut lost = Event::new("c1", EventKind::ClusterNodeSilent, Timestamp::UNIX_EPOCH);
    lost.message = Some("node w1 has not been seen for 60s".into());
    events.push(lost);
    let b = Batch::of(events).unwrap();
    assert_eq!(
        subject("[gale]", &b),
        "[gale] 26 alerts: 25 task.failed, 1 cluster.node_silent"
    );
    let body = text(&b);
    for want in [
        "26 alerts: 25 task.failed, 1 cluster.node_silent\n",
        "By run:\n  etl manual__1: 13\n  etl manual__2: 12\n  (no run): 1",
        "  task.failed etl manual__1 load_0 try 2: failed  https://gale.example.com/runs/1/tasks/load_0?try=2",
        "… and 6 more",
    ] {
        assert!(body.contains(want), "{want:?} not in:\n{body}");
    }
    assert_eq!(body.matches("  task.failed etl").count(), 20);
    // The counts by kind are said once.
    assert_eq!(body.matches("25 task.failed").count(), 1, "{body}");
    assert!(!body.contains("By kind"), "{body}");
    let s = slack(&b);
    assert!(
        s.starts_with("*26 alerts*: 25 task.failed, 1 cluster.node_silent\n"),
        "{s}"
    );
    assert_eq!(s.matches("25 task.failed").count(), 1, "{s}");
    assert!(!s.contains("task.failed: 25"), "{s}");
    assert!(s.contains("• <https://gale.example.com/runs/2/tasks/load_1?try=2|task.failed etl manual__2 load_1 try 2: failed>"), "{s}");
    assert!(s.contains("… and 6 more"));
}

#[test]
fn everything_is_bounded() {
    let mut e = failed(1, 1);
    e.task_id = Some("t".repeat(500));
    e.message = Some("m\n".repeat(100_000));
    let b = Batch::one(e);
    let subj = subject("[gale]", &b);
    assert_eq!(subj.chars().count(), SUBJECT_MAX);
    assert!(subj.ends_with('…'));
    let body = text(&b);
    assert!(body.len() <= BODY_MAX && body.ends_with("… (cut)\n"));
    assert!(slack(&b).len() <= SLACK_MAX);
    assert_eq!(bound("é".repeat(10), 14), format!("{}\n… (cut)\n", "é"));
}

#[test]
fn a_message_that_is_the_headline_is_not_said_twice() {
    let mut e = Event::new("test:x:1", EventKind::Test, Timestamp::UNIX_EPOCH);
    e.message = Some("A test of the alert channel x (slack): if you read this, it works.".into());
    let b = Batch::one(e.clone());
    let s = slack(&b);
    assert_eq!(s.matches("if you read this").count(), 1, "{s}");
    let body = text(&b);
    assert_eq!(body.matches("if you read this").count(), 1, "{body}");
    assert_eq!(
        subject("[gale]", &b),
        "[gale] test: A test of the alert channel x (slack): if you read this, it works."
    );
    // A message of several lines keeps the lines after the first.
    e.message = Some("node w1 is silent\nlast seen 60s ago".into());
    let s = slack(&Batch::one(e));
    assert!(
        s.starts_with("*test*: node w1 is silent\nlast seen 60s ago\n"),
        "{s}"
    );
    assert_eq!(s.matches("node w1 is silent").count(), 1, "{s}");
}

#[test]
fn a_failed_run_names_its_failed_tasks_and_shows_no_try() {
    let mut e = Event::new(
        "run.failed:7:1",
        EventKind::RunFailed,
        Timestamp::UNIX_EPOCH,
    );
    e.dag_id = Some("alert_fail".into());
    e.run_id = Some(7);
    e.run_key = Some("manual__2026-01-01T00:00:00Z".into());
    e.state = Some("failed".into());
    // The try of the first failed task, whose log is shown.
    e.try_number = Some(2);
    e.log_tail = vec!["boom".into()];
    let tasks: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"task_id": format!("t{i}"), "ti_id": i, "try_number": 2}))
        .collect();
    e.details.insert("failed_tasks".into(), tasks.into());
    e.details.insert("failed_count".into(), 15.into());
    e.details.insert("other".into(), "kept".into());
    let b = Batch::one(e);
    assert_eq!(
        subject("[gale]", &b),
        "[gale] run.failed: alert_fail in manual__2026-01-01T00:00:00Z"
    );
    let body = text(&b);
    for want in [
        "Failed tasks: t0, t1, t2, t3, t4, t5, t6, t7, t8, t9 (+5 more)\n",
        "Last 1 log lines of t0, try 2:\n  boom",
        "Details:\n  other: kept",
    ] {
        assert!(body.contains(want), "{want:?} not in:\n{body}");
    }
    assert!(!body.contains("try 2)"), "{body}");
    assert!(!body.contains("failed_tasks"), "{body}");
    let s = slack(&b);
    assert!(
        s.starts_with("*run.failed*: alert_fail in manual__2026-01-01T00:00:00Z\n"),
        "{s}"
    );
    assert!(s.contains("Failed tasks: t0, t1"), "{s}");
    let mut many = vec![b.events()[0].clone(), failed(1, 1)];
    many[1].key = "other".into();
    let digest = text(&Batch::of(many).unwrap());
    assert!(
        digest.contains("  run.failed alert_fail manual__2026-01-01T00:00:00Z: failed"),
        "{digest}"
    );
}
