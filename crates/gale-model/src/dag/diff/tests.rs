//! Tests of the structural and the line diff of two DAG versions, and of
//! their masking.

use serde_json::json;

use super::*;
use crate::dag::parse;

const BASE: &str = r#"
id: etl
schedule: "0 2 * * *"
params: { region: eu, db_password: "pw-old-1234" }
alerts: { on_failure: [ops] }
tasks:
  extract:
    run: ./bin/extract
    env: { FOO: one, KEEP: same }
  load:
    needs: [extract]
    run: ./bin/load
  notify:
    needs: [load]
    http: { url: "http://127.0.0.1:9000/hook", method: POST }
"#;

fn dag(src: &str) -> Dag {
    parse("dags/etl.yaml", "etl", src).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The diff from [`BASE`] to `BASE` with each `(from, to)` replaced.
fn diff_base(edits: &[(&str, &str)]) -> DagDiff {
    let mut new = BASE.to_owned();
    for (from, to) in edits {
        assert!(new.contains(from), "{from:?} is in the base");
        new = new.replacen(from, to, 1);
    }
    diff(&dag(BASE), &dag(&new))
}

fn change(field: &str, before: Option<Value>, after: Option<Value>) -> Change {
    Change {
        field: field.into(),
        before,
        after,
    }
}

#[test]
fn identical_dags_give_an_empty_diff() {
    let d = diff_base(&[]);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(d, diff(&dag(BASE), &dag(BASE)));
}

#[test]
fn a_changed_schedule_is_one_field() {
    let d = diff_base(&[("0 2 * * *", "0 3 * * *")]);
    assert_eq!(
        d.fields,
        vec![change(
            "schedule",
            Some(json!("0 2 * * *")),
            Some(json!("0 3 * * *"))
        )]
    );
    assert!(d.tasks_added.is_empty() && d.tasks_removed.is_empty() && d.tasks_changed.is_empty());
    assert!(!d.is_empty());
}

#[test]
fn a_changed_param_and_alert_are_each_their_own_path() {
    let d = diff_base(&[
        ("region: eu", "region: us, extra: 1"),
        ("on_failure: [ops]", "on_failure: [ops, oncall]"),
    ]);
    assert_eq!(
        d.fields,
        vec![
            change(
                "alerts.on_failure",
                Some(json!(["ops"])),
                Some(json!(["ops", "oncall"]))
            ),
            change("params.extra", None, Some(json!(1))),
            change("params.region", Some(json!("eu")), Some(json!("us"))),
        ]
    );
}

#[test]
fn a_removed_schedule_is_none_after_and_a_new_field_none_before() {
    let d = diff_base(&[("schedule: \"0 2 * * *\"\n", "description: nightly\n")]);
    assert_eq!(
        d.fields,
        vec![
            change("description", Some(Value::Null), Some(json!("nightly"))),
            change("schedule", Some(json!("0 2 * * *")), Some(Value::Null)),
        ]
    );
}

#[test]
fn added_and_removed_tasks_are_listed_in_file_order() {
    let d = diff_base(&[
        (
            "  extract:\n    run: ./bin/extract\n    env: { FOO: one, KEEP: same }\n",
            "  fetch:\n    run: ./bin/fetch\n",
        ),
        ("    needs: [extract]\n", "    needs: [fetch]\n"),
        ("  notify:", "  audit:\n    run: ./bin/audit\n  notify:"),
    ]);
    assert_eq!(d.tasks_added, ["fetch", "audit"]);
    assert_eq!(d.tasks_removed, ["extract"]);
    assert_eq!(
        d.tasks_changed,
        vec![TaskChange {
            task_id: "load".into(),
            changes: vec![change(
                "needs",
                Some(json!(["extract"])),
                Some(json!(["fetch"]))
            )],
        }]
    );
    assert!(d.fields.is_empty(), "{:?}", d.fields);
}

#[test]
fn a_changed_run_reads_as_run() {
    let d = diff_base(&[("./bin/load", "./bin/load --full")]);
    assert_eq!(
        d.tasks_changed,
        vec![TaskChange {
            task_id: "load".into(),
            changes: vec![change(
                "run",
                Some(json!("./bin/load")),
                Some(json!("./bin/load --full"))
            )],
        }]
    );
}

#[test]
fn env_entries_and_other_task_fields_are_each_their_own_path() {
    let d = diff_base(&[(
        "env: { FOO: one, KEEP: same }",
        "env: { FOO: two, KEEP: same, BAR: new }\n    retries: 3",
    )]);
    assert_eq!(d.tasks_changed.len(), 1);
    assert_eq!(d.tasks_changed[0].task_id, "extract");
    assert_eq!(
        d.tasks_changed[0].changes,
        vec![
            change("env.BAR", None, Some(json!("new"))),
            change("env.FOO", Some(json!("one")), Some(json!("two"))),
            change("retries", Some(json!(0)), Some(json!(3))),
        ]
    );
}

#[test]
fn http_fields_read_as_http_paths() {
    let d = diff_base(&[(
        "method: POST",
        "method: PUT, headers: { Accept: text/plain }",
    )]);
    assert_eq!(
        d.tasks_changed[0].changes,
        vec![
            change("http.headers.Accept", None, Some(json!("text/plain"))),
            change("http.method", Some(json!("POST")), Some(json!("PUT"))),
        ]
    );
}

#[test]
fn a_task_turned_from_shell_to_http_shows_run_removed_and_http_added() {
    let d = diff_base(&[(
        "    run: ./bin/load\n",
        "    http: { url: \"http://h/load\" }\n",
    )]);
    let changes = &d.tasks_changed[0].changes;
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "http.expect_status",
            "http.headers",
            "http.method",
            "http.url",
            "run"
        ]
    );
    assert!(
        changes
            .iter()
            .all(|c| c.field == "run" || c.before.is_none())
    );
    assert_eq!(changes[2].after, Some(json!("GET")));
    assert_eq!(changes[3].after, Some(json!("http://h/load")));
    assert_eq!(
        changes[4],
        change("run", Some(json!("./bin/load")), None),
        "and nothing under `kind`"
    );
}

