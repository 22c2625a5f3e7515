//! DAG files: errors with their position, validation, and the example DAGs.

use std::path::Path;

use crate::harness::{Home, wait_until};

/// The `line:column` right after `file:` in `text`, for every error line about `file`.
fn positions(text: &str, file: &str) -> Vec<(u64, u64)> {
    let prefix = format!("{file}:");
    text.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.parse().ok()?;
            let column = parts.next()?.parse().ok()?;
            Some((line, column))
        })
        .collect()
}

#[test]
fn broken_dag_files_are_reported_and_others_still_run() {
    let home = Home::new();
    home.write_dag(
        "typo.yaml",
        "tasks:\n  a:\n    run: echo hi\n    retriez: 3\n",
    );
    home.write_dag(
        "cycle.yaml",
        "tasks:\n  a:\n    needs: [b]\n    run: echo a\n  b:\n    needs: [a]\n    run: echo b\n",
    );
    home.write_dag("good.yaml", "tasks:\n  hello:\n    run: echo hello\n");
    let typo = home.dags().join("typo.yaml").display().to_string();
    let cycle = home.dags().join("cycle.yaml").display().to_string();

    let check = |text: &str| {
        assert_eq!(
            positions(text, &typo),
            vec![(4, 5)],
            "the typo's position: {text}"
        );
        assert!(text.contains("unknown field `retriez`"), "{text}");
        let at = positions(text, &cycle);
        assert_eq!(at.len(), 1, "one error for the cycle: {text}");
        assert!(
            (2..=7).contains(&at[0].0) && at[0].1 > 0,
            "the cycle error points into the tasks: {text}"
        );
        assert!(text.contains("dependency cycle"), "{text}");
    };

    // Without a database.
    let dags = home.dags().display().to_string();
    let validate = home.gale(&["dags", "validate", &dags]);
    assert_eq!(validate.code, 1, "{validate}");
    check(&validate.stdout);
    assert!(validate.stdout.contains("2 with errors"), "{validate}");
    let one = home.gale(&["dags", "validate", &typo]);
    assert_eq!(one.code, 1, "{one}");
    let good = home.dags().join("good.yaml").display().to_string();
    home.ok(&["dags", "validate", &good]);

    // As the DAG processor stores them.
    let _gale = home.start();
    home.wait_dag("good");
    let errors = wait_until("both broken files to be reported", || {
        let out = home.gale(&["dags", "errors"]);
        (positions(&out.stdout, &typo).len() + positions(&out.stdout, &cycle).len() == 2)
            .then_some(out)
    });
    assert_eq!(errors.code, 1, "broken files fail `dags errors`: {errors}");
    check(&errors.stdout);
    let list = home.ok(&["dags", "list"]);
    assert!(
        list.stdout.contains("2 DAG file(s) failed to load"),
        "{list}"
    );
    check(&list.stdout);
    let json = home.json(&["dags", "list"]);
    let ids: Vec<&str> = json["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .filter_map(|d| d["dag_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["good"], "broken files define no DAG");
    let errs = json["import_errors"].as_array().expect("import_errors");
    assert_eq!(errs.len(), 2, "{json:#}");
    // As the API writes them: `file:line:column: message`.
    for e in errs {
        let file = e["file"].as_str().expect("a file");
        let first = e["errors"][0].as_str().expect("an error line");
        let place: Vec<&str> = first
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("{e:#}"))
            .splitn(3, ':')
            .collect();
        assert!(
            place[0].parse::<u32>().is_ok_and(|l| l > 0)
                && place[1].parse::<u32>().is_ok_and(|c| c > 0),
            "{e:#}"
        );
    }

    let run = home.gale(&["dags", "trigger", "good", "--wait"]);
    assert_eq!(run.code, 0, "the good DAG runs: {run}");
    assert_eq!(home.gale(&["dags", "trigger", "typo"]).code, 4);
}

#[test]
fn example_dags_validate_install_and_run() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let home = Home::new();
    let out = home.ok(&["dags", "validate", &examples.display().to_string()]);
    assert!(
        out.stdout.contains("3 file(s) checked, 0 with errors"),
        "{out}"
    );

    // A new home: standalone creates $GALE_HOME/dags with the examples.
    assert!(!home.dags().exists());
    let _gale = home.start_with(&["--attempt-lease", "3s"]);
    for id in ["example_hello", "example_etl", "example_rules"] {
        home.wait_dag(id);
    }
    let mut installed: Vec<String> = std::fs::read_dir(home.dags())
        .expect("the DAG folder exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    assert_eq!(
        installed,
        vec![
            "example_etl.yaml",
            "example_hello.yaml",
            "example_rules.yaml"
        ]
    );
    for name in &installed {
        let shipped = std::fs::read_to_string(examples.join(name)).expect("shipped example");
        let written = std::fs::read_to_string(home.dags().join(name)).expect("installed example");
        assert_eq!(shipped, written, "{name} is installed as shipped");
    }

    let out = home.gale(&[
        "dags",
        "trigger",
        "example_rules",
        "--wait",
        "--output",
        "json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let v = out.json();
    let got = crate::harness::states(v["tasks"].as_array().expect("tasks"));
    assert_eq!(got["flaky"], "success");
    assert_eq!(got["maybe"], "skipped");
    assert_eq!(got["after_maybe"], "skipped");
    assert_eq!(got["cleanup"], "success");
    let flaky = crate::harness::task(v["tasks"].as_array().expect("tasks"), "flaky");
    assert_eq!(flaky["try_number"], 3);

    let hello = home.gale(&[
        "dags",
        "trigger",
        "example_hello",
        "--conf",
        r#"{"name": "tester"}"#,
        "--wait",
    ]);
    assert_eq!(hello.code, 0, "{hello}");
}

#[test]
fn dags_list_pages_and_filters_in_the_store() {
    let home = Home::new();
    for i in 0..5 {
        let tags = if i % 2 == 0 { "[even]" } else { "[odd]" };
        home.write_dag(
            &format!("page_{i}.yaml"),
            &format!("tags: {tags}\ntasks:\n  a:\n    run: 'true'\n"),
        );
    }
    let _gale = home.start();
    home.wait_dag("page_4");
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["dags"]
            .as_array()
            .expect("dags")
            .iter()
            .filter_map(|d| d["dag_id"].as_str().map(str::to_owned))
            .collect()
    };
    let first = home.ok(&["dags", "list", "--limit", "2"]);
    assert!(
        first.stdout.contains("page_1") && !first.stdout.contains("page_2"),
        "{first}"
    );
    assert!(
        first
            .stderr
            .contains("showing DAGs 1-2 of 5: --offset 2 for the next ones"),
        "{first}"
    );
    let last = home.json(&["dags", "list", "--offset", "4"]);
    assert_eq!(
        (ids(&last), &last["total"]),
        (vec!["page_4".to_owned()], &serde_json::json!(5))
    );
    let even = home.json(&["dags", "list", "--tag", "even"]);
    assert_eq!(ids(&even), ["page_0", "page_2", "page_4"]);
    let found = home.json(&["dags", "list", "--search", "GE_3"]);
    assert_eq!(ids(&found), ["page_3"], "any case");
    let bad = home.gale(&["dags", "list", "--limit", "0"]);
    assert_eq!(bad.code, 2, "{bad}");
}
