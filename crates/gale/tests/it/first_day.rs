//! What a new user meets first on the command line: exit codes that keep the
//! README's promise (2 bad usage, 4 not found, 1 failure), `-o json` on every
//! command that prints something, a removed DAG that is not run, and a
//! backfill whose `--to` date is inclusive and never reaches before the
//! DAG's `start_date`.

use crate::harness::{Home, wait_until};

#[test]
fn exit_codes_and_json_without_a_server() {
    let home = Home::new();
    home.ok(&["db", "migrate"]);
    // Bad usage: exit 2, naming what is wrong.
    for (args, says) in [
        (&["runs", "list", "--state", "bogus"][..], "bogus"),
        (&["runs", "list", "--limit", "0"][..], "0"),
        (&["dags", "trigger", "x", "--conf", "{nope"][..], "--conf"),
        (
            &["dags", "trigger", "x", "--conf", "[1]"][..],
            "JSON object",
        ),
    ] {
        let out = home.gale(args);
        assert_eq!(out.code, 2, "`gale {}`: {out}", args.join(" "));
        assert!(
            out.stderr.contains(says),
            "`gale {}`: {out}",
            args.join(" ")
        );
    }
    // Templates are checked by `dags validate`, every error of the file at
    // its file:line:column.
    home.write_dag(
        "tmpl.yaml",
        "tasks:\n  a: { run: 'echo {{ unclosed' }\n  b: { run: 'echo {{ tasks.zzz.outputs.x }}' }\n  c: { run: 42, priority: 1.5 }\n  d: { run: 'true', retires: 3 }\n",
    );
    let file = home.dags().join("tmpl.yaml").display().to_string();
    let out = home.gale(&["dags", "validate", &file]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains(&format!("{file}:2:")) && out.stdout.contains("syntax error"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("{file}:3:"))
            && out.stdout.contains("`tasks.zzz` is not upstream"),
        "{out}"
    );
    // Wrong types and unknown fields do not hide each other or the rest.
    for (line, says) in [
        (4, "`run` must be text, not the number 42"),
        (4, "`priority` must be a whole number"),
        (5, "unknown field `retires`"),
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains(&format!("{file}:{line}:")) && l.contains(says)),
            "{says} at line {line}: {out}"
        );
    }
    // Not found: exit 4.
    let out = home.gale(&["runs", "list", "--dag", "nope"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stderr.contains("no DAG nope"), "{out}");

    // Shell completion, for every command.
    let bash = home.ok(&["completion", "bash"]).stdout;
    assert!(
        bash.contains("_gale()") && bash.contains("alerts"),
        "{bash}"
    );
    assert!(
        home.ok(&["completion", "zsh"])
            .stdout
            .contains("#compdef gale")
    );
    assert_eq!(home.gale(&["completion", "tcsh"]).code, 2);

    // JSON where JSON is asked for.
    let v = home.json(&["version"]);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let pool = home.json(&["pools", "set", "etl", "4"]);
    assert_eq!(
        (pool["name"].as_str(), pool["slots"].as_i64()),
        (Some("etl"), Some(4))
    );
    assert_eq!(pool["created"], true);
    let user = home.json(&["users", "create", "ana", "--role", "viewer"]);
    assert_eq!(user["name"], "ana");
    assert_eq!(user["role"], "viewer");
    assert!(
        user["password"].as_str().is_some_and(|p| p.len() >= 12),
        "a generated password: {user}"
    );
    let token = home.json(&["tokens", "create", "--user", "ana", "--name", "ci"]);
    assert_eq!(token["user"], "ana");
    assert!(
        token["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{token}"
    );
}

#[test]
fn errors_gate_removed_dags_refuse_and_backfills_take_their_last_day() {
    let home = Home::new();
    home.write_dag(
        "daily.yaml",
        "schedule: '0 2 * * *'\nstart_date: 2026-01-10\ncatchup: false\ntasks:\n  a: { run: 'true' }\n",
    );
    home.write_dag("doomed.yaml", "tasks:\n  a: { run: 'true' }\n");
    home.write_dag("broken.yaml", "tasks:\n  a: { run: 'true', nope: 1 }\n");
    let closed = crate::receivers::free_port();
    home.write_dag(
        "refused.yaml",
        &format!(
            "tasks:\n  call: {{ http: {{ url: 'http://127.0.0.1:{closed}/x' }} }}\n  after: {{ needs: [call], run: 'true' }}\n"
        ),
    );
    let _gale = home.start();
    home.wait_dag("daily");
    home.wait_dag("doomed");

    // `dags errors` fails while a file is broken, so it can gate a deploy.
    let errors = wait_until("the broken file to be reported", || {
        let out = home.gale(&["dags", "errors"]);
        out.stdout.contains("broken.yaml").then_some(out)
    });
    assert_eq!(errors.code, 1, "{errors}");
    std::fs::remove_file(home.dags().join("broken.yaml")).expect("remove");
    wait_until("the errors to clear", || {
        (home.gale(&["dags", "errors"]).code == 0).then_some(())
    });

    // An HTTP task's failure names its cause; a task that never ran says so.
    home.wait_dag("refused");
    let run = home.trigger("refused", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "failed");
    let tasks = home.json(&["tasks", "list", &run.to_string()]);
    let text = tasks.to_string();
    assert!(text.contains("Connection refused"), "{text}");
    let logs = home.gale(&["tasks", "logs", &run.to_string(), "after"]);
    assert!(
        logs.stderr.contains("did not run (state upstream_failed)"),
        "{logs}"
    );

    let paused = home.json(&["dags", "pause", "daily"]);
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["dag_id"], "daily");

    // A removed DAG is not run.
    std::fs::remove_file(home.dags().join("doomed.yaml")).expect("remove");
    wait_until("doomed to be removed", || {
        let list = home.json(&["dags", "list"]);
        list["dags"]
            .as_array()?
            .iter()
            .any(|d| d["dag_id"] == "doomed" && d["active"] == false)
            .then_some(())
    });
    let out = home.gale(&["dags", "trigger", "doomed"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("was removed"), "{out}");

    // `--to 2026-01-12` takes the 12th's 02:00 slot; the 9th is before the
    // start_date and is left out.
    let out = home.ok(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-09",
        "--to",
        "2026-01-12",
        "--no-wait",
    ]);
    let runs = home.json(&["runs", "list", "--dag", "daily"]);
    let mut dates: Vec<&str> = runs
        .as_array()
        .expect("runs")
        .iter()
        .filter(|r| r["run_type"] == "backfill")
        .filter_map(|r| r["logical_date"].as_str())
        .collect();
    dates.sort_unstable();
    assert_eq!(
        dates,
        [
            "2026-01-10T02:00:00Z",
            "2026-01-11T02:00:00Z",
            "2026-01-12T02:00:00Z"
        ],
        "{out}"
    );
    let before = home.gale(&[
        "backfill",
        "daily",
        "--from",
        "2025-12-01",
        "--to",
        "2025-12-31",
        "--no-wait",
    ]);
    assert_eq!(before.code, 2, "{before}");
    assert!(before.stderr.contains("start_date"), "{before}");
}

