//! Running one DAG: exit codes of `trigger --wait`, retries, trigger rules,
//! outputs and templating, timeouts.

use crate::harness::{
    Home, alive_in_group, live_group_members, result_lines, states, task, wait_until,
};

#[test]
fn trigger_wait_exit_codes_and_task_results() {
    let home = Home::new();
    home.write_dag(
        "good.yaml",
        "tasks:\n  first:\n    run: echo one\n  second:\n    needs: [first]\n    run: echo two\n",
    );
    home.write_dag(
        "bad.yaml",
        "tasks:\n  fine:\n    run: echo fine\n  boom:\n    needs: [fine]\n    run: exit 3\n",
    );
    let _gale = home.start();
    home.wait_dag("good");
    home.wait_dag("bad");

    let ok = home.gale(&["dags", "trigger", "good", "--wait"]);
    assert_eq!(ok.code, 0, "a succeeding run exits 0: {ok}");
    let lines = result_lines(&ok.stdout);
    for t in ["first", "second"] {
        assert!(
            lines.contains(&(t.into(), "success".into())),
            "--wait prints {t}'s result: {ok}"
        );
    }
    assert!(ok.stdout.contains("of good: success"), "{ok}");

    let failed = home.gale(&["dags", "trigger", "bad", "--wait"]);
    assert_eq!(failed.code, 1, "a failing run exits 1: {failed}");
    let lines = result_lines(&failed.stdout);
    assert!(
        lines.contains(&("fine".into(), "success".into())),
        "{failed}"
    );
    assert!(
        lines.contains(&("boom".into(), "failed".into())),
        "{failed}"
    );
    assert!(failed.stdout.contains("of bad: failed"), "{failed}");

    // The failure is the task's exit code, as recorded in its log.
    let run_id: i64 = home.runs("bad")[0]["run_id"].as_i64().expect("run id");
    let log = home.logs(run_id, "boom", None);
    assert!(log.contains("exited with code 3"), "{log}");

    let missing = home.gale(&["dags", "trigger", "no_such_dag", "--wait"]);
    assert_eq!(missing.code, 4, "an unknown DAG exits 4: {missing}");
}

#[test]
fn retries_until_third_try_succeeds() {
    let home = Home::new();
    home.write_dag(
        "flaky.yaml",
        r#"tasks:
  flaky:
    retries: 2
    retry_delay: 1s
    run: |
      echo "this is try $GALE_TRY_NUMBER"
      test "$GALE_TRY_NUMBER" -ge 3
"#,
    );
    let _gale = home.start();
    home.wait_dag("flaky");

    let out = home.gale(&["dags", "trigger", "flaky", "--wait"]);
    assert_eq!(out.code, 0, "the run succeeds on the third try: {out}");
    let run_id = home.runs("flaky")[0]["run_id"].as_i64().expect("run id");

    let tasks = home.tasks(run_id);
    let t = task(&tasks, "flaky");
    assert_eq!(t["state"], "success");
    assert_eq!(t["try_number"], 3, "{t:#}");
    assert_eq!(t["max_tries"], 3, "{t:#}");
    let attempts: Vec<(u64, String)> = t["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["try_number"].as_u64().unwrap_or(0),
                a["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, "failed".into()),
            (2, "failed".into()),
            (3, "success".into())
        ]
    );

    let show = home.ok(&["runs", "show", &run_id.to_string()]);
    let row = show
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("flaky"))
        .unwrap_or_else(|| panic!("runs show lists flaky: {show}"));
    assert!(row.contains("success") && row.contains("3/3"), "{show}");

    // Every attempt keeps its own log.
    for n in 1..=3u32 {
        let log = home.logs(run_id, "flaky", Some(n));
        assert!(
            log.contains(&format!("this is try {n}")),
            "attempt {n}: {log}"
        );
    }
    assert!(
        home.logs(run_id, "flaky", Some(1))
            .contains("exited with code 1")
    );
    let none = home.gale(&[
        "tasks",
        "logs",
        &run_id.to_string(),
        "flaky",
        "--attempt",
        "4",
    ]);
    assert_eq!(none.code, 4, "there is no fourth attempt: {none}");
}

