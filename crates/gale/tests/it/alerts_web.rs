//! Alerts over the REST API, in the browser and in `/metrics`, on a real
//! `gale standalone` with a real HTTP receiver:
//!
//! - an admin adds a webhook channel whose URL holds a secret; every answer
//!   shows it as scheme, host and port only, and no answer, audit entry or page
//!   holds the secret; a test through it reports the receiver's answer, a
//!   refusal (500) as `ok: false`, and an unreachable URL without the URL;
//!   a masked view sent back keeps the secret settings; a delete ends it;
//! - a failing run's failed delivery is listed (filtered, and for the run,
//!   in the same shape as `gale alerts deliveries -o json`), counted in
//!   `/metrics`, shown prominently on `/alerts` and on the run's page;
//! - viewers read but cannot change or test channels (403), and bad input is
//!   a 400 (or 404) naming what is wrong.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Home, Standalone, wait_until};
use crate::receivers::{Hook, free_port};
use crate::ui::{admin_password, create_user, log_in, shoot};
use crate::web::{self, Web, wait_url};
use crate::webdriver::{self, Browser};

const URL_SECRET: &str = "hook-url-token-6d2b88";
const SIGNING: &str = "signing-secret-a41f07";
const WAIT: Duration = Duration::from_secs(60);

fn start(home: &Home) -> Standalone {
    home.write_dag(
        "breaks.yaml",
        "alerts: { on_failure: [hook] }\ntasks:\n  t: { run: 'exit 3' }\n",
    );
    let dags = home.dags().display().to_string();
    home.start_with_env(
        &["--dags-folder", &dags, "--no-examples"],
        &[("GALE_ALERT_WINDOW", "1s")],
    )
}

/// The hook's URL with the secret in its query.
fn secret_url(hook: &Hook) -> String {
    format!("{}?token={URL_SECRET}", hook.url)
}

fn no_secret(what: &str, text: &str) {
    for s in [URL_SECRET, SIGNING] {
        assert!(!text.contains(s), "{what} shows {s}: {text}");
    }
}

/// The hook's URL as a channel shows it: its scheme, host and port.
fn masked_url(hook: &Hook) -> String {
    let origin = hook.url.trim_end_matches("/hook");
    assert!(origin.starts_with("http://127.0.0.1:"), "{origin}");
    format!("{origin}/***")
}

/// Adds the channel `hook` (a webhook to `hook`, its URL secret).
fn add_hook(admin: &Web, hook: &Hook) -> Value {
    let resp = admin.post(
        "/api/v1/alerts/channels",
        &json!({"name": "hook", "kind": "webhook", "url": secret_url(hook),
                "signing_secret": SIGNING, "description": "<b>ops</b> pager"}),
    );
    no_secret("the created channel", &resp.text());
    resp.expect(201)
}

/// The value of the sample `name{labels}` in `/metrics`, if there is one.
fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// Triggers `breaks` and waits until its failed delivery is listed.
fn failing_run(home: &Home, admin: &Web) -> (i64, Value) {
    home.wait_dag("breaks");
    let run = home.trigger("breaks", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "failed");
    let listed = wait_until("the run's failed delivery", || {
        let list = admin.get(&format!("/api/v1/runs/{run}/alerts")).expect(200);
        let all = list["deliveries"].as_array()?;
        (!all.is_empty() && all.iter().all(|d| d["state"] == "failed")).then_some(list)
    });
    (run, listed)
}