#[test]
fn a_named_dag_folder_gets_no_examples() {
    let home = Home::new();
    let folder = home.path().join("mine/dags");
    let _gale = home.start_with(&["--dags-folder", &folder.display().to_string()]);
    wait_until("the folder to be made", || folder.is_dir().then_some(()));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let list = home.json(&["dags", "list"]);
    assert_eq!(list["dags"], serde_json::json!([]), "{list}");
    let files: Vec<_> = std::fs::read_dir(&folder).expect("the folder").collect();
    assert!(files.is_empty(), "nothing written into a named folder");
}

#[test]
fn runs_are_cancelled_marked_and_cleared_from_the_command_line() {
    let home = Home::new();
    home.write_dag(
        "sleepy.yaml",
        "tasks:\n  nap: { run: 'sleep 60' }\n  after: { needs: [nap], run: 'true' }\n",
    );
    home.write_dag("fails.yaml", "tasks:\n  boom: { run: 'exit 3' }\n");
    // Outputs of any upstream task, not only of the tasks named in `needs`.
    home.write_dag(
        "chain.yaml",
        "tasks:\n  a: { run: 'echo x=from-a >> $GALE_OUTPUT' }\n  b: { needs: [a], run: 'true' }\n  c: { needs: [b], run: 'test {{ tasks.a.outputs.x }} = from-a' }\n",
    );
    let _gale = home.start();
    home.wait_dag("sleepy");
    home.wait_dag("fails");
    let running = |run: i64| {
        wait_until("the nap to run", || {
            let tasks = home.tasks(run);
            (crate::harness::task(&tasks, "nap")["state"] == "running").then_some(())
        })
    };

    let run = home.trigger("sleepy", &[]);
    running(run);
    home.ok(&["runs", "cancel", &run.to_string()]);
    let cancelled = home.wait_run(run);
    assert_eq!(cancelled["run"]["state"], "cancelled", "{cancelled:#}");
    let tasks = cancelled["tasks"].as_array().expect("tasks");
    let state = |id: &str| {
        tasks
            .iter()
            .find(|t| t["task_id"] == id)
            .map(|t| t["state"].clone())
    };
    assert_eq!(
        state("nap"),
        Some("failed".into()),
        "the running task is killed: {cancelled:#}"
    );
    assert_eq!(
        state("after"),
        Some("skipped".into()),
        "the waiting one skipped, as Airflow leaves it"
    );

    let run = home.trigger("sleepy", &[]);
    running(run);
    let marked = home.json(&[
        "tasks",
        "mark",
        &run.to_string(),
        "nap",
        "--state",
        "success",
    ]);
    assert_eq!(marked["state"], "success", "{marked}");
    assert_eq!(home.wait_run(run)["run"]["state"], "success");

    let failed = home.trigger("fails", &[]);
    assert_eq!(home.wait_run(failed)["run"]["state"], "failed");
    let cleared = home.json(&["runs", "clear", &failed.to_string()]);
    assert_eq!(cleared["cleared"], serde_json::json!(["boom"]), "{cleared}");
    wait_until("the cleared task to run again", || {
        let tasks = home.tasks(failed);
        (crate::harness::task(&tasks, "boom")["try_number"] == 2).then_some(())
    });
    let marked = home.json(&["runs", "mark", &failed.to_string(), "--state", "success"]);
    assert_eq!(marked["run_id"], failed, "{marked}");
    assert_eq!(marked["state"], "success", "{marked}");

    home.wait_dag("chain");
    let chain = home.trigger("chain", &[]);
    assert_eq!(home.wait_run(chain)["run"]["state"], "success");

    let missing = home.gale(&["runs", "cancel", "999999"]);
    assert_eq!(missing.code, 4, "{missing}");
    assert!(missing.stderr.contains("no run 999999"), "{missing}");
    let bad = home.gale(&["runs", "mark", "1", "--state", "done"]);
    assert_eq!(bad.code, 2, "{bad}");
}