#[test]
fn trigger_rules_and_skip_exit_code() {
    let home = Home::new();
    home.write_dag(
        "rules.yaml",
        r#"tasks:
  skipper:
    run: 'echo nothing to do; exit 99'
  after_skip:
    needs: [skipper]
    run: echo never
  ok:
    run: echo ok
  join:
    needs: [after_skip, ok]
    trigger_rule: none_failed
    run: echo joined
  if_all_failed:
    needs: [ok]
    trigger_rule: all_failed
    run: echo never
  boom:
    run: exit 3
  on_failure:
    needs: [boom]
    trigger_rule: one_failed
    run: echo handling the failure
"#,
    );
    let _gale = home.start();
    home.wait_dag("rules");

    let out = home.gale(&["dags", "trigger", "rules", "--wait", "--output", "json"]);
    // Leaves are join (success), if_all_failed (skipped) and on_failure (success):
    // the failure of `boom` is handled, so the run succeeds.
    assert_eq!(out.code, 0, "{out}");
    let v = out.json();
    assert_eq!(v["run"]["state"], "success");
    let got = states(v["tasks"].as_array().expect("tasks"));
    let want: std::collections::BTreeMap<String, String> = [
        ("skipper", "skipped"),
        ("after_skip", "skipped"),
        ("ok", "success"),
        ("join", "success"),
        ("if_all_failed", "skipped"),
        ("boom", "failed"),
        ("on_failure", "success"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(got, want);

    let run_id = v["run"]["run_id"].as_i64().expect("run id");
    let tasks = home.tasks(run_id);
    // Tasks skipped by their trigger rule never ran; the one that exited 99 did.
    assert_eq!(task(&tasks, "skipper")["try_number"], 1);
    assert_eq!(task(&tasks, "skipper")["attempts"][0]["state"], "skipped");
    for t in ["after_skip", "if_all_failed"] {
        assert_eq!(task(&tasks, t)["try_number"], 0, "{t} never ran");
    }
    assert!(
        home.logs(run_id, "on_failure", None)
            .contains("handling the failure")
    );
}

#[test]
fn outputs_params_and_template_errors() {
    let home = Home::new();
    home.write_dag(
        "pass.yaml",
        r#"params:
  k: from-params
  other: kept
tasks:
  up:
    run: echo "path=/tmp/x y" >> "$GALE_OUTPUT"
  down:
    needs: [up]
    run: |
      printf '<%s>\n' {{ tasks.up.outputs.path | shell_quote }}
      printf '[%s]\n' {{ params.k | shell_quote }} {{ params.other | shell_quote }}
"#,
    );
    // Only what the file cannot tell fails at run time: an attribute of a
    // param's value (a name the DAG does not know is refused when it loads).
    home.write_dag(
        "broken_template.yaml",
        "params: { p: plain }\ntasks:\n  render:\n    run: echo {{ params.p.no_such_field }}\n",
    );
    let _gale = home.start();
    home.wait_dag("pass");
    home.wait_dag("broken_template");

    let out = home.gale(&[
        "dags",
        "trigger",
        "pass",
        "--conf",
        r#"{"k": "from conf"}"#,
        "--wait",
        "--output",
        "json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let v = out.json();
    let run_id = v["run"]["run_id"].as_i64().expect("run id");
    let tasks = home.tasks(run_id);
    assert_eq!(task(&tasks, "up")["outputs"]["path"], "/tmp/x y");
    let log = home.logs(run_id, "down", None);
    // One word despite the space (shell_quote), and --conf over the DAG's params.
    assert!(log.contains("</tmp/x y>"), "{log}");
    assert!(log.contains("[from conf]"), "{log}");
    assert!(log.contains("[kept]"), "{log}");
    assert!(!log.contains("from-params"), "{log}");

    let bad = home.gale(&["dags", "trigger", "broken_template", "--wait"]);
    assert_eq!(bad.code, 1, "{bad}");
    let run_id = home.runs("broken_template")[0]["run_id"]
        .as_i64()
        .expect("run id");
    let tasks = home.tasks(run_id);
    assert_eq!(task(&tasks, "render")["state"], "failed");
    let log = home.logs(run_id, "render", None);
    assert!(log.contains("undefined"), "{log}");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let home = Home::new();
    let (pgid_file, child_file) = (home.file("pgid"), home.file("child"));
    home.write_dag(
        "hang.yaml",
        &format!(
            r#"tasks:
  hang:
    timeout: 2s
    run: |
      echo $$ > {pgid_file}
      sleep 300 &
      echo $! > {child_file}
      echo started a background child
      sleep 300
"#
        ),
    );
    let _gale = home.start();
    home.wait_dag("hang");

    let out = home.gale(&["dags", "trigger", "hang", "--wait"]);
    assert_eq!(out.code, 1, "a timed-out task fails the run: {out}");
    assert!(
        result_lines(&out.stdout).contains(&("hang".into(), "failed".into())),
        "{out}"
    );

    let read = |f: &str| -> i32 {
        std::fs::read_to_string(f)
            .unwrap_or_else(|e| panic!("the task wrote {f}: {e}"))
            .trim()
            .parse()
            .expect("a pid")
    };
    let (pgid, child) = (read(&pgid_file), read(&child_file));
    wait_until("every process of the timed-out task's group to end", || {
        (live_group_members(pgid).is_empty() && !alive_in_group(child, pgid)).then_some(())
    });

    let run_id = home.runs("hang")[0]["run_id"].as_i64().expect("run id");
    let tasks = home.tasks(run_id);
    let t = task(&tasks, "hang");
    assert_eq!(t["state"], "failed");
    assert_eq!(t["attempts"][0]["state"], "timed_out", "{t:#}");
    assert_eq!(
        t["attempts"][0]["pid"], pgid,
        "the group is the task's shell"
    );
    let log = home.logs(run_id, "hang", None);
    assert!(log.contains("started a background child"), "{log}");
    assert!(log.contains("timeout of 2s reached"), "{log}");
    assert!(log.contains("timed out after 2s"), "{log}");
}

#[test]
fn escaped_background_process_does_not_hold_the_attempt_open() {
    // A daemon that left the task's process group (setsid) keeps the task's
    // stdout open for good; the attempt must still end once the shell has.
    let home = Home::new();
    let daemon_file = home.file("daemon");
    home.write_dag(
        "daemon.yaml",
        &format!(
            r#"tasks:
  spawn:
    run: |
      setsid sh -c 'echo $$ > {daemon_file}.tmp; mv {daemon_file}.tmp {daemon_file}; exec sleep 300' &
      while [ ! -s {daemon_file} ]; do sleep 0.1; done
      echo daemon started
"#
        ),
    );
    let _gale = home.start();
    home.wait_dag("daemon");

    let out = home.gale(&["dags", "trigger", "daemon", "--wait"]);
    assert_eq!(out.code, 0, "{out}");
    let daemon: i32 = std::fs::read_to_string(&daemon_file)
        .expect("the daemon's pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        alive_in_group(daemon, daemon),
        "the daemon outlived its task, so the pipe stayed open"
    );
    let run_id = home.runs("daemon")[0]["run_id"].as_i64().expect("run id");
    let log = home.logs(run_id, "spawn", None);
    assert!(log.contains("daemon started"), "{log}");
    assert!(log.contains("output still open"), "{log}");
    // The daemon carries this test's GALE_HOME: `Home` kills it on drop.
}
