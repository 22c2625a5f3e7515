//! Tests of command templating.

use super::*;

fn ctx() -> Context {
    let mut params = serde_json::Map::new();
    params.insert("region".into(), "eu west".into());
    let mut tasks = BTreeMap::new();
    tasks.insert(
        "extract".into(),
        TaskOutputs {
            outputs: BTreeMap::from([("path".to_string(), "/tmp/a b".to_string())]),
        },
    );
    Context {
        dag_id: "d".into(),
        task_id: "t".into(),
        run_id: "7".into(),
        run_type: "manual".into(),
        try_number: 1,
        ds: "2026-01-01".into(),
        ds_nodash: "20260101".into(),
        ts: "2026-01-01T00:00:00Z".into(),
        logical_date: "2026-01-01T00:00:00Z".into(),
        data_interval_start: "2026-01-01T00:00:00Z".into(),
        data_interval_end: "2026-01-02T00:00:00Z".into(),
        params,
        conf: serde_json::Map::new(),
        tasks,
    }
}

#[test]
fn renders_variables_params_and_outputs() {
    let out = render(
        "load {{ ds }} {{ params.region | shell_quote }} {{ tasks.extract.outputs.path | shell_quote }}",
        &ctx(),
    )
    .unwrap();
    assert_eq!(out, "load 2026-01-01 'eu west' '/tmp/a b'");
}

#[test]
fn undefined_is_an_error_naming_the_template_line() {
    let e = render("echo\n{{ params.nope }}", &ctx()).unwrap_err();
    assert!(e.contains("undefined"), "{e}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn syntax_errors_are_reported() {
    let e = render("{{ ds ", &ctx()).unwrap_err();
    assert!(e.starts_with("template error"), "{e}");
}

#[test]
fn endless_loops_run_out_of_fuel() {
    let e = render(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        &ctx(),
    )
    .unwrap_err();
    assert!(e.contains("fuel"), "{e}");
}

#[test]
fn shell_quote_escapes_single_quotes() {
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("plain-word"), "plain-word");
}
