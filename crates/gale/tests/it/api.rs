//! The REST API under `/api/v1`, over HTTP against the real binary:
//!
//! - every endpoint of the OpenAPI document, with its error cases (malformed
//!   JSON, wrong content type, unknown fields, unknown ids, conflicting
//!   transitions, bounded page sizes, bodies over 1 MiB);
//! - the document and the router agree: every documented operation is routed,
//!   and undocumented paths are 404 problems;
//! - authentication: no or a bad token is 401, a viewer reads but may not
//!   change anything, health, metrics and the document are public;
//! - `/metrics` is strict OpenMetrics text with the expected families;
//! - `/health` on PostgreSQL follows the database (503 while it is down, 200
//!   once it is back) and the live schedulers (`gale webserver` alone is 503).
//!
//! The PostgreSQL test prints SKIPPED and passes without PostgreSQL binaries,
//! except under `CI=true` (see `gale_pgtest`).

use std::collections::{BTreeMap, BTreeSet};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::harness::{Home, alive_in_group, utc_date, wait_until};
use crate::pg::Pg;
use crate::web::{self, Response, Web};

/// Ids that no test creates.
const NO_RUN: i64 = 987_654;
const NO_BACKFILL: i64 = 987_654;

/// The largest request body the server reads (`gale_server::BODY_LIMIT`).
const BODY_LIMIT: usize = 1 << 20;

// ------------------------------------------------------------------ helpers

fn run_path(run_id: i64) -> String {
    format!("/api/v1/runs/{run_id}")
}

fn task_path(run_id: i64, task_id: &str) -> String {
    format!("/api/v1/runs/{run_id}/tasks/{task_id}")
}

/// Waits until the DAG processor has stored `dag_id`.
pub(crate) fn wait_dag(web: &Web, dag_id: &str) -> Value {
    wait_until(&format!("DAG {dag_id} to be loaded"), || {
        let resp = web.get(&format!("/api/v1/dags/{dag_id}"));
        (resp.status == 200).then(|| resp.json())
    })
}

/// Triggers a run (expecting 201) and returns its id.
fn trigger(web: &Web, dag_id: &str, body: &Value) -> i64 {
    web.post(&format!("/api/v1/dags/{dag_id}/runs"), body)
        .expect(201)["run_id"]
        .as_i64()
        .expect("a run id")
}

/// Waits until a run has finished and returns it (with its task counts).
pub(crate) fn wait_run(web: &Web, run_id: i64) -> Value {
    wait_until(&format!("run {run_id} to finish"), || {
        let run = web.get(&run_path(run_id)).expect(200);
        matches!(
            run["state"].as_str(),
            Some("success" | "failed" | "cancelled")
        )
        .then_some(run)
    })
}

/// Waits until `check` holds for a task instance (with its attempts).
fn wait_task(
    web: &Web,
    run_id: i64,
    task_id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(&format!("task {task_id} of run {run_id}: {what}"), || {
        let t = web.get(&task_path(run_id, task_id)).expect(200);
        check(&t).then_some(t)
    })
}

/// The task instances of a run by id.
fn tasks(web: &Web, run_id: i64) -> BTreeMap<String, Value> {
    web.get(&format!("{}/tasks", run_path(run_id)))
        .expect(200)
        .as_array()
        .expect("a list of task instances")
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap_or_default().to_owned(),
                t.clone(),
            )
        })
        .collect()
}