#[test]
fn channels_and_deliveries_over_the_api() {
    let home = Home::new();
    let hook = Hook::start();
    let standalone = start(&home);
    let admin = web::connect(&home, &standalone);

    // Added, masked: the URL as scheme, host and port, the signing secret as ***.
    let c = add_hook(&admin, &hook);
    assert_eq!(c["name"], "hook");
    assert_eq!(c["kind"], "webhook");
    assert_eq!(c["secret"]["url"], masked_url(&hook), "{c:#}");
    assert_eq!(c["secret"]["signing_secret"], "***", "{c:#}");
    assert_eq!(c["description"], "<b>ops</b> pager");
    let again = admin.post(
        "/api/v1/alerts/channels",
        &json!({"name": "hook", "kind": "webhook", "url": "http://other.example/"}),
    );
    assert!(again.problem(409).contains("exists"), "{}", again.text());
    for path in ["/api/v1/alerts/channels/hook", "/api/v1/alerts/channels"] {
        let resp = admin.get(path);
        no_secret(path, &resp.text());
        let v = resp.expect(200);
        let shown = if v.is_array() {
            v.as_array()
                .and_then(|l| l.iter().find(|c| c["name"] == "hook"))
                .cloned()
                .unwrap_or_else(|| panic!("no hook in {v:#}"))
        } else {
            v
        };
        assert_eq!(shown["secret"]["url"], masked_url(&hook), "{shown:#}");
    }

    // Tested: the receiver's answer, then its refusal.
    let t = admin
        .send("POST", "/api/v1/alerts/channels/hook/test", &[], None)
        .expect(200);
    assert_eq!(t["ok"], true, "{t}");
    assert!(t["answer"].as_str().unwrap_or("").contains("200"), "{t}");
    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].json()["kind"], "test", "{}", seen[0].body);
    assert!(seen[0].path.contains(URL_SECRET), "sent to the whole URL");
    hook.answer(500);
    let t = admin
        .send("POST", "/api/v1/alerts/channels/hook/test", &[], None)
        .expect(200);
    assert_eq!(t["ok"], false, "{t}");
    assert_eq!(t["permanent"], false, "a 500 is temporary: {t}");
    assert!(t["answer"].as_str().unwrap_or("").contains("500"), "{t}");
    no_secret("a refusal", &t.to_string());

    // An unreachable URL: refused, without the URL's secret.
    let closed = format!("http://127.0.0.1:{}/p?token={URL_SECRET}", free_port());
    admin
        .send_json(
            "PUT",
            "/api/v1/alerts/channels/closed",
            &json!({"kind": "webhook", "url": closed}),
        )
        .expect(201);
    let resp = admin.send("POST", "/api/v1/alerts/channels/closed/test", &[], None);
    no_secret("an unreachable channel's test", &resp.text());
    let t = resp.expect(200);
    assert_eq!(t["ok"], false, "{t}");
    assert!(
        t["answer"].as_str().unwrap_or("").contains("127.0.0.1"),
        "{t}"
    );

    // The masked view sent back keeps the secrets; the rest changes.
    let mut shown = admin.get("/api/v1/alerts/channels/hook").expect(200);
    let mut body = shown["config"].as_object().cloned().unwrap_or_default();
    body.insert("kind".into(), shown["kind"].take());
    for (k, v) in shown["secret"].as_object().cloned().unwrap_or_default() {
        body.insert(k, v);
    }
    body.insert("description".into(), json!("changed"));
    body.insert("defaults".into(), json!(["on_failure"]));
    let put = admin
        .send_json("PUT", "/api/v1/alerts/channels/hook", &Value::Object(body))
        .expect(200);
    assert_eq!(put["description"], "changed", "{put:#}");
    assert_eq!(put["config"]["defaults"], json!(["on_failure"]), "{put:#}");
    hook.answer(200);
    let t = admin
        .send("POST", "/api/v1/alerts/channels/hook/test", &[], None)
        .expect(200);
    assert_eq!(t["ok"], true, "the URL was kept: {t}");
    let last = hook.seen().pop().expect("a request");
    assert!(last.path.contains(URL_SECRET), "{}", last.path);
    assert!(
        last.headers
            .get("x-gale-signature")
            .is_some_and(|s| s.starts_with("sha256=")),
        "the signing secret was kept: {:?}",
        last.headers
    );

    // Bad input: 400 (or 404) naming what is wrong.
    for (method, path, body, status, needle) in [
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "x"}),
            400,
            "kind",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"kind": "webhook", "url": "http://h.example/"}),
            400,
            "name",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "bad name", "kind": "webhook", "url": "http://h.example/"}),
            400,
            "name",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "x", "kind": "pager", "url": "http://h.example/"}),
            400,
            "kind",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "x", "kind": "command", "argv": ["/bin/true"]}),
            400,
            "gale alerts channels add",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "x", "kind": "webhook", "url": "ftp://h.example/"}),
            400,
            "http",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "x", "kind": "webhook", "url": "http://h.example/", "colour": "red"}),
            400,
            "colour",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "x", "kind": "email", "to": ["not an address"]}),
            400,
            "to[0]",
        ),
        (
            "POST",
            "/api/v1/alerts/channels",
            json!({"name": "x", "kind": "slack", "url": "http://h.example/", "defaults": ["on_lunch"]}),
            400,
            "defaults",
        ),
        (
            "PUT",
            "/api/v1/alerts/channels/hook",
            json!({"name": "other", "kind": "webhook"}),
            400,
            "name",
        ),
    ] {
        let resp = admin.send_json(method, path, &body);
        let detail = resp.problem(status);
        assert!(
            detail.contains(needle),
            "{method} {path} {body}: {detail:?} does not name {needle:?}"
        );
    }
    for (path, status, needle) in [
        ("/api/v1/alerts/deliveries?state=lost", 400, "state"),
        ("/api/v1/alerts/deliveries?limit=0", 400, "limit"),
        ("/api/v1/alerts/deliveries?limit=100000", 400, "limit"),
        ("/api/v1/alerts/deliveries?run=abc", 400, "run"),
        ("/api/v1/alerts/channels/nosuch", 404, "nosuch"),
        ("/api/v1/runs/987654/alerts", 404, "987654"),
    ] {
        let detail = admin.get(path).problem(status);
        assert!(detail.contains(needle), "{path}: {detail:?}");
    }
    admin
        .send("DELETE", "/api/v1/alerts/channels/nosuch", &[], None)
        .problem(404);
    admin
        .send("POST", "/api/v1/alerts/channels/nosuch/test", &[], None)
        .problem(404);

    // A viewer reads, masked, and changes nothing.
    let viewer = admin.with_token(&web::user_token(&home, "vera", "viewer"));
    let resp = viewer.get("/api/v1/alerts/channels");
    no_secret("a viewer's list", &resp.text());
    resp.expect(200);
    viewer.get("/api/v1/alerts/channels/hook").expect(200);
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/alerts/channels",
            Some(json!({"name": "v", "kind": "slack", "url": "http://h.example/"})),
        ),
        (
            "PUT",
            "/api/v1/alerts/channels/hook",
            Some(json!({"kind": "slack", "url": "http://h.example/"})),
        ),
        ("DELETE", "/api/v1/alerts/channels/hook", None),
        ("POST", "/api/v1/alerts/channels/hook/test", None),
    ] {
        let resp = match &body {
            Some(b) => viewer.send_json(method, path, b),
            None => viewer.send(method, path, &[], None),
        };
        assert!(
            resp.problem(403).contains("admin"),
            "{method} {path}: {}",
            resp.text()
        );
    }
    let count = hook.seen().len();
    assert_eq!(
        admin.get("/api/v1/alerts/channels/hook").expect(200)["description"],
        "changed",
        "the viewer's PUT changed nothing"
    );

    // A failing run: its delivery refused for good (400), listed.
    hook.answer(400);
    let (run, listed) = failing_run(&home, &admin);
    assert!(hook.seen().len() > count, "the run's alert was sent");
    let deliveries = listed["deliveries"].as_array().expect("a list");
    for d in deliveries {
        assert_eq!(d["channel"], "hook", "{d:#}");
        assert_eq!(d["run_id"], run, "{d:#}");
        assert_eq!(d["dag_id"], "breaks", "{d:#}");
        assert_eq!(d["attempts"], 1, "a refusal is not retried: {d:#}");
        assert!(
            d["last_error"].as_str().unwrap_or("").contains("400"),
            "{d:#}"
        );
        no_secret("a delivery", &d.to_string());
    }
    assert!(
        deliveries
            .iter()
            .any(|d| d["kind"].as_str().is_some_and(|k| k.ends_with(".failed"))),
        "{listed:#}"
    );
    // The same shape as the CLI's.
    let cli = home.json(&["alerts", "deliveries", "--run", &run.to_string()]);
    assert_eq!(&cli, &listed["deliveries"], "the CLI's and the API's");
    // Filtered and paged.
    let failed = admin
        .get(&format!(
            "/api/v1/alerts/deliveries?run={run}&state=failed&channel=hook"
        ))
        .expect(200);
    assert_eq!(failed["deliveries"], listed["deliveries"]);
    let sent = admin
        .get(&format!("/api/v1/alerts/deliveries?run={run}&state=sent"))
        .expect(200);
    assert_eq!(sent["deliveries"], json!([]), "{sent:#}");
    let other = admin
        .get("/api/v1/alerts/deliveries?channel=closed")
        .expect(200);
    assert_eq!(other["deliveries"], json!([]), "{other:#}");
    let first = admin.get("/api/v1/alerts/deliveries?limit=1").expect(200);
    assert_eq!(first["deliveries"].as_array().map(Vec::len), Some(1));
    if deliveries.len() > 1 {
        let before = first["next_before"].as_i64().expect("a next page");
        let next = admin
            .get(&format!(
                "/api/v1/alerts/deliveries?limit=1&before={before}"
            ))
            .expect(200);
        assert!(
            next["deliveries"][0]["id"].as_i64().expect("an id") < before,
            "{next:#}"
        );
    }
    viewer
        .get(&format!("/api/v1/runs/{run}/alerts"))
        .expect(200);

    // Counted in /metrics: the outbox's gauge and this process's sends.
    let n_failed = deliveries.len() as f64;
    let metrics = wait_until("the metrics to count the failed delivery", || {
        let text = admin.anonymous().get("/metrics").text();
        (sample(
            &text,
            r#"gale_alert_deliveries{channel="hook",state="failed"}"#,
        ) == Some(n_failed))
        .then_some(text)
    });
    assert_eq!(
        sample(
            &metrics,
            r#"gale_alert_deliveries{channel="hook",state="sent"}"#
        ),
        Some(0.0),
        "every state from 0"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"gale_alert_deliveries{channel="closed",state="pending"}"#
        ),
        Some(0.0),
        "every channel"
    );
    assert!(
        sample(
            &metrics,
            r#"gale_alert_sends_total{channel="hook",result="failed"}"#
        )
        .is_some_and(|n| n >= n_failed),
        "{metrics}"
    );

    // The audit log has the set, test and delete, with no secret.
    let deleted = admin.send("DELETE", "/api/v1/alerts/channels/closed", &[], None);
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    admin.get("/api/v1/alerts/channels/closed").problem(404);
    let names: Vec<Value> = admin
        .get("/api/v1/alerts/channels")
        .expect(200)
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("hook")]);
    let audit = admin.get("/api/v1/audit?limit=1000");
    no_secret("the audit log", &audit.text());
    let audit = audit.expect(200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("alert_channel/"))
        })
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "alert_channel.set",
        "alert_channel.test",
        "alert_channel.delete",
    ] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    drop(standalone);
}

