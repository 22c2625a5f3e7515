//! The audit log end to end: every state-changing action, done through the
//! real API, the UI's forms and the CLI against one `gale standalone`, is
//! listed with its actor, origin and outcome by `GET /api/v1/audit`, the
//! `/audit` page and `gale audit list`; logins that fail are recorded with the
//! name tried; no secret ever appears; only admins may read it.

use std::io::Write as _;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::harness::{Home, wait_until};
use crate::ui::{admin_password, create_user, form_login, post_form};
use crate::web::{self, Web};

/// Fails (for clearing and marking); waits for nothing.
const FLAKY: &str = "params:\n  api_password: {type: string, secret: true, default: unset}\n  region: eu\ntasks:\n  a:\n    run: exit 1\n  b:\n    needs: [a]\n    run: echo b\n";
const HELLO: &str = "allow_undeclared_conf: true\nparams:\n  token: {type: string, secret: true, default: unset}\ntasks:\n  hi:\n    run: echo hi\n";
const NIGHTLY: &str = "schedule: \"@daily\"\nstart_date: 2025-01-01\ncatchup: false\ntasks:\n  day:\n    run: \"true\"\n";

/// A conf value and passwords that must never be recorded.
const CONF_SECRET: &str = "s3cr3t-conf-value";
const OP_PASSWORD: &str = "operator-pass-1";
const NEW_PASSWORD: &str = "a-new-password-9";

/// The actor the CLI records for this test process's user.
fn cli_actor() -> String {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty());
    format!("cli:{}", user.as_deref().unwrap_or("unknown"))
}

/// `gale users passwd NAME --password-stdin`.
fn set_password(home: &Home, name: &str, password: &str) {
    let mut child = home
        .command(&["users", "passwd", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting gale users passwd");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(format!("{password}\n").as_bytes())
        .expect("writing the password");
    let out = child
        .wait_with_output()
        .expect("waiting for gale users passwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_dag(web: &Web, dag_id: &str) {
    wait_until(&format!("DAG {dag_id} to be loaded"), || {
        (web.get(&format!("/api/v1/dags/{dag_id}")).status == 200).then_some(())
    });
}

fn wait_finished(web: &Web, run_id: i64) {
    wait_until(&format!("run {run_id} to finish"), || {
        let run = web.get(&format!("/api/v1/runs/{run_id}")).expect(200);
        matches!(run["state"].as_str(), Some("success" | "failed")).then_some(())
    });
}

/// Every entry of the audit log, oldest first, read page by page.
fn all_entries(web: &Web) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = "/api/v1/audit?limit=7".to_owned();
    loop {
        let page = web.get(&path).expect(200);
        entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
        match page["next_before"].as_i64() {
            Some(b) => path = format!("/api/v1/audit?limit=7&before={b}"),
            None => break,
        }
    }
    entries.reverse();
    entries
}

/// The one entry with this action and target (panics, listing them all, when
/// there is not exactly one).
fn one<'a>(entries: &'a [Value], action: &str, target: &str) -> &'a Value {
    let found: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == action && e["target"] == target)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{action} {target}: {found:#?}\nall: {entries:#?}"
    );
    found[0]
}

fn assert_from(e: &Value, actor: &str, outcome: &str) {
    assert_eq!(e["actor"], actor, "{e:#}");
    assert_eq!(e["outcome"], outcome, "{e:#}");
    let origin = e["origin"].as_str().unwrap_or_default();
    if actor.starts_with("cli:") {
        assert_eq!(origin, "cli", "{e:#}");
    } else if actor == "gale" {
        assert_eq!(origin, "startup", "the first start's admin: {e:#}");
    } else {
        assert!(
            origin.starts_with("127.0.0.1:"),
            "the client's socket address: {e:#}"
        );
    }
}