/// Each attempt's state, in try order.
fn attempt_states(task: &Value) -> Vec<String> {
    task["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `text` of every line of a log page, with its stream.
fn log_lines(page: &Value) -> Vec<(String, String)> {
    page["lines"]
        .as_array()
        .expect("log lines")
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap_or_default().to_owned(),
                l["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A whole attempt's log, read a page of `limit` lines at a time; returns the
/// pages.
fn read_log(web: &Web, run_id: i64, task_id: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut after = 0;
    for _ in 0..1000 {
        let page = web
            .get(&format!(
                "{}/logs?{query}&after={after}&limit={limit}",
                task_path(run_id, task_id)
            ))
            .expect(200);
        let finished = page["finished"] == true;
        after = page["next_after"].as_i64().expect("next_after");
        pages.push(page);
        if finished {
            return pages;
        }
    }
    panic!("the log of {task_id} in run {run_id} never finished: {pages:#?}");
}

/// The stdout lines of a log, in order.
fn stdout_of(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(log_lines)
        .filter(|(stream, _)| stream == "stdout")
        .map(|(_, text)| text)
        .collect()
}

/// Sends raw `body` bytes with `content_type` (none with `None`).
fn send_raw(
    web: &Web,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    let headers: Vec<(&str, &str)> = content_type
        .map(|c| ("content-type", c))
        .into_iter()
        .collect();
    web.send(method, path, &headers, Some(body.to_vec()))
}

/// The ways a JSON body can be wrong, each with the problem it must get:
/// malformed or empty (400), not declared as JSON (415, with another content
/// type or none), an unknown field next to the fields of `valid` (400), an
/// array instead of an object (400).
fn check_bad_bodies(web: &Web, method: &str, path: &str, valid: &Value) {
    let text = serde_json::to_vec(valid).expect("JSON");
    send_raw(web, method, path, Some("application/json"), b"{\"oops\":").problem(400);
    send_raw(web, method, path, Some("application/json"), b"").problem(400);
    send_raw(web, method, path, Some("text/plain"), &text).problem(415);
    send_raw(web, method, path, None, &text).problem(415);
    let mut unknown = valid.clone();
    unknown["no_such_field"] = json!(1);
    let detail = web.send_json(method, path, &unknown).problem(400);
    assert!(
        detail.contains("no_such_field"),
        "{method} {path}: {detail}"
    );
    let detail = web.send_json(method, path, &json!([])).problem(400);
    assert!(!detail.is_empty(), "{method} {path}");
}

// ------------------------------------------------------------------ DAGs

const ALPHA_V1: &str = "description: First of the two
tags: [team-a]
params:
  region: eu
  api_token: abc123secret
tasks:
  hello:
    run: echo hello
";

const ALPHA_V2: &str = "description: First of the two, now with a goodbye
tags: [team-a]
params:
  region: eu
  api_token: abc123secret
tasks:
  hello:
    run: echo hello
  goodbye:
    needs: [hello]
    run: echo goodbye
";

fn dag_ids(list: &Value) -> Vec<String> {
    list["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .map(|d| d["dag_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn api_dags_pause_source_versions_slots_and_import_errors() {
    let home = Home::new();
    home.write_dag("alpha.yaml", ALPHA_V1);
    let beta = format!(
        "schedule: \"@daily\"\nstart_date: {}\ncatchup: false\ntasks:\n  a:\n    run: echo a\n  b:\n    needs: [a]\n    retries: 2\n    run: echo b\n",
        utc_date(-3)
    );
    home.write_dag("beta.yaml", &beta);
    let (_gale, web) = web::start(&home);
    let alpha = wait_dag(&web, "alpha");
    wait_dag(&web, "beta");

    // The list: id order, filters, paging.
    let all = web.get("/api/v1/dags").expect(200);
    assert_eq!(dag_ids(&all), ["alpha", "beta"], "{all:#}");
    assert_eq!(
        (&all["total"], &all["limit"], &all["offset"]),
        (&json!(2), &json!(100), &json!(0))
    );
    let second = web.get("/api/v1/dags?limit=1&offset=1").expect(200);
    assert_eq!(dag_ids(&second), ["beta"], "{second:#}");
    assert_eq!(
        second["total"], 2,
        "the total counts every match: {second:#}"
    );
    assert_eq!(
        dag_ids(&web.get("/api/v1/dags?q=FIRST").expect(200)),
        ["alpha"]
    );
    assert_eq!(
        dag_ids(&web.get("/api/v1/dags?q=bet").expect(200)),
        ["beta"]
    );
    assert_eq!(
        dag_ids(&web.get("/api/v1/dags?tag=team-a").expect(200)),
        ["alpha"]
    );
    assert!(dag_ids(&web.get("/api/v1/dags?offset=5").expect(200)).is_empty());
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=many",
        "paused=maybe",
        "offset=-1",
    ] {
        web.get(&format!("/api/v1/dags?{bad}")).problem(400);
    }

    // One DAG: its tasks, with secret-looking params masked.
    assert_eq!(alpha["params"]["region"], "eu", "{alpha:#}");
    assert_eq!(alpha["params"]["api_token"], "***", "{alpha:#}");
    assert!(!alpha.to_string().contains("abc123secret"), "{alpha:#}");
    assert_eq!(alpha["tasks"][0]["task_id"], "hello", "{alpha:#}");
    assert_eq!(alpha["tasks"][0]["kind"], "shell", "{alpha:#}");
    assert_eq!(alpha["description"], "First of the two");
    assert_eq!(alpha["tags"], json!(["team-a"]));
    assert_eq!(alpha["schedule"], Value::Null);
    let beta = web.get("/api/v1/dags/beta").expect(200);
    assert_eq!(beta["schedule"], "@daily", "{beta:#}");
    assert!(beta["schedule_words"].is_string(), "{beta:#}");
    assert!(beta["next_run"].is_string(), "{beta:#}");
    assert_eq!(beta["catchup"], false, "{beta:#}");
    let b = &beta["tasks"][1];
    assert_eq!(
        (&b["task_id"], &b["needs"], &b["retries"]),
        (&json!("b"), &json!(["a"]), &json!(2)),
        "{beta:#}"
    );
    assert_eq!(b["trigger_rule"], "all_success", "{beta:#}");
    web.get("/api/v1/dags/nosuchdag").problem(404);

    // The slot ledger: without catchup, the latest slot runs and the older
    // ones since the start date are passed over.
    let slots = wait_until("beta's latest slot to get a run", || {
        let slots = web.get("/api/v1/dags/beta/slots").expect(200);
        let list = slots.as_array()?.clone();
        list.iter().any(|s| s["status"] == "run").then_some(list)
    });
    assert_eq!(
        slots[0]["status"], "run",
        "the newest slot has the run: {slots:#?}"
    );
    let run_id = slots[0]["run_id"].as_i64().expect("the slot's run id");
    assert_eq!(web.get(&run_path(run_id)).expect(200)["dag_id"], "beta");
    // (A run for a newer slot appears if UTC midnight passes meanwhile.)
    for s in &slots {
        match s["status"].as_str() {
            Some("run") => assert!(s["run_id"].is_i64(), "{slots:#?}"),
            Some("skipped") => assert_eq!(s["run_id"], Value::Null, "{slots:#?}"),
            _ => panic!("neither run nor skipped: {slots:#?}"),
        }
    }
    assert!(
        slots.iter().filter(|s| s["status"] == "skipped").count() >= 2,
        "the slots of the two days before the latest are skipped: {slots:#?}"
    );
    let one = web.get("/api/v1/dags/beta/slots?limit=1").expect(200);
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one:#}");
    web.get("/api/v1/dags/beta/slots?limit=0").problem(400);
    web.get("/api/v1/dags/beta/slots?limit=1001").problem(400);
    web.get("/api/v1/dags/nosuchdag/slots").problem(404);

    // Pause and unpause.
    let paused = web
        .patch("/api/v1/dags/beta", &json!({"paused": true}))
        .expect(200);
    assert_eq!(paused["paused"], true, "{paused:#}");
    assert_eq!(
        paused["next_run"],
        Value::Null,
        "a paused DAG has no next run: {paused:#}"
    );
    assert_eq!(
        dag_ids(&web.get("/api/v1/dags?paused=true").expect(200)),
        ["beta"]
    );
    assert_eq!(
        dag_ids(&web.get("/api/v1/dags?paused=false").expect(200)),
        ["alpha"]
    );
    let unpaused = web
        .patch("/api/v1/dags/beta", &json!({"paused": false}))
        .expect(200);
    assert_eq!(unpaused["paused"], false, "{unpaused:#}");
    assert!(unpaused["next_run"].is_string(), "{unpaused:#}");
    check_bad_bodies(&web, "PATCH", "/api/v1/dags/beta", &json!({"paused": true}));
    web.patch("/api/v1/dags/beta", &json!({"paused": "yes"}))
        .problem(400);
    web.patch("/api/v1/dags/beta", &json!({})).problem(400);
    web.patch("/api/v1/dags/nosuchdag", &json!({"paused": true}))
        .problem(404);
    assert_eq!(
        web.get("/api/v1/dags/beta").expect(200)["paused"],
        false,
        "refused patches change nothing"
    );

    // Source and versions, before and after the file changes.
    let v1 = web.get("/api/v1/dags/alpha/source").expect(200);
    assert_eq!(v1["source"], ALPHA_V1, "{v1:#}");
    assert_eq!(v1["version_hash"], alpha["version_hash"], "{v1:#}");
    assert!(
        v1["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("alpha.yaml")),
        "{v1:#}"
    );
    let v1_hash = v1["version_hash"]
        .as_str()
        .expect("a version hash")
        .to_owned();
    home.write_dag("alpha.yaml", ALPHA_V2);
    let v2_hash = wait_until("the changed alpha.yaml to be stored", || {
        let dag = web.get("/api/v1/dags/alpha").expect(200);
        let hash = dag["version_hash"].as_str()?.to_owned();
        (hash != v1_hash).then_some(hash)
    });
    let versions = web.get("/api/v1/dags/alpha/versions").expect(200);
    let hashes: Vec<&str> = versions
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version_hash"].as_str())
        .collect();
    assert_eq!(
        hashes,
        [v2_hash.as_str(), v1_hash.as_str()],
        "newest first: {versions:#}"
    );
    assert_eq!(
        web.get("/api/v1/dags/alpha/source").expect(200)["source"],
        ALPHA_V2
    );
    let old = web
        .get(&format!("/api/v1/dags/alpha/source?version={v1_hash}"))
        .expect(200);
    assert_eq!(
        (&old["source"], &old["version_hash"]),
        (&json!(ALPHA_V1), &json!(v1_hash))
    );
    let now = web.get("/api/v1/dags/alpha").expect(200);
    let task_ids: Vec<&Value> = now["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| &t["task_id"])
        .collect();
    assert_eq!(task_ids, [&json!("hello"), &json!("goodbye")], "{now:#}");
    web.get("/api/v1/dags/alpha/source?version=0123456789abcdef")
        .problem(404);
    web.get("/api/v1/dags/nosuchdag/source").problem(404);
    web.get("/api/v1/dags/nosuchdag/versions").problem(404);

    // A broken file: an import error with file:line:column, and no DAG.
    home.write_dag(
        "broken.yaml",
        "tasks:\n  x:\n    needs: [missing]\n    run: echo x\n",
    );
    let error = wait_until("broken.yaml's import error", || {
        let errors = web.get("/api/v1/import-errors").expect(200);
        errors
            .as_array()?
            .iter()
            .find(|e| {
                e["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("broken.yaml"))
            })
            .cloned()
    });
    let first = error["errors"][0].as_str().expect("an error line");
    let file = error["file"].as_str().expect("file");
    let place = first
        .strip_prefix(&format!("{file}:"))
        .unwrap_or_else(|| panic!("the error starts with its file: {error:#}"));
    let mut parts = place.splitn(3, ':');
    let (line, column) = (parts.next(), parts.next());
    assert_eq!(line, Some("3"), "the line of `needs`: {error:#}");
    assert!(
        column.is_some_and(|c| c.parse::<u32>().is_ok()),
        "{error:#}"
    );
    assert!(first.contains("missing"), "{error:#}");
    web.get("/api/v1/dags/broken").problem(404);
    assert_eq!(
        dag_ids(&web.get("/api/v1/dags").expect(200)),
        ["alpha", "beta"]
    );
    // Fixed, it loads and its error goes away.
    home.write_dag("broken.yaml", "tasks:\n  x:\n    run: echo x\n");
    wait_dag(&web, "broken");
    wait_until("broken.yaml's import error to clear", || {
        let errors = web.get("/api/v1/import-errors").expect(200);
        errors.as_array()?.is_empty().then_some(())
    });
}

// ------------------------------------------------------------------ runs

const QUICK: &str = "params:
  region: us
  db_password: {type: string, secret: true, default: unset}
tasks:
  say:
    run: echo \"region {{ params.region }}\"
";

#[test]
fn api_trigger_list_runs_mark_and_request_errors() {
    let home = Home::new();
    home.write_dag("quick.yaml", QUICK);
    let (_gale, web) = web::start(&home);
    wait_dag(&web, "quick");

    // Trigger with conf and a logical date; secrets are masked in answers.
    let body =
        json!({"conf": {"region": "eu", "db_password": "hunter2"}, "logical_date": "2025-03-01"});
    let resp = web.post("/api/v1/dags/quick/runs", &body);
    let run = resp.expect(201);
    assert!(!resp.text().contains("hunter2"), "{run:#}");
    assert_eq!(
        run["conf"],
        json!({"region": "eu", "db_password": "***"}),
        "{run:#}"
    );
    assert_eq!(run["dag_id"], "quick", "{run:#}");
    assert_eq!(run["run_type"], "manual", "{run:#}");
    assert_eq!(run["logical_date"], "2025-03-01T00:00:00Z", "{run:#}");
    assert!(
        run["run_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("manual__2025-03-01")),
        "{run:#}"
    );
    let first = run["run_id"].as_i64().expect("run id");
    let detail = web.post("/api/v1/dags/quick/runs", &body).problem(409);
    assert!(detail.contains("already has a manual run"), "{detail}");

    let done = wait_run(&web, first);
    assert_eq!(done["state"], "success", "{done:#}");
    assert_eq!(done["task_counts"], json!({"success": 1}), "{done:#}");
    assert_eq!(done["conf"]["db_password"], "***", "{done:#}");
    assert!(
        done["started_at"].is_string() && done["ended_at"].is_string(),
        "{done:#}"
    );
    let log = stdout_of(&read_log(&web, first, "say", "try=1", 1000));
    assert_eq!(log, ["region eu"], "the conf reaches the task");
    let say = web.get(&task_path(first, "say")).expect(200);
    assert_eq!(
        (&say["state"], &say["try_number"]),
        (&json!("success"), &json!(1)),
        "{say:#}"
    );
    assert_eq!(attempt_states(&say), ["success"], "{say:#}");
    assert_eq!(say["attempts"][0]["exit_code"], 0, "{say:#}");

    // More runs, then page through them newest first.
    let mut ids = vec![first];
    for day in 2..=5 {
        ids.push(trigger(
            &web,
            "quick",
            &json!({"logical_date": format!("2025-03-0{day}")}),
        ));
    }
    ids.push(trigger(&web, "quick", &json!({})));
    for &id in &ids {
        assert_eq!(wait_run(&web, id)["state"], "success");
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    for limit in [1, 2, 4, 6, 7] {
        let mut seen = Vec::new();
        let mut before = String::new();
        for _ in 0..10 {
            let page = web
                .get(&format!("/api/v1/runs?dag_id=quick&limit={limit}{before}"))
                .expect(200);
            let runs = page["runs"].as_array().expect("runs");
            assert!(runs.len() <= limit, "limit {limit}: {page:#}");
            seen.extend(runs.iter().filter_map(|r| r["run_id"].as_i64()));
            match page["next_before"].as_i64() {
                Some(next) => {
                    assert_eq!(
                        runs.len(),
                        limit,
                        "only a full page has a next one: {page:#}"
                    );
                    assert_eq!(Some(next), runs.last().and_then(|r| r["run_id"].as_i64()));
                    before = format!("&before={next}");
                }
                None => break,
            }
        }
        assert_eq!(seen, ids, "limit {limit}: every run once, newest first");
    }
    let count = |query: &str| {
        web.get(&format!("/api/v1/runs?dag_id=quick&{query}"))
            .expect(200)["runs"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(count("state=success"), 6);
    assert_eq!(count("state=failed"), 0);
    assert_eq!(count("run_type=manual"), 6);
    assert_eq!(count("run_type=scheduled"), 0);
    assert_eq!(count(&format!("before={}", ids[1])), 4);
    let listed = web.get("/api/v1/runs?dag_id=quick&limit=1000").expect(200);
    assert!(!listed.to_string().contains("hunter2"), "{listed:#}");
    for bad in [
        "state=bogus",
        "run_type=bogus",
        "limit=0",
        "limit=1001",
        "before=abc",
    ] {
        web.get(&format!("/api/v1/runs?{bad}")).problem(400);
    }

    // Trigger refusals.
    web.post("/api/v1/dags/nosuchdag/runs", &json!({}))
        .problem(404);
    let detail = web
        .post(
            "/api/v1/dags/quick/runs",
            &json!({"logical_date": "yesterday"}),
        )
        .problem(400);
    assert!(detail.contains("logical date"), "{detail}");
    web.post("/api/v1/dags/quick/runs", &json!({"conf": [1, 2]}))
        .problem(400);
    check_bad_bodies(
        &web,
        "POST",
        "/api/v1/dags/quick/runs",
        &json!({"logical_date": "2025-04-01"}),
    );
    let huge = json!({"conf": {"blob": "x".repeat(BODY_LIMIT)}, "logical_date": "2025-04-02"});
    web.post("/api/v1/dags/quick/runs", &huge).problem(413);
    assert_eq!(count("limit=1000"), 6, "no refused trigger created a run");

    // Unknown ids.
    web.get(&run_path(NO_RUN)).problem(404);
    web.get("/api/v1/runs/abc").problem(400);
    web.get(&format!("{}/tasks", run_path(NO_RUN))).problem(404);
    web.get(&task_path(NO_RUN, "say")).problem(404);
    web.get(&task_path(first, "nosuchtask")).problem(404);
    web.get(&format!("{}/logs", task_path(NO_RUN, "say")))
        .problem(404);
    web.get(&format!("{}/logs", task_path(first, "nosuchtask")))
        .problem(404);
    for attempt in [0, 2] {
        let detail = web
            .get(&format!("{}/logs?try={attempt}", task_path(first, "say")))
            .problem(404);
        assert!(
            detail.contains(&format!("no attempt {attempt}")),
            "{detail}"
        );
    }

    // Marking a run: not with its current state, nor an unknown state.
    let detail = web
        .post(
            &format!("{}/mark", run_path(first)),
            &json!({"state": "success"}),
        )
        .problem(409);
    assert!(detail.contains("already"), "{detail}");
    web.post(
        &format!("{}/mark", run_path(first)),
        &json!({"state": "bogus"}),
    )
    .problem(400);
    check_bad_bodies(
        &web,
        "POST",
        &format!("{}/mark", run_path(first)),
        &json!({"state": "failed"}),
    );
    web.post(
        &format!("{}/mark", run_path(NO_RUN)),
        &json!({"state": "failed"}),
    )
    .problem(404);
    let marked = web
        .post(
            &format!("{}/mark", run_path(first)),
            &json!({"state": "failed"}),
        )
        .expect(200);
    assert_eq!(marked["state"], "failed", "{marked:#}");
    assert_eq!(web.get(&run_path(first)).expect(200)["state"], "failed");
    web.post(
        &format!("{}/mark", run_path(first)),
        &json!({"state": "failed"}),
    )
    .problem(409);

    // Marking a task.
    let say_mark = format!("{}/mark", task_path(ids[1], "say"));
    web.post(&say_mark, &json!({"state": "success"}))
        .problem(409);
    let t = web.post(&say_mark, &json!({"state": "failed"})).expect(200);
    assert_eq!(
        (&t["task_id"], &t["state"]),
        (&json!("say"), &json!("failed")),
        "{t:#}"
    );
    web.post(&say_mark, &json!({"state": "failed"}))
        .problem(409);
    web.post(&say_mark, &json!({"state": "skipped"}))
        .problem(400);
    check_bad_bodies(&web, "POST", &say_mark, &json!({"state": "success"}));
    web.post(
        &format!("{}/mark", task_path(ids[1], "nosuchtask")),
        &json!({"state": "success"}),
    )
    .problem(404);
    web.post(
        &format!("{}/mark", task_path(NO_RUN, "say")),
        &json!({"state": "success"}),
    )
    .problem(404);

    // A finished run cannot be cancelled.
    let detail = web
        .send("POST", &format!("{}/cancel", run_path(ids[2])), &[], None)
        .problem(409);
    assert!(detail.contains("already finished"), "{detail}");
    web.send("POST", &format!("{}/cancel", run_path(NO_RUN)), &[], None)
        .problem(404);
}

#[test]
fn api_cancel_mark_running_and_logs() {
    let home = Home::new();
    home.write_dag(
        "slow.yaml",
        "tasks:\n  nap:\n    run: sleep 30\n  after:\n    needs: [nap]\n    run: echo after\n",
    );
    home.write_dag(
        "blocker.yaml",
        "tasks:\n  hold:\n    run: sleep 30\n  then:\n    needs: [hold]\n    run: echo then\n",
    );
    home.write_dag(
        "chatty.yaml",
        "tasks:\n  lines:\n    run: 'for i in $(seq 1 25); do echo \"line $i\"; done'\n",
    );
    let gate = home.file("gate");
    home.write_dag(
        "gated.yaml",
        &format!(
            "tasks:\n  gate:\n    run: 'echo waiting; while [ ! -e \"{gate}\" ]; do sleep 0.1; done; echo released'\n"
        ),
    );
    let (_gale, web) = web::start(&home);
    for dag in ["slow", "blocker", "chatty", "gated"] {
        wait_dag(&web, dag);
    }

    // Cancel a running run: its running attempt is killed and says so.
    let slow = trigger(&web, "slow", &json!({}));
    let nap = wait_task(&web, slow, "nap", "running with a pid", |t| {
        t["state"] == "running" && t["attempts"][0]["pid"].is_i64()
    });
    let pid = i32::try_from(nap["attempts"][0]["pid"].as_i64().expect("pid")).expect("a pid");
    let detail = web
        .post(&format!("{}/clear", task_path(slow, "nap")), &json!({}))
        .problem(409);
    assert!(detail.contains("running"), "{detail}");
    web.post(
        &format!("{}/clear", run_path(slow)),
        &json!({"task_ids": ["nap"]}),
    )
    .problem(409);
    let cancelled = web
        .send("POST", &format!("{}/cancel", run_path(slow)), &[], None)
        .expect(200);
    assert_eq!(cancelled["run_id"], slow, "{cancelled:#}");
    let run = wait_run(&web, slow);
    assert_eq!(run["state"], "cancelled", "{run:#}");
    let nap = wait_task(&web, slow, "nap", "its attempt to end", |t| {
        t["attempts"][0]["ended_at"].is_string()
    });
    assert_eq!(nap["state"], "failed", "{nap:#}");
    assert_eq!(attempt_states(&nap), ["cancelled"], "{nap:#}");
    let after = web.get(&task_path(slow, "after")).expect(200);
    assert!(
        matches!(after["state"].as_str(), Some("skipped" | "upstream_failed")),
        "{after:#}"
    );
    assert_eq!(after["try_number"], 0, "never started: {after:#}");
    let detail = web
        .get(&format!("{}/logs", task_path(slow, "after")))
        .problem(404);
    assert!(detail.contains("has not started"), "{detail}");
    wait_until(
        &format!("the cancelled task's process {pid} to be gone"),
        || (!alive_in_group(pid, pid)).then_some(()),
    );
    web.send("POST", &format!("{}/cancel", run_path(slow)), &[], None)
        .problem(409);

    // Mark a running task success: the attempt is stopped, the run goes on.
    let blocker = trigger(&web, "blocker", &json!({}));
    let hold = wait_task(&web, blocker, "hold", "running with a pid", |t| {
        t["state"] == "running" && t["attempts"][0]["pid"].is_i64()
    });
    let pid = i32::try_from(hold["attempts"][0]["pid"].as_i64().expect("pid")).expect("a pid");
    let marked = web
        .post(
            &format!("{}/mark", task_path(blocker, "hold")),
            &json!({"state": "success"}),
        )
        .expect(200);
    assert_eq!(marked["state"], "success", "{marked:#}");
    let run = wait_run(&web, blocker);
    assert_eq!(run["state"], "success", "{run:#}");
    assert_eq!(run["task_counts"], json!({"success": 2}), "{run:#}");
    let hold = wait_task(&web, blocker, "hold", "its attempt to end", |t| {
        t["attempts"][0]["ended_at"].is_string()
    });
    assert_eq!(attempt_states(&hold), ["marked_success"], "{hold:#}");
    wait_until(
        &format!("the marked task's process {pid} to be gone"),
        || (!alive_in_group(pid, pid)).then_some(()),
    );
    web.post(
        &format!("{}/mark", task_path(blocker, "hold")),
        &json!({"state": "success"}),
    )
    .problem(409);

    // A finished attempt's log, a page at a time.
    let chatty = trigger(&web, "chatty", &json!({}));
    assert_eq!(wait_run(&web, chatty)["state"], "success");
    let pages = read_log(&web, chatty, "lines", "try=1", 10);
    let expected: Vec<String> = (1..=25).map(|i| format!("line {i}")).collect();
    assert_eq!(stdout_of(&pages), expected);
    let mut last_seq = 0;
    for (i, page) in pages.iter().enumerate() {
        let lines = page["lines"].as_array().expect("lines");
        assert!(lines.len() <= 10, "{page:#}");
        for l in lines {
            let seq = l["seq"].as_i64().expect("seq");
            assert!(seq > last_seq, "sequence numbers grow: {pages:#?}");
            last_seq = seq;
        }
        assert_eq!(page["try_number"], 1);
        assert_eq!(
            page["finished"],
            i + 1 == pages.len(),
            "only the last page is finished: {pages:#?}"
        );
    }
    assert!(
        pages.len() >= 3,
        "25 lines and more in pages of 10: {pages:#?}"
    );
    let whole = read_log(&web, chatty, "lines", "follow=true", 1000);
    assert_eq!(
        whole.len(),
        1,
        "the default is the latest attempt, whole: {whole:#?}"
    );
    assert_eq!(stdout_of(&whole), expected);
    let logs = format!("{}/logs", task_path(chatty, "lines"));
    let end = web
        .get(&format!("{logs}?after={last_seq}&follow=true"))
        .expect(200);
    assert_eq!(
        (&end["finished"], &end["next_after"]),
        (&json!(true), &json!(last_seq)),
        "{end:#}"
    );
    assert!(log_lines(&end).is_empty(), "{end:#}");
    for bad in [
        "limit=0",
        "limit=10001",
        "after=abc",
        "try=-1",
        "follow=perhaps",
    ] {
        web.get(&format!("{logs}?{bad}")).problem(400);
    }

    // Following a running attempt's log: each answer brings the lines written
    // since `after`, until the attempt has ended.
    let gated = trigger(&web, "gated", &json!({}));
    let logs = format!("{}/logs", task_path(gated, "gate"));
    let mut after = wait_until("the gated task to print `waiting`", || {
        let resp = web.get(&logs);
        if resp.status == 404 {
            return None;
        }
        let page = resp.expect(200);
        let lines = log_lines(&page);
        lines
            .iter()
            .any(|(_, t)| t == "waiting")
            .then(|| page["next_after"].as_i64())?
    });
    let mut text: Vec<String> = Vec::new();
    let first = std::thread::scope(|s| {
        let follower = s.spawn(|| {
            web.get(&format!("{logs}?after={after}&follow=true"))
                .expect(200)
        });
        std::fs::write(&gate, "").expect("opening the gate");
        follower.join().expect("the follow request")
    });
    assert_eq!(first["try_number"], 1);
    let mut page = first;
    let mut finished = false;
    for _ in 0..100 {
        text.extend(log_lines(&page).into_iter().map(|(_, t)| t));
        after = page["next_after"].as_i64().expect("next_after");
        if page["finished"] == true {
            finished = true;
            break;
        }
        page = web
            .get(&format!("{logs}?after={after}&follow=true"))
            .expect(200);
    }
    assert!(finished, "the follow ended with the attempt: {text:?}");
    assert!(text.contains(&"released".to_owned()), "{text:?}");
    assert!(
        !text.contains(&"waiting".to_owned()),
        "only lines after `after`: {text:?}"
    );
    assert_eq!(wait_run(&web, gated)["state"], "success");
}

#[test]
fn api_clear_failed_tasks_and_they_run_again() {
    let home = Home::new();
    let marker = home.file("flaky-ran-once");
    home.write_dag(
        "flaky.yaml",
        &format!(
            "tasks:
  flaky:
    run: |
      if [ -e \"{marker}\" ]; then echo \"second try\"; else touch \"{marker}\"; echo \"first try\"; exit 1; fi
  after:
    needs: [flaky]
    run: echo after
"
        ),
    );
    let (_gale, web) = web::start(&home);
    wait_dag(&web, "flaky");

    let run_id = trigger(&web, "flaky", &json!({}));
    let run = wait_run(&web, run_id);
    assert_eq!(run["state"], "failed", "{run:#}");
    assert_eq!(
        run["task_counts"],
        json!({"failed": 1, "upstream_failed": 1}),
        "{run:#}"
    );

    // Clear the failed tasks: the run goes back to work and succeeds.
    let cleared = web
        .post(&format!("{}/clear", run_path(run_id)), &json!({}))
        .expect(200);
    let names: BTreeSet<&str> = cleared["cleared"]
        .as_array()
        .expect("cleared")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names, BTreeSet::from(["after", "flaky"]), "{cleared:#}");
    let run = wait_run(&web, run_id);
    assert_eq!(run["state"], "success", "{run:#}");
    let all = tasks(&web, run_id);
    assert_eq!(all["flaky"]["try_number"], 2, "{all:#?}");
    assert_eq!(all["after"]["state"], "success", "{all:#?}");
    let flaky = web.get(&task_path(run_id, "flaky")).expect(200);
    assert_eq!(attempt_states(&flaky), ["failed", "success"], "{flaky:#}");
    assert_eq!(flaky["attempts"][0]["exit_code"], 1, "{flaky:#}");
    assert_eq!(
        stdout_of(&read_log(&web, run_id, "flaky", "try=1", 1000)),
        ["first try"]
    );
    assert_eq!(
        stdout_of(&read_log(&web, run_id, "flaky", "try=2", 1000)),
        ["second try"]
    );
    let latest = web
        .get(&format!("{}/logs", task_path(run_id, "flaky")))
        .expect(200);
    assert_eq!(latest["try_number"], 2, "the default is the latest attempt");

    // Nothing failed now: nothing to clear.
    let none = web
        .post(&format!("{}/clear", run_path(run_id)), &json!({}))
        .expect(200);
    assert_eq!(none["cleared"], json!([]), "{none:#}");
    assert_eq!(web.get(&run_path(run_id)).expect(200)["state"], "success");

    // One task again, then one with what depends on it.
    let one = web
        .post(&format!("{}/clear", task_path(run_id, "after")), &json!({}))
        .expect(200);
    assert_eq!(one["cleared"], json!(["after"]), "{one:#}");
    assert_eq!(wait_run(&web, run_id)["state"], "success");
    assert_eq!(tasks(&web, run_id)["after"]["try_number"], 2);
    let both = web
        .post(
            &format!("{}/clear", task_path(run_id, "flaky")),
            &json!({"downstream": true}),
        )
        .expect(200);
    let names: BTreeSet<&str> = both["cleared"]
        .as_array()
        .expect("cleared")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names, BTreeSet::from(["after", "flaky"]), "{both:#}");
    assert_eq!(wait_run(&web, run_id)["state"], "success");
    let all = tasks(&web, run_id);
    assert_eq!(
        (&all["flaky"]["try_number"], &all["after"]["try_number"]),
        (&json!(3), &json!(3)),
        "{all:#?}"
    );
    let named = web
        .post(
            &format!("{}/clear", run_path(run_id)),
            &json!({"task_ids": ["after"], "downstream": true}),
        )
        .expect(200);
    assert_eq!(named["cleared"], json!(["after"]), "{named:#}");
    assert_eq!(wait_run(&web, run_id)["state"], "success");

    // Refusals.
    web.post(
        &format!("{}/clear", run_path(run_id)),
        &json!({"task_ids": []}),
    )
    .problem(400);
    web.post(
        &format!("{}/clear", run_path(run_id)),
        &json!({"task_ids": ["nosuchtask"]}),
    )
    .problem(404);
    web.post(&format!("{}/clear", run_path(NO_RUN)), &json!({}))
        .problem(404);
    web.post(
        &format!("{}/clear", task_path(run_id, "nosuchtask")),
        &json!({}),
    )
    .problem(404);
    web.post(&format!("{}/clear", task_path(NO_RUN, "flaky")), &json!({}))
        .problem(404);
    check_bad_bodies(
        &web,
        "POST",
        &format!("{}/clear", run_path(run_id)),
        &json!({"downstream": false}),
    );
    check_bad_bodies(
        &web,
        "POST",
        &format!("{}/clear", task_path(run_id, "after")),
        &json!({"downstream": false}),
    );
}

// ------------------------------------------------------------------ backfills and the cluster

#[test]
fn api_backfills_nodes_pools_and_version() {
    let home = Home::new();
    home.write_dag(
        "nightly.yaml",
        "schedule: \"@daily\"\nstart_date: 2025-01-01\ncatchup: false\ntasks:\n  day:\n    run: echo \"day {{ ds }}\"\n",
    );
    home.write_dag("adhoc.yaml", "tasks:\n  once:\n    run: echo once\n");
    let (_gale, web) = web::start(&home);
    wait_dag(&web, "nightly");
    wait_dag(&web, "adhoc");

    // A backfill: one run per slot, and its progress.
    let range = json!({"from": "2025-01-01", "to": "2025-01-03"});
    let created = web
        .post("/api/v1/dags/nightly/backfills", &range)
        .expect(201);
    assert_eq!(created["dag_id"], "nightly", "{created:#}");
    assert_eq!(created["created_by"], "admin", "{created:#}");
    assert_eq!(created["from_date"], "2025-01-01T00:00:00Z", "{created:#}");
    assert_eq!(
        created["to_date"], "2025-01-03T23:59:59.999999Z",
        "a bare date takes its whole day: {created:#}"
    );
    assert_eq!(
        created["created_runs"].as_array().map(Vec::len),
        Some(3),
        "{created:#}"
    );
    assert_eq!(
        (&created["existing"], &created["total"]),
        (&json!(0), &json!(3)),
        "{created:#}"
    );
    let id = created["id"].as_i64().expect("backfill id");
    let done = wait_until("the backfill to finish", || {
        let b = web.get(&format!("/api/v1/backfills/{id}")).expect(200);
        (b["done"] == 3).then_some(b)
    });
    assert_eq!(done["runs"], json!({"success": 3}), "{done:#}");
    assert_eq!(done["total"], 3, "{done:#}");
    let runs = web
        .get("/api/v1/runs?dag_id=nightly&run_type=backfill")
        .expect(200);
    let dates: BTreeSet<&str> = runs["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["logical_date"].as_str())
        .collect();
    assert_eq!(
        dates,
        BTreeSet::from([
            "2025-01-01T00:00:00Z",
            "2025-01-02T00:00:00Z",
            "2025-01-03T00:00:00Z"
        ]),
        "{runs:#}"
    );
    let ids_of = |v: Value| -> Vec<i64> {
        v.as_array()
            .expect("backfills")
            .iter()
            .filter_map(|b| b["id"].as_i64())
            .collect()
    };
    assert_eq!(ids_of(web.get("/api/v1/backfills").expect(200)), [id]);
    assert_eq!(
        ids_of(
            web.get("/api/v1/backfills?dag_id=nightly&limit=1")
                .expect(200)
        ),
        [id]
    );
    assert!(ids_of(web.get("/api/v1/backfills?dag_id=adhoc").expect(200)).is_empty());
    // The same range again: every slot has its run already.
    let again = web
        .post("/api/v1/dags/nightly/backfills", &range)
        .expect(201);
    assert_eq!(
        (&again["created_runs"], &again["existing"]),
        (&json!([]), &json!(3)),
        "{again:#}"
    );
    let newest = ids_of(web.get("/api/v1/backfills?limit=1").expect(200));
    assert_eq!(newest, [again["id"].as_i64().expect("id")], "newest first");

    // Refusals.
    let detail = web
        .post(
            "/api/v1/dags/nightly/backfills",
            &json!({"from": "2025-01-03", "to": "2025-01-01"}),
        )
        .problem(400);
    assert!(detail.contains("before"), "{detail}");
    let detail = web
        .post("/api/v1/dags/adhoc/backfills", &range)
        .problem(400);
    assert!(detail.contains("no schedule"), "{detail}");
    web.post(
        "/api/v1/dags/nightly/backfills",
        &json!({"from": "2025-01-01", "to": "soon"}),
    )
    .problem(400);
    // More than 10,000 daily slots from the start_date on.
    web.post(
        "/api/v1/dags/nightly/backfills",
        &json!({"from": "1990-01-01", "to": "2060-01-01"}),
    )
    .problem(400);
    // A range that ends before the start_date has no slot.
    let before = web
        .post(
            "/api/v1/dags/nightly/backfills",
            &json!({"from": "1990-01-01", "to": "1990-02-01"}),
        )
        .problem(400);
    assert!(before.contains("start_date"), "{before}");
    web.post(
        "/api/v1/dags/nightly/backfills",
        &json!({"from": "2025-01-01"}),
    )
    .problem(400);
    web.post("/api/v1/dags/nosuchdag/backfills", &range)
        .problem(404);
    check_bad_bodies(&web, "POST", "/api/v1/dags/nightly/backfills", &range);
    web.get(&format!("/api/v1/backfills/{NO_BACKFILL}"))
        .problem(404);
    web.get("/api/v1/backfills/abc").problem(400);
    web.get("/api/v1/backfills?limit=0").problem(400);
    web.get("/api/v1/backfills?limit=1001").problem(400);

    // The cluster: this one process, its pools, its version.
    let nodes = web.get("/api/v1/nodes").expect(200);
    let nodes = nodes.as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:#?}");
    let roles: BTreeSet<&str> = nodes[0]["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["scheduler", "webserver", "worker"]),
        "{nodes:#?}"
    );
    assert_eq!(nodes[0]["state"], "running", "{nodes:#?}");
    assert_eq!(nodes[0]["version"], env!("CARGO_PKG_VERSION"), "{nodes:#?}");
    assert!(
        nodes[0]["pid"].as_i64().is_some_and(|p| p > 0),
        "{nodes:#?}"
    );
    assert_eq!(web.get("/api/v1/pools").expect(200), json!([]));
    home.ok(&["pools", "set", "etl", "3", "--description", "ETL jobs"]);
    let pools = web.get("/api/v1/pools").expect(200);
    assert_eq!(
        pools,
        json!([{"name": "etl", "slots": 3, "description": "ETL jobs", "queued": 0, "running": 0, "waiting": 0}])
    );
    let version = web.get("/api/v1/version").expect(200);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"), "{version:#}");
    assert!(
        version["schema_version"].as_i64().is_some_and(|v| v > 0),
        "{version:#}"
    );
}

// ------------------------------------------------------------------ the document and the router

/// Every `(method, path)` of the OpenAPI document, e.g. `("post", "/api/v1/runs/{run_id}/cancel")`,
/// with the statuses it documents.
fn operations(doc: &Value) -> Vec<(String, String, BTreeSet<u16>)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let statuses = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(|k| k.parse().unwrap_or_else(|_| panic!("a status: {k}")))
                .collect();
            ops.push((method.clone(), path.clone(), statuses));
        }
    }
    ops
}

/// `path` with its `{placeholders}` filled in from `values`.
fn fill(path: &str, values: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    assert!(!out.contains('{'), "an unknown placeholder in {path}");
    out
}

/// A request for each operation: JSON `{}` for those that take a body.
fn call(web: &Web, method: &str, path: &str) -> Response {
    match method {
        "post" | "patch" | "put" => web.send_json(&method.to_uppercase(), path, &json!({})),
        _ => web.send(&method.to_uppercase(), path, &[], None),
    }
}

/// Whether an answer is the router's own: its fallback 404 or a 405.
fn unrouted(resp: &Response) -> bool {
    resp.status == 405
        || (resp.status == 404
            && resp.json()["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("nothing at")))
}

const PLACEHOLDERS: &[(&str, &str)] = &[
    ("dag_id", "nosuchdag"),
    ("run_id", "987654"),
    ("task_id", "nosuchtask"),
    ("backfill_id", "987654"),
    ("name", "nosuchname"),
];

#[test]
fn openapi_document_matches_the_routes() {
    let home = Home::new();
    let (_gale, web) = web::start(&home);
    assert!(
        web.base().starts_with("http://127.0.0.1:"),
        "{}",
        web.base()
    );
    let resp = web.anonymous().get("/api/v1/openapi.json");
    let doc = resp.expect(200);
    // The reference page reads that same document.
    let init = web
        .anonymous()
        .get("/api/docs/swagger-initializer.js")
        .text();
    assert!(init.contains("\"/api/v1/openapi.json\""), "{init}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc:#}"
    );
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{doc:#}"
    );
    let ops = operations(&doc);
    assert!(ops.len() >= 24, "{} operations", ops.len());

    // Errors are documented as problems, and every operation may answer 401
    // and 403 (each needs a credential and a role).
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let responses = op["responses"].as_object().expect("responses");
            for status in ["401", "403"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
            for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let kinds: Vec<&String> = response["content"]
                    .as_object()
                    .map(|c| c.keys().collect())
                    .unwrap_or_default();
                assert_eq!(
                    kinds,
                    ["application/problem+json"],
                    "{method} {path} {status}: {response:#}"
                );
            }
        }
    }

    // Each documented operation reaches its handler, which answers with a
    // status the document lists.
    for (method, path, statuses) in &ops {
        assert!(path.starts_with("/api/v1/"), "{path}");
        let url = fill(path, PLACEHOLDERS);
        let resp = call(&web, method, &url);
        assert!(
            !unrouted(&resp),
            "{method} {url} is documented but not routed: {} {}",
            resp.status,
            resp.text()
        );
        assert!(
            statuses.contains(&resp.status),
            "{method} {url}: HTTP {} is not among the documented {statuses:?}: {}",
            resp.status,
            resp.text()
        );
    }

    // Paths and methods the document does not list are problems too.
    for path in [
        "/api/v1",
        "/api/v1/",
        "/api/v1/users",
        "/api/v1/tasks",
        "/api/v1/dags/x/tasks",
        "/api/v1/runs/1/logs",
        "/api/v1/nodes/1",
        "/api/v2/dags",
    ] {
        let detail = web.get(path).problem(404);
        assert!(detail.starts_with("nothing at"), "GET {path}: {detail}");
    }
    for (method, path) in [
        ("PUT", "/api/v1/dags/x"),
        ("PUT", "/api/v1/runs/1"),
        ("DELETE", "/api/v1/dags"),
        ("GET", "/api/v1/runs/1/cancel"),
    ] {
        let resp = web.send(method, path, &[], None);
        resp.problem(405);
        assert!(
            resp.header("allow").is_some_and(|a| !a.is_empty()),
            "{method} {path}: {resp:?}"
        );
    }
}

// ------------------------------------------------------------------ authentication

#[test]
fn api_needs_credentials_and_the_role_for_changes() {
    let home = Home::new();
    home.write_dag("hello.yaml", "tasks:\n  hi:\n    run: echo hi\n");
    let (_gale, admin) = web::start(&home);
    wait_dag(&admin, "hello");
    let run_id = trigger(&admin, "hello", &json!({}));
    wait_run(&admin, run_id);
    let backfill_id = "1";
    let run = run_id.to_string();
    let values = [
        ("dag_id", "hello"),
        ("run_id", run.as_str()),
        ("task_id", "hi"),
        ("backfill_id", backfill_id),
        ("name", "nosuchname"),
    ];
    let doc = admin.anonymous().get("/api/v1/openapi.json").expect(200);
    // Every operation but the one that checks a password itself (a token by
    // password: see `web_attack`).
    let ops: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(method, path, _)| !(method == "post" && path == "/api/v1/tokens"))
        .collect();
    assert!(!ops.is_empty());

    // Without credentials, or with a wrong one: 401, with a bearer challenge.
    let anonymous = admin.anonymous();
    let stranger = admin.with_token("gale_not-a-token");
    for (method, path, _) in &ops {
        let url = fill(path, &values);
        for (who, web) in [("anonymous", &anonymous), ("bad token", &stranger)] {
            let resp = call(web, method, &url);
            resp.problem(401);
            assert_eq!(
                resp.header("www-authenticate"),
                Some("Bearer"),
                "{who}: {method} {url}"
            );
        }
    }
    for header in ["Basic YWRtaW46YWRtaW4=", "Bearer", "gale_abc"] {
        anonymous
            .send("GET", "/api/v1/dags", &[("authorization", header)], None)
            .problem(401);
    }
    // The router's 404 is not a way to probe without credentials.
    anonymous.get("/api/v1/nosuchthing").problem(401);

    // A viewer reads everything but the audit log (admins only) and changes
    // nothing (variables, connections and alert channels: admins only too).
    let viewer = admin.with_token(&web::user_token(&home, "vera", "viewer"));
    for (method, path, _) in &ops {
        let url = fill(path, &values);
        let resp = call(&viewer, method, &url);
        let vault = path.starts_with("/api/v1/variables")
            || path.starts_with("/api/v1/connections")
            || path.starts_with("/api/v1/alerts");
        if path == "/api/v1/audit" || (vault && method != "get") {
            let detail = resp.problem(403);
            assert!(detail.contains("admin"), "{method} {url}: {detail}");
        } else if method == "get" {
            let missing = path.contains("{backfill_id}") || path.contains("{name}");
            assert!(
                resp.status == 200 || (missing && resp.status == 404),
                "a viewer reads {url}: HTTP {} {}",
                resp.status,
                resp.text()
            );
        } else {
            let detail = resp.problem(403);
            assert!(
                detail.contains("viewer") && detail.contains("operator"),
                "{method} {url}: {detail}"
            );
        }
    }
    assert_eq!(
        admin.get(&run_path(run_id)).expect(200)["state"],
        "success",
        "the viewer changed nothing"
    );
    assert_eq!(admin.get("/api/v1/dags/hello").expect(200)["paused"], false);

    // An operator may change things.
    let operator = admin.with_token(&web::user_token(&home, "otto", "operator"));
    assert_eq!(
        operator
            .patch("/api/v1/dags/hello", &json!({"paused": true}))
            .expect(200)["paused"],
        true
    );
    // A revoked token is refused at once.
    let tokens = home.json(&["tokens", "list", "--user", "otto"]);
    let token_id = tokens[0]["id"].as_i64().expect("a token id").to_string();
    home.ok(&["tokens", "revoke", &token_id]);
    operator.get("/api/v1/dags").problem(401);

    // Health, metrics and the API's description need no credentials.
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/api/v1/openapi.json",
    ] {
        let resp = anonymous.get(path);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
    }
}

// ------------------------------------------------------------------ metrics

/// One sample of a metric family: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct MetricFamily {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

/// Parses OpenMetrics text strictly: `# HELP` and `# TYPE` once per family
/// and before its samples, each family's samples together and named after
/// it (with the suffixes its type allows), label values quoted, values
/// numbers, `# EOF` last. Panics, naming the line, on anything else.
fn parse_openmetrics(text: &str) -> BTreeMap<String, MetricFamily> {
    let mut families: BTreeMap<String, MetricFamily> = BTreeMap::new();
    let mut current: Option<String> = None;
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("the text does not end with `# EOF`:\n{text}"));
    for (n, line) in body.lines().enumerate() {
        let n = n + 1;
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (keyword, name, rest) = (words.next(), words.next(), words.next());
            let (Some(keyword), Some(name)) = (keyword, name) else {
                panic!("line {n}: a bare comment: {line}");
            };
            assert!(valid_name(name), "line {n}: bad metric name: {line}");
            if current.as_deref() != Some(name) {
                assert!(
                    !families.contains_key(name),
                    "line {n}: family {name} appears twice"
                );
                current = Some(name.to_owned());
            }
            let family = families.entry(name.to_owned()).or_default();
            assert!(
                family.samples.is_empty(),
                "line {n}: metadata after samples: {line}"
            );
            match (keyword, rest) {
                ("HELP", Some(help)) => {
                    assert!(family.help.is_empty(), "line {n}: a second HELP: {line}");
                    family.help = help.to_owned();
                }
                ("TYPE", Some(kind)) => {
                    assert!(family.kind.is_empty(), "line {n}: a second TYPE: {line}");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "stateset",
                            "gaugehistogram",
                            "unknown"
                        ]
                        .contains(&kind),
                        "line {n}: unknown type: {line}"
                    );
                    family.kind = kind.to_owned();
                }
                ("UNIT", Some(_)) => {}
                _ => panic!("line {n}: unknown metadata: {line}"),
            }
            continue;
        }
        assert!(
            !line.is_empty() && !line.starts_with('#'),
            "line {n}: not a sample: {line:?}"
        );
        let sample = parse_sample(line).unwrap_or_else(|e| panic!("line {n}: {e}: {line}"));
        let family_name = current
            .clone()
            .unwrap_or_else(|| panic!("line {n}: a sample before any TYPE: {line}"));
        let family = families.get_mut(&family_name).expect("the current family");
        assert!(
            !family.kind.is_empty(),
            "line {n}: a sample before its TYPE: {line}"
        );
        let suffixes: &[&str] = match family.kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "summary" => &["", "_count", "_sum", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            suffixes
                .iter()
                .any(|s| sample.name == format!("{family_name}{s}")),
            "line {n}: sample {} does not belong to the {} family {family_name}",
            sample.name,
            family.kind
        );
        family.samples.push(sample);
    }
    for (name, family) in &families {
        assert!(!family.kind.is_empty(), "family {name} has no TYPE");
    }
    families
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        (labels, rest) = parse_labels(inner)?;
    }
    let mut words = rest
        .strip_prefix(' ')
        .ok_or("no space before the value")?
        .split(' ');
    let value = words.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    if let Some(ts) = words.next() {
        ts.parse::<f64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if words.next().is_some() {
        return Err("more than a value and a timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The labels after a `{`, up to and without the closing `}`, and what
/// follows it.
fn parse_labels(inner: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = inner;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("a label without `=`")?;
        let key = &rest[..eq];
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key} has an unquoted value"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('"' | '\\'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?} in label {key}")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("label {key}'s value is not closed")),
            }
        };
        rest = &rest[end + 1..];
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label {key}"));
        }
    }
}

impl MetricFamily {
    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

/// Checks a histogram: cumulative buckets ending in `+Inf` = `_count`;
/// returns its count.
fn histogram_count(families: &BTreeMap<String, MetricFamily>, name: &str) -> f64 {
    let family = families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"));
    assert_eq!(family.kind, "histogram", "{name}");
    let count = family
        .value(&format!("{name}_count"), &[])
        .unwrap_or_else(|| panic!("{name} has no _count"));
    let sum = family
        .value(&format!("{name}_sum"), &[])
        .unwrap_or_else(|| panic!("{name} has no _sum"));
    assert!(sum >= 0.0 && sum.is_finite(), "{name}_sum {sum}");
    let buckets: Vec<(f64, f64)> = family
        .samples
        .iter()
        .filter(|s| s.name == format!("{name}_bucket"))
        .map(|s| {
            let le = s
                .labels
                .get("le")
                .unwrap_or_else(|| panic!("a bucket of {name} without le"));
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or_else(|_| panic!("le {le}"))
            };
            (le, s.value)
        })
        .collect();
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{name}: buckets not cumulative: {buckets:?}"
    );
    assert_eq!(
        buckets.last().copied(),
        Some((f64::INFINITY, count)),
        "{name}: the +Inf bucket is the count"
    );
    count
}

#[test]
fn metrics_are_strict_openmetrics_with_the_expected_families() {
    let home = Home::new();
    home.write_dag("work.yaml", "tasks:\n  step:\n    run: echo step\n");
    home.write_dag(
        "stuck.yaml",
        "tasks:\n  wait:\n    queue: nobody\n    run: echo never\n",
    );
    home.write_dag("busy.yaml", "tasks:\n  nap:\n    run: sleep 30\n");
    let (_gale, web) = web::start(&home);
    for dag in ["work", "stuck", "busy"] {
        wait_dag(&web, dag);
    }

    // Before any run: every family is there, the store's error counters at 0.
    let scrape = || -> BTreeMap<String, MetricFamily> {
        let resp = web.anonymous().get("/metrics");
        assert_eq!(resp.status, 200, "{}", resp.text());
        let kind = resp.header("content-type").unwrap_or_default();
        assert!(
            kind.starts_with("application/openmetrics-text; version=1.0.0"),
            "{kind}"
        );
        parse_openmetrics(&resp.text())
    };
    let families = scrape();
    let expected = [
        ("gale_task_claim_to_start_seconds", "histogram"),
        ("gale_task_queue_wait_seconds", "histogram"),
        ("gale_task_duration_seconds", "histogram"),
        ("gale_scheduler_loop_seconds", "histogram"),
        ("gale_db_errors", "counter"),
        ("gale_database_up", "gauge"),
        ("gale_runs", "gauge"),
        ("gale_task_instances", "gauge"),
        ("gale_queue_depth", "gauge"),
        ("gale_live_nodes", "gauge"),
    ];
    for (name, kind) in expected {
        let family = families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name}: {families:#?}"));
        assert_eq!(family.kind, kind, "{name}");
        assert!(!family.help.is_empty(), "{name} has no HELP");
    }
    let errors = &families["gale_db_errors"];
    for kind in ["unavailable", "full", "database"] {
        let v = errors.value(
            "gale_db_errors_total",
            &[("kind", kind), ("backend", "sqlite")],
        );
        assert!(
            v.is_some_and(|v| v >= 0.0),
            "gale_db_errors_total{{kind={kind}}}: {errors:#?}"
        );
    }
    for (name, labels) in [
        ("gale_runs", vec![("state", "queued")]),
        ("gale_runs", vec![("state", "running")]),
        ("gale_task_instances", vec![("state", "queued")]),
        ("gale_task_instances", vec![("state", "running")]),
        ("gale_queue_depth", vec![("queue", "default")]),
    ] {
        assert!(
            families[name].value(name, &labels).is_some(),
            "{name} {labels:?} at 0 before it happens: {:#?}",
            families[name]
        );
    }

    // After a run, with one task running and one queued where no worker looks.
    let run_id = trigger(&web, "work", &json!({}));
    assert_eq!(wait_run(&web, run_id)["state"], "success");
    let stuck = trigger(&web, "stuck", &json!({}));
    wait_task(&web, stuck, "wait", "queued", |t| t["state"] == "queued");
    let busy = trigger(&web, "busy", &json!({}));
    wait_task(&web, busy, "nap", "running", |t| t["state"] == "running");
    let families = wait_until(
        "a scrape that shows the run, the queued and the running task",
        || {
            let f = scrape();
            let running =
                f["gale_task_instances"].value("gale_task_instances", &[("state", "running")]);
            (running == Some(1.0)).then_some(f)
        },
    );
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        families[name]
            .value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}: {:#?}", families[name]))
    };
    assert_eq!(value("gale_database_up", &[]), 1.0);
    assert_eq!(value("gale_live_nodes", &[("role", "scheduler")]), 1.0);
    assert_eq!(value("gale_live_nodes", &[("role", "worker")]), 1.0);
    assert_eq!(value("gale_live_nodes", &[("role", "webserver")]), 1.0);
    assert_eq!(value("gale_queue_depth", &[("queue", "nobody")]), 1.0);
    assert_eq!(value("gale_queue_depth", &[("queue", "default")]), 0.0);
    assert_eq!(
        value("gale_runs", &[("state", "running")]),
        2.0,
        "busy and stuck are running"
    );
    assert_eq!(value("gale_task_instances", &[("state", "queued")]), 1.0);
    assert!(histogram_count(&families, "gale_task_duration_seconds") >= 1.0);
    assert!(histogram_count(&families, "gale_task_claim_to_start_seconds") >= 2.0);
    assert!(histogram_count(&families, "gale_task_queue_wait_seconds") >= 2.0);
    assert!(histogram_count(&families, "gale_scheduler_loop_seconds") >= 1.0);
    // Finished runs and attempts are counted by state.
    let counted = |family: &str, state: &str| {
        families[family]
            .value(&format!("{family}_total"), &[("state", state)])
            .unwrap_or_else(|| panic!("no {family} {state}: {:#?}", families[family]))
    };
    assert!(counted("gale_runs_finished", "success") >= 1.0);
    assert!(counted("gale_task_attempts_finished", "success") >= 1.0);
    assert_eq!(counted("gale_runs_finished", "failed"), 0.0);
    for kind in ["unavailable", "full", "database"] {
        let v = families["gale_db_errors"].value("gale_db_errors_total", &[("kind", kind)]);
        assert!(
            v.is_some_and(|v| v >= 0.0 && v.fract() == 0.0),
            "{kind}: {v:?}"
        );
    }

    // The health of a standalone: its database and itself as scheduler and worker.
    let health = web.anonymous().get("/health").expect(200);
    assert_eq!(health["status"], "ok", "{health:#}");
    assert_eq!(health["database"]["reachable"], true, "{health:#}");
    assert_eq!(health["problems"], json!([]), "{health:#}");
    assert_eq!(
        health["schedulers"].as_array().map(Vec::len),
        Some(1),
        "{health:#}"
    );
    assert_eq!(
        health["workers"].as_array().map(Vec::len),
        Some(1),
        "{health:#}"
    );
    assert!(
        health["database"]["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("sqlite://")),
        "{health:#}"
    );
    assert_eq!(
        web.anonymous().get("/health/live").expect(200)["status"],
        "ok"
    );
    assert_eq!(
        web.anonymous().get("/health/ready").expect(200)["status"],
        "ok"
    );
}

// ------------------------------------------------------------------ health on PostgreSQL

/// `/health` of the webserver at `web`: (HTTP status, body).
fn health(web: &Web) -> (u16, Value) {
    let resp = web.get("/health");
    (resp.status, resp.json())
}

#[test]
fn health_follows_the_database_and_live_schedulers_on_postgres() {
    let test = "health_follows_the_database_and_live_schedulers_on_postgres";
    let Some(server) = gale_pgtest::server_or_skip(test) else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating the database");
    let home = Home::new();
    std::fs::create_dir_all(home.dags()).expect("creating the DAG folder");
    home.write_dag("tick.yaml", "tasks:\n  t:\n    run: echo tick\n");
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let web_args = ["--bind", "127.0.0.1", "--port", "0"];
    let mut node_args = vec![
        "node",
        "--dags-folder",
        dags.as_str(),
        "--attempt-lease",
        "3s",
    ];
    node_args.extend(web_args);
    let mut node = pg.start_registered("node", &node_args);
    let web = Web::new(&web::wait_url("gale node", || node.log()));

    // Healthy: the database answers and the node's scheduler is live.
    let (status, body) = wait_until("the node's /health to be 200", || {
        let (status, body) = health(&web);
        (status == 200).then_some((status, body))
    });
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok", "{body:#}");
    assert_eq!(body["database"]["reachable"], true, "{body:#}");
    assert!(
        body["database"]["schema_version"]
            .as_i64()
            .is_some_and(|v| v > 0),
        "{body:#}"
    );
    assert!(
        !body["schedulers"]
            .as_array()
            .expect("schedulers")
            .is_empty(),
        "{body:#}"
    );
    assert!(
        !body["workers"].as_array().expect("workers").is_empty(),
        "{body:#}"
    );
    pg.wait_dag("tick");

    // The database goes away: 503 naming it, and the node keeps running.
    server.stop_immediate().expect("stopping PostgreSQL");
    let body = wait_until("/health to be 503 without the database", || {
        node.assert_running();
        let (status, body) = health(&web);
        (status == 503).then_some(body)
    });
    assert_eq!(body["status"], "unavailable", "{body:#}");
    assert_eq!(body["database"]["reachable"], false, "{body:#}");
    let problems = body["problems"].to_string();
    assert!(problems.contains("database"), "{body:#}");
    assert_eq!(web.get("/health/ready").status, 503);
    assert_eq!(web.get("/health/live").status, 200);
    let metrics = web.get("/metrics");
    assert_eq!(metrics.status, 200);
    let families = parse_openmetrics(&metrics.text());
    assert_eq!(
        families["gale_database_up"].value("gale_database_up", &[]),
        Some(0.0)
    );
    node.assert_running();

    // It comes back: so does the node's health, without a restart.
    server.restart().expect("starting PostgreSQL again");
    let body = wait_until("/health to be 200 again", || {
        node.assert_running();
        let (status, body) = health(&web);
        (status == 200).then_some(body)
    });
    assert_eq!(body["database"]["reachable"], true, "{body:#}");
    let run_id = pg.trigger("tick", &[]);
    wait_until("a run after the outage to succeed", || {
        let out = pg.gale(&["runs", "show", &run_id.to_string(), "--output", "json"]);
        (out.code == 0 && out.json()["run"]["state"] == "success").then_some(())
    });

    // A webserver alone is healthy while the node schedules, and 503 once no
    // scheduler heartbeats.
    let mut webserver_args = vec!["webserver"];
    webserver_args.extend(web_args);
    let mut webserver = pg.start_registered("webserver", &webserver_args);
    let alone = Web::new(&web::wait_url("gale webserver", || webserver.log()));
    alone.wait_ready();
    wait_until(
        "the webserver's /health to be 200 with the node live",
        || (health(&alone).0 == 200).then_some(()),
    );
    node.signal(Signal::SIGTERM);
    node.wait_exit(std::time::Duration::from_secs(60));
    let body = wait_until(
        "the webserver's /health to be 503 without a scheduler",
        || {
            webserver.assert_running();
            let (status, body) = health(&alone);
            (status == 503).then_some(body)
        },
    );
    assert_eq!(body["database"]["reachable"], true, "{body:#}");
    assert_eq!(body["schedulers"], json!([]), "{body:#}");
    let problems: Vec<&str> = body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("no live scheduler")),
        "{body:#}"
    );
    assert_eq!(
        alone.get("/health/ready").status,
        200,
        "the database still answers"
    );
}
