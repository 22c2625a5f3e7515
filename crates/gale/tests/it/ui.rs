//! The web UI end to end: a real `gale standalone` and headless Chromium
//! (log in, the DAG list, triggering with a param, the grid refreshing in place,
//! graph, run and attempt pages, the log follower, the pause switch, the
//! cluster page, the audit log, with a screenshot of each main page), and plain HTTP for what
//! a browser would never send (forged cross-site posts, a viewer's trigger).
//!
//! Screenshots go to `$CARGO_TARGET_TMPDIR/screenshots/`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Home, Standalone, wait_until};
use crate::web::{Web, wait_url};
use crate::webdriver::{self, Browser};

/// How long a page or a run may take to show what is awaited.
const WAIT: Duration = Duration::from_secs(60);

/// Says hello to `params.who`, slowly enough to be watched running.
const GREETER: &str = r#"description: Greets someone, then says goodbye.
params:
  who: world
tags: [ui-test]
tasks:
  hello:
    run: |
      echo "hello {{ params.who }}"
      echo "a note on stderr" >&2
      sleep 2
  bye:
    needs: [hello]
    run: sleep 1; echo "bye {{ params.who }}"
"#;

/// Writes a line, waits, writes another: for the log follower.
const TAIL: &str = r#"description: Logs a line now and one a few seconds later.
tasks:
  talk:
    run: echo "first line"; sleep 4; echo "second line"
"#;

/// The admin password `gale standalone` printed on its first start.
pub(crate) fn admin_password(standalone: &Standalone) -> String {
    wait_until("the first start's admin password", || {
        let log = standalone.log();
        let mut lines = log.lines().skip_while(|l| !l.contains("first start:"));
        lines.next()?;
        lines
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    })
}