#[test]
fn every_change_is_audited_with_who_where_and_how_it_went() {
    let home = Home::new();
    home.write_dag("flaky.yaml", FLAKY);
    home.write_dag("hello.yaml", HELLO);
    home.write_dag("nightly.yaml", NIGHTLY);
    let (standalone, admin) = web::start(&home);
    let password = admin_password(&standalone);
    wait_dag(&admin, "flaky");
    wait_dag(&admin, "hello");
    wait_dag(&admin, "nightly");
    let cli = cli_actor();

    // The CLI: users, tokens, pools, a trigger, a pause, a backfill.
    create_user(&home, "op", "operator", OP_PASSWORD);
    home.ok(&["users", "create", "viewer1", "--role", "viewer"]);
    home.ok(&["users", "create", "leaver", "--role", "viewer"]);
    let op = admin.with_token(&web::token(&home, "op"));
    let viewer = admin.with_token(&web::token(&home, "viewer1"));
    let spare = home.ok(&["tokens", "create", "--user", "op", "--name", "spare"]);
    let spare_secret = spare.stdout.trim().to_owned();
    let tokens = home.json(&["tokens", "list", "--user", "op"]);
    let spare_id = tokens
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "spare"))
        .and_then(|t| t["id"].as_i64())
        .expect("the spare token's id");
    home.ok(&["tokens", "revoke", &spare_id.to_string()]);
    set_password(&home, "leaver", NEW_PASSWORD);
    home.ok(&["users", "delete", "leaver"]);
    home.ok(&["pools", "set", "db", "2", "--description", "the warehouse"]);
    home.ok(&["pools", "set", "db", "3"]);
    home.ok(&["pools", "delete", "db"]);
    assert_eq!(home.gale(&["pools", "delete", "db"]).code, 4);
    let cli_run = home.trigger(
        "hello",
        &["--conf", &format!("{{\"token\": \"{CONF_SECRET}\"}}")],
    );
    home.ok(&["dags", "pause", "nightly"]);
    home.ok(&["dags", "unpause", "nightly"]);
    home.ok(&[
        "backfill",
        "nightly",
        "--from",
        "2025-02-01",
        "--to",
        "2025-02-02",
        "--no-wait",
    ]);

    // The API, as an operator: trigger (with a secret conf value), clear,
    // mark a task and the run, pause, cancel, unpause, backfill; and a
    // trigger that is refused.
    let conf = json!({"conf": {"api_password": CONF_SECRET, "region": "eu"}});
    let run = op.post("/api/v1/dags/flaky/runs", &conf).expect(201)["run_id"]
        .as_i64()
        .expect("a run id");
    wait_finished(&op, run);
    let cleared = op
        .post(&format!("/api/v1/runs/{run}/clear"), &json!({}))
        .expect(200);
    assert_eq!(cleared["cleared"], json!(["a", "b"]), "{cleared}");
    wait_finished(&op, run);
    op.post(
        &format!("/api/v1/runs/{run}/tasks/a/mark"),
        &json!({"state": "success"}),
    )
    .expect(200);
    op.post(
        &format!("/api/v1/runs/{run}/mark"),
        &json!({"state": "success"}),
    )
    .expect(200);
    op.patch("/api/v1/dags/hello", &json!({"paused": true}))
        .expect(200);
    let queued = op.post("/api/v1/dags/hello/runs", &json!({})).expect(201)["run_id"]
        .as_i64()
        .expect("a run id");
    op.send("POST", &format!("/api/v1/runs/{queued}/cancel"), &[], None)
        .expect(200);
    op.patch("/api/v1/dags/hello", &json!({"paused": false}))
        .expect(200);
    op.post(
        "/api/v1/dags/nightly/backfills",
        &json!({"from": "2025-01-01", "to": "2025-01-02"}),
    )
    .expect(201);
    op.post("/api/v1/dags/nosuchdag/runs", &json!({}))
        .problem(404);

    // A bad token and bad passwords: failed logins.
    admin
        .with_token("gale_not-a-real-token")
        .get("/api/v1/dags")
        .problem(401);
    let anon = admin.anonymous();
    let bad = anon.send(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"user=mallory&password=guess-one&next=%2F".to_vec()),
    );
    assert_eq!(bad.status, 401, "{}", bad.text());
    let bad = anon.send(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(format!("user=op&password=not-{OP_PASSWORD}").into_bytes()),
    );
    assert_eq!(bad.status, 401, "{}", bad.text());

    // The UI, as the admin: log in, trigger, pause and unpause, log out.
    let (cookie, csrf) = form_login(&anon, "admin", &password);
    let form = |extra: &str| format!("csrf_token={csrf}{extra}");
    assert_eq!(
        post_form(
            &anon,
            "/dags/hello/trigger",
            &cookie,
            &[],
            &form("&conf=%7B%7D")
        ),
        303
    );
    assert_eq!(
        post_form(&anon, "/dags/flaky/pause", &cookie, &[], &form("&back=%2F")),
        303
    );
    assert_eq!(
        post_form(
            &anon,
            "/dags/flaky/unpause",
            &cookie,
            &[],
            &form("&back=%2F")
        ),
        303
    );
    // The page, for the admin, lists rows; the viewer's nav has no link.
    let page = anon.send("GET", "/audit", &[("cookie", &cookie)], None);
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains(r#"href="/audit""#),
        "the admin's nav links the audit log"
    );
    for action in [
        "run.trigger",
        "dag.pause",
        "login",
        "user.create",
        "pool.delete",
    ] {
        assert!(
            html.contains(&format!(r#"data-action="{action}""#)),
            "no {action} row on the page"
        );
    }
    let filtered = anon.send(
        "GET",
        "/audit?actor=op&action=login",
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(filtered.status, 200);
    let html = filtered.text();
    assert!(html.contains(r#"data-action="login""#), "{html}");
    assert!(!html.contains(r#"data-action="run.trigger""#), "{html}");
    let bad_filter = anon.send("GET", "/audit?action=nope", &[("cookie", &cookie)], None);
    assert_eq!(bad_filter.status, 400, "{}", bad_filter.text());
    assert_eq!(post_form(&anon, "/logout", &cookie, &[], &form("")), 303);

    // Viewers and operators may not read it, through the API or the page.
    let detail = viewer.get("/api/v1/audit").problem(403);
    assert!(detail.contains("admin"), "{detail}");
    op.get("/api/v1/audit").problem(403);
    create_user(&home, "watcher", "viewer", "watcher-pass-1");
    let (watcher, _) = form_login(&anon, "watcher", "watcher-pass-1");
    let resp = anon.send("GET", "/audit", &[("cookie", &watcher)], None);
    assert_eq!(resp.status, 403, "{}", resp.text());
    let home_page = anon.send("GET", "/", &[("cookie", &watcher)], None).text();
    assert!(
        !home_page.contains(r#"href="/audit""#),
        "a viewer's nav has no audit link"
    );

    // Bad query parameters are clear 400s.
    for (query, says) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("action=run.explode", "action must be one of"),
        ("since=yesterday", "since"),
        ("before=0", "before"),
        ("before=x", "bad query"),
    ] {
        let detail = admin.get(&format!("/api/v1/audit?{query}")).problem(400);
        assert!(detail.contains(says), "{query}: {detail}");
    }

    // Everything, with its actor, origin and outcome.
    let entries = all_entries(&admin);
    let ids: Vec<i64> = entries
        .iter()
        .map(|e| e["id"].as_i64().unwrap_or(0))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_from(
        one(&entries, "user.create", "user/admin"),
        "gale",
        "success",
    );
    assert_from(one(&entries, "user.create", "user/op"), &cli, "success");
    assert_eq!(
        one(&entries, "user.create", "user/op")["detail"]["role"],
        "operator"
    );
    assert_from(
        one(&entries, "user.create", "user/viewer1"),
        &cli,
        "success",
    );
    let spare_target = format!("token/{spare_id}");
    let created = one(&entries, "token.create", &spare_target);
    assert_from(created, &cli, "success");
    assert_eq!(created["detail"]["user"], "op");
    assert_from(
        one(&entries, "token.revoke", &spare_target),
        &cli,
        "success",
    );
    assert_from(
        one(&entries, "user.password", "user/leaver"),
        &cli,
        "success",
    );
    assert_from(one(&entries, "user.delete", "user/leaver"), &cli, "success");
    let pool = one(&entries, "pool.create", "pool/db");
    assert_from(pool, &cli, "success");
    assert_eq!(pool["detail"]["slots"], 2);
    let pool = one(&entries, "pool.update", "pool/db");
    assert_eq!(
        (&pool["detail"]["slots"], &pool["detail"]["was_slots"]),
        (&json!(3), &json!(2))
    );
    let deletes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "pool.delete")
        .collect();
    assert_eq!(
        deletes
            .iter()
            .map(|e| e["outcome"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["success", "failure"],
        "the second delete found no pool: {deletes:#?}"
    );
    let cli_trigger = entries
        .iter()
        .find(|e| e["action"] == "run.trigger" && e["detail"]["run_id"] == cli_run)
        .expect("the CLI's trigger");
    assert_from(cli_trigger, &cli, "success");
    assert_eq!(cli_trigger["detail"]["conf_keys"], json!(["token"]));
    assert_from(one(&entries, "dag.pause", "dag/nightly"), &cli, "success");
    assert_from(one(&entries, "dag.unpause", "dag/nightly"), &cli, "success");
    let backfills: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "backfill.create")
        .collect();
    assert_eq!(backfills.len(), 2, "{backfills:#?}");
    assert_from(backfills[0], &cli, "success");
    assert_from(backfills[1], "op", "success");
    assert_eq!(
        backfills[1]["detail"]["created_runs"], 2,
        "{:#}",
        backfills[1]
    );

    let api_trigger = entries
        .iter()
        .find(|e| e["action"] == "run.trigger" && e["detail"]["run_id"] == run)
        .expect("the API's trigger");
    assert_from(api_trigger, "op", "success");
    assert_eq!(api_trigger["target"], "dag/flaky");
    assert_eq!(
        api_trigger["detail"]["conf_keys"],
        json!(["api_password", "region"])
    );
    let clear = one(&entries, "run.clear", &format!("run/{run}"));
    assert_from(clear, "op", "success");
    assert_eq!(clear["detail"]["cleared"], json!(["a", "b"]));
    let mark = one(&entries, "task.mark", &format!("run/{run}/task/a"));
    assert_from(mark, "op", "success");
    assert_eq!(mark["detail"]["state"], "success");
    assert_from(
        one(&entries, "run.mark", &format!("run/{run}")),
        "op",
        "success",
    );
    assert_from(one(&entries, "dag.pause", "dag/hello"), "op", "success");
    assert_from(one(&entries, "dag.unpause", "dag/hello"), "op", "success");
    assert_from(
        one(&entries, "run.cancel", &format!("run/{queued}")),
        "op",
        "success",
    );
    let refused = one(&entries, "run.trigger", "dag/nosuchdag");
    assert_from(refused, "op", "failure");
    assert_eq!(refused["detail"]["error"], "no DAG nosuchdag");

    let logins: Vec<&Value> = entries.iter().filter(|e| e["action"] == "login").collect();
    let token_failure = logins
        .iter()
        .find(|e| e["detail"]["via"] == "token")
        .expect("the bad token's failed login");
    assert_from(token_failure, "unknown", "failure");
    assert_from(one(&entries, "login", "user/mallory"), "mallory", "failure");
    let op_failure = one(&entries, "login", "user/op");
    assert_from(op_failure, "op", "failure");
    assert_eq!(op_failure["detail"]["via"], "form");
    let admin_logins: Vec<&&Value> = logins.iter().filter(|e| e["actor"] == "admin").collect();
    assert_eq!(admin_logins.len(), 1, "{admin_logins:#?}");
    assert_from(admin_logins[0], "admin", "success");
    let watcher_login = one(&entries, "login", "user/watcher");
    assert_from(watcher_login, "watcher", "success");
    let ui_trigger = entries
        .iter()
        .find(|e| e["action"] == "run.trigger" && e["actor"] == "admin")
        .expect("the UI's trigger");
    assert_from(ui_trigger, "admin", "success");
    assert_eq!(ui_trigger["target"], "dag/hello");
    assert_from(one(&entries, "dag.pause", "dag/flaky"), "admin", "success");
    assert_from(
        one(&entries, "dag.unpause", "dag/flaky"),
        "admin",
        "success",
    );
    assert_from(one(&entries, "logout", "user/admin"), "admin", "success");

    // No password, token or conf value anywhere in it.
    let text = serde_json::to_string(&entries).expect("json");
    for secret in [
        CONF_SECRET,
        OP_PASSWORD,
        NEW_PASSWORD,
        password.as_str(),
        spare_secret.as_str(),
        "guess-one",
        "gale_not-a-real-token",
    ] {
        assert!(!text.contains(secret), "{secret:?} was recorded: {text}");
    }

    // Filters, through the API.
    let page = admin
        .get("/api/v1/audit?actor=op&action=run.trigger")
        .expect(200);
    let got = page["entries"].as_array().expect("entries");
    assert_eq!(got.len(), 3, "two triggers and the refused one: {page:#}");
    assert!(
        got.iter()
            .all(|e| e["actor"] == "op" && e["action"] == "run.trigger")
    );
    let first_at = entries[0]["at"].as_str().expect("a time");
    let since = admin
        .get(&format!("/api/v1/audit?since={first_at}&limit=1000"))
        .expect(200);
    assert_eq!(
        since["entries"].as_array().map(Vec::len),
        Some(entries.len()),
        "every entry is at or after the first"
    );

    // The CLI lists the same log, newest first, and filters it.
    let listed = home
        .ok(&["audit", "list", "--json", "--limit", "1000"])
        .json();
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), entries.len());
    assert_eq!(listed[0]["id"], entries[entries.len() - 1]["id"]);
    let mine = home.json(&["audit", "list", "--actor", &cli, "--action", "pool.delete"]);
    assert_eq!(mine.as_array().map(Vec::len), Some(2), "{mine:#}");
    let table = home.ok(&["audit", "list", "--action", "login", "--limit", "3"]);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows: {table}");
    assert!(
        lines[0].contains("ACTOR") && lines[0].contains("OUTCOME"),
        "{table}"
    );
    assert!(lines[1..].iter().all(|l| l.contains("login")), "{table}");
    let recent = home.json(&["audit", "list", "--since", "1h", "--action", "logout"]);
    assert_eq!(recent.as_array().map(Vec::len), Some(1), "{recent:#}");
    let bad = home.gale(&["audit", "list", "--action", "explode"]);
    assert_eq!(bad.code, 2, "bad usage: {bad}");
    assert!(bad.stderr.contains("--action must be one of"), "{bad}");
    let bad = home.gale(&["audit", "list", "--limit", "0"]);
    assert_eq!(bad.code, 2, "{bad}");
}
