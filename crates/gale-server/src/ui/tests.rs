//! The UI's pure parts (redirect checks, grid assembly, flash cookies, conf
//! parsing, formatting), and its pages driven through the whole app (auth
//! middleware included) with `oneshot` on a SQLite store in a temp dir.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gale_model::{DagId, RunId, RunState, TaskId, TaskState};
use gale_store::{Finish, LogLine, RunRow, RunType, Store, Stream, TaskRow, TiId, Transition};
use jiff::Timestamp;
use tower::ServiceExt as _;

use super::*;
use crate::auth::{Identity, Role, Via};

// ------------------------------------------------------------------ pure parts

#[test]
fn next_must_be_a_local_path() {
    use super::login::next_target;
    for (next, want) in [
        (None, "/"),
        (Some(""), "/"),
        (Some("/"), "/"),
        (Some("/dags/a?tab=graph"), "/dags/a?tab=graph"),
        (Some("//evil.example/x"), "/"),
        (Some("/\\evil.example"), "/"),
        (Some("https://evil.example/"), "/"),
        (Some("javascript:alert(1)"), "/"),
        (Some("dags"), "/"),
        (Some("/a\r\nSet-Cookie: x=1"), "/"),
    ] {
        assert_eq!(next_target(next), want, "next = {next:?}");
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("a valid timestamp")
}

fn run_row(id: i64, state: RunState, started: Option<i64>, ended: Option<i64>) -> RunRow {
    RunRow {
        id: RunId(id),
        dag_id: DagId("d".into()),
        run_key: format!("manual__{id}"),
        run_type: RunType::Manual,
        version_hash: "h".into(),
        logical_date: ts(id * 60),
        interval_start: ts(id * 60),
        interval_end: ts(id * 60),
        conf: serde_json::Map::new(),
        state,
        created_at: ts(id * 60),
        started_at: started.map(ts),
        ended_at: ended.map(ts),
    }
}

fn task_row(ti: i64, run: i64, task_id: &str, state: TaskState) -> TaskRow {
    TaskRow {
        id: TiId(ti),
        run_id: RunId(run),
        dag_id: DagId("d".into()),
        task_id: TaskId(task_id.into()),
        state,
        try_number: 1,
        max_tries: 1,
        queue: "default".into(),
        priority: 0,
        worker_id: None,
        heartbeat_at: None,
        queued_at: None,
        started_at: None,
        ended_at: None,
        retry_at: None,
        outputs: BTreeMap::new(),
        pool: None,
    }
}

#[test]
fn grid_puts_oldest_runs_left_and_tasks_in_dag_order() {
    // As list_runs returns them: newest first. Run 2 ran twice as long as run 1.
    let runs = vec![
        run_row(3, RunState::Running, Some(0), None),
        run_row(2, RunState::Success, Some(0), Some(20)),
        run_row(1, RunState::Failed, Some(0), Some(10)),
    ];
    let tasks = vec![
        task_row(1, 1, "extract", TaskState::Failed),
        task_row(2, 1, "old_task", TaskState::Success),
        task_row(3, 2, "extract", TaskState::Success),
        task_row(4, 2, "load", TaskState::Success),
        task_row(5, 3, "load", TaskState::None),
        task_row(6, 3, "extract", TaskState::Running),
    ];
    let grid = grid::assemble(
        &["extract", "load"],
        &runs,
        &tasks,
        ts(5),
        &format::Zone::utc(),
    );
    let columns: Vec<(i64, &str)> = grid.columns.iter().map(|c| (c.run_id, c.state)).collect();
    assert_eq!(
        columns,
        [(1, "failed"), (2, "success"), (3, "running")],
        "oldest left"
    );
    assert_eq!(
        grid.columns.iter().map(|c| c.height).collect::<Vec<_>>(),
        [21, 36, 14],
        "bars scale with duration (run 3 still running at now = 5 s)"
    );
    let rows: Vec<(&str, Vec<Option<&str>>)> = grid
        .rows
        .iter()
        .map(|r| {
            (
                r.task_id.as_str(),
                r.cells
                    .iter()
                    .map(|c| c.as_ref().map(|c| c.state))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "extract",
                vec![Some("failed"), Some("success"), Some("running")]
            ),
            ("load", vec![None, Some("success"), Some("none")]),
            ("old_task", vec![Some("success"), None, None]),
        ],
        "DAG order, then tasks only older versions had"
    );
    let cell = grid.rows[0].cells[2].as_ref().expect("a cell");
    assert_eq!(cell.href, "/runs/3/tasks/extract");
    assert_eq!((cell.run_id, cell.task_id.as_str()), (3, "extract"));
}

#[test]
fn grid_of_no_runs_is_empty_but_lists_tasks() {
    let grid = grid::assemble(&["a", "b"], &[], &[], ts(0), &format::Zone::utc());
    assert!(grid.columns.is_empty());
    assert_eq!(grid.rows.len(), 2);
    assert!(grid.rows.iter().all(|r| r.cells.is_empty()));
}

#[test]
fn flash_survives_the_cookie_round_trip() {
    for f in [
        Flash::ok("triggered run 7 (manual__2026-01-01T00:00:00Z)"),
        Flash::error("conf is not valid JSON: expected `:` at line 1; x=1 <b>"),
        Flash::ok("ünïcode ✓"),
    ] {
        let value = f.encode();
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b','),
            "a cookie-safe value: {value}"
        );
        assert_eq!(Flash::decode(&value), Some(f));
    }
    assert_eq!(Flash::decode("warn:x"), None, "unknown kinds are dropped");
    assert_eq!(Flash::decode("ok:"), None);
    assert_eq!(Flash::decode("garbage"), None);
}