#[test]
fn a_duplicate_dag_id_is_reported_once_not_every_scan() {
    let home = Home::new();
    home.write_dag("one.yaml", "id: same\ntasks:\n  a: { run: 'true' }\n");
    let gale = home.start();
    home.wait_dag("same");
    home.write_dag("two.yaml", "id: same\ntasks:\n  b: { run: 'true' }\n");
    let first = wait_until("the duplicate to be reported", || {
        let errors = home.gale(&["dags", "errors", "--output", "json"]).json();
        errors
            .as_array()?
            .iter()
            .find(|e| e["file"].as_str().is_some_and(|f| f.ends_with("two.yaml")))
            .cloned()
    });
    // Several scans later (one every 2 s) it is the same report, not a new one.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let errors = home.gale(&["dags", "errors", "--output", "json"]).json();
    let later = errors
        .as_array()
        .expect("errors")
        .iter()
        .find(|e| e["file"].as_str().is_some_and(|f| f.ends_with("two.yaml")))
        .expect("still reported");
    assert_eq!(later["updated_at"], first["updated_at"], "{errors}");
    let log = gale.log();
    let said = log.matches("duplicate DAG id").count();
    assert!(said <= 1, "reported {said} times:\n{log}");
    // Once the first file goes, the second one's DAG is stored.
    std::fs::remove_file(home.dags().join("one.yaml")).expect("remove");
    wait_until("two.yaml to take the id", || {
        let dag = home.json(&["dags", "show", "same"]);
        dag.to_string().contains("\"b\"").then_some(())
    });
}

