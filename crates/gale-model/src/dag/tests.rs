//! Tests of DAG file parsing and validation.

use super::*;

fn ok(src: &str) -> Dag {
    parse("dags/x.yaml", "x", src).unwrap_or_else(|e| panic!("{e:?}"))
}

fn errs(src: &str) -> Vec<DagError> {
    parse("dags/x.yaml", "x", src).expect_err("expected errors")
}

/// Asserts that one of `errors` says `what` at `line`.
fn error_at(errors: &[DagError], what: &str, line: u64) {
    assert!(
        errors
            .iter()
            .any(|x| x.message.contains(what) && x.line == line),
        "{what} at line {line}: {:#?}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
}

#[test]
fn full_example_parses_with_defaults_applied() {
    let dag = ok(r#"
id: etl_daily
description: nightly load
schedule: "0 2 * * *"
timezone: Europe/Berlin
start_date: 2026-01-01
catchup: false
params: { region: eu }
defaults: { retries: 2, retry_delay: 30s, timeout: 10m }
tags: [etl]
tasks:
  extract:
    run: ./bin/extract --date {{ ds }}
  load:
    needs: [extract]
    run: ./bin/load
    retries: 0
  notify:
    needs: [load]
    trigger_rule: all_done
    http: { url: "http://127.0.0.1:9000/hook", method: POST }
"#);
    assert_eq!(dag.id.as_str(), "etl_daily");
    assert_eq!(dag.tasks.len(), 3);
    assert_eq!(dag.tasks[0].retries, 2);
    assert_eq!(dag.tasks[1].retries, 0);
    assert_eq!(dag.tasks[0].timeout.unwrap().as_millis(), 600_000);
    assert_eq!(dag.tasks[2].trigger_rule, TriggerRule::AllDone);
    assert!(matches!(&dag.tasks[2].kind, TaskKind::Http(h) if h.method == "POST"));
    assert_eq!(dag.start_date.unwrap().to_string(), "2025-12-31T23:00:00Z");
    assert_eq!(dag.params["region"], "eu");
    assert_eq!(dag.leaves(), HashSet::from(["notify"]));
}

#[test]
fn id_defaults_to_file_stem() {
    let dag = ok("tasks:\n  a:\n    run: 'true'\n");
    assert_eq!(dag.id.as_str(), "x");
    assert_eq!(dag.max_active_runs, 1);
    assert_eq!(dag.timezone, "UTC");
}

#[test]
fn unknown_field_names_line_and_column() {
    let e = errs("tasks:\n  a:\n    run: 'true'\n    retires: 3\n");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].column), (4, 5), "{e:?}");
    assert!(e[0].message.contains("retires"), "{}", e[0].message);
    assert!(
        e[0].to_string().starts_with("dags/x.yaml:4:5: "),
        "{}",
        e[0]
    );
}

#[test]
fn wrong_type_is_reported_at_its_value() {
    let e = errs("tasks:\n  a:\n    run: 'true'\n    retries: many\n");
    assert_eq!(e[0].line, 4, "{e:?}");
}

#[test]
fn unknown_dependency_cycle_cron_and_zone_are_all_reported() {
    let e = errs(
        "schedule: '99 * * * *'\ntimezone: Moon/Base\ntasks:\n  a:\n    run: x\n    needs: [b]\n  b:\n    run: y\n    needs: [a]\n  c:\n    run: z\n    needs: [nope]\n",
    );
    let text: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("unknown time zone") && t.starts_with("dags/x.yaml:2:")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("unknown task \"nope\"") && t.starts_with("dags/x.yaml:12:")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("dependency cycle") && t.contains("a") && t.contains("b")),
        "{text:?}"
    );
}

#[test]
fn bad_cron_is_reported_at_the_schedule() {
    let e = errs("schedule: '61 * * * *'\ntasks:\n  a:\n    run: x\n");
    assert_eq!(e[0].line, 1);
    assert!(e[0].message.contains("invalid cron"), "{}", e[0].message);
}

#[test]
fn duplicate_task_ids_are_rejected() {
    let e = errs("tasks:\n  a:\n    run: x\n  a:\n    run: y\n");
    assert_eq!(e[0].line, 4, "{e:?}");
    assert!(
        e[0].message.contains("`a` is given twice"),
        "{}",
        e[0].message
    );
}

#[test]
fn syntax_error_has_position() {
    let e = errs("tasks:\n  a: [unclosed\n");
    assert!(e[0].line >= 2, "{e:?}");
}

#[test]
fn task_without_work_and_with_both_kinds() {
    let e = errs("tasks:\n  a:\n    retries: 1\n  b:\n    run: x\n    http: { url: 'http://x' }\n");
    assert_eq!(e.len(), 2);
    assert!(e[0].message.contains("nothing to do"));
    assert!(e[1].message.contains("both"));
}