#[test]
fn conf_must_be_a_json_object() {
    use super::dag_trigger::parse_conf;
    assert_eq!(parse_conf("").expect("empty is {}").len(), 0);
    assert_eq!(parse_conf("  \n").expect("blank is {}").len(), 0);
    assert_eq!(
        parse_conf(r#"{"who": "you"}"#).expect("an object")["who"],
        "you"
    );
    assert!(
        parse_conf("[1, 2]")
            .expect_err("an array")
            .contains("JSON object")
    );
    assert!(
        parse_conf("{\"who\": ")
            .expect_err("malformed")
            .contains("not valid JSON")
    );
}

#[test]
fn times_and_durations_read_well() {
    assert_eq!(format::duration(0.42), "0.4s");
    assert_eq!(format::duration(42.0), "42s");
    assert_eq!(format::duration(185.0), "3m 05s");
    assert_eq!(format::duration(7380.0), "2h 03m");
    assert_eq!(format::duration(90_000.0), "1d 01h");
    assert_eq!(format::ago(ts(0), ts(5)), "5s ago");
    assert_eq!(format::ago(ts(0), ts(600)), "10m ago");
    assert_eq!(format::ago(ts(600), ts(0)), "in 10m");
    assert_eq!(format::span(None, None, ts(0)), "—");
    assert_eq!(format::ts(ts(0)), "2027-01-15 08:00:00 UTC");
    assert_eq!(super::cluster::skew(-0.3), "0 ms");
    assert_eq!(super::cluster::skew(12.4), "+12 ms");
    assert_eq!(super::cluster::skew(-1500.0), "-1500 ms");
}

/// An instant written as RFC 3339.
fn instant(s: &str) -> Timestamp {
    s.parse().expect("an RFC 3339 instant")
}

#[test]
fn dag_pages_write_times_in_the_dag_zone_with_its_name() {
    let berlin = format::Zone::named("Europe/Berlin");
    assert_eq!(berlin.name(), "Europe/Berlin");
    // Summer: UTC+2, CEST.
    let summer = instant("2026-07-01T04:30:00Z");
    assert_eq!(berlin.ts(summer), "2026-07-01 06:30:00 CEST");
    assert_eq!(berlin.clock(summer), "06:30:00");
    // Winter: UTC+1, CET; the same wall time is a different instant.
    let winter = instant("2026-01-15T05:30:00Z");
    assert_eq!(berlin.ts(winter), "2026-01-15 06:30:00 CET");
    // Across the spring change (2026-03-29 02:00 CET -> 03:00 CEST): an hour
    // apart in UTC, an hour and a zone apart on the wall.
    assert_eq!(
        berlin.ts(instant("2026-03-29T00:59:59Z")),
        "2026-03-29 01:59:59 CET"
    );
    assert_eq!(
        berlin.ts(instant("2026-03-29T01:00:00Z")),
        "2026-03-29 03:00:00 CEST"
    );
    // And back in autumn (2026-10-25 03:00 CEST -> 02:00 CET): 02:30 twice.
    assert_eq!(
        berlin.ts(instant("2026-10-25T00:30:00Z")),
        "2026-10-25 02:30:00 CEST"
    );
    assert_eq!(
        berlin.ts(instant("2026-10-25T01:30:00Z")),
        "2026-10-25 02:30:00 CET"
    );
    let utc = format::Zone::utc();
    assert_eq!(utc.ts(summer), "2026-07-01 04:30:00 UTC");
    assert_eq!(utc.ts_opt(None), "—");
    assert!(utc.is_utc() && !berlin.is_utc());
    // A zone this machine does not know falls back to UTC, named so.
    assert_eq!(format::Zone::named("Moon/Base").name(), "UTC");
    assert_eq!(format::Zone::named("UTC").ts(summer), utc.ts(summer));
    assert_eq!(
        format::schedule("At 06:30.", "Europe/Berlin"),
        "At 06:30, Europe/Berlin"
    );
    assert_eq!(format::schedule("At 02:00", "UTC"), "At 02:00, UTC");
}

#[test]
fn the_tz_cookie_takes_only_known_values() {
    use format::TzChoice;
    assert_eq!(TzChoice::of_cookie(None), TzChoice::Dag);
    assert_eq!(TzChoice::of_cookie(Some("utc")), TzChoice::Utc);
    assert_eq!(TzChoice::of_cookie(Some("dag")), TzChoice::Dag);
    for bad in ["", "UTC", "Utc", "utc ", "Europe/Berlin", "utc;x=1", "<b>"] {
        assert_eq!(TzChoice::parse(bad), None, "{bad:?}");
        assert_eq!(TzChoice::of_cookie(Some(bad)), TzChoice::Dag, "{bad:?}");
    }
    assert_eq!(TzChoice::Utc.as_str(), "utc");
    let summer = instant("2026-07-01T04:30:00Z");
    assert_eq!(
        TzChoice::Dag.zone_for("Europe/Berlin").ts(summer),
        "2026-07-01 06:30:00 CEST"
    );
    assert_eq!(
        TzChoice::Utc.zone_for("Europe/Berlin").ts(summer),
        "2026-07-01 04:30:00 UTC"
    );
}

#[tokio::test]
async fn store_failures_never_show_their_text() {
    let ctx = Ctx {
        identity: Identity {
            user: "ann".into(),
            role: Role::Viewer,
            csrf: None,
            via: Via::Open,
        },
        flash: None,
        secure: false,
        peer: "unknown".into(),
        tz: format::TzChoice::Dag,
        here: "/".into(),
    };
    let e =
        gale_store::Error::Database("relation \"runs\" does not exist; password=hunter2".into());
    let res = ctx.error(e.into());
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_text(res).await;
    assert!(body.contains("database is unavailable"), "{body}");
    assert!(
        !body.contains("hunter2") && !body.contains("relation"),
        "{body}"
    );
}

// ------------------------------------------------------------------ pages

const HELLO: &str = r#"description: Says <b>hello</b>
params:
  who: world
  api_token: s3cret
  password: {type: string, secret: true, default: unset}
tags: [demo, "x<y"]
tasks:
  greet:
    run: echo "hello {{ params.who }}"
  after:
    needs: [greet]
    run: echo done
"#;

const NIGHTLY: &str = r#"schedule: "@daily"
timezone: Europe/Berlin
start_date: 2026-01-01
catchup: false
tasks:
  only:
    run: "true"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    app: axum::Router,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Arc<dyn Store> = Arc::new(
        gale_store::sqlite::SqliteStore::open(&dir.path().join("gale.db")).expect("open SQLite"),
    );
    for (name, source) in [("hello", HELLO), ("nightly", NIGHTLY)] {
        let file = format!("dags/{name}.yaml");
        let dag = gale_model::dag::parse(&file, name, source).expect("a valid DAG");
        let hash = gale_model::dag::content_hash(source);
        store
            .upsert_dag(&dag, &file, source, &hash, "test")
            .await
            .expect("upsert_dag");
    }
    store
        .record_import_errors(
            "dags/broken.yaml",
            None,
            &[gale_model::DagError {
                file: "dags/broken.yaml".into(),
                line: 3,
                column: 7,
                message: "unknown field <oops>".into(),
            }],
            "test",
        )
        .await
        .expect("record_import_errors");
    for (name, role) in [("olga", Role::Operator), ("vic", Role::Viewer)] {
        let hash = auth::hash_password("pw-12345").expect("hash");
        store.create_user(name, role, &hash).await.expect("user");
    }
    let state = Arc::new(AppState::new(store.clone()));
    Fixture {
        _dir: dir,
        store,
        app: crate::app(state),
    }
}

/// A logged-in user: the session cookie header and the CSRF token.
async fn session(f: &Fixture, user: &str) -> (String, String) {
    let (cookie, csrf) = auth::open_session(&*f.store, user, None)
        .await
        .expect("login");
    (format!("{}={cookie}", auth::SESSION_COOKIE), csrf)
}