/// Creates a user with a known password (`gale users create --password-stdin`).
pub(crate) fn create_user(home: &Home, name: &str, role: &str, password: &str) {
    let mut child = home
        .command(&["users", "create", name, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting gale users create");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(format!("{password}\n").as_bytes())
        .expect("writing the password");
    let out = child
        .wait_with_output()
        .expect("waiting for gale users create");
    assert!(
        out.status.success(),
        "gale users create {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// Saves a screenshot of the page and checks it is a real PNG.
pub(crate) async fn shoot(browser: &Browser, name: &str) -> PathBuf {
    let path = screenshots().join(format!("{name}.png"));
    browser.screenshot(&path).await.expect("a screenshot");
    let png = std::fs::read(&path).expect("reading the screenshot");
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a real PNG ({} bytes)",
        path.display(),
        png.len()
    );
    path
}

/// `(run_id, task_id, state)` of every task cell in the grid.
async fn grid_cells(browser: &Browser) -> Vec<(String, String, String)> {
    let v = browser
        .execute(
            "return Array.from(document.querySelectorAll('#grid a.cell[data-task-id]'))
               .map(a => [a.dataset.runId, a.dataset.taskId, a.dataset.state]);",
            vec![],
        )
        .await
        .expect("reading the grid");
    v.as_array()
        .map(|cells| {
            cells
                .iter()
                .map(|c| {
                    let s = |i: usize| c[i].as_str().unwrap_or_default().to_owned();
                    (s(0), s(1), s(2))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn js(browser: &Browser, script: &str) -> Value {
    browser
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e:#}"))
}

/// Logs in through the form and waits for the page `next` led to.
pub(crate) async fn log_in(browser: &Browser, base: &str, user: &str, password: &str) {
    browser.goto(&format!("{base}/")).await.expect("opening /");
    let url = browser.current_url().await.expect("the URL");
    assert!(
        url.starts_with(&format!("{base}/login?next=")),
        "not sent to the login page: {url}"
    );
    browser
        .wait_for("input[name=user]", WAIT)
        .await
        .expect("the login form")
        .send_keys(user)
        .await
        .expect("typing the user name");
    browser
        .find("input[name=password]")
        .await
        .expect("the password field")
        .send_keys(password)
        .await
        .expect("typing the password");
    browser
        .find("form[action='/login'] button[type=submit]")
        .await
        .expect("the login button")
        .click()
        .await
        .expect("logging in");
    browser
        .wait_for("nav.top .user", WAIT)
        .await
        .expect("a page with the user in the nav");
}

/// The whole UI in a browser, page by page.
#[tokio::test]
async fn browser_walks_through_the_ui() {
    let started = Instant::now();
    let Some(browser) = webdriver::start_or_skip("browser_walks_through_the_ui").await else {
        return;
    };
    let home = Home::new();
    home.write_dag("greeter.yaml", GREETER);
    home.write_dag("tail.yaml", TAIL);
    let standalone = home.start();
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    home.wait_dag("greeter");
    home.wait_dag("tail");

    // The login page, then the DAG list.
    browser.goto(&format!("{base}/")).await.expect("opening /");
    browser
        .wait_for("form[action='/login']", WAIT)
        .await
        .expect("the login page");
    shoot(&browser, "login").await;
    log_in(&browser, &base, "admin", &password).await;
    assert_eq!(
        browser.current_url().await.expect("the URL"),
        format!("{base}/")
    );
    browser
        .wait_for_text("table.dags a.dag-id", "greeter", WAIT)
        .await
        .expect("greeter in the DAG list");
    browser
        .wait_for_text("table.dags a.dag-id", "tail", WAIT)
        .await
        .expect("tail in the DAG list");
    let user = browser.find("nav.top .user").await.expect("the user");
    let user = user.text().await.expect("its text");
    assert!(user.contains("admin"), "{user}");
    shoot(&browser, "dags").await;

    // Trigger with a param typed into the Trigger tab's form.
    browser
        .goto(&format!("{base}/dags/greeter?tab=trigger"))
        .await
        .expect("the trigger tab");
    let who = browser
        .wait_for("input[name='param.who']", WAIT)
        .await
        .expect("the field of param who");
    let prefilled = who.prop("value").await.expect("its value");
    assert_eq!(
        prefilled,
        json!("world"),
        "the field starts with the param's default"
    );
    who.clear().await.expect("clearing the field");
    who.send_keys("browser").await.expect("typing the param");
    browser
        .find("form[action='/dags/greeter/trigger'] button[type=submit]")
        .await
        .expect("the trigger button")
        .click()
        .await
        .expect("triggering");
    let flash = browser
        .wait_for_text(".flash.ok", "triggered run", WAIT)
        .await
        .expect("a flash naming the run");
    let flash = flash.text().await.expect("the flash text");
    let run_id: String = flash
        .split_whitespace()
        .nth(2)
        .expect("a run id in the flash")
        .to_owned();
    assert_eq!(
        browser.current_url().await.expect("the URL"),
        format!("{base}/dags/greeter")
    );

    // The grid turns to success without a reload: the window keeps its marker
    // while the grid element itself is replaced by htmx.
    js(
        &browser,
        "window.__marker = 1; document.getElementById('grid').dataset.seen = '1'; return 1;",
    )
    .await;
    let first: Vec<_> = grid_cells(&browser)
        .await
        .into_iter()
        .filter(|c| c.0 == run_id)
        .collect();
    assert_eq!(first.len(), 2, "a cell per task of run {run_id}: {first:?}");
    assert!(
        first.iter().any(|c| c.2 != "success"),
        "the run is still going when the page shows it: {first:?}"
    );
    let done = browser
        .wait_until(WAIT, "every cell of the run to be success", async |b| {
            let cells: Vec<_> = grid_cells(b)
                .await
                .into_iter()
                .filter(|c| c.0 == run_id)
                .collect();
            Ok((cells.len() == 2 && cells.iter().all(|c| c.2 == "success")).then_some(cells))
        })
        .await
        .expect("the grid turning to success");
    assert_eq!(done[0].1, "hello", "tasks in DAG order: {done:?}");
    assert_eq!(
        js(&browser, "return window.__marker === 1;").await,
        json!(true),
        "the page was reloaded"
    );
    assert_eq!(
        js(
            &browser,
            "return document.getElementById('grid').dataset.seen === undefined;"
        )
        .await,
        json!(true),
        "the grid was never swapped"
    );
    shoot(&browser, "grid").await;

    // The graph of that run.
    browser
        .goto(&format!("{base}/dags/greeter?tab=graph&run={run_id}"))
        .await
        .expect("the graph tab");
    browser
        .wait_for("svg.graph .node.state-success", WAIT)
        .await
        .expect("a graph coloured by the run");
    shoot(&browser, "graph").await;

    // The run page with its Gantt chart, reached by clicking the run's column.
    browser
        .goto(&format!("{base}/dags/greeter"))
        .await
        .expect("the grid");
    browser
        .wait_for(&format!("#grid a.cell.run[data-run-id='{run_id}']"), WAIT)
        .await
        .expect("the run's column")
        .click()
        .await
        .expect("opening the run");
    browser
        .wait_for("svg.gantt rect.bar", WAIT)
        .await
        .expect("a Gantt chart with bars");
    assert_eq!(
        browser.current_url().await.expect("the URL"),
        format!("{base}/runs/{run_id}")
    );
    let conf = browser.find("pre.json").await.expect("the conf");
    assert!(conf.text().await.expect("conf text").contains("browser"));
    shoot(&browser, "run").await;

    // The attempt page: the log says hello to the conf's `who`.
    browser
        .find("table.tasks a[href$='/tasks/hello']")
        .await
        .expect("the hello task")
        .click()
        .await
        .expect("opening the attempt");
    browser
        .wait_for_text("pre.log", "hello browser", WAIT)
        .await
        .expect("the log of hello");
    let stderr = browser
        .find("pre.log .line.stderr")
        .await
        .expect("a stderr line");
    assert!(
        stderr
            .text()
            .await
            .expect("its text")
            .contains("a note on stderr")
    );
    let command = browser.find("pre.command").await.expect("the command");
    assert!(
        command
            .text()
            .await
            .expect("its text")
            .contains("echo \"hello browser\"")
    );
    shoot(&browser, "attempt").await;

    // The log follower tails a running attempt.
    let tail_run = home.trigger("tail", &[]);
    browser
        .goto(&format!("{base}/runs/{tail_run}/tasks/talk"))
        .await
        .expect("the running attempt");
    browser
        .wait_for_text("pre.log", "first line", WAIT)
        .await
        .expect("the first line");
    js(&browser, "window.__marker = 2; return 1;").await;
    browser
        .wait_for_text("pre.log", "second line", WAIT)
        .await
        .expect("the follower appending the second line");
    browser
        .wait_for_text("#follow-status", "finished", WAIT)
        .await
        .expect("the follower seeing the attempt end");
    assert_eq!(
        js(&browser, "return window.__marker === 2;").await,
        json!(true),
        "the page was reloaded"
    );

    // Pause greeter with its switch on the DAG list: its row turns paused in
    // place.
    browser.goto(&format!("{base}/")).await.expect("the list");
    let switch = browser
        .wait_for(
            "form.toggle[data-dag-id='greeter'] button[aria-checked='true']",
            WAIT,
        )
        .await
        .expect("greeter's switch, on");
    js(&browser, "window.__marker = 3; return 1;").await;
    switch.click().await.expect("pausing greeter");
    browser
        .wait_for(
            "tr.dag.paused[data-dag-id='greeter'] button[aria-checked='false']",
            WAIT,
        )
        .await
        .expect("greeter's row, paused, with its switch off");
    assert_eq!(
        js(&browser, "return window.__marker === 3;").await,
        json!(true),
        "the switch reloaded the page"
    );
    browser.goto(&format!("{base}/")).await.expect("the list");
    browser
        .wait_for("tr.dag.paused[data-dag-id='greeter']", WAIT)
        .await
        .expect("greeter still listed as paused");
    let dags = home.json(&["dags", "list"]);
    let greeter = dags["dags"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["dag_id"] == "greeter"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(greeter["paused"], json!(true), "{dags}");

    // The cluster page lists this node, running.
    browser
        .goto(&format!("{base}/cluster"))
        .await
        .expect("the cluster page");
    browser
        .wait_for("table.nodes tr[data-state='running']", WAIT)
        .await
        .expect("this node, running");
    let roles = browser
        .find("table.nodes tr[data-state='running']")
        .await
        .expect("the node row")
        .text()
        .await
        .expect("its text");
    assert!(
        roles.contains("scheduler") && roles.contains("worker"),
        "{roles}"
    );
    shoot(&browser, "cluster").await;

    // The audit log (the admin's nav has it) shows the login and the pause,
    // each with its actor.
    browser
        .find("nav.top a[href='/audit']")
        .await
        .expect("the audit link in an admin's nav")
        .click()
        .await
        .expect("opening the audit log");
    browser
        .wait_for("table.audit tr[data-action='dag.pause']", WAIT)
        .await
        .expect("the pause in the audit log");
    let pause = browser
        .find("table.audit tr[data-action='dag.pause']")
        .await
        .expect("the pause row")
        .text()
        .await
        .expect("its text");
    assert!(
        pause.contains("admin") && pause.contains("dag/greeter") && pause.contains("success"),
        "{pause}"
    );
    browser
        .find("table.audit tr[data-action='login']")
        .await
        .expect("the login row");
    shoot(&browser, "audit").await;

    // Log out with the nav's button.
    browser
        .find("nav.top form[action='/logout'] button")
        .await
        .expect("the logout button")
        .click()
        .await
        .expect("logging out");
    browser
        .wait_for("form[action='/login']", WAIT)
        .await
        .expect("the login page again");

    for name in [
        "login", "dags", "grid", "graph", "run", "attempt", "cluster", "audit",
    ] {
        let path = screenshots().join(format!("{name}.png"));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} is missing or empty", path.display());
    }
    browser.quit().await.expect("closing the browser");
    drop(standalone);
    let _ = writeln!(
        std::io::stderr(),
        "browser_walks_through_the_ui took {:?}; screenshots in {}",
        started.elapsed(),
        screenshots().display()
    );
}

/// A form post as a browser sends it.
pub(crate) fn post_form(
    web: &Web,
    path: &str,
    cookie: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> u16 {
    let mut headers = vec![
        ("cookie", cookie),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    headers.extend_from_slice(extra);
    web.send("POST", path, &headers, Some(body.as_bytes().to_vec()))
        .status
}

/// Logs in through the form; returns the session cookie (`name=value`) and
/// the CSRF token from the page's meta tag.
pub(crate) fn form_login(web: &Web, user: &str, password: &str) -> (String, String) {
    let body = format!("user={user}&password={password}&next=%2F");
    let resp = web.send(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.into_bytes()),
    );
    assert_eq!(resp.status, 303, "login of {user}: {}", resp.text());
    let cookie = resp
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gale_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = web.send("GET", "/", &[("cookie", &cookie)], None);
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let csrf = html
        .split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf-token meta tag")
        .to_owned();
    (cookie, csrf)
}

/// What a browser would never send: no session, a session without the CSRF
/// token, a cross-site origin, a viewer's trigger. Each is refused and
/// changes nothing.
#[test]
fn ui_refuses_forged_and_unauthorised_requests() {
    let home = Home::new();
    home.write_dag("greeter.yaml", GREETER);
    let standalone = home.start();
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    home.wait_dag("greeter");
    let web = Web::new(&base);

    let resp = web.get("/");
    assert_eq!(resp.status, 303);
    assert_eq!(resp.header("location"), Some("/login?next=/"));
    let resp = web.get("/dags/greeter?tab=runs");
    assert_eq!(resp.status, 303);
    assert_eq!(
        resp.header("location"),
        Some("/login?next=/dags/greeter%3Ftab%3Druns")
    );

    let (cookie, csrf) = form_login(&web, "admin", &password);
    let trigger = format!("csrf_token={csrf}&conf=%7B%7D");
    assert_eq!(
        post_form(&web, "/dags/greeter/trigger", &cookie, &[], "conf=%7B%7D"),
        403,
        "a session without the CSRF token"
    );
    assert_eq!(
        post_form(
            &web,
            "/dags/greeter/trigger",
            &cookie,
            &[("origin", "https://evil.example")],
            &trigger
        ),
        403,
        "a cross-site post, even with the token"
    );
    assert_eq!(
        post_form(&web, "/dags/greeter/pause", &cookie, &[], "back=%2F"),
        403,
        "a pause without the token"
    );
    assert_eq!(
        post_form(&web, "/logout", &cookie, &[], ""),
        403,
        "a logout without the token"
    );

    create_user(&home, "v", "viewer", "viewer-pass-1");
    let (viewer, viewer_csrf) = form_login(&web, "v", "viewer-pass-1");
    assert_eq!(
        post_form(
            &web,
            "/dags/greeter/trigger",
            &viewer,
            &[],
            &format!("csrf_token={viewer_csrf}&conf=%7B%7D")
        ),
        403,
        "a viewer's trigger"
    );
    let page = web.send(
        "GET",
        "/dags/greeter?tab=trigger",
        &[("cookie", &viewer)],
        None,
    );
    assert!(page.text().contains("triggering needs the operator role"));

    assert!(home.runs("greeter").is_empty(), "no run was created");
    let dags = home.json(&["dags", "list"]);
    assert_eq!(dags["dags"][0]["paused"], json!(false), "{dags}");
    let page = web.send("GET", "/", &[("cookie", &cookie)], None);
    assert_eq!(page.status, 200, "the admin's session still works");

    // The same post, done right, works: the refusals were about the forgery.
    let resp = web.send(
        "POST",
        "/dags/greeter/trigger",
        &[
            ("cookie", &cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        Some(trigger.into_bytes()),
    );
    assert_eq!(resp.status, 303, "{}", resp.text());
    assert_eq!(resp.header("location"), Some("/dags/greeter"));
    assert_eq!(home.runs("greeter").len(), 1);
}

/// Runs in Berlin: a quick task, and one held by a pool with no slots. Two
/// runs may be active: the scheduled run made at start (its pooled task never
/// finishes) must not hold back the manual run the test follows.
const BERLIN: &str = r#"description: Runs at 06:30 in Berlin.
schedule: "30 6 * * *"
timezone: Europe/Berlin
start_date: 2026-01-01
catchup: false
max_active_runs: 2
tasks:
  quick:
    run: sleep 1; echo done
  pooled:
    run: echo never
    pool: tiny
"#;

/// The text of the first element matching `css`.
async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .wait_for(css, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("the text of {css}: {e:#}"))
}

/// A Europe/Berlin DAG's pages in a browser: the run page writes Berlin time
/// and names the zone, the header's toggle switches every page to UTC (and
/// back), the DAG page names the schedule's zone and when the next run is, and
/// a task held by a full pool says so on its page.
#[tokio::test]
async fn browser_shows_a_dags_times_in_its_zone_and_utc_on_request() {
    let Some(browser) =
        webdriver::start_or_skip("browser_shows_a_dags_times_in_its_zone_and_utc_on_request").await
    else {
        return;
    };
    let home = Home::new();
    home.write_dag("berlin.yaml", BERLIN);
    let standalone = home.start();
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    home.ok(&["pools", "set", "tiny", "0"]);
    home.wait_dag("berlin");
    // 04:30 UTC on a summer day is 06:30 in Berlin (CEST, UTC+2).
    let run = home.trigger("berlin", &["--logical-date", "2026-07-01T04:30:00Z"]);
    log_in(&browser, &base, "admin", &password).await;

    // The run page, in the DAG's zone by default.
    let run_url = format!("{base}/runs/{run}");
    browser.goto(&run_url).await.expect("the run page");
    browser
        .wait_for("tr[data-task-id='quick'] .badge.state-success", WAIT)
        .await
        .expect("quick done (the page refreshes itself)");
    browser
        .wait_for("svg.gantt rect.bar[data-task='quick']", WAIT)
        .await
        .expect("quick's Gantt bar");
    let facts = text_of(&browser, "dl.facts").await;
    assert!(facts.contains("2026-07-01 06:30:00 CEST"), "{facts}");
    assert!(!facts.contains("UTC"), "{facts}");
    assert_eq!(text_of(&browser, "#page-zone").await, "Europe/Berlin");
    let on = text_of(&browser, "nav.top .tz-toggle a.on").await;
    assert_eq!(on, "DAG zone", "the current choice is shown");
    let gantt = js(
        &browser,
        "return document.querySelector('.gantt-box svg').textContent;",
    )
    .await;
    let gantt = gantt.as_str().unwrap_or_default();
    assert!(
        gantt.contains("CEST") || gantt.contains("CET"),
        "the Gantt axis names its zone: {gantt}"
    );
    assert!(gantt.contains("queued: waiting to start"), "{gantt}");
    shoot(&browser, "tz-run-berlin").await;

    // The toggle: a plain link that comes back to this page, now in UTC.
    browser
        .find("nav.top .tz-toggle a[data-tz='utc']")
        .await
        .expect("the UTC link")
        .click()
        .await
        .expect("choosing UTC");
    browser
        .wait_for("nav.top .tz-toggle a.on[data-tz='utc']", WAIT)
        .await
        .expect("UTC shown as chosen");
    assert_eq!(browser.current_url().await.expect("the URL"), run_url);
    let facts = text_of(&browser, "dl.facts").await;
    assert!(facts.contains("2026-07-01 04:30:00 UTC"), "{facts}");
    assert!(!facts.contains("CEST"), "{facts}");
    assert_eq!(text_of(&browser, "#page-zone").await, "UTC");
    shoot(&browser, "tz-run-utc").await;

    // The choice holds on the DAG page too; the schedule still names the
    // zone it is evaluated in.
    browser
        .goto(&format!("{base}/dags/berlin?tab=runs"))
        .await
        .expect("the runs tab");
    let runs = text_of(&browser, "table.runs").await;
    assert!(runs.contains("2026-07-01 04:30:00 UTC"), "{runs}");
    let head = text_of(&browser, "dl.facts").await;
    assert!(head.contains("At 06:30, Europe/Berlin"), "{head}");

    // Back to the DAG's zone.
    browser
        .find("nav.top .tz-toggle a[data-tz='dag']")
        .await
        .expect("the DAG-zone link")
        .click()
        .await
        .expect("choosing the DAG's zone");
    browser
        .wait_for("nav.top .tz-toggle a.on[data-tz='dag']", WAIT)
        .await
        .expect("the DAG's zone shown as chosen");
    let runs = text_of(&browser, "table.runs").await;
    assert!(runs.contains("2026-07-01 06:30:00 CEST"), "{runs}");
    let next = text_of(&browser, "dl.facts .next-run").await;
    // Relative: "in 20h", or "7h ago" for a slot whose run has not been
    // made yet.
    assert!(
        next.starts_with("in ") || next.ends_with(" ago"),
        "relative: {next}"
    );
    let next_at = text_of(&browser, "dl.facts .next-run-at").await;
    assert!(
        next_at.ends_with(" CET") || next_at.ends_with(" CEST"),
        "absolute, with the zone: {next_at}"
    );
    assert!(next_at.contains(" 06:30:00 "), "{next_at}");
    shoot(&browser, "tz-dag-berlin").await;

    // The task held by the full pool says why on its page.
    browser
        .goto(&format!("{base}/runs/{run}/tasks/pooled"))
        .await
        .expect("the pooled task's page");
    let facts = browser
        .wait_until(WAIT, "the waiting reason", async |b| {
            let text = b.find("dl.facts").await?.text().await?;
            // The facts' names are upper-cased by the style sheet.
            Ok(text.to_lowercase().contains("waiting for").then_some(text))
        })
        .await
        .expect("a waiting reason");
    assert!(facts.contains("pool tiny is full"), "{facts}");
    shoot(&browser, "tz-task-waiting").await;

    browser.quit().await.expect("closing the browser");
    drop(standalone);
}
