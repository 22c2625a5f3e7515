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
        lookup: None,
        prev: Default::default(),
    }
}

#[test]
fn renders_variables_params_and_outputs() {
    let out = render(
        "load {{ ds }} {{ params.region | shell_quote }} {{ tasks.extract.outputs.path | shell_quote }}",
        &ctx(),
        Escape::Shell,
    )
    .unwrap();
    assert_eq!(
        out, "load 2026-01-01 'eu west' '/tmp/a b'",
        "shell_quote is not quoted twice"
    );
}

#[test]
fn undefined_is_an_error_naming_the_template_line() {
    let e = render("echo\n{{ params.nope }}", &ctx(), Escape::Shell).unwrap_err();
    assert!(e.contains("undefined"), "{e}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn syntax_errors_are_reported() {
    let e = render("{{ ds ", &ctx(), Escape::Shell).unwrap_err();
    assert!(e.starts_with("template error"), "{e}");
}

#[test]
fn endless_loops_run_out_of_fuel() {
    let e = render(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        &ctx(),
        Escape::Shell,
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

fn with_param(value: serde_json::Value) -> Context {
    let mut c = ctx();
    c.params.insert("v".into(), value);
    c
}

#[test]
fn every_value_is_one_shell_word_by_default() {
    for hostile in [
        "eu; touch /tmp/x",
        "$(touch /tmp/x)",
        "`touch /tmp/x`",
        "a\ntouch /tmp/x",
        "it's \"quoted\" \\ and $HOME",
        "",
    ] {
        let out = render(
            "echo {{ params.v }}",
            &with_param(hostile.into()),
            Escape::Shell,
        )
        .unwrap();
        assert_eq!(out, format!("echo {}", shell_quote(hostile)), "{hostile:?}");
        assert!(out.starts_with("echo '"), "{hostile:?} is quoted: {out}");
    }
    // Plain words stay as they were.
    let out = render(
        "run {{ ds }} {{ try_number }} {{ params.region }}",
        &ctx(),
        Escape::Shell,
    )
    .unwrap();
    assert_eq!(out, "run 2026-01-01 1 'eu west'");
}

#[test]
fn raw_and_safe_opt_out_and_literal_text_is_untouched() {
    let c = with_param("a | b".into());
    assert_eq!(
        render("x {{ params.v | raw }}", &c, Escape::Shell).unwrap(),
        "x a | b"
    );
    assert_eq!(
        render("x {{ params.v | safe }}", &c, Escape::Shell).unwrap(),
        "x a | b"
    );
    assert_eq!(
        render("{% if params.v %}a && b{% endif %}", &c, Escape::Shell).unwrap(),
        "a && b"
    );
}

#[test]
fn urls_get_percent_encoded_components() {
    let c = with_param("a b/../?x=1&admin=true#f".into());
    assert_eq!(
        render(
            "http://h/api/{{ params.v }}?q={{ params.v }}",
            &c,
            Escape::Url
        )
        .unwrap(),
        "http://h/api/a%20b%2F..%2F%3Fx%3D1%26admin%3Dtrue%23f?q=a%20b%2F..%2F%3Fx%3D1%26admin%3Dtrue%23f"
    );
    assert_eq!(
        render(
            "{{ params.v | raw }}",
            &with_param("http://x/".into()),
            Escape::Url
        )
        .unwrap(),
        "http://x/"
    );
}

#[test]
fn json_bodies_cannot_be_broken_out_of() {
    let c = with_param("eu\", \"admin\": true, \"x\": \"\n".into());
    let out = render("{\"region\": \"{{ params.v }}\"}", &c, Escape::Json).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(
        parsed,
        serde_json::json!({"region": "eu\", \"admin\": true, \"x\": \"\n"})
    );
    // Other values are written as JSON.
    let c = with_param(serde_json::json!({"a": [1, "two"]}));
    let out = render(
        "{\"v\": {{ params.v }}, \"n\": {{ try_number }}}",
        &c,
        Escape::Json,
    )
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(parsed, serde_json::json!({"v": {"a": [1, "two"]}, "n": 1}));
}

#[test]
fn airflow_names_render_as_airflow_renders_them() {
    let mut c = ctx();
    c.conf.insert("table".into(), "orders".into());
    c.try_number = 2;
    let r = |t: &str| render(t, &c, Escape::None).unwrap_or_else(|e| panic!("{t}: {e}"));
    // Airflow, logical date 2026-01-01T00:00:00+00:00, try 2.
    assert_eq!(r("{{ ts_nodash }}"), "20260101T000000");
    assert_eq!(r("{{ macros.ds_add(ds, 7) }}"), "2026-01-08");
    assert_eq!(r("{{ macros.ds_add(ds, -1) }}"), "2025-12-31");
    assert_eq!(
        r("{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}"),
        "01/01/2026"
    );
    assert_eq!(r("{{ dag_run.conf.table }}"), "orders");
    assert_eq!(r("{{ ti.try_number }}"), "2");
    let e = render("{{ macros.nope(ds) }}", &c, Escape::None).expect_err("unknown macro");
    assert!(e.contains("ds_add and ds_format"), "{e}");
    // The checker knows them too.
    let known = Known {
        params: None,
        upstream: Default::default(),
    };
    assert!(
        check(
            "{{ ts_nodash }} {{ dag_run.conf.x }} {{ ti.try_number }} {{ macros.ds_add(ds, 1) }}",
            &known
        )
        .is_empty()
    );
}