/// `method path` with `token` and a JSON body, off the async runtime.
async fn api(base: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (base, token, method, path) = (
        base.to_owned(),
        token.to_owned(),
        method.to_owned(),
        path.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let web = Web::new(&base).with_token(&token);
        let resp = match &body {
            Some(b) => web.send_json(&method, &path, b),
            None => web.send(&method, &path, &[], None),
        };
        assert!(
            resp.status < 300,
            "{method} {path}: {} {}",
            resp.status,
            resp.text()
        );
        resp.json()
    })
    .await
    .expect("the API call")
}

async fn click(browser: &Browser, css: &str) {
    browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e:#}"));
}

async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"))
        .text()
        .await
        .expect("its text")
}

#[tokio::test]
async fn browser_shows_channels_failed_deliveries_and_a_runs_alerts() {
    let Some(browser) =
        webdriver::start_or_skip("browser_shows_channels_failed_deliveries_and_a_runs_alerts")
            .await
    else {
        return;
    };
    let home = Home::new();
    let hook = Hook::start();
    let standalone = start(&home);
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    let token = web::token(&home, "admin");
    let hook_url = secret_url(&hook);
    api(
        &base,
        &token,
        "POST",
        "/api/v1/alerts/channels",
        Some(json!({"name": "hook", "kind": "webhook", "url": hook_url,
                    "signing_secret": SIGNING, "description": "<b>ops</b> pager",
                    "defaults": ["on_failure", "cluster"]})),
    )
    .await;
    hook.answer(400);
    let (to, token2) = (base.clone(), token);
    let (home, run) = tokio::task::spawn_blocking(move || {
        let admin = Web::new(&to).with_token(&token2);
        let (run, _) = failing_run(&home, &admin);
        (home, run)
    })
    .await
    .expect("the failing run");
    log_in(&browser, &base, "admin", &password).await;

    // The channel, masked and escaped; the failed delivery, prominent.
    browser
        .goto(&format!("{base}/alerts"))
        .await
        .expect("the alerts page");
    browser
        .wait_for_text("nav.top a.active", "Alerts", WAIT)
        .await
        .expect("the nav entry");
    let row = "tr[data-channel='hook']";
    assert_eq!(
        text_of(&browser, &format!("{row} td.target")).await,
        masked_url(&hook)
    );
    assert_eq!(
        text_of(&browser, &format!("{row} td.defaults")).await,
        "on_failure, cluster"
    );
    assert!(
        text_of(&browser, row).await.contains("<b>ops</b> pager"),
        "the description shown as text"
    );
    assert!(
        browser
            .find_all(&format!("{row} b"))
            .await
            .expect("looking for markup")
            .is_empty(),
        "the description is not markup"
    );
    let failed = browser
        .wait_for_text("#failed-deliveries tr[data-state='failed']", "hook", WAIT)
        .await
        .expect("the failed delivery");
    let text = failed.text().await.expect("its text");
    assert!(text.contains("400"), "the last error: {text}");
    assert!(text.contains(&run.to_string()), "the run: {text}");
    let page = browser.page_source().await.expect("the page");
    no_secret("/alerts", &page);
    shoot(&browser, "alerts").await;

    // Tested from the page: the refusal, then the answer.
    click(&browser, &format!("{row} form[action$='/test'] button")).await;
    browser
        .wait_for_text(".flash.error", "refused", WAIT)
        .await
        .expect("the refusal");
    hook.answer(200);
    click(&browser, &format!("{row} form[action$='/test'] button")).await;
    browser
        .wait_for_text(".flash.ok", "HTTP 200", WAIT)
        .await
        .expect("the answer");

    // The run's page lists its delivery and its state.
    browser
        .goto(&format!("{base}/runs/{run}"))
        .await
        .expect("the run page");
    let line = browser
        .wait_for_text("#run-alerts tr[data-state='failed']", "hook", WAIT)
        .await
        .expect("the run's delivery");
    let text = line.text().await.expect("its text");
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("400"), "{text}");
    shoot(&browser, "run-alerts").await;

    // A viewer: the same page, no forms, no secret.
    click(&browser, "nav.top form[action='/logout'] button").await;
    browser
        .wait_for("form[action='/login']", WAIT)
        .await
        .expect("the login page");
    create_user(&home, "vera", "viewer", "viewer-pass-1");
    log_in(&browser, &base, "vera", "viewer-pass-1").await;
    browser
        .goto(&format!("{base}/alerts"))
        .await
        .expect("the alerts page");
    browser
        .wait_for_text("#failed-deliveries tr[data-state='failed']", "hook", WAIT)
        .await
        .expect("the failed delivery");
    let forms = browser.find_all("main form").await.expect("forms");
    assert!(forms.is_empty(), "{} forms for a viewer", forms.len());
    no_secret(
        "/alerts for a viewer",
        &browser.page_source().await.expect("the page"),
    );
    browser.quit().await.expect("closing the browser");
    drop(standalone);
}