#[test]
fn the_diff_serializes_with_its_field_names() {
    let d = diff_base(&[("0 2 * * *", "0 3 * * *")]);
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({
            "fields": [{"field": "schedule", "before": "0 2 * * *", "after": "0 3 * * *"}],
            "tasks_added": [],
            "tasks_removed": [],
            "tasks_changed": [],
        })
    );
}

const SECRETS: &str = r#"
id: s
params:
  token: { secret: true, default: "tok-old-5678" }
  db_password: "pw-old-1234"
  region: eu
tasks:
  call:
    run: 'curl -H "X-Key: tok-old-5678" http://h/'
    env: { API_TOKEN: "env-old-9012", PLAIN: visible-old }
"#;

#[test]
fn secrets_are_masked_by_value_and_by_key() {
    let old = dag(SECRETS);
    let new = dag(&SECRETS
        .replace("tok-old-5678", "tok-new-8765")
        .replace("pw-old-1234", "pw-new-4321")
        .replace("env-old-9012", "env-new-2109")
        .replace("visible-old", "visible-new")
        .replace("region: eu", "region: us"));
    let d = diff(&old, &new);
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        text.contains("tok-old-5678") && text.contains("pw-new-4321"),
        "{text}"
    );

    let masked = d
        .masked(&Masker::of_source(&old))
        .masked(&Masker::of_source(&new));
    let text = serde_json::to_string(&masked).unwrap();
    for secret in ["tok-", "pw-", "env-"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let stars = Some(json!("***"));
    assert_eq!(
        masked.fields,
        vec![
            change("params.db_password", stars.clone(), stars.clone()),
            change("params.region", Some(json!("eu")), Some(json!("us"))),
            // Declared secret: masked by value, the key looks plain.
            change("params.token", stars.clone(), stars.clone()),
        ]
    );
    assert_eq!(
        masked.tasks_changed[0].changes,
        vec![
            change("env.API_TOKEN", stars.clone(), stars.clone()),
            change(
                "env.PLAIN",
                Some(json!("visible-old")),
                Some(json!("visible-new"))
            ),
            change(
                "run",
                Some(json!("curl -H \"X-Key: ***\" http://h/")),
                Some(json!("curl -H \"X-Key: ***\" http://h/"))
            ),
        ]
    );
}

#[test]
fn masking_hides_secret_keys_inside_values_and_not_the_secret_flag() {
    let old =
        dag("params: { conn: { host: h1, password: pw-old-1234 } }\ntasks:\n  a: { run: x }\n");
    let new = dag(
        "params:\n  conn: { host: h2, password: pw-new-4321 }\n  pin: { secret: true, type: string }\ntasks:\n  a: { run: x }\n",
    );
    let masked = diff(&old, &new).masked(&Masker::default());
    let fields: Vec<&str> = masked.fields.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "param_specs.pin.required",
            "param_specs.pin.secret",
            "param_specs.pin.types",
            "params.conn.host",
            "params.conn.password",
        ],
        "{masked:#?}"
    );
    assert_eq!(
        masked.fields[1].after,
        Some(json!(true)),
        "a flag, no secret"
    );
    assert_eq!(masked.fields[4].after, Some(json!("***")));

    let whole = DagDiff {
        fields: vec![change(
            "params.conn",
            None,
            Some(json!({"host": "h", "api_key": "k-1234", "list": ["k-1234"]})),
        )],
        tasks_added: vec![],
        tasks_removed: vec![],
        tasks_changed: vec![],
    };
    let masker = Masker::of_conf(&serde_json::from_value(json!({"api_key": "k-1234"})).unwrap());
    assert_eq!(
        whole.masked(&masker).fields[0].after,
        Some(json!({"host": "h", "api_key": "***", "list": ["***"]}))
    );
}