#[test]
fn new_dags_start_paused_when_asked() {
    let home = Home::new();
    home.write_dag("plain.yaml", "tasks:\n  a: { run: 'true' }\n");
    home.write_dag(
        "eager.yaml",
        "is_paused_upon_creation: false\ntasks:\n  a: { run: 'true' }\n",
    );
    let dags = home.dags().display().to_string();
    let gale = home.start_with(&[
        "--dags-folder",
        &dags,
        "--no-examples",
        "--dags-paused-at-creation",
    ]);
    home.wait_dag("plain");
    home.wait_dag("eager");
    let paused = |id: &str| {
        home.json(&["dags", "list"])["dags"]
            .as_array()
            .expect("dags")
            .iter()
            .find(|d| d["dag_id"] == id)
            .map(|d| d["paused"].clone())
            .expect("the DAG")
    };
    assert_eq!(paused("plain"), true);
    assert_eq!(paused("eager"), false);
    // A new version keeps the DAG's pause as it is.
    home.ok(&["dags", "unpause", "plain"]);
    home.write_dag(
        "plain.yaml",
        "tasks:\n  a: { run: 'true' }\n  b: { run: 'true' }\n",
    );
    wait_until("the new version", || {
        home.json(&["dags", "show", "plain"])
            .to_string()
            .contains("\"b\"")
            .then_some(())
    });
    assert_eq!(paused("plain"), false);
    drop(gale);

    // Without the setting, a DAG may still ask to start paused.
    home.write_dag(
        "careful.yaml",
        "is_paused_upon_creation: true\ntasks:\n  a: { run: 'true' }\n",
    );
    let _gale = home.start();
    home.wait_dag("careful");
    assert_eq!(paused("careful"), true);
}

