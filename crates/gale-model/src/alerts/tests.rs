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

/// The one error `src` gives, as `line:column: message`.
fn one_err(src: &str) -> String {
    let e = crate::dag::parse("t.yaml", "t", src).expect_err("the file must be refused");
    assert_eq!(e.len(), 1, "{e:?}");
    format!("{}:{}: {}", e[0].line, e[0].column, e[0].message)
}

#[test]
fn a_bad_deadline_says_what_is_wrong_and_what_is_allowed_at_its_position() {
    for (src, wrong) in [
        ("deadline: banana\n", "\"banana\""),
        (
            "deadline: {after: 1m, from: started}\n",
            "deadline.from: \"started\"",
        ),
        (
            "deadline: {after: 3h, from: queued, x: 1}\n",
            "`x` is not a field",
        ),
        ("deadline: {from: queued}\n", "`after` is missing"),
        (
            "deadline: {after: soon}\n",
            "deadline.after: invalid duration \"soon\"",
        ),
        ("deadline: [3h]\n", "a deadline"),
    ] {
        let e = one_err(&format!("id: t\n{src}tasks:\n  a: {{run: x}}\n"));
        assert!(e.starts_with("2:"), "the deadline's line: {e}");
        assert!(e.contains(wrong), "{wrong:?} not in {e}");
        assert!(!e.contains("untagged"), "{e}");
        if !wrong.contains("from") {
            assert!(e.contains("deadline: 3h") && e.contains("queued"), "{e}");
        } else {
            assert!(e.contains("interval_end") && e.contains("queued"), "{e}");
        }
    }
    let d = dag("deadline: 90\ntasks:\n  a: {run: x}\n");
    assert_eq!(d.deadline.expect("a deadline").after.as_millis(), 90_000);
    let d = dag("deadline: {after: 1h}\ntasks:\n  a: {run: x}\n");
    assert_eq!(
        d.deadline.expect("a deadline").from,
        DeadlineFrom::IntervalEnd
    );
}

#[test]
fn one_channel_alone_is_a_list_of_one() {
    let d = dag("alerts: {on_failure: ops-hook, on_success: [a, b]}\n\
         tasks:\n  a: {run: x, alerts: {on_retry: pager}}\n");
    assert_eq!(d.alerts.on_failure, Some(names(&["ops-hook"])));
    assert_eq!(d.alerts.on_success, Some(names(&["a", "b"])));
    assert_eq!(d.tasks[0].alerts.on_retry, Some(names(&["pager"])));
    // The name is checked as in a list.
    let e = errs("alerts: {on_failure: 'no spaces'}\ntasks:\n  a: {run: x}\n");
    assert!(e.iter().any(|m| m.contains("alerts.on_failure")), "{e:?}");
    // Stored and read back as a list.
    let json = serde_json::to_string(&d).expect("serialize");
    let back: Dag = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back.alerts, d.alerts);
    let e = one_err("alerts: {on_failure: {x: 1}}\ntasks:\n  a: {run: x}\n");
    assert!(e.contains("a list of alert channels"), "{e}");
}