#[test]
fn bad_duration_names_the_problem() {
    let e = errs("tasks:\n  a:\n    run: x\n    timeout: 10 minutes\n");
    assert!(e[0].message.contains("duration"), "{}", e[0].message);
    assert_eq!(e[0].line, 4);
}

#[test]
fn long_chains_do_not_overflow() {
    let mut src = String::from("tasks:\n  t0:\n    run: 'true'\n");
    for i in 1..3000 {
        src.push_str(&format!(
            "  t{i}:\n    run: 'true'\n    needs: [t{}]\n",
            i - 1
        ));
    }
    assert_eq!(ok(&src).tasks.len(), 3000);
}

#[test]
fn environment_names_and_values_are_checked() {
    let e = errs(
        "tasks:\n  a:\n    run: x\n    env: { JAVA-OPTS: x, 1ST: y, GOOD_1: z }\n  b:\n    run: x\n    env: { NUL: \"a\\0b\" }\n",
    );
    let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("\"1ST\" is not an environment variable name"));
    assert!(messages[1].contains("\"JAVA-OPTS\" is not an environment variable name"));
    assert!(messages[2].contains("NUL contains a NUL character"));
    assert_eq!(e[2].line, 6, "at task b");
    let d = ok("tasks:\n  a:\n    run: x\n    env: { _X: '1', Path2: '' }\n");
    assert_eq!(d.tasks[0].env.len(), 2);
}

#[test]
fn an_enormous_delay_or_timeout_is_refused_at_load_time() {
    let e = errs("tasks:\n  t:\n    run: x\n    retries: 3\n    retry_delay: 100000000d\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message
            .contains("task \"t\": `retry_delay: 100000000d` is longer than 366d"),
        "{}",
        e[0].message
    );
    assert_eq!(e[0].line, 3, "at the task: {e:?}");
    let e = errs("defaults:\n  timeout: 400d\ntasks:\n  a: { run: x }\n  b: { run: y }\n");
    assert_eq!(e.len(), 2, "every task the default reaches: {e:?}");
    assert!(
        e.iter().all(|e| e.message.contains("`timeout: 400d`")),
        "{e:?}"
    );
    let e = errs("tasks:\n  t: { run: x, max_retry_delay: 18446744073709551615s }\n");
    assert_eq!(e.len(), 1, "{e:?}");
    // A year is still allowed.
    ok("tasks:\n  t: { run: x, retry_delay: 366d, timeout: 30d }\n");
}

#[test]
fn values_that_parse_but_cannot_be_meant_are_refused_each_at_its_place() {
    let e = errs(
        r#"schedule: "0 0 30 2 *"
tasks:
  a: { run: "true", retries: 4000000000, retry_delay: 0s }
  b: { http: { url: "not a url", method: FETCH } }
  c: { run: "true", needs: [a, a] }
  d: { http: { url: "https://{{ params.host }}/x" } }
params: { host: example.com }
"#,
    );
    let text: Vec<String> = e.iter().map(ToString::to_string).collect();
    let has = |what: &str, line: u64| error_at(&e, what, line);
    has("never fires", 1);
    has("more than 100", 3);
    has("not an http:// or https:// URL", 4);
    has("not an HTTP method", 4);
    has("needs \"a\" twice", 5);
    assert_eq!(
        e.len(),
        5,
        "a templated URL is checked at run time: {text:#?}"
    );
    // At the bound, and with every method in any case, it loads.
    ok(
        "tasks:\n  a: { run: 'true', retries: 100 }\n  b: { http: { url: 'http://h/x', method: post } }\n",
    );
}