#[test]
fn a_waiting_task_says_why_in_the_cli_the_api_and_its_page() {
    let home = Home::new();
    let dags = [
        ("nopool", "tasks:\n  t: { run: 'true', pool: missing }\n"),
        ("fullpool", "tasks:\n  t: { run: 'true', pool: tiny }\n"),
        (
            "chain",
            "tasks:\n  a: { run: 'sleep 30' }\n  b: { needs: [a], run: 'true' }\n",
        ),
        ("gpu", "tasks:\n  t: { run: 'true', queue: gpu }\n"),
        (
            "single",
            "max_active_runs: 1\ntasks:\n  t: { run: 'sleep 30' }\n",
        ),
        (
            "later",
            "tasks:\n  t: { run: 'exit 1', retries: 1, retry_delay: 1h }\n",
        ),
        (
            "narrow",
            "max_active_tasks: 1\ntasks:\n  x: { run: 'sleep 30' }\n  y: { run: 'sleep 30' }\n",
        ),
    ];
    for (id, yaml) in dags {
        home.write_dag(&format!("{id}.yaml"), yaml);
    }
    let (_gale, web) = crate::web::start(&home);
    home.ok(&["pools", "set", "tiny", "0"]);
    for (id, _) in dags {
        home.wait_dag(id);
    }
    let why = |run: i64, task: &str, says: &str| {
        wait_until(&format!("{task} of run {run} to say {says:?}"), || {
            let tasks = home.tasks(run);
            let t = crate::harness::task(&tasks, task);
            t["waiting_for"]
                .as_str()
                .is_some_and(|w| w.contains(says))
                .then_some(())
        });
        let api = web
            .get(&format!("/api/v1/runs/{run}/tasks/{task}"))
            .expect(200);
        assert!(
            api["waiting_for"]
                .as_str()
                .is_some_and(|w| w.contains(says)),
            "{api}"
        );
        let page = web.get(&format!("/runs/{run}/tasks/{task}")).text();
        assert!(
            page.contains("Waiting for") && page.contains(says),
            "{says}: {page}"
        );
    };
    why(
        home.trigger("nopool", &[]),
        "t",
        "pool missing does not exist",
    );
    why(home.trigger("fullpool", &[]), "t", "pool tiny is full");
    // The pool's listing counts it as waiting for a slot.
    let pools = home.json(&["pools", "list"]);
    let tiny = pools
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "tiny"))
        .unwrap_or_else(|| panic!("no pool tiny: {pools:#}"));
    assert_eq!(tiny["waiting"], 1, "{tiny:#}");
    assert_eq!(tiny["queued"], 0, "{tiny:#}");
    let table = home.ok(&["pools", "list"]).stdout;
    assert!(table.contains("WAITING"), "{table}");
    why(
        home.trigger("chain", &[]),
        "b",
        "upstream not done: a (running)",
    );
    why(home.trigger("gpu", &[]), "t", "no live worker serves");
    home.trigger("single", &[]);
    why(home.trigger("single", &[]), "t", "max_active_runs");
    why(home.trigger("later", &[]), "t", "its retry is due at");
    let narrow = home.trigger("narrow", &[]);
    let waits = wait_until("one of x and y to wait", || {
        let tasks = home.tasks(narrow);
        tasks.iter().find_map(|t| {
            t["waiting_for"]
                .as_str()
                .filter(|w| w.contains("max_active_tasks"))
                .map(|_| t["task_id"].as_str().unwrap_or("").to_owned())
        })
    });
    why(narrow, &waits, "max_active_tasks");
    // The Trigger button is for those who may trigger.
    let viewer = web.with_token(&crate::web::user_token(&home, "vera", "viewer"));
    let button = "class=\"btn primary\" href=\"/dags/chain?tab=trigger\"";
    assert!(web.get("/dags/chain").text().contains(button));
    assert!(!viewer.get("/dags/chain").text().contains(button));
    let in_list = "title=\"trigger a run of chain\"";
    assert!(web.get("/").text().contains(in_list));
    assert!(!viewer.get("/").text().contains(in_list));
    // A task that runs or ended waits for nothing.
    let tasks = home.tasks(narrow);
    let other = if waits == "x" { "y" } else { "x" };
    assert!(crate::harness::task(&tasks, other)["waiting_for"].is_null());
}

#[test]
fn airflow_prev_names_render_from_the_schedule_and_the_last_success() {
    let home = Home::new();
    // Weekly, starting in the future: the only runs are the manual ones here.
    home.write_dag(
        "weekly.yaml",
        "schedule: '0 0 * * 1'\nstart_date: 2030-01-07\ntasks:\n  t: { run: 'echo prev={{ prev_ds }} {{ prev_ds_nodash }} ok={{ prev_data_interval_start_success }} {{ ts_nodash }}' }\n",
    );
    let _gale = home.start();
    home.wait_dag("weekly");
    let line = |run: i64| {
        home.logs(run, "t", None)
            .lines()
            .find(|l| l.contains("prev="))
            .unwrap_or_default()
            .to_owned()
    };
    // Monday 2026-03-09's slot: the slot before is Monday 2026-03-02.
    let first = home.trigger("weekly", &["--logical-date", "2026-03-09T00:00:00Z"]);
    assert_eq!(home.wait_run(first)["run"]["state"], "success");
    assert!(
        line(first).contains("prev=2026-03-02 20260302 ok=None 20260309T000000"),
        "{}",
        line(first)
    );
    let second = home.trigger("weekly", &["--logical-date", "2026-03-16T00:00:00Z"]);
    assert_eq!(home.wait_run(second)["run"]["state"], "success");
    let start = home.run_json(first)["run"]["interval_start"]
        .as_str()
        .expect("an interval")
        .to_owned();
    // A date, written as Airflow writes its dates.
    assert_eq!(start, "2026-03-09T00:00:00Z");
    assert!(
        line(second)
            .contains("prev=2026-03-09 20260309 ok=2026-03-09 00:00:00+00:00 20260316T000000"),
        "{} (the first run's interval starts {start})",
        line(second)
    );
}