async fn body_text(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .expect("a body");
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn get(f: &Fixture, cookie: &str, uri: &str) -> (StatusCode, String) {
    let res = f
        .app
        .clone()
        .oneshot(
            Request::get(uri)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("a response");
    (res.status(), body_text(res).await)
}

async fn post_form(f: &Fixture, cookie: &str, uri: &str, form: &str) -> Response {
    f.app
        .clone()
        .oneshot(
            Request::post(uri)
                .header(header::COOKIE, cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.to_owned()))
                .expect("a request"),
        )
        .await
        .expect("a response")
}

fn location(res: &Response) -> &str {
    res.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

fn enc(s: &str) -> String {
    auth::url_escape(s)
}

#[tokio::test]
async fn login_sets_a_session_and_goes_only_to_local_paths() {
    let f = fixture().await;
    let res = f
        .app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).expect("req"))
        .await
        .expect("res");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=/");

    let (status, page) = get(&f, "", "/login?next=/dags/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"name="next" value="/dags/hello""#),
        "{page}"
    );

    let res = post_form(&f, "", "/login", "user=olga&password=nope&next=%2F").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty());
    assert!(body_text(res).await.contains("wrong user name or password"));

    let res = post_form(
        &f,
        "",
        "/login",
        "user=olga&password=pw-12345&next=%2Fdags%2Fhello",
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dags/hello");
    let cookie = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("gale_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let (status, page) = get(&f, &session, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<meta name="csrf-token" content=""#));

    let res = post_form(
        &f,
        "",
        "/login",
        "user=olga&password=pw-12345&next=%2F%2Fevil.example",
    )
    .await;
    assert_eq!(location(&res), "/", "no open redirect");

    // A cross-site login is refused.
    let res = f
        .app
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::HOST, "gale.local")
                .header(header::ORIGIN, "https://evil.example")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("user=olga&password=pw-12345"))
                .expect("req"),
        )
        .await
        .expect("res");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_ends_the_session_everywhere() {
    let f = fixture().await;
    let (cookie, csrf) = session(&f, "olga").await;
    let res = post_form(
        &f,
        &cookie,
        "/logout",
        &format!("csrf_token={}", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("gale_session=;") && c.contains("Max-Age=0"))
    );
    let res = f
        .app
        .clone()
        .oneshot(
            Request::get("/")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("res");
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the old cookie is dead"
    );
}

