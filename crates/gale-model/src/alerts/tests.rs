//! Tests of alert declarations and routing.

use super::*;

fn dag(src: &str) -> Dag {
    crate::dag::parse("t.yaml", "t", src).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn errs(src: &str) -> Vec<String> {
    crate::dag::parse("t.yaml", "t", src)
        .expect_err("the file must be refused")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn dag_task_and_defaults_levels_route_as_documented() {
    let d = dag(
        "alerts: {on_failure: [ops], on_retry: [chat], on_success: [log]}\n\
         deadline: 2h\n\
         defaults: {alerts: {on_failure: [pager]}}\n\
         tasks:\n  a: {run: x}\n  b: {run: y, alerts: {on_retry: [], on_recovery: [chat]}}\n",
    );
    let none = Defaults::default();
    let (a, b) = (&d.tasks[0], &d.tasks[1]);
    assert_eq!(
        task_channels(&d, a, TaskEvent::Failed, &none),
        names(&["pager"])
    );
    assert_eq!(
        task_channels(&d, a, TaskEvent::Retry, &none),
        names(&["chat"])
    );
    // A task's own `on_retry: []` silences the DAG's.
    assert!(task_channels(&d, b, TaskEvent::Retry, &none).is_empty());
    assert!(!task_may_alert(&d, b, TaskEvent::Retry));
    // Its own keys are merged over the defaults'.
    assert_eq!(
        task_channels(&d, b, TaskEvent::Failed, &none),
        names(&["pager"])
    );
    assert_eq!(
        task_channels(&d, b, TaskEvent::Recovered, &none),
        names(&["chat"])
    );
    assert!(task_channels(&d, a, TaskEvent::Success, &none).is_empty());
    assert_eq!(run_channels(&d, RunEvent::Failed, &none), names(&["ops"]));
    assert_eq!(run_channels(&d, RunEvent::Success, &none), names(&["log"]));
    // The deadline falls back to the failure channels.
    assert_eq!(run_channels(&d, RunEvent::Deadline, &none), names(&["ops"]));
    assert_eq!(d.deadline.expect("a deadline").after.as_millis(), 7_200_000);
    assert_eq!(
        d.deadline.expect("a deadline").from,
        DeadlineFrom::IntervalEnd
    );
}

#[test]
fn channel_defaults_apply_where_the_dag_names_nothing() {
    let mut defaults = Defaults::default();
    defaults.add("ops-mail", &names(&["on_failure", "on_retry", "cluster"]));
    defaults.add("hook", &names(&["on_recovery", "nonsense"]));
    let plain = dag("tasks:\n  a: {run: x}\n");
    let a = &plain.tasks[0];
    assert_eq!(
        run_channels(&plain, RunEvent::Failed, &defaults),
        names(&["ops-mail"])
    );
    assert_eq!(
        run_channels(&plain, RunEvent::Recovered, &defaults),
        names(&["hook"])
    );
    assert_eq!(
        run_channels(&plain, RunEvent::Deadline, &defaults),
        names(&["ops-mail"])
    );
    assert_eq!(
        task_channels(&plain, a, TaskEvent::Retry, &defaults),
        names(&["ops-mail"])
    );
    assert!(task_may_alert(&plain, a, TaskEvent::Retry));
    assert!(!task_may_alert(&plain, a, TaskEvent::Failed));
    assert_eq!(defaults.cluster, names(&["ops-mail"]));
    // A DAG that names its own (even none) is not given the defaults.
    let own = dag("alerts: {on_failure: []}\ntasks:\n  a: {run: x}\n");
    assert!(run_channels(&own, RunEvent::Failed, &defaults).is_empty());
    assert!(run_channels(&own, RunEvent::Deadline, &defaults).is_empty());
}

#[test]
fn bad_alert_declarations_are_refused_naming_what_is_wrong() {
    let e = errs("alerts: {on_falure: [x]}\ntasks:\n  a: {run: x}\n");
    assert!(e.iter().any(|m| m.contains("on_falure")), "{e:?}");
    let e = errs("alerts: {on_failure: [\"bad name\"]}\ntasks:\n  a: {run: x}\n");
    assert!(
        e.iter()
            .any(|m| m.contains("alerts.on_failure") && m.contains("bad name")),
        "{e:?}"
    );
    let e = errs("tasks:\n  a: {run: x, alerts: {on_deadline: [x]}}\n");
    assert!(
        e.iter()
            .any(|m| m.contains("task a") && m.contains("on_deadline")),
        "{e:?}"
    );
    let e = errs("deadline: 0s\ntasks:\n  a: {run: x}\n");
    assert!(e.iter().any(|m| m.contains("deadline")), "{e:?}");
    let e = errs("deadline: {after: 1h, from: lunch}\ntasks:\n  a: {run: x}\n");
    assert!(!e.is_empty());
    let long = dag("deadline: {after: 30m, from: queued}\ntasks:\n  a: {run: x}\n");
    assert_eq!(
        long.deadline.expect("a deadline").from,
        DeadlineFrom::Queued
    );
}

#[test]
fn a_dag_without_alerts_stores_as_before() {
    let d = dag("tasks:\n  a: {run: x}\n");
    let json = serde_json::to_string(&d).expect("serialize");
    assert!(
        !json.contains("alerts") && !json.contains("deadline"),
        "{json}"
    );
    let back: Dag = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, d);
}
