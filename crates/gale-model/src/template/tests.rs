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
        run_id: "manual__2026-01-01T00:00:00+00:00".into(),
        run_number: 7,
        run_type: "manual".into(),
        try_number: 1,
        ds: "2026-01-01".into(),
        ds_nodash: "20260101".into(),
        ts: "2026-01-01T00:00:00+00:00".into(),
        logical_date: "2026-01-01T00:00:00+00:00".into(),
        data_interval_start: "2026-01-01T00:00:00+00:00".into(),
        data_interval_end: "2026-01-02T00:00:00+00:00".into(),
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
    assert!(e.contains("ds_add, ds_format and datetime"), "{e}");
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

/// The dates are dates: each expected text is what Airflow 3 (pendulum 3,
/// Python's `datetime` for `macros.datetime`) renders for a daily run of
/// 2026-03-01 00:00 UTC.
#[test]
fn dates_render_and_compute_as_airflow_3_renders_them() {
    let mut c = ctx();
    c.run_id = format!(
        "scheduled__{}",
        isoformat("2026-03-01T00:00:00Z".parse().unwrap())
    );
    c.run_type = "scheduled".into();
    c.ds = "2026-03-01".into();
    c.ds_nodash = "20260301".into();
    c.ts = "2026-03-01T00:00:00+00:00".into();
    c.logical_date = c.ts.clone();
    c.data_interval_start = c.ts.clone();
    c.data_interval_end = "2026-03-02T00:00:00+00:00".into();
    c.prev.insert(
        "prev_start_date_success".into(),
        "2026-02-28T00:00:05Z".into(),
    );
    c.prev.insert(
        "prev_data_interval_end_success".into(),
        serde_json::Value::Null,
    );
    let r = |t: &str| render(t, &c, Escape::None).unwrap_or_else(|e| panic!("{t}: {e}"));
    for (template, airflow) in [
        ("{{ run_id }}", "scheduled__2026-03-01T00:00:00+00:00"),
        (
            "{{ dag_run.run_id }}",
            "scheduled__2026-03-01T00:00:00+00:00",
        ),
        ("{{ dag_run.id }}", "7"),
        ("{{ ts }}", "2026-03-01T00:00:00+00:00"),
        ("{{ ts_nodash_with_tz }}", "20260301T000000+0000"),
        ("{{ task_instance_key_str }}", "d__t__20260301"),
        ("{{ logical_date }}", "2026-03-01 00:00:00+00:00"),
        ("{{ dag_run.logical_date }}", "2026-03-01 00:00:00+00:00"),
        ("{{ data_interval_end }}", "2026-03-02 00:00:00+00:00"),
        (
            "{{ data_interval_end.isoformat() }}",
            "2026-03-02T00:00:00+00:00",
        ),
        (
            "{{ logical_date.strftime('%Y%m%dT%H%M%S%z') }}",
            "20260301T000000+0000",
        ),
        (
            "{{ logical_date.strftime('%d %B %Y %H:%M:%S.%f') }}",
            "01 March 2026 00:00:00.000000",
        ),
        (
            "{{ logical_date.strftime('%A %j %d/%m/%y %I %p') }}",
            "Sunday 060 01/03/26 12 AM",
        ),
        (
            "{{ logical_date.add(days=1) }}",
            "2026-03-02 00:00:00+00:00",
        ),
        (
            "{{ logical_date.subtract(hours=2) }}",
            "2026-02-28 22:00:00+00:00",
        ),
        (
            "{{ logical_date.add(months=1, days=2) }}",
            "2026-04-03 00:00:00+00:00",
        ),
        (
            "{{ logical_date.in_timezone('Europe/Berlin') }}",
            "2026-03-01 01:00:00+01:00",
        ),
        (
            "{{ logical_date.in_timezone('Europe/Berlin').strftime('%H:%M %Z %z') }}",
            "01:00 CET +0100",
        ),
        (
            "{{ logical_date.add(months=4).in_timezone('Europe/Berlin') }}",
            "2026-07-01 02:00:00+02:00",
        ),
        ("{{ logical_date.year }}-{{ logical_date.month }}", "2026-3"),
        (
            "{{ logical_date.day_of_week }} {{ logical_date.day_of_year }}",
            "6 60",
        ),
        ("{{ logical_date.int_timestamp }}", "1772323200"),
        ("{{ logical_date.date() }}", "2026-03-01"),
        ("{{ logical_date.add(weeks=1) > logical_date }}", "True"),
        ("{{ prev_start_date_success }}", "2026-02-28 00:00:05+00:00"),
        ("{{ prev_data_interval_end_success }}", "None"),
        ("{{ macros.datetime(2026, 1, 31) }}", "2026-01-31 00:00:00"),
        (
            "{{ macros.datetime(2026, 1, 31).isoformat() }}",
            "2026-01-31T00:00:00",
        ),
        (
            "{{ macros.datetime.strptime('31/01/2026 10:30', '%d/%m/%Y %H:%M') }}",
            "2026-01-31 10:30:00",
        ),
        (
            "{{ macros.datetime.fromisoformat('2026-01-31T10:30:00+02:00') }}",
            "2026-01-31 10:30:00+02:00",
        ),
        (
            "{{ macros.datetime.fromisoformat('2026-01-31T10:30:00Z') }}",
            "2026-01-31 10:30:00+00:00",
        ),
        (
            "{{ logical_date.strftime('100%% at %H, %%f') }}",
            "100% at 00, %f",
        ),
        (
            "{{ macros.datetime.strptime('2026-03-01 5%f', '%Y-%m-%d 5%%f') }}",
            "2026-03-01 00:00:00",
        ),
    ] {
        assert_eq!(r(template), airflow, "{template}");
    }
    // A manual run's logical date has microseconds: `ts` and
    // `ts_nodash_with_tz` keep them, `ts_nodash` does not, as in Airflow.
    let mut m = c.clone();
    m.ts = "2026-03-01T10:22:33.123456+00:00".into();
    m.logical_date = m.ts.clone();
    let rm = |t: &str| render(t, &m, Escape::None).unwrap_or_else(|e| panic!("{t}: {e}"));
    assert_eq!(rm("{{ ts_nodash_with_tz }}"), "20260301T102233.123456+0000");
    assert_eq!(rm("{{ ts_nodash }}"), "20260301T102233");
    assert_eq!(rm("{{ logical_date }}"), "2026-03-01 10:22:33.123456+00:00");
    assert_eq!(
        isoformat("2026-03-01T10:22:33.123456Z".parse().unwrap()),
        "2026-03-01T10:22:33.123456+00:00"
    );
    // A JSON body gets a date as its text, in a string.
    let body = render(r#"{"at": "{{ logical_date }}"}"#, &c, Escape::Json).unwrap();
    assert_eq!(body, r#"{"at": "2026-03-01 00:00:00+00:00"}"#);
    // A shell command gets it as one word.
    let cmd = render("echo {{ logical_date }}", &c, Escape::Shell).unwrap();
    assert_eq!(cmd, "echo '2026-03-01 00:00:00+00:00'");
    // Mistakes say what is wrong and what there is.
    for (template, says) in [
        (
            "{{ logical_date.add(fortnights=1) }}",
            "takes years, months",
        ),
        (
            "{{ logical_date.in_timezone('Mars/Olympus') }}",
            "not a known time zone",
        ),
        ("{{ logical_date.format('YYYY') }}", "it has strftime"),
        ("{{ macros.datetime(2026, 13, 1) }}", "macros.datetime"),
        ("{{ macros.datetime.now() }}", "read no clock"),
        (
            "{{ macros.datetime.strptime('x', '%Y') }}",
            "is not a %Y date",
        ),
    ] {
        let e = render(template, &c, Escape::None).expect_err(template);
        assert!(e.contains(says), "{template}: {e}");
    }
}