/// A DAG written with the Airflow names a shell task reaches for renders
/// each as Airflow 3 renders it for the same logical date and data interval
/// (pendulum's dates, Python's `datetime` for `macros.datetime`).
#[test]
fn airflow_template_names_render_as_airflow_renders_them() {
    let home = Home::new();
    let names = [
        ("run_id", "{{ run_id }}"),
        ("dag_run.run_id", "{{ dag_run.run_id }}"),
        ("dag_run.run_type", "{{ dag_run.run_type }}"),
        ("dag_run.conf", "{{ dag_run.conf }}"),
        ("ds", "{{ ds }}"),
        ("ds_nodash", "{{ ds_nodash }}"),
        ("ts", "{{ ts }}"),
        ("ts_nodash", "{{ ts_nodash }}"),
        ("ts_nodash_with_tz", "{{ ts_nodash_with_tz }}"),
        ("logical_date", "{{ logical_date }}"),
        (
            "logical_date.strftime",
            "{{ logical_date.strftime('%Y-%m-%d %H:%M %A') }}",
        ),
        ("data_interval_start", "{{ data_interval_start }}"),
        ("data_interval_end", "{{ data_interval_end }}"),
        ("prev_ds", "{{ prev_ds }}"),
        ("prev_ds_nodash", "{{ prev_ds_nodash }}"),
        (
            "prev_data_interval_start_success",
            "{{ prev_data_interval_start_success }}",
        ),
        (
            "prev_data_interval_end_success",
            "{{ prev_data_interval_end_success }}",
        ),
        ("macros.ds_add", "{{ macros.ds_add(ds, 7) }}"),
        (
            "macros.ds_format",
            "{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}",
        ),
        ("macros.datetime", "{{ macros.datetime(2026, 1, 31) }}"),
        ("ti.try_number", "{{ ti.try_number }}"),
        ("task_instance_key_str", "{{ task_instance_key_str }}"),
    ];
    let script: String = names
        .iter()
        .map(|(name, t)| format!("      echo {name}={t}\n"))
        .collect();
    home.write_dag(
        "airflow_names.yaml",
        &format!(
            "schedule: '@daily'\nstart_date: 2026-02-01\ncatchup: false\ntasks:\n  show:\n    run: |\n{script}"
        ),
    );
    let _gale = home.start();
    home.wait_dag("airflow_names");
    for day in ["2026-03-01", "2026-03-02"] {
        home.ok(&["backfill", "airflow_names", "--from", day, "--to", day]);
    }
    let runs = home.json(&["runs", "list", "--dag", "airflow_names"]);
    let second = runs
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["logical_date"] == "2026-03-02T00:00:00Z")
        .and_then(|r| r["run_id"].as_i64())
        .unwrap_or_else(|| panic!("no run of 2026-03-02: {runs:#}"));
    let run = home.run_json(second);
    assert_eq!(run["run"]["state"], "success", "{run:#}");
    let (start, end) = (
        run["run"]["interval_start"].as_str().expect("a start"),
        run["run"]["interval_end"].as_str().expect("an end"),
    );
    assert_eq!(
        (start, end),
        ("2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"),
        "a daily slot's interval is the day it names, as Airflow's cron data intervals"
    );
    let log = home.logs(second, "show", None);
    let rendered: std::collections::BTreeMap<&str, &str> = log
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.rsplit(' ').next().unwrap_or(k), v))
        .collect();
    // What Airflow renders for logical date 2026-03-02T00:00:00+00:00, data
    // interval [2026-03-02, 2026-03-03), a backfill run, the previous
    // successful run being that of 2026-03-01.
    let airflow = [
        ("run_id", "backfill__2026-03-02T00:00:00+00:00"),
        ("dag_run.run_id", "backfill__2026-03-02T00:00:00+00:00"),
        ("dag_run.run_type", "backfill"),
        ("dag_run.conf", "{}"),
        ("ds", "2026-03-02"),
        ("ds_nodash", "20260302"),
        ("ts", "2026-03-02T00:00:00+00:00"),
        ("ts_nodash", "20260302T000000"),
        ("ts_nodash_with_tz", "20260302T000000+0000"),
        ("logical_date", "2026-03-02 00:00:00+00:00"),
        ("logical_date.strftime", "2026-03-02 00:00 Monday"),
        ("data_interval_start", "2026-03-02 00:00:00+00:00"),
        ("data_interval_end", "2026-03-03 00:00:00+00:00"),
        ("prev_ds", "2026-03-01"),
        ("prev_ds_nodash", "20260301"),
        (
            "prev_data_interval_start_success",
            "2026-03-01 00:00:00+00:00",
        ),
        (
            "prev_data_interval_end_success",
            "2026-03-02 00:00:00+00:00",
        ),
        ("macros.ds_add", "2026-03-09"),
        ("macros.ds_format", "02/03/2026"),
        ("macros.datetime", "2026-01-31 00:00:00"),
        ("ti.try_number", "1"),
        ("task_instance_key_str", "airflow_names__show__20260302"),
    ];
    for (name, want) in airflow {
        assert_eq!(
            rendered.get(name).copied(),
            Some(want),
            "{name} in the log:\n{log}"
        );
    }
    assert_eq!(airflow.len(), names.len(), "every name is checked");
}