#[test]
fn parser_messages_are_in_plain_words_naming_the_field() {
    let one = |src: &str| errs(src).remove(0).message;
    assert_eq!(
        one("tasks:\n  a: { run: 'true', priority: 1.5 }\n"),
        "task \"a\": `priority` must be a whole number from -2147483648 to 2147483647, not the number 1.5 (e.g. `priority: 10`)"
    );
    assert_eq!(
        one("tasks:\n  a: { run: 'true', retries: -1 }\n"),
        "task \"a\": `retries` must be a whole number from 0 to 4294967295, not the number -1 (e.g. `retries: 3`)"
    );
    assert_eq!(
        one("tasks:\n  a: { http: { url: 'http://x', expect_status: [200, 70000] } }\n"),
        "task \"a\": http: `expect_status` must list HTTP status codes from 100 to 599, e.g. `expect_status: [200, 202]`; not the number 70000"
    );
    assert_eq!(
        one("tasks:\n  a: { run: [1, 2] }\n"),
        "task \"a\": `run` must be text, not a list, e.g. `run: echo hello`"
    );
    assert_eq!(
        one("tasks:\n  a: { run: 42 }\n"),
        "task \"a\": `run` must be text, not the number 42: quote it (`run: \"42\"`) if that is what you mean"
    );
    assert_eq!(
        one("tasks:\n  a: { run: 'true' }\n  a: { run: 'false' }\n"),
        "`tasks`: `a` is given twice in one mapping: keep one"
    );
    assert_eq!(
        one("tasks:\n  a: { run: 'true', retry_delay: 1.5 }\n"),
        "task \"a\": `retry_delay`: expected a duration such as 30s, 10m or 1h, or a number of seconds, not `1.5`"
    );
    assert_eq!(
        one("tasks:\n  a: { run: 'true', trigger_rule: all_good }\n"),
        "task \"a\": `trigger_rule`: unknown value `all_good`, expected one of `all_success`, `all_failed`, `all_done`, `one_success`, `one_failed`, `none_failed`, `none_failed_min_one_success`, `none_skipped`, `always`"
    );
    assert!(one("schedule: '99 * * * *'\ntasks:\n  a: { run: 'true' }\n").contains("minute 0-59"));
    // `run: true` is the command `true`; `y` a task id, not a boolean.
    let dag = ok(
        "tasks:\n  y: { run: true }\n  n: { run: echo 1.10, needs: y, env: {V: 1.10, B: yes} }\n",
    );
    assert_eq!(dag.tasks[0].id.as_str(), "y");
    assert_eq!(dag.tasks[0].kind, TaskKind::Shell { run: "true".into() });
    assert_eq!(dag.tasks[1].needs, vec![TaskId("y".into())]);
    assert_eq!(dag.tasks[1].env["V"], "1.10");
    assert_eq!(dag.tasks[1].env["B"], "yes");
}

#[test]
fn every_error_of_a_file_is_reported_each_at_its_place() {
    let e = errs(
        r#"id: every
max_active_runs: lots
catchup: sometimes
owner: me
tasks:
  a:
    run: 42
    priority: 1.5
  b:
    run: "echo {{ nope }}"
    retries: 1.2
    needs: [a, zzz]
    retires: 3
  c: echo hello
  d:
    http: { url: "http://x", methd: GET }
"#,
    );
    let text: Vec<String> = e.iter().map(ToString::to_string).collect();
    let has = |what: &str, line: u64| error_at(&e, what, line);
    has("`max_active_runs` must be a whole number", 2);
    has(
        "`catchup` must be true or false, not the text \"sometimes\"",
        3,
    );
    has("unknown field `owner`", 4);
    has("`run` must be text, not the number 42", 7);
    has("`priority` must be a whole number", 8);
    has("nope", 10);
    assert!(
        e.iter()
            .any(|e| e.message.contains("nope") && e.column == 10),
        "a template's error is at its field: {text:#?}"
    );
    has("`retries` must be a whole number", 11);
    has("unknown task \"zzz\"", 12);
    has("unknown field `retires`", 13);
    has("task \"c\": must be a mapping of its fields", 14);
    has("unknown field `methd`", 16);
    assert_eq!(e.len(), 11, "one error each, nothing more: {text:#?}");
    assert!(
        e.windows(2)
            .all(|p| (p[0].line, p[0].column) <= (p[1].line, p[1].column)),
        "in file order: {text:#?}"
    );
}

#[test]
fn templates_are_checked_when_the_file_loads() {
    let e = errs(
        r#"params: { region: eu }
tasks:
  a: { run: "echo {{ unclosed" }
  b: { run: "echo {{ tasks.zzz.outputs.x }} {{ params.nope }} {{ nosuch }}" }
  c: { needs: [a], run: "echo {{ tasks.a.outputs.x }}" }
  d: { needs: [c], run: "echo {{ tasks.a.outputs.x }} {{ tasks.b.outputs.y }}", env: { X: "{{ params.region }}" } }
  e: { http: { url: "https://h/{{ ds }}", headers: { A: "{{ bogus }}" } } }
"#,
    );
    let text: Vec<String> = e.iter().map(ToString::to_string).collect();
    let has = |what: &str, line: u64| error_at(&e, what, line);
    has("task \"a\": run: template error: syntax error", 3);
    has("`tasks.zzz` is not upstream", 4);
    has("`params.nope` is not a param", 4);
    has("`nosuch` is not defined", 4);
    has("task \"d\": run: template: `tasks.b` is not upstream", 6);
    has("http.headers.A: template: `bogus` is not defined", 7);
    assert_eq!(
        e.len(),
        6,
        "a and c are upstream of d; ds and region are known: {text:#?}"
    );
    // A DAG that takes any conf may name any param.
    ok(
        "allow_undeclared_conf: true\ntasks:\n  a: { run: 'echo {{ params.anything }} {{ range(3) | length }}' }\n",
    );
}