/// Asserts that `lines` is a diff from `old` to `new`: its old side is every
/// old line in order and numbered, its new side every new line.
fn check_script(old: &str, new: &str, lines: &[Line]) {
    let old_side: Vec<(usize, &str)> = lines
        .iter()
        .filter(|l| l.kind != LineKind::Added)
        .map(|l| (l.old_line.expect("old number"), l.text.as_str()))
        .collect();
    let new_side: Vec<(usize, &str)> = lines
        .iter()
        .filter(|l| l.kind != LineKind::Removed)
        .map(|l| (l.new_line.expect("new number"), l.text.as_str()))
        .collect();
    let numbered = |s: &str| -> Vec<(usize, String)> {
        s.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_owned()))
            .collect()
    };
    let as_owned = |v: Vec<(usize, &str)>| -> Vec<(usize, String)> {
        v.into_iter().map(|(i, t)| (i, t.to_owned())).collect()
    };
    assert_eq!(as_owned(old_side), numbered(old));
    assert_eq!(as_owned(new_side), numbered(new));
    for l in lines {
        assert_eq!(l.old_line.is_some(), l.kind != LineKind::Added);
        assert_eq!(l.new_line.is_some(), l.kind != LineKind::Removed);
    }
}

fn line(kind: LineKind, old_line: Option<usize>, new_line: Option<usize>, text: &str) -> Line {
    Line {
        kind,
        old_line,
        new_line,
        text: text.into(),
    }
}

#[test]
fn a_small_edit_gives_its_lines_with_numbers() {
    let old = "tasks:\n  a:\n    run: x\n  b:\n    run: y\n";
    let new = "tasks:\n  a:\n    run: z\n  b:\n    run: y\n    retries: 2\n";
    let got = lines(old, new);
    check_script(old, new, &got);
    use LineKind::*;
    assert_eq!(
        got,
        vec![
            line(Same, Some(1), Some(1), "tasks:"),
            line(Same, Some(2), Some(2), "  a:"),
            line(Removed, Some(3), None, "    run: x"),
            line(Added, None, Some(3), "    run: z"),
            line(Same, Some(4), Some(4), "  b:"),
            line(Same, Some(5), Some(5), "    run: y"),
            line(Added, None, Some(6), "    retries: 2"),
        ]
    );
    assert_eq!(
        serde_json::to_value(&got[3]).unwrap(),
        json!({"kind": "added", "old_line": null, "new_line": 3, "text": "    run: z"})
    );
    assert!(lines(old, old).iter().all(|l| l.kind == Same));
    assert_eq!(lines("", "").len(), 0);
    assert_eq!(
        lines("", "a\nb\n")
            .iter()
            .filter(|l| l.kind == Added)
            .count(),
        2
    );
    assert_eq!(
        lines("a\r\nb\r\n", "a\nb\n")
            .iter()
            .filter(|l| l.kind == Same)
            .count(),
        2
    );
}

#[test]
fn hunks_keep_context_lines_around_changes() {
    let old: String = (1..=12).map(|i| format!("l{i}\n")).collect();
    let new = old
        .replace("l3\n", "L3\n")
        .replace("l5\n", "")
        .replace("l11\n", "L11\n");
    let all = lines(&old, &new);
    check_script(&old, &new, &all);
    let got = hunks(&all, 1);
    let show = |h: &[Line]| -> Vec<String> {
        h.iter()
            .map(|l| {
                let mark = match l.kind {
                    LineKind::Same => ' ',
                    LineKind::Added => '+',
                    LineKind::Removed => '-',
                };
                format!("{mark}{}", l.text)
            })
            .collect()
    };
    assert_eq!(got.len(), 2, "{got:#?}");
    // l3 and l5 are two lines apart: within twice the context, one hunk.
    assert_eq!(show(&got[0]), [" l2", "-l3", "+L3", " l4", "-l5", " l6"]);
    assert_eq!(show(&got[1]), [" l10", "-l11", "+L11", " l12"]);
    assert_eq!(got[1][0].old_line, Some(10));
    assert_eq!(got[1][0].new_line, Some(9));

    assert_eq!(hunks(&all, 0).len(), 3);
    assert_eq!(hunks(&all, 100).len(), 1);
    assert_eq!(hunks(&all, 100)[0].len(), all.len());
    assert!(hunks(&lines(&old, &old), 3).is_empty());
}