/// A DAG processor's import errors are its own: they go when it stops, and
/// come back when a processor of that folder runs again.
#[test]
fn a_stopped_processors_import_errors_are_cleared() {
    let home = Home::new();
    home.write_dag("broken.yaml", "tasks:\n  a: { run: 'true', nope: 1 }\n");
    home.write_dag("fine.yaml", "tasks:\n  a: { run: 'true' }\n");
    let reported = || {
        wait_until("the broken file to be reported", || {
            let out = home.gale(&["dags", "errors"]);
            out.stdout.contains("broken.yaml").then_some(out)
        })
    };
    let gale = home.start();
    home.wait_dag("fine");
    assert_eq!(reported().code, 1);
    let status = gale.stop();
    assert!(status.success(), "the standalone stops cleanly: {status}");
    let after = home.gale(&["dags", "errors"]);
    assert_eq!(after.code, 0, "no processor reports the file now: {after}");
    assert!(!after.stdout.contains("broken.yaml"), "{after}");
    let dags = home.json(&["dags", "list"]);
    assert!(
        dags.to_string().contains("\"fine\""),
        "the DAGs stay: {dags:#}"
    );
    let _again = home.start();
    assert_eq!(
        reported().code,
        1,
        "a processor of the folder reports it again"
    );
}

/// `gale man` prints the manual page; `--dir` writes one per command, each
/// with its options' help.
#[test]
fn manual_pages_for_every_command() {
    let home = Home::new();
    let page = home.ok(&["man"]).stdout;
    assert!(page.contains(".TH gale 1"), "{page}");
    for command in ["standalone", "dags", "runs", "backfill", "completion"] {
        assert!(page.contains(command), "gale(1) names {command}");
    }
    let dir = home.path().join("man1");
    home.ok(&["man", "--dir", &dir.display().to_string()]);
    let trigger =
        std::fs::read_to_string(dir.join("gale-dags-trigger.1")).expect("a page per command");
    assert!(
        trigger.contains("logical\\-date") || trigger.contains("logical-date"),
        "{trigger}"
    );
    assert!(
        trigger.contains("merged over"),
        "the options' help is there: {trigger}"
    );
    assert!(dir.join("gale-runs-cancel.1").exists());
}