#[tokio::test]
async fn dag_list_shows_dags_broken_files_and_escapes_text() {
    let f = fixture().await;
    let (cookie, _) = session(&f, "vic").await;
    let (status, page) = get(&f, &cookie, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"href="/dags/hello""#), "{page}");
    assert!(page.contains("Says &#60;b&#62;hello&#60;/b&#62;") || page.contains("Says &lt;b&gt;"));
    assert!(!page.contains("<b>hello</b>"), "descriptions are escaped");
    assert!(page.contains("Broken DAG files"));
    // The path once, as the heading of its errors; the panel folded.
    assert_eq!(page.matches("dags/broken.yaml").count(), 1, "{page}");
    assert!(page.contains("line 3, column 7: unknown field"), "{page}");
    assert!(page.contains("<details class=\"card broken\">"), "{page}");
    assert!(!page.contains("<oops>"));
    assert!(page.contains("vic") && page.contains("viewer"));
    assert!(page.contains(" disabled"), "a viewer's switch is disabled");

    let (_, page) = get(&f, &cookie, "/?q=nothing-like-this").await;
    assert!(page.contains("No DAG matches"));
    let (_, page) = get(&f, &cookie, "/?tag=demo").await;
    assert!(page.contains(r#"href="/dags/hello""#));
    let (_, page) = get(&f, &cookie, "/?tag=other").await;
    assert!(!page.contains(r#"href="/dags/hello""#));
}

#[tokio::test]
async fn trigger_form_refuses_bad_conf_and_keeps_the_text() {
    let f = fixture().await;
    let (cookie, csrf) = session(&f, "olga").await;
    let (status, page) = get(&f, &cookie, "/dags/hello?tab=trigger").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"name="param.who" value="world""#), "{page}");
    assert!(!page.contains("s3cret"), "secret params are not prefilled");

    let bad = r#"{"who": "you""#;
    let res = post_form(
        &f,
        &cookie,
        "/dags/hello/trigger",
        &format!("csrf_token={}&conf={}", enc(&csrf), enc(bad)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = body_text(res).await;
    assert!(page.contains("conf is not valid JSON"), "{page}");
    assert!(page.contains("{&#34;who&#34;: &#34;you&#34;") || page.contains("{&quot;who"));

    let res = post_form(
        &f,
        &cookie,
        "/dags/hello/trigger",
        &format!("csrf_token={}&conf=%5B1%5D", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(res).await.contains("must be a JSON object"));

    let res = post_form(
        &f,
        &cookie,
        "/dags/hello/trigger",
        &format!(
            "csrf_token={}&conf={}&logical_date=",
            enc(&csrf),
            enc(r#"{"who": "you", "password": "pw"}"#)
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dags/hello");
    let flash = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("gale_flash="))
        .expect("a flash cookie");
    let flash = flash.split(';').next().expect("name=value");
    let (_, page) = get(&f, &format!("{cookie}; {flash}"), "/dags/hello").await;
    assert!(page.contains("triggered run 1"), "{page}");
    assert!(page.contains(r#"data-run-id="1" data-task-id="greet" data-state="none""#));

    let runs = f
        .store
        .list_runs(&gale_store::RunFilter::default())
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].conf["who"], "you");
    let (_, page) = get(&f, &cookie, "/runs/1").await;
    assert!(page.contains("&#34;password&#34;: &#34;***&#34;") || page.contains("***"));
    assert!(!page.contains("\"pw\"") && !page.contains("&#34;pw&#34;"));
}

#[tokio::test]
async fn forged_and_viewer_posts_change_nothing() {
    let f = fixture().await;
    let (cookie, _) = session(&f, "olga").await;
    let res = post_form(&f, &cookie, "/dags/hello/trigger", "conf=%7B%7D").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let res = post_form(&f, &cookie, "/dags/hello/pause", "csrf_token=wrong").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a wrong CSRF token");

    let (viewer, csrf) = session(&f, "vic").await;
    let res = post_form(
        &f,
        &viewer,
        "/dags/hello/trigger",
        &format!("csrf_token={}", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a viewer");
    let (_, page) = get(&f, &viewer, "/dags/hello?tab=trigger").await;
    assert!(page.contains("triggering needs the operator role"));

    assert!(
        f.store
            .list_runs(&gale_store::RunFilter::default())
            .await
            .expect("runs")
            .is_empty()
    );
    let dag = f
        .store
        .get_dag(&DagId("hello".into()))
        .await
        .expect("dag")
        .expect("exists");
    assert!(!dag.paused);
}

#[tokio::test]
async fn pause_toggle_answers_htmx_with_the_row_and_forms_with_a_redirect() {
    let f = fixture().await;
    let (cookie, csrf) = session(&f, "olga").await;
    let res = f
        .app
        .clone()
        .oneshot(
            Request::post("/dags/hello/pause")
                .header(header::COOKIE, &cookie)
                .header("x-csrf-token", &csrf)
                .header("hx-request", "true")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("back=%2F"))
                .expect("req"),
        )
        .await
        .expect("res");
    assert_eq!(res.status(), StatusCode::OK);
    let fragment = body_text(res).await;
    assert!(
        fragment.starts_with(r#"<tr class="dag paused" data-dag-id="hello">"#),
        "the DAG's row: {fragment}"
    );
    assert!(fragment.contains(r#"hx-post="/dags/hello/unpause""#));
    assert!(fragment.contains(r#"aria-checked="false""#));
    let dag = f.store.get_dag(&DagId("hello".into())).await.expect("dag");
    assert!(dag.expect("exists").paused);

    let res = post_form(
        &f,
        &cookie,
        "/dags/hello/unpause",
        &format!("csrf_token={}&back=%2F%3Ftag%3Ddemo", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/?tag=demo");
    let res = post_form(
        &f,
        &cookie,
        "/dags/hello/pause",
        &format!("csrf_token={}&back=https%3A%2F%2Fevil.example", enc(&csrf)),
    )
    .await;
    assert_eq!(location(&res), "/dags/hello", "never back to another site");
    let res = post_form(
        &f,
        &cookie,
        "/dags/nope/pause",
        &format!("csrf_token={}", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Runs `greet` of run 1 to success through the store, with a log.
async fn run_greet(f: &Fixture) -> RunId {
    let run = gale_actions::trigger(
        &*f.store,
        &gale_actions::Actor::new("test", "unknown"),
        &DagId("hello".into()),
        serde_json::Map::new(),
        None,
    )
    .await
    .expect("trigger");
    f.store.promote_runs().await.expect("promote");
    let tasks = f.store.run_tasks(run.id).await.expect("tasks");
    let greet = tasks
        .iter()
        .find(|t| t.task_id.as_str() == "greet")
        .expect("greet");
    f.store
        .apply_transitions(&[Transition {
            ti: greet.id,
            from: TaskState::None,
            to: TaskState::Scheduled,
            retry_at: None,
        }])
        .await
        .expect("schedule");
    f.store
        .enqueue(&run.dag_id, &[greet.id], None)
        .await
        .expect("enqueue");
    let claims = f
        .store
        .claim(&"w1".into(), "host-1", &["default".to_owned()], 1)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    let now = Timestamp::now();
    f.store
        .append_logs(
            greet.id,
            1,
            &[
                LogLine {
                    ts: now,
                    stream: Stream::Stdout,
                    text: "hello <world>".into(),
                },
                LogLine {
                    ts: now,
                    stream: Stream::Stderr,
                    text: "careful".into(),
                },
            ],
        )
        .await
        .expect("logs");
    let applied = f
        .store
        .finish_attempt(&Finish {
            alerts: Vec::new(),
            ti: greet.id,
            try_number: 1,
            worker_id: "w1".into(),
            state: TaskState::Success,
            retry_at: None,
            outcome: gale_store::Outcome::Success,
            exit_code: Some(0),
            message: None,
            outputs: BTreeMap::from([("rows".to_owned(), "42".to_owned())]),
            pid: Some(4242),
            command: Some("echo \"hello world\"".into()),
        })
        .await
        .expect("finish");
    assert!(applied);
    run.id
}

#[tokio::test]
async fn run_and_attempt_pages_show_what_happened() {
    let f = fixture().await;
    let run = run_greet(&f).await;
    let (cookie, _) = session(&f, "olga").await;

    let (status, page) = get(&f, &cookie, &format!("/runs/{run}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<svg"#) && page.contains("class=\"gantt"));
    assert!(page.contains(r#"href="/runs/1/tasks/greet""#));
    assert!(
        page.contains(r#"action="/runs/1/cancel""#),
        "operators get actions"
    );
    assert!(page.contains("data-confirm"));

    let (status, page) = get(&f, &cookie, &format!("/runs/{run}/tasks/greet")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("hello &#60;world&#62;") || page.contains("hello &lt;world&gt;"));
    assert!(page.contains(r#"class="line stderr""#));
    assert!(page.contains("echo &#34;hello world&#34;") || page.contains("echo &quot;hello"));
    assert!(page.contains("rows") && page.contains("42"));
    assert!(page.contains("4242"), "the attempt's pid");
    assert!(
        !page.contains("data-follow-url"),
        "a finished attempt's log is complete"
    );

    let (status, page) = get(&f, &cookie, &format!("/runs/{run}/tasks/after")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Not started yet"));
    assert!(page.contains(r#"hx-trigger="every 2s""#));

    let (viewer, _) = session(&f, "vic").await;
    let (_, page) = get(&f, &viewer, &format!("/runs/{run}")).await;
    assert!(!page.contains("/cancel"), "viewers get no actions");

    for (uri, want) in [
        ("/runs/999", "no run 999"),
        ("/runs/abc", "no run"),
        ("/runs/1/tasks/nope", "has no task"),
        ("/runs/1/tasks/greet?try=9", "has no attempt"),
        ("/dags/nope", "no DAG nope"),
        ("/dags/hello?tab=nope", "no tab"),
        ("/dags/hello?tab=source&version=abc", "no version"),
        ("/dags/hello/grid", ""),
    ] {
        let (status, page) = get(&f, &cookie, uri).await;
        if want.is_empty() {
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(page.starts_with("<section id=\"grid\""), "{uri}: {page}");
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert!(page.contains(want), "{uri}: {page}");
            assert!(page.contains("<nav class=\"top\""), "a page, not JSON");
        }
    }
}

#[tokio::test]
async fn run_actions_redirect_back_with_a_flash() {
    let f = fixture().await;
    let run = run_greet(&f).await;
    let (cookie, csrf) = session(&f, "olga").await;
    let token = format!("csrf_token={}", enc(&csrf));
    let res = post_form(&f, &cookie, &format!("/runs/{run}/cancel"), &token).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/runs/1");
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("gale_flash=ok:"))
    );
    let run_row = f.store.get_run(run).await.expect("run").expect("exists");
    assert_eq!(run_row.state, RunState::Cancelled);
    let (_, page) = get(&f, &cookie, &format!("/runs/{run}")).await;
    assert!(
        page.contains("state-cancelled") && !page.contains("badge state-failed"),
        "the run page says cancelled, not failed: {page}"
    );
    let (_, list) = get(&f, &cookie, "/dags/hello?tab=runs").await;
    assert!(list.contains("state-cancelled"), "{list}");

    let res = post_form(&f, &cookie, &format!("/runs/{run}/cancel"), &token).await;
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("gale_flash=error:")),
        "a finished run cannot be cancelled"
    );
    let res = post_form(
        &f,
        &cookie,
        &format!("/runs/{run}/mark"),
        &format!("{token}&state=bogus"),
    )
    .await;
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("gale_flash=error:"))
    );

    let res = post_form(
        &f,
        &cookie,
        &format!("/runs/{run}/tasks/greet/clear"),
        &format!("{token}&downstream=1"),
    )
    .await;
    assert_eq!(location(&res), "/runs/1/tasks/greet");
    let tasks = f.store.run_tasks(run).await.expect("tasks");
    assert!(
        tasks.iter().all(|t| t.state == TaskState::None),
        "{tasks:?}"
    );

    let res = post_form(
        &f,
        &cookie,
        &format!("/runs/{run}/tasks/greet/mark"),
        &format!("{token}&state=success"),
    )
    .await;
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("gale_flash=ok:"))
    );
    let res = post_form(&f, &cookie, &format!("/runs/{run}/clear"), &token).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn dag_tabs_render() {
    let f = fixture().await;
    run_greet(&f).await;
    let (cookie, csrf) = session(&f, "olga").await;
    for (tab, want) in [
        ("", "id=\"grid\""),
        ("?tab=graph", "class=\"graph"),
        ("?tab=graph&run=1", "<option value=\"1\" selected>"),
        ("?tab=runs", "href=\"/runs/1\""),
        ("?tab=source", "tasks:"),
        ("?tab=backfill", "has no schedule"),
        ("?tab=durations", r#"<g class="series" data-task="greet""#),
        ("?tab=durations&runs=50", r#"<option value="50" selected>"#),
        ("?tab=tries", r#"data-metric="tries""#),
        ("?tab=landing", "interval end"),
        ("?tab=calendar", "1 runs on 1 days"),
    ] {
        let (status, page) = get(&f, &cookie, &format!("/dags/hello{tab}")).await;
        assert_eq!(status, StatusCode::OK, "{tab}");
        assert!(page.contains(want), "{tab}: {want}\n{page}");
    }
    let res = post_form(
        &f,
        &cookie,
        "/dags/hello/backfill",
        &format!("csrf_token={}&from=2026-01-01&to=2026-01-02", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(res).await.contains("has no schedule"));
    for bad in ["0", "101", "lots"] {
        let (status, page) = get(&f, &cookie, &format!("/dags/hello?tab=tries&runs={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "runs={bad}");
        assert!(page.contains("from 1 to 100"), "{page}");
    }
    let (cookie, _) = session(&f, "vic").await;
    for tab in ["durations", "tries", "landing", "calendar"] {
        let (status, _) = get(&f, &cookie, &format!("/dags/hello?tab={tab}")).await;
        assert_eq!(status, StatusCode::OK, "a viewer reads the {tab} tab");
    }
}

#[tokio::test]
async fn trigger_form_from_params_makes_a_typed_conf_or_names_the_bad_param() {
    let f = fixture().await;
    let dag = params_dag();
    let hash = gale_model::dag::content_hash(PARAMS_DAG);
    f.store
        .upsert_dag(&dag, "dags/params.yaml", PARAMS_DAG, &hash, "test")
        .await
        .expect("upsert_dag");
    let (cookie, csrf) = session(&f, "olga").await;
    let (status, page) = get(&f, &cookie, "/dags/params?tab=trigger").await;
    assert_eq!(status, StatusCode::OK);
    for want in [
        r#"type="number" name="param.count" value="3" step="1" min="1" max="10""#,
        r#"<input type="hidden" name="param.dry_run" value="false">"#,
        r#"<option value="&#34;eu&#34;" selected>eu</option>"#,
        "Where to &#60;run&#62;",
        "<summary>Advanced: conf as JSON</summary>",
    ] {
        assert!(page.contains(want), "{want}\n{page}");
    }
    assert!(!page.contains("param.api_key"), "no field for a secret");

    let res = post_form(
        &f,
        &cookie,
        "/dags/params/trigger",
        &format!(
            "csrf_token={}&param.count=11&param.label=x&param.region={}&conf=",
            enc(&csrf),
            enc("\"us\"")
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = body_text(res).await;
    assert!(
        page.contains(r#"<span class="error" role="alert">param count: "#),
        "the error is next to its field: {page}"
    );
    assert!(
        page.contains(r#"name="param.count" value="11""#),
        "what was typed is kept"
    );
    assert!(page.contains(r#"<option value="&#34;us&#34;" selected>us</option>"#));
    assert!(
        f.store
            .list_runs(&gale_store::RunFilter::default())
            .await
            .expect("runs")
            .is_empty()
    );

    let res = post_form(
        &f,
        &cookie,
        "/dags/params/trigger",
        &format!(
            "csrf_token={}&param.count=4&param.label=nightly&param.dry_run=false&param.dry_run=true&param.ratio=0.75&param.names=&conf=",
            enc(&csrf)
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let runs = f
        .store
        .list_runs(&gale_store::RunFilter::default())
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1);
    let conf = serde_json::Value::Object(runs[0].conf.clone());
    assert_eq!(conf["count"], 4);
    assert_eq!(conf["dry_run"], true);
    assert_eq!(conf["label"], "nightly");
    assert_eq!(conf["ratio"], 0.75);
}

#[tokio::test]
async fn cluster_page_and_assets() {
    let f = fixture().await;
    let (cookie, _) = session(&f, "vic").await;
    let (status, page) = get(&f, &cookie, "/cluster").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("hx-get=\"/cluster/live\""));
    assert!(page.contains("Schema version"));
    let (status, page) = get(&f, &cookie, "/cluster/live").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.starts_with("<section id=\"cluster\""));

    for (uri, kind) in [
        ("/assets/gale.css", "text/css; charset=utf-8"),
        ("/assets/gale.js", "text/javascript; charset=utf-8"),
        ("/assets/htmx.min.js", "text/javascript; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let res = f
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("req"))
            .await
            .expect("res");
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert_eq!(res.headers()[header::CONTENT_TYPE], kind, "{uri}");
        assert!(res.headers().contains_key(header::CACHE_CONTROL));
    }
    let (status, _) = get(&f, "", "/assets/README.md").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&f, "", "/assets/../Cargo.toml").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn backfill_form_creates_runs_and_lists_progress() {
    let f = fixture().await;
    let (cookie, csrf) = session(&f, "olga").await;
    let (status, page) = get(&f, &cookie, "/dags/nightly?tab=backfill").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"action="/dags/nightly/backfill""#),
        "{page}"
    );
    assert!(page.contains("No backfills yet"));

    let res = post_form(
        &f,
        &cookie,
        "/dags/nightly/backfill",
        &format!("csrf_token={}&from=2026-01-03&to=2026-01-01", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = body_text(res).await;
    assert!(page.contains("is before"), "{page}");
    assert!(
        page.contains(r#"value="2026-01-03""#),
        "the form keeps its dates"
    );

    let res = post_form(
        &f,
        &cookie,
        "/dags/nightly/backfill",
        &format!("csrf_token={}&from=2026-01-01&to=2026-01-03", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dags/nightly?tab=backfill");
    let flash = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("gale_flash=ok:"))
        .expect("a flash");
    assert!(flash.contains("created%203%20runs"), "{flash}");
    let (_, page) = get(&f, &cookie, "/dags/nightly?tab=backfill").await;
    assert!(page.contains("class=\"progress\""), "{page}");
    assert!(page.contains("0/3"), "{page}");
    let (_, page) = get(&f, &cookie, "/dags/nightly").await;
    assert_eq!(page.matches("class=\"cell run state-queued\"").count(), 3);
}

#[tokio::test]
async fn dag_pages_use_the_dag_zone_until_utc_is_chosen() {
    let f = fixture().await;
    let (cookie, csrf) = session(&f, "olga").await;
    let res = post_form(
        &f,
        &cookie,
        "/dags/nightly/backfill",
        &format!("csrf_token={}&from=2026-07-01&to=2026-07-01", enc(&csrf)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let utc = format!("{cookie}; gale_tz=utc");
    // The run's logical date is midnight in Berlin: 22:00 the day before in UTC.
    let (_, page) = get(&f, &cookie, "/dags/nightly?tab=runs").await;
    assert!(page.contains("2026-07-01 00:00:00 CEST"), "{page}");
    assert!(
        page.contains(", Europe/Berlin"),
        "the schedule names its zone"
    );
    assert!(page.contains(r#"times in <span id="page-zone">Europe/Berlin</span>"#));
    assert!(page.contains(r#"class="on" aria-current="true" data-tz="dag""#));
    let (_, page) = get(&f, &utc, "/dags/nightly?tab=runs").await;
    assert!(page.contains("2026-06-30 22:00:00 UTC"), "{page}");
    assert!(!page.contains("CEST"), "{page}");
    assert!(
        page.contains(", Europe/Berlin"),
        "the schedule still names the zone it is evaluated in"
    );
    assert!(page.contains(r#"class="on" aria-current="true" data-tz="utc""#));
    assert!(page.contains(r#"times in <span id="page-zone">UTC</span>"#));
    // A cookie value nobody set is ignored.
    let (_, page) = get(
        &f,
        &format!("{cookie}; gale_tz=mars"),
        "/dags/nightly?tab=runs",
    )
    .await;
    assert!(page.contains("2026-07-01 00:00:00 CEST"), "{page}");

    let run = f
        .store
        .list_runs(&gale_store::RunFilter {
            dag_id: Some(DagId("nightly".into())),
            ..Default::default()
        })
        .await
        .expect("runs")[0]
        .id;
    let (_, page) = get(&f, &cookie, &format!("/runs/{run}")).await;
    assert!(page.contains("2026-07-01 00:00:00 CEST"), "{page}");
    let (_, page) = get(&f, &utc, &format!("/runs/{run}")).await;
    assert!(page.contains("2026-06-30 22:00:00 UTC"), "{page}");
    // Pages about no one DAG write UTC, and say so.
    let (_, page) = get(&f, &cookie, "/").await;
    assert!(page.contains(r#"times in <span id="page-zone">UTC</span>"#));
    assert!(page.contains("At 00:00, Europe/Berlin") || page.contains(", Europe/Berlin"));
    assert!(
        page.contains("href=\"/tz?to=utc&amp;next=/\""),
        "the toggle comes back here: {page}"
    );
}

#[tokio::test]
async fn the_tz_link_sets_a_checked_cookie_and_goes_back_home_only() {
    let f = fixture().await;
    let (cookie, _) = session(&f, "vic").await;
    let go = |uri: &'static str| {
        let app = f.app.clone();
        let cookie = cookie.clone();
        async move {
            app.oneshot(
                Request::get(uri)
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await
            .expect("a response")
        }
    };
    let res = go("/tz?to=utc&next=%2Fdags%2Fnightly%3Ftab%3Druns").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/dags/nightly?tab=runs");
    let set = set_cookies(&res);
    assert!(
        set.iter()
            .any(|c| c.starts_with("gale_tz=utc;") && c.contains("Path=/")),
        "{set:?}"
    );
    let res = go("/tz?to=dag&next=%2F%2Fevil.example").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/", "never to another host");
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("gale_tz=dag;"))
    );
    let res = go("/tz?to=Europe%2FBerlin&next=%2F").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookies(&res).iter().all(|c| !c.starts_with("gale_tz=")));
    assert!(body_text(res).await.contains("use to=dag"));
    // Without a session there is no choice to make.
    let res = f
        .app
        .clone()
        .oneshot(Request::get("/tz?to=utc").body(Body::empty()).expect("req"))
        .await
        .expect("a response");
    assert!(set_cookies(&res).iter().all(|c| !c.starts_with("gale_tz=")));
}

#[tokio::test]
async fn the_dag_list_is_paged_with_its_filters_in_the_links() {
    let f = fixture().await;
    for i in 0..230 {
        let id = format!("bulk_{i:03}");
        let file = format!("dags/{id}.yaml");
        let source = "tags: [bulk]\ntasks:\n  a:\n    run: 'true'\n".to_owned();
        let dag = gale_model::dag::parse(&file, &id, &source).expect("a valid DAG");
        let hash = gale_model::dag::content_hash(&format!("{id}{source}"));
        f.store
            .upsert_dag(&dag, &file, &source, &hash, "test")
            .await
            .expect("upsert_dag");
    }
    let (cookie, _) = session(&f, "vic").await;
    let (status, first) = get(&f, &cookie, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("232 DAGs"), "every DAG is counted");
    assert!(first.contains("1–100 of 232"), "{first}");
    assert!(
        first.contains("href=\"/?page=2\""),
        "a link to the next page"
    );
    assert!(
        !first.contains("bulk_100"),
        "the second page's DAGs are not drawn"
    );
    let (_, third) = get(&f, &cookie, "/?page=3").await;
    assert!(third.contains("201–232 of 232"), "{third}");
    assert!(third.contains("bulk_229") && third.contains("hello") && third.contains("nightly"));
    assert!(third.contains("href=\"/?page=2\"") && !third.contains("rel=\"next\""));
    // Filters are the store's and stay in the pager's links.
    let (_, tagged) = get(&f, &cookie, "/?tag=bulk&q=bulk&page=2").await;
    assert!(tagged.contains("101–200 of 230"), "{tagged}");
    assert!(
        tagged.contains("href=\"/?q=bulk&#38;tag=bulk\" rel=\"prev\""),
        "{tagged}"
    );
    assert!(
        tagged.contains("href=\"/?q=bulk&#38;tag=bulk&#38;page=3\" rel=\"next\""),
        "{tagged}"
    );
    // `_` is no wildcard: bulk_1 is bulk_100 to bulk_199.
    let (_, some) = get(&f, &cookie, "/?q=bulk_1").await;
    assert!(some.contains("1–100 of 100"), "{some}");
}

#[test]
fn a_page_drawn_for_a_form_sends_its_tz_links_back_to_the_form() {
    let parts = |req: Request<()>| req.into_parts().0;
    let get = parts(
        Request::get("/dags/nightly?tab=runs")
            .body(())
            .expect("req"),
    );
    assert_eq!(super::page_path(&get), "/dags/nightly?tab=runs");
    // A POST cannot be repeated by a link: back to the page the form was on.
    let post = parts(
        Request::post("/variables")
            .header(header::REFERER, "http://127.0.0.1:8080/variables?new=1")
            .body(())
            .expect("req"),
    );
    assert_eq!(super::page_path(&post), "/variables?new=1");
    for referer in ["http://evil.example//evil.example/x", "not a url", ""] {
        let post = parts(
            Request::post("/variables")
                .header(header::REFERER, referer)
                .body(())
                .expect("req"),
        );
        assert_eq!(super::page_path(&post), "/", "{referer:?}");
    }
    let bare = parts(Request::post("/pools").body(()).expect("req"));
    assert_eq!(super::page_path(&bare), "/");
}

mod vault;

// ------------------------------------------------------------------ history charts

/// A task of a history row: its id, tries, and start and end in seconds.
type HistoryTask<'a> = (&'a str, u32, Option<(i64, i64)>);

fn history(id: i64, day: i64, tasks: &[HistoryTask<'_>]) -> gale_store::RunHistory {
    let mut run = run_row(id, RunState::Success, None, None);
    run.logical_date = ts(day * 86_400);
    run.interval_end = ts((day + 1) * 86_400);
    gale_store::RunHistory {
        run,
        tasks: tasks
            .iter()
            .map(|(task_id, tries, span)| gale_store::TaskHistory {
                task_id: TaskId((*task_id).into()),
                state: TaskState::Success,
                try_number: *tries,
                started_at: span.map(|(s, _)| ts(s)),
                ended_at: span.map(|(_, e)| ts(e)),
            })
            .collect(),
    }
}

#[test]
fn history_charts_put_oldest_runs_left_and_skip_missing_values() {
    use super::history::{Metric, chart, svg};
    // Newest first, as the store returns them.
    let runs = vec![
        history(
            2,
            1,
            &[
                ("b", 2, Some((2 * 86_400 + 60, 2 * 86_400 + 90))),
                ("a", 0, None),
            ],
        ),
        history(
            1,
            0,
            &[
                ("a", 1, Some((86_400, 86_400 + 10))),
                ("gone<x>", 1, Some((86_400, 86_400 + 5))),
            ],
        ),
    ];
    let order = ["a", "b"];
    let d = chart(Metric::Duration, &order, &runs, &super::format::Zone::utc());
    assert_eq!(
        d.columns.iter().map(|c| c.run_id).collect::<Vec<_>>(),
        vec![1, 2],
        "oldest run on the left"
    );
    let values = |c: &super::history::Chart| -> Vec<(String, Vec<Option<f64>>)> {
        c.series
            .iter()
            .map(|s| (s.task_id.clone(), s.values.clone()))
            .collect()
    };
    assert_eq!(
        values(&d),
        vec![
            ("a".into(), vec![Some(10.0), None]),
            ("b".into(), vec![None, Some(30.0)]),
            ("gone<x>".into(), vec![Some(5.0), None]),
        ],
        "the DAG's order, then tasks only old runs had; no value where a task did not finish"
    );
    let t = chart(Metric::Tries, &order, &runs, &super::format::Zone::utc());
    assert_eq!(
        values(&t),
        vec![
            ("a".into(), vec![Some(1.0), None]),
            ("b".into(), vec![None, Some(2.0)]),
            ("gone<x>".into(), vec![Some(1.0), None]),
        ],
        "tries; a task that never started has none"
    );
    let l = chart(Metric::Landing, &order, &runs, &super::format::Zone::utc());
    assert_eq!(
        values(&l)[1],
        ("b".into(), vec![None, Some(90.0)]),
        "landing: task end minus the end of the run's data interval"
    );
    assert_eq!(
        values(&l)[0],
        ("a".into(), vec![Some(10.0), None]),
        "landing of run 1: interval ended at day 1, the task 10s later"
    );

    let out = svg(&d);
    assert!(out.starts_with("<svg") && out.ends_with("</svg>"), "{out}");
    assert!(out.contains(r#"data-metric="duration""#), "{out}");
    assert!(out.contains(r#"<g class="series" data-task="a""#), "{out}");
    assert!(out.contains(r#"data-run="2" data-value="30""#), "{out}");
    assert!(out.contains(r#"<a href="/runs/1">"#), "{out}");
    assert!(
        out.contains("gone&lt;x&gt;") && !out.contains("gone<x>"),
        "escaped: {out}"
    );
    assert_eq!(svg(&d), out, "deterministic");
    assert!(
        svg(&chart(
            Metric::Duration,
            &order,
            &[],
            &super::format::Zone::utc()
        ))
        .contains("no finished tasks yet"),
        "an empty chart says so"
    );
}

#[test]
fn calendar_colours_each_day_by_its_worst_state() {
    use gale_store::DayRuns;
    let date = |s: &str| s.parse::<jiff::civil::Date>().expect("a date");
    let days = vec![
        DayRuns {
            day: date("2026-03-02"),
            state: RunState::Success,
            n_runs: 2,
        },
        DayRuns {
            day: date("2026-03-02"),
            state: RunState::Failed,
            n_runs: 1,
        },
        DayRuns {
            day: date("2026-03-03"),
            state: RunState::Success,
            n_runs: 1,
        },
    ];
    let out = super::history::calendar(&days, date("2026-03-04"));
    assert!(
        out.contains(r#"class="day state-failed" data-day="2026-03-02" data-runs="3""#),
        "{out}"
    );
    assert!(
        out.contains("2026-03-02: 3 runs (2 success, 1 failed)"),
        "{out}"
    );
    assert!(out.contains(r#"class="day state-success" data-day="2026-03-03" data-runs="1""#));
    assert!(
        out.contains(r#"data-day="2026-03-04" data-runs="0""#),
        "today is the last cell"
    );
    assert!(
        !out.contains(r#"data-day="2026-03-05""#),
        "nothing after today"
    );
    // 2026-03-04 is a Wednesday: 52 full weeks before its week, plus Mon-Wed.
    assert_eq!(out.matches(r#"<rect class="day"#).count(), 52 * 7 + 3);
    assert!(
        out.contains(r#"data-day="2025-03-03""#),
        "starts on a Monday"
    );
}

// ------------------------------------------------------------------ params form

const PARAMS_DAG: &str = r#"params:
  region: {type: string, enum: [eu, us], default: eu, description: Where to <run>}
  count: {type: integer, minimum: 1, maximum: 10, default: 3}
  ratio: {type: number, default: 0.5}
  dry_run: {type: boolean, default: false}
  label: {type: string, required: true, description: A label}
  options: {type: object, default: {a: 1}}
  names: [x, z]
  api_key: {type: string, secret: true, default: k}
tasks:
  t:
    run: echo
"#;

fn params_dag() -> gale_model::Dag {
    gale_model::dag::parse("dags/params.yaml", "params", PARAMS_DAG).expect("a valid DAG")
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn params_form_has_a_control_per_param_type() {
    use super::params_form::{Control, fields};
    let got: Vec<(String, Control, String, bool)> = fields(&params_dag())
        .into_iter()
        .map(|f| (f.key, f.control, f.value, f.required))
        .collect();
    let number = |step, min: &str, max: &str| Control::Number {
        step,
        min: min.into(),
        max: max.into(),
    };
    assert_eq!(
        got,
        vec![
            ("count".into(), number("1", "1", "10"), "3".into(), false),
            ("dry_run".into(), Control::Checkbox, "false".into(), false),
            ("label".into(), Control::Text, "".into(), true),
            (
                "names".into(),
                Control::Json,
                "[\n  \"x\",\n  \"z\"\n]".into(),
                false
            ),
            (
                "options".into(),
                Control::Json,
                "{\n  \"a\": 1\n}".into(),
                false
            ),
            ("ratio".into(), number("any", "", ""), "0.5".into(), false),
            (
                "region".into(),
                Control::Select(vec![
                    ("\"eu\"".into(), "eu".into()),
                    ("\"us\"".into(), "us".into())
                ]),
                "\"eu\"".into(),
                false
            ),
        ],
        "key order, secrets left out, defaults filled"
    );
    assert!(super::params_form::has_hidden(&params_dag()));
}

#[test]
fn params_form_converts_fields_to_typed_conf() {
    use super::params_form::conf_of;
    let dag = params_dag();
    let form = pairs(&[
        ("param.count", "7"),
        ("param.dry_run", "false"),
        ("param.dry_run", "true"),
        ("param.label", "nightly <1>"),
        ("param.names", "[\"z\"]"),
        ("param.options", " "),
        ("param.ratio", "1.25"),
        ("param.region", "\"us\""),
    ]);
    let conf = conf_of(&dag, &form, serde_json::Map::new()).expect("a valid form");
    assert_eq!(
        serde_json::Value::Object(conf),
        serde_json::json!({
            "count": 7, "dry_run": true, "label": "nightly <1>", "names": ["z"],
            "ratio": 1.25, "region": "us"
        }),
        "each field as its param's JSON type; an empty field keeps the default"
    );
    let advanced = serde_json::json!({"count": 9, "api_key": "new"});
    let serde_json::Value::Object(advanced) = advanced else {
        unreachable!()
    };
    let conf = conf_of(&dag, &form, advanced).expect("a valid form");
    assert_eq!(conf["count"], 9, "the advanced JSON overrides a field");
    assert_eq!(conf["api_key"], "new", "and may set a secret");
    let unchecked = pairs(&[("param.label", "x"), ("param.dry_run", "false")]);
    let conf = conf_of(&dag, &unchecked, serde_json::Map::new()).expect("valid");
    assert_eq!(
        conf["dry_run"], false,
        "an unchecked box sends its hidden false"
    );
    assert!(
        !conf.contains_key("count"),
        "an absent field keeps its default"
    );
}

#[test]
fn params_form_names_the_param_of_each_bad_field() {
    use super::params_form::conf_of;
    let dag = params_dag();
    let check = |form: &[(&str, &str)], key: &str, want: &str| {
        let (fields, _) = conf_of(&dag, &pairs(form), serde_json::Map::new())
            .expect_err(&format!("{form:?} must be refused"));
        let f = fields
            .iter()
            .find(|f| f.key == key)
            .unwrap_or_else(|| panic!("no field {key}"));
        assert!(
            f.error.starts_with(&format!("param {key}: ")) && f.error.contains(want),
            "{form:?}: {key}: {:?} should say {want:?}",
            f.error
        );
        let others: Vec<&str> = fields
            .iter()
            .filter(|g| g.key != key && !g.error.is_empty())
            .map(|g| g.key.as_str())
            .collect();
        assert!(
            others.is_empty(),
            "{form:?}: only {key} is wrong, not {others:?}"
        );
        assert_eq!(
            f.value,
            form.iter()
                .rev()
                .find(|(k, _)| k.ends_with(key))
                .map_or("", |(_, v)| *v),
            "what was typed is kept"
        );
    };
    check(
        &[("param.label", "x"), ("param.count", "seven")],
        "count",
        "not a whole number",
    );
    check(
        &[("param.label", "x"), ("param.count", "2.5")],
        "count",
        "not a whole number",
    );
    check(
        &[("param.label", "x"), ("param.count", "11")],
        "count",
        "above the maximum 10",
    );
    check(
        &[("param.label", "x"), ("param.ratio", "lots")],
        "ratio",
        "not a number",
    );
    check(
        &[("param.label", "x"), ("param.region", "\"mars\"")],
        "region",
        "not one of its choices",
    );
    check(
        &[("param.label", "x"), ("param.options", "{oops")],
        "options",
        "not valid JSON",
    );
    check(
        &[("param.label", "x"), ("param.options", "[1]")],
        "options",
        "not of type object",
    );
    check(
        &[("param.label", "x"), ("param.dry_run", "maybe")],
        "dry_run",
        "neither true nor false",
    );
    check(&[("param.label", "")], "label", "required");
    let (_, other) = conf_of(
        &dag,
        &pairs(&[("param.label", "x")]),
        serde_json::from_str(r#"{"nope": 1}"#).expect("JSON"),
    )
    .expect_err("an undeclared key");
    assert!(
        other.iter().any(|e| e.contains("\"nope\" is not a param")),
        "an error no field shows is given apart: {other:?}"
    );
}