#[test]
fn masked_lines_hide_secret_values() {
    let old = dag(SECRETS);
    let new_src = SECRETS.replace("env-old-9012", "env-new-2109");
    let new = dag(&new_src);
    let got = mask_lines(
        mask_lines(lines(SECRETS, &new_src), &Masker::of_source(&old)),
        &Masker::of_source(&new),
    );
    let text: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
    assert!(
        !text
            .iter()
            .any(|t| t.contains("tok-") || t.contains("env-")),
        "{text:#?}"
    );
    let changed: Vec<&Line> = got.iter().filter(|l| l.kind != LineKind::Same).collect();
    assert_eq!(changed.len(), 2);
    assert_eq!(
        changed[0].text,
        r#"    env: { API_TOKEN: "***", PLAIN: visible-old }"#
    );
    assert_eq!(changed[0].old_line, Some(10));
}

/// A tiny deterministic generator (xorshift), so the cases are the same on
/// every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The length of the longest common subsequence of two line lists, by the
/// plain table.
fn lcs(a: &[&str], b: &[&str]) -> usize {
    let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i][j] = if a[i] == b[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    table[0][0]
}

#[test]
fn the_line_diff_keeps_a_longest_common_subsequence() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..500 {
        let mut text = |len: u64| -> String {
            (0..rng.below(len))
                .map(|_| format!("{}\n", ["a", "b", "c", "d"][rng.below(4) as usize]))
                .collect()
        };
        let (old, new) = (text(25), text(25));
        let got = lines(&old, &new);
        check_script(&old, &new, &got);
        let same = got.iter().filter(|l| l.kind == LineKind::Same).count();
        let a: Vec<&str> = old.lines().collect();
        let b: Vec<&str> = new.lines().collect();
        assert_eq!(same, lcs(&a, &b), "case {case}: {old:?} -> {new:?}");
    }
}

#[test]
fn a_large_file_with_one_change_gives_that_change() {
    let mut old = String::from("id: big\ntasks:\n  a:\n    run: |\n");
    for i in 0..20_000 {
        old.push_str(&format!("      echo line {i}\n"));
    }
    assert!(old.len() < crate::dag::MAX_FILE_BYTES);
    let new = old.replace("echo line 10000\n", "echo changed\n");
    let got = lines(&old, &new);
    check_script(&old, &new, &got);
    let changed: Vec<&Line> = got.iter().filter(|l| l.kind != LineKind::Same).collect();
    assert_eq!(
        changed,
        [
            &line(
                LineKind::Removed,
                Some(10_005),
                None,
                "      echo line 10000"
            ),
            &line(LineKind::Added, None, Some(10_005), "      echo changed"),
        ]
    );
    let d = diff(&dag(&old), &dag(&new));
    assert_eq!(d.tasks_changed.len(), 1);
    assert_eq!(d.tasks_changed[0].changes.len(), 1);
    assert_eq!(d.tasks_changed[0].changes[0].field, "run");
}

#[test]
fn many_scattered_changes_in_a_large_file_are_each_found() {
    let old: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let mut new = String::new();
    for i in 0..20_000 {
        match i % 1000 {
            0 => new.push_str(&format!("changed {i}\n")),
            500 => {}
            _ => new.push_str(&format!("line {i}\n")),
        }
    }
    let got = lines(&old, &new);
    check_script(&old, &new, &got);
    let count = |kind| got.iter().filter(|l| l.kind == kind).count();
    assert_eq!(count(LineKind::Removed), 40);
    assert_eq!(count(LineKind::Added), 20);
}

#[test]
fn files_with_nothing_in_common_stay_within_the_bound() {
    let old: String = (0..10_000).map(|i| format!("old {i}\n")).collect();
    let new: String = (0..10_000).map(|i| format!("new {i}\n")).collect();
    let got = lines(&old, &new);
    check_script(&old, &new, &got);
    assert!(got[..10_000].iter().all(|l| l.kind == LineKind::Removed));
    assert!(got[10_000..].iter().all(|l| l.kind == LineKind::Added));

    // Past the bound the diff is longer than the shortest, but still a diff
    // from one file to the other.
    let mut rng = Rng(7);
    let text = |rng: &mut Rng| -> String {
        (0..12_000)
            .map(|_| format!("{}\n", rng.below(50)))
            .collect()
    };
    let (old, new) = (text(&mut rng), text(&mut rng));
    check_script(&old, &new, &lines(&old, &new));
}
