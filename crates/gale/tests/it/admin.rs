//! Deleting DAGs and following and cancelling backfills from the command
//! line and the API, and the admin pages (users, API tokens, pools): who may
//! use them, what they refuse (the last admin, your own user,
//! `default_pool`), and the same pages in headless Chromium, with
//! screenshots.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Home, wait_until};
use crate::ui::{admin_password, create_user, form_login, log_in, shoot};
use crate::web::{self, Web, wait_url};
use crate::webdriver;

/// A scheduled DAG that starts paused, so its backfill runs stay queued.
const DAILY_PAUSED: &str = "schedule: '0 2 * * *'\nstart_date: 2026-01-10\ncatchup: false\nis_paused_upon_creation: true\ntasks:\n  a: { run: 'true' }\n";

fn entries(home: &Home, action: &str) -> Vec<Value> {
    home.json(&["audit", "list", "--action", action])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn outcomes(entries: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["target"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn cli_deletes_dags_and_lists_and_cancels_backfills() {
    let home = Home::new();
    home.write_dag("daily.yaml", DAILY_PAUSED);
    home.write_dag("quick.yaml", "tasks:\n  a: { run: 'echo hi' }\n");
    home.write_dag("kept.yaml", "tasks:\n  a: { run: 'echo kept' }\n");
    let _standalone = home.start();
    for dag in ["daily", "quick", "kept"] {
        home.wait_dag(dag);
    }

    // Backfills, by the form without a subcommand and by `create`.
    home.ok(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-10",
        "--to",
        "2026-01-12",
        "--no-wait",
    ]);
    home.ok(&[
        "backfill",
        "create",
        "daily",
        "--from",
        "2026-01-13",
        "--to",
        "2026-01-13",
        "--no-wait",
    ]);
    let listed = home.json(&["backfill", "list"]);
    let listed = listed.as_array().expect("a list of backfills");
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let (newer, older) = (&listed[0], &listed[1]);
    assert_eq!(
        (&newer["total"], &older["total"], &older["queued"]),
        (&json!(1), &json!(3), &json!(3)),
        "newest first, with their runs: {listed:#?}"
    );
    assert_eq!(older["state"], "running", "{older}");
    assert_eq!(older["dag_id"], "daily");
    let table = home.ok(&["backfill", "list", "daily"]).stdout;
    assert!(
        table.contains("QUEUED") && table.contains("RUNNING") && table.contains("running"),
        "{table}"
    );
    let out = home.gale(&["backfill", "list", "nope"]);
    assert_eq!(out.code, 4, "{out}");

    // A DAG with unfinished runs is not deleted.
    let out = home.gale(&["dags", "delete", "daily", "--yes"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("unfinished runs"), "{out}");

    // Cancelling a backfill cancels its queued runs, once.
    let older_id = older["id"].as_i64().expect("an id").to_string();
    let cancelled = home.json(&["backfill", "cancel", &older_id]);
    assert_eq!(
        cancelled["cancelled_runs"].as_array().map(Vec::len),
        Some(3),
        "{cancelled:#}"
    );
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    assert_eq!(cancelled["queued"], 0, "{cancelled:#}");
    for run in cancelled["cancelled_runs"].as_array().expect("runs") {
        let run = home.run_json(run.as_i64().expect("a run id"));
        assert_eq!(run["run"]["state"], "cancelled", "{run:#}");
    }
    let again = home.gale(&["backfill", "cancel", &older_id]);
    assert_eq!(again.code, 1, "{again}");
    assert!(again.stderr.contains("already cancelled"), "{again}");
    let missing = home.gale(&["backfill", "cancel", "99999"]);
    assert_eq!(missing.code, 4, "{missing}");
    let newer_id = newer["id"].as_i64().expect("an id").to_string();
    home.ok(&["backfill", "cancel", &newer_id]);

    // Deleting: not found, no confirmation, then with and without history.
    let out = home.gale(&["dags", "delete", "nope", "--yes"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stderr.contains("no DAG nope"), "{out}");
    let out = home.gale(&["dags", "delete", "quick"]);
    assert_eq!(out.code, 2, "no terminal to ask on: {out}");
    assert!(out.stderr.contains("--yes"), "{out}");

    let quick_run = home.trigger("quick", &[]);
    home.wait_run(quick_run);
    let deleted = home.json(&["dags", "delete", "quick", "--yes"]);
    assert_eq!(
        (&deleted["runs"], &deleted["task_instances"]),
        (&json!(1), &json!(1)),
        "{deleted:#}"
    );
    assert!(
        deleted["log_lines"].as_u64().is_some_and(|n| n > 0),
        "{deleted:#}"
    );
    assert!(
        deleted["note"]
            .as_str()
            .is_some_and(|n| n.contains("within ten seconds")),
        "its file is still in the folder: {deleted:#}"
    );
    let gone = home.gale(&["runs", "show", &quick_run.to_string()]);
    assert_eq!(gone.code, 4, "its runs went with it: {gone}");
    // Its file is still there: the processor stores it again, with no history.
    home.wait_dag("quick");
    assert!(home.runs("quick").is_empty());

    let kept_run = home.trigger("kept", &[]);
    home.wait_run(kept_run);
    std::fs::remove_file(home.dags().join("kept.yaml")).expect("removing kept.yaml");
    wait_until("kept.yaml to be seen gone", || {
        let dags = home.json(&["dags", "list"]);
        dags["dags"]
            .as_array()?
            .iter()
            .any(|d| d["dag_id"] == "kept" && d["active"] == false)
            .then_some(())
    });
    let out = home.ok(&["dags", "delete", "kept", "--keep-history", "--yes"]);
    assert!(out.stdout.contains("history is kept"), "{out}");
    assert!(
        !out.stderr.contains("within ten seconds"),
        "its file is gone, so it does not come back: {out}"
    );
    let run = home.run_json(kept_run);
    assert_eq!(run["run"]["state"], "success", "the run is kept: {run:#}");
    assert_eq!(home.gale(&["dags", "show", "kept"]).code, 4);

    let deletes = entries(&home, "dag.delete");
    assert_eq!(
        outcomes(&deletes),
        ["dag/daily failure", "dag/kept success", "dag/quick success"],
        "{deletes:#?}"
    );
    let cancels = entries(&home, "backfill.cancel");
    assert_eq!(
        outcomes(&cancels),
        [
            "backfill/1 failure".to_owned(),
            "backfill/1 success".to_owned(),
            "backfill/2 success".to_owned(),
            "backfill/99999 failure".to_owned(),
        ],
        "{cancels:#?}"
    );
    // Each cancelled run is recorded as `gale runs cancel` records it.
    assert_eq!(entries(&home, "run.cancel").len(), 4);
}

#[test]
fn api_deletes_dags_and_cancels_backfills_for_operators_only() {
    let home = Home::new();
    home.write_dag("daily.yaml", DAILY_PAUSED);
    home.write_dag("quick.yaml", "tasks:\n  a: { run: 'echo hi' }\n");
    let (_standalone, admin) = web::start(&home);
    home.wait_dag("daily");
    home.wait_dag("quick");
    let viewer = admin.with_token(&web::user_token(&home, "vera", "viewer"));
    let operator = admin.with_token(&web::user_token(&home, "otto", "operator"));

    let made = operator
        .post(
            "/api/v1/dags/daily/backfills",
            &json!({"from": "2026-01-10", "to": "2026-01-11"}),
        )
        .expect(201);
    let id = made["id"].as_i64().expect("an id");
    let listed = viewer.get("/api/v1/backfills?dag_id=daily").expect(200);
    assert_eq!(listed[0]["id"], id, "{listed:#}");
    assert_eq!(
        (
            &listed[0]["total"],
            &listed[0]["queued"],
            &listed[0]["state"]
        ),
        (&json!(2), &json!(2), &json!("running")),
        "{listed:#}"
    );
    let cancel = format!("/api/v1/backfills/{id}/cancel");
    let refused = viewer.send("POST", &cancel, &[], None).problem(403);
    assert!(refused.contains("operator"), "{refused}");
    let done = operator.send("POST", &cancel, &[], None).expect(200);
    assert_eq!(done["state"], "cancelled", "{done:#}");
    assert_eq!(done["cancelled_runs"].as_array().map(Vec::len), Some(2));
    operator.send("POST", &cancel, &[], None).problem(409);
    operator
        .send("POST", "/api/v1/backfills/424242/cancel", &[], None)
        .problem(404);

    let refused = viewer
        .send("DELETE", "/api/v1/dags/quick", &[], None)
        .problem(403);
    assert!(refused.contains("operator"), "{refused}");
    operator
        .send("DELETE", "/api/v1/dags/nope", &[], None)
        .problem(404);
    let run = home.trigger("quick", &[]);
    home.wait_run(run);
    let deleted = operator
        .send("DELETE", "/api/v1/dags/quick?keep_history=false", &[], None)
        .expect(200);
    assert_eq!(
        (
            &deleted["dag_id"],
            &deleted["runs"],
            &deleted["file_present"]
        ),
        (&json!("quick"), &json!(1), &json!(true)),
        "{deleted:#}"
    );
    viewer.get(&format!("/api/v1/runs/{run}")).problem(404);
    // Described in the OpenAPI document.
    let doc = viewer.anonymous().get("/api/v1/openapi.json").expect(200);
    assert!(
        doc["paths"]["/api/v1/dags/{dag_id}"]["delete"].is_object(),
        "DELETE /dags/{{dag_id}} is documented"
    );
    assert!(doc["paths"]["/api/v1/backfills/{backfill_id}/cancel"]["post"].is_object());
}

/// A form post with a session cookie and its CSRF token.
fn post_form(web: &Web, cookie: &str, csrf: &str, path: &str, fields: &str) -> (u16, String) {
    let body = format!("csrf_token={csrf}&{fields}");
    let resp = web.send(
        "POST",
        path,
        &[
            ("cookie", cookie),
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", web.base()),
        ],
        Some(body.into_bytes()),
    );
    let flash = resp
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gale_flash="))
        .map(|c| percent_decode(c.split(';').next().unwrap_or("")))
        .unwrap_or_default();
    (resp.status, flash)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], s.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn admin_pages_are_for_admins_and_refuse_what_would_lock_everyone_out() {
    let home = Home::new();
    let standalone = home.start();
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    let web = Web::new(&base);
    web.wait_ready();
    create_user(&home, "olga", "operator", "operator-pass-1");
    let operator_token = web::token(&home, "olga");
    let operator = web.with_token(&operator_token);
    for page in ["/users", "/tokens", "/pools"] {
        assert_eq!(operator.get(page).status, 403, "{page} is for admins");
    }
    assert_eq!(
        operator
            .send(
                "POST",
                "/pools",
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(b"name=x&slots=1".to_vec())
            )
            .status,
        403
    );
    // The operator's token was used: its last use is recorded.
    let tokens = home.json(&["tokens", "list", "--user", "olga"]);
    assert!(
        tokens[0]["last_used_at"].is_string(),
        "a used token records when: {tokens:#}"
    );

    let (cookie, csrf) = form_login(&web, "admin", &password);
    let get = |path: &str| web.send("GET", path, &[("cookie", &cookie)], None);
    let users = get("/users");
    assert_eq!(users.status, 200);
    assert!(
        users.text().contains(r#"data-user="olga""#),
        "{}",
        users.text()
    );
    assert!(
        users.text().contains(r#"href="/tokens""#),
        "the nav links the pages"
    );

    // Never the last admin, never yourself.
    let (status, flash) = post_form(&web, &cookie, &csrf, "/users/admin/role", "role=viewer");
    assert_eq!(status, 303);
    assert!(flash.contains("last admin"), "{flash}");
    let (_, flash) = post_form(&web, &cookie, &csrf, "/users/admin/delete", "");
    assert!(flash.contains("logged in as admin"), "{flash}");
    let (_, flash) = post_form(&web, &cookie, &csrf, "/users/olga/role", "role=admin");
    assert!(flash.starts_with("gale_flash=ok"), "{flash}");
    assert!(home.ok(&["users", "list"]).stdout.contains("admin"));
    // Now that olga is an admin too, the admin may be demoted by her (not
    // done here) and olga may be deleted by the admin.
    let (_, flash) = post_form(&web, &cookie, &csrf, "/users/olga/delete", "");
    assert!(flash.starts_with("gale_flash=ok"), "{flash}");
    assert_eq!(
        operator.get("/api/v1/dags").status,
        401,
        "her token went with her"
    );

    // Pools: create, set slots, refuse a bad one, delete; never default_pool.
    let (_, flash) = post_form(
        &web,
        &cookie,
        &csrf,
        "/pools",
        "name=warehouse&slots=3&description=db",
    );
    assert!(flash.starts_with("gale_flash=ok"), "{flash}");
    let (_, flash) = post_form(&web, &cookie, &csrf, "/pools", "name=warehouse&slots=3");
    assert!(flash.contains("exists"), "{flash}");
    let (_, flash) = post_form(&web, &cookie, &csrf, "/pools/warehouse/slots", "slots=5");
    assert!(flash.starts_with("gale_flash=ok"), "{flash}");
    let (_, flash) = post_form(&web, &cookie, &csrf, "/pools/warehouse/slots", "slots=-1");
    assert!(flash.contains("whole number"), "{flash}");
    let pools = home.json(&["pools", "list"]);
    assert_eq!(pools[0]["slots"], 5, "{pools:#}");
    assert_eq!(
        pools[0]["description"], "db",
        "setting slots keeps the description"
    );
    post_form(
        &web,
        &cookie,
        &csrf,
        "/pools",
        "name=default_pool&slots=128",
    );
    let (_, flash) = post_form(&web, &cookie, &csrf, "/pools/default_pool/delete", "");
    assert!(flash.contains("cannot be deleted"), "{flash}");
    let (_, flash) = post_form(&web, &cookie, &csrf, "/pools/warehouse/delete", "");
    assert!(flash.starts_with("gale_flash=ok"), "{flash}");
    // Without the CSRF token, nothing happens.
    let resp = web.send(
        "POST",
        "/pools/default_pool/slots",
        &[
            ("cookie", &cookie),
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", web.base()),
        ],
        Some(b"slots=1".to_vec()),
    );
    assert_eq!(resp.status, 403);

    // Tokens: revoke one.
    home.ok(&["tokens", "create", "--user", "admin", "--name", "spare"]);
    let id = home.json(&["tokens", "list", "--user", "admin"]);
    let id = id[0]["id"].as_i64().expect("a token id");
    let (_, flash) = post_form(&web, &cookie, &csrf, &format!("/tokens/{id}/revoke"), "");
    assert!(flash.starts_with("gale_flash=ok"), "{flash}");
    assert!(
        home.json(&["tokens", "list", "--user", "admin"])
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    let audit: Vec<String> = [
        "user.role",
        "user.delete",
        "pool.create",
        "pool.update",
        "pool.delete",
        "token.revoke",
    ]
    .iter()
    .flat_map(|a| entries(&home, a))
    .map(|e| {
        let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
        format!(
            "{} {} {}",
            field("action"),
            field("target"),
            field("outcome")
        )
    })
    .collect();
    for expected in [
        "user.role user/admin failure".to_owned(),
        "user.role user/olga success".to_owned(),
        "user.delete user/admin failure".to_owned(),
        "user.delete user/olga success".to_owned(),
        "pool.create pool/warehouse success".to_owned(),
        "pool.update pool/warehouse success".to_owned(),
        "pool.delete pool/default_pool failure".to_owned(),
        "pool.delete pool/warehouse success".to_owned(),
        format!("token.revoke token/{id} success"),
    ] {
        assert!(audit.contains(&expected), "{expected} in {audit:#?}");
    }
}

/// The three admin pages in a browser, with screenshots.
#[tokio::test]
async fn browser_shows_the_admin_pages() {
    let Some(browser) = webdriver::start_or_skip("browser_shows_the_admin_pages").await else {
        return;
    };
    const WAIT: Duration = Duration::from_secs(60);
    let home = Home::new();
    let standalone = home.start();
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    create_user(&home, "olga", "operator", "operator-pass-1");
    create_user(&home, "vic", "viewer", "viewer-pass-12");
    home.ok(&["tokens", "create", "--user", "olga", "--name", "ci"]);
    home.ok(&[
        "pools",
        "set",
        "warehouse",
        "4",
        "--description",
        "the warehouse",
    ]);
    log_in(&browser, &base, "admin", &password).await;

    browser
        .goto(&format!("{base}/users"))
        .await
        .expect("the users page");
    browser
        .wait_for_text("nav.top a.active", "Users", WAIT)
        .await
        .expect("the nav entry");
    browser
        .wait_for("tr[data-user='olga'] select[name=role]", WAIT)
        .await
        .expect("olga's role");
    // Make vic an operator through the form.
    browser
        .execute(
            "document.querySelector(\"tr[data-user='vic'] select[name=role]\").value = 'operator';",
            vec![],
        )
        .await
        .expect("choosing a role");
    browser
        .find("tr[data-user='vic'] button[type=submit]")
        .await
        .expect("vic's set-role button")
        .click()
        .await
        .expect("setting the role");
    browser
        .wait_for_text(".flash.ok", "vic is now an operator (was a viewer)", WAIT)
        .await
        .expect("the role changed");
    shoot(&browser, "admin-users").await;

    browser
        .goto(&format!("{base}/tokens"))
        .await
        .expect("the tokens page");
    browser
        .wait_for("tr[data-token] td.last-used", WAIT)
        .await
        .expect("a token row");
    let source = browser.page_source().await.expect("the source");
    assert!(
        source.contains(">ci<") && source.contains(">olga<"),
        "{source}"
    );
    assert!(!source.contains("gale_"), "no token secret on the page");
    shoot(&browser, "admin-tokens").await;

    browser
        .goto(&format!("{base}/pools"))
        .await
        .expect("the pools page");
    browser
        .wait_for("tr[data-pool='warehouse']", WAIT)
        .await
        .expect("the pool row");
    browser
        .find("#create-pool input[name=name]")
        .await
        .expect("the name field")
        .send_keys("reports")
        .await
        .expect("typing a name");
    browser
        .find("#create-pool button[type=submit]")
        .await
        .expect("the create button")
        .click()
        .await
        .expect("creating a pool");
    browser
        .wait_for_text(".flash.ok", "created pool reports", WAIT)
        .await
        .expect("the pool created");
    browser
        .wait_for("tr[data-pool='reports']", WAIT)
        .await
        .expect("the new pool listed");
    shoot(&browser, "admin-pools").await;

    // An operator's nav has none of them, and the pages refuse them.
    browser.goto(&format!("{base}/logout")).await.ok();
    browser.quit().await.ok();
    // The blocking client runs off the async runtime.
    tokio::task::spawn_blocking(move || {
        let web = Web::new(&base);
        let (cookie, _) = form_login(&web, "olga", "operator-pass-1");
        let page = web.send("GET", "/", &[("cookie", &cookie)], None).text();
        assert!(!page.contains(r#"href="/users""#), "{page}");
        assert_eq!(
            web.send("GET", "/pools", &[("cookie", &cookie)], None)
                .status,
            403
        );
    })
    .await
    .expect("the operator's checks");
}
