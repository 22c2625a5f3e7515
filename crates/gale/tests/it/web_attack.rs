//! The web face under attack: a login flood (throttled with 429 and
//! `Retry-After`, while a task on the same node keeps its lease), tokens by
//! password and their revocation, slow and idle connections, the connection
//! cap, `--no-auth` against cross-site requests and DNS rebinding, and the
//! HTTPS-only cookie and headers of `--secure-cookies`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Home, wait_until};
use crate::ui::admin_password;
use crate::web::{self, Web, wait_url};

/// The `host:port` of a base URL.
fn addr_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes, which
/// fails the test): what it sent, and how long it took to close.
fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(limit))
        .expect("setting a read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the server kept the connection open for {:?} ({e}); it sent {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

/// One request on a connection of its own (`Connection: close`): the whole
/// answer as text.
fn raw(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connecting");
    s.write_all(request.as_bytes()).expect("writing a request");
    read_to_close(&mut s, Duration::from_secs(30)).0
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

fn form_post(web: &Web, path: &str, body: &str, extra: &[(&str, &str)]) -> web::Response {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    web.send("POST", path, &headers, Some(body.as_bytes().to_vec()))
}

fn retry_after(resp: &web::Response) -> u64 {
    resp.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a 429 without Retry-After: {:?}", resp.headers))
}

/// Logs in through the form until it is let in, waiting out each lockout
/// it is answered with; returns the session cookie's `Set-Cookie`.
fn login_after_lockout(web: &Web, password: &str) -> String {
    for _ in 0..4 {
        let resp = form_post(
            web,
            "/login",
            &format!("user=admin&password={password}"),
            &[],
        );
        match resp.status {
            303 => {
                return resp
                    .headers
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find(|c| c.contains("gale_session="))
                    .expect("a session cookie")
                    .to_owned();
            }
            429 => std::thread::sleep(Duration::from_secs(retry_after(&resp))),
            other => panic!("a correct login answered {other}: {}", resp.text()),
        }
    }
    panic!("a correct login was still refused after waiting out its lockouts");
}

#[test]
fn a_login_flood_is_throttled_and_the_nodes_task_keeps_its_lease() {
    let home = Home::new();
    home.write_dag("nap.yaml", "tasks:\n  nap:\n    run: sleep 8\n");
    let (standalone, admin) = web::start(&home);
    let password = admin_password(&standalone);
    wait_until("the DAG nap", || {
        (admin.get("/api/v1/dags/nap").status == 200).then_some(())
    });
    let run = admin.post("/api/v1/dags/nap/runs", &json!({})).expect(201)["run_id"]
        .as_i64()
        .expect("a run id");
    wait_until("the task to run", || {
        let t = admin.get(&format!("/api/v1/runs/{run}/tasks/nap")).json();
        (t["state"] == "running").then_some(())
    });

    // 200 wrong logins, 10 at a time, at the form and at the token endpoint.
    let base = admin.base().to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let statuses: Vec<(u16, Option<String>)> =
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .expect("a client");
            let mut set = tokio::task::JoinSet::new();
            for worker in 0..10 {
                let (client, base) = (client.clone(), base.clone());
                set.spawn(async move {
                let mut out = Vec::new();
                for i in 0..20 {
                    let req = if (worker + i) % 2 == 0 {
                        client
                            .post(format!("{base}/login"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(format!("user=admin&password=wrong-{worker}-{i}"))
                    } else {
                        let body = json!({
                            "user": "admin", "password": format!("wrong-{worker}-{i}"), "name": "x"
                        });
                        client
                            .post(format!("{base}/api/v1/tokens"))
                            .header("content-type", "application/json")
                            .body(body.to_string())
                    };
                    let resp = req.send().await.expect("the server answers during the flood");
                    let retry = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    out.push((resp.status().as_u16(), retry));
                }
                out
            });
            }
            let mut all = Vec::new();
            while let Some(done) = set.join_next().await {
                all.extend(done.expect("a flood worker"));
            }
            all
        });
    assert_eq!(statuses.len(), 200);
    let throttled = statuses.iter().filter(|(s, _)| *s == 429).count();
    let wrong = statuses.iter().filter(|(s, _)| *s == 401).count();
    assert!(
        throttled > 100,
        "most of the flood is throttled: {throttled} 429s, {wrong} 401s"
    );
    assert!(
        wrong >= 5,
        "the first failures are checked (401): {wrong} of {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|(s, retry)| matches!(*s, 401 | 503) || (*s == 429 && retry.is_some())),
        "only 401, 429 with Retry-After, or 503: {statuses:?}"
    );
    let metrics = admin.get("/metrics").text();
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gale_login_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gale_login_failures_total in {metrics}"));
    assert_eq!(failures as usize, wrong, "every checked failure is counted");
    assert!(
        standalone
            .log()
            .contains("login failed: wrong user name or password"),
        "failed logins are logged"
    );
    assert!(
        !standalone.log().contains("wrong-0-0"),
        "a password is never logged"
    );

    // The task on this node kept its lease: one attempt, a success.
    let done = wait_until("the run to finish", || {
        let r = admin.get(&format!("/api/v1/runs/{run}")).json();
        matches!(r["state"].as_str(), Some("success" | "failed")).then_some(r)
    });
    assert_eq!(done["state"], "success", "{done:#}");
    let task = admin
        .get(&format!("/api/v1/runs/{run}/tasks/nap"))
        .expect(200);
    assert_eq!(task["try_number"], 1, "no attempt was lost: {task:#}");
    assert_eq!(
        task["attempts"].as_array().map(Vec::len),
        Some(1),
        "{task:#}"
    );

    // The right password works once the lockout is over.
    let cookie = login_after_lockout(&admin.anonymous(), &password);
    assert!(cookie.starts_with("gale_session="), "{cookie}");
}

#[test]
fn tokens_by_password_expire_and_end_with_a_new_password() {
    let home = Home::new();
    let (standalone, admin) = web::start(&home);
    let password = admin_password(&standalone);
    let anon = admin.anonymous();
    let created = anon
        .post(
            "/api/v1/tokens",
            &json!({"user": "admin", "password": password, "name": "script"}),
        )
        .expect(201);
    let token = created["token"].as_str().expect("a token").to_owned();
    assert_eq!(created["user"], "admin", "{created:#}");
    let expires: jiff::Timestamp = created["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("an expiry");
    let days = (expires - jiff::Timestamp::now()).get_seconds() / 86_400;
    assert!(
        (89..=90).contains(&days),
        "tokens last 90 days by default: {created:#}"
    );
    let mine = anon.with_token(&token);
    mine.get("/api/v1/dags").expect(200);

    // One that lasts 2 s stops working.
    let short = anon
        .post(
            "/api/v1/tokens",
            &json!({"user": "admin", "password": password, "name": "brief", "expires_in": "2s"}),
        )
        .expect(201)["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    anon.with_token(&short).get("/api/v1/dags").expect(200);
    wait_until("the 2 s token to expire", || {
        (anon.with_token(&short).get("/api/v1/dags").status == 401).then_some(())
    });
    let bad = anon
        .post(
            "/api/v1/tokens",
            &json!({"user": "admin", "password": password, "name": "x", "expires_in": "soon"}),
        )
        .problem(400);
    assert!(bad.contains("expires_in"), "{bad}");

    // The CLI's tokens get 90 days too.
    let listed = home.json(&["tokens", "list"]);
    assert!(
        listed
            .as_array()
            .expect("tokens")
            .iter()
            .all(|t| t["expires_at"].is_string()),
        "{listed:#}"
    );

    // A new password revokes the user's tokens, the API's and the CLI's.
    let out = home.ok(&["users", "passwd", "admin"]);
    assert!(out.stderr.contains("revoked"), "{out}");
    let detail = mine.get("/api/v1/dags").problem(401);
    assert!(detail.contains("revoked"), "{detail}");
    admin.get("/api/v1/dags").problem(401);

    // Wrong passwords at the API: 401, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let resp = anon.post(
            "/api/v1/tokens",
            &json!({"user": "admin", "password": format!("nope-{i}"), "name": "x"}),
        );
        if resp.status == 429 {
            assert!(retry_after(&resp) >= 1);
            assert_eq!(
                resp.header("content-type"),
                Some("application/problem+json")
            );
        }
        statuses.push(resp.status);
    }
    assert_eq!(&statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let home = Home::new();
    let standalone = home.start_with_env(
        &["--no-examples"],
        &[
            ("GALE_HTTP_HEADER_TIMEOUT", "1s"),
            ("GALE_HTTP_IDLE_TIMEOUT", "2s"),
        ],
    );
    let base = wait_url("gale standalone", || standalone.log());
    Web::new(&base).wait_ready();
    let addr = addr_of(&base);

    // Half a request head, then nothing: closed, unanswered.
    let mut slow = TcpStream::connect(&addr).expect("connecting");
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .expect("writing half a head");
    let (got, _) = read_to_close(&mut slow, Duration::from_secs(20));
    assert!(got.is_empty(), "a stalled head gets no answer: {got:?}");

    // A connection that never sends a byte is closed too.
    let mut silent = TcpStream::connect(&addr).expect("connecting");
    let (got, _) = read_to_close(&mut silent, Duration::from_secs(20));
    assert!(got.is_empty(), "{got:?}");

    // A kept-alive connection is answered, then closed when idle.
    let mut idle = TcpStream::connect(&addr).expect("connecting");
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("writing a request");
    let (got, took) = read_to_close(&mut idle, Duration::from_secs(20));
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    assert!(
        took >= Duration::from_secs(1),
        "the connection was kept alive after the answer (closed after {took:?})"
    );
}

#[test]
fn connections_over_the_cap_wait_for_one_to_close() {
    let home = Home::new();
    let standalone = home.start_with_env(
        &["--no-examples"],
        &[
            ("GALE_HTTP_MAX_CONNECTIONS", "2"),
            ("GALE_HTTP_HEADER_TIMEOUT", "60s"),
        ],
    );
    let base = wait_url("gale standalone", || standalone.log());
    let addr = addr_of(&base);
    // Readiness over one connection at a time (each closed after).
    wait_until("the server to answer", || {
        let a = raw(
            &addr,
            "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        );
        a.starts_with("HTTP/1.1 200").then_some(())
    });
    let first = TcpStream::connect(&addr).expect("connecting");
    let _second = TcpStream::connect(&addr).expect("connecting");
    // The kernel accepts the third; the server does not serve it yet.
    let mut third = TcpStream::connect(&addr).expect("connecting");
    third
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("writing a request");
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");
    let mut buf = [0u8; 64];
    match third.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a connection over the cap was served: {other:?}"),
    }
    drop(first);
    let (got, _) = read_to_close(&mut third, Duration::from_secs(30));
    assert!(
        got.starts_with("HTTP/1.1 200"),
        "served once a connection closed: {got:?}"
    );
}

#[test]
fn no_auth_refuses_cross_site_changes_and_foreign_hosts() {
    let home = Home::new();
    home.write_dag("calm.yaml", "tasks:\n  a:\n    run: echo a\n");
    let dags = home.dags().display().to_string();
    let standalone = home.start_with(&["--dags-folder", &dags, "--no-examples", "--no-auth"]);
    let base = wait_url("gale standalone", || standalone.log());
    let open = Web::new(&base);
    open.wait_ready();
    wait_until("the DAG calm", || {
        (open.get("/api/v1/dags/calm").status == 200).then_some(())
    });
    let state = |web: &Web| -> (Value, usize) {
        let dag = web.get("/api/v1/dags/calm").expect(200);
        let runs = web.get("/api/v1/runs?dag_id=calm").expect(200);
        let n = runs["runs"]
            .as_array()
            .or_else(|| runs.as_array())
            .map_or(0, Vec::len);
        (dag["paused"].clone(), n)
    };
    let before = state(&open);
    assert_eq!(before, (json!(false), 0), "unpaused, no runs");

    // A form another site's page posts.
    for (path, headers) in [
        ("/dags/calm/pause", vec![("origin", "http://evil.example")]),
        (
            "/dags/calm/trigger",
            vec![("origin", "http://evil.example")],
        ),
        ("/dags/calm/pause", vec![("sec-fetch-site", "cross-site")]),
    ] {
        let resp = form_post(&open, path, "", &headers);
        assert_eq!(resp.status, 403, "{path} {headers:?}: {}", resp.text());
    }
    let resp = open.send(
        "PATCH",
        "/api/v1/dags/calm",
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        Some(br#"{"paused": true}"#.to_vec()),
    );
    assert_eq!(resp.status, 403, "{}", resp.text());

    // DNS rebinding: the attacker's name, resolved to 127.0.0.1.
    let addr = addr_of(&base);
    let port = addr.rsplit(':').next().expect("a port");
    let rebound = raw(
        &addr,
        &format!(
            "POST /dags/calm/trigger HTTP/1.1\r\nHost: evil.example:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&rebound), 403, "{rebound}");
    let read = raw(
        &addr,
        &format!(
            "GET /api/v1/dags HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(
        status_of(&read),
        403,
        "a rebound page cannot read either: {read}"
    );
    assert!(!read.contains("calm"), "{read}");
    assert_eq!(state(&open), before, "nothing changed");

    // The same form from this server's own page works.
    let own = format!("http://127.0.0.1:{port}");
    let resp = form_post(&open, "/dags/calm/pause", "", &[("origin", &own)]);
    assert_eq!(resp.status, 303, "{}", resp.text());
    let local = raw(
        &addr,
        &format!(
            "GET /health/live HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&local), 200, "{local}");
    assert_eq!(state(&open).0, json!(true), "paused from its own page");
}

#[test]
fn secure_cookies_are_host_only_and_sessions_rotate_and_idle_out() {
    let home = Home::new();
    let standalone = home.start_with_env(
        &["--no-examples", "--secure-cookies"],
        &[("GALE_SESSION_IDLE_TIMEOUT", "4s")],
    );
    let base = wait_url("gale standalone", || standalone.log());
    let web = Web::new(&base);
    web.wait_ready();
    let password = admin_password(&standalone);

    let login = |cookie: Option<&str>| -> String {
        let mut headers = Vec::new();
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        let resp = form_post(
            &web,
            "/login",
            &format!("user=admin&password={password}"),
            &headers,
        );
        assert_eq!(resp.status, 303, "{}", resp.text());
        assert!(
            resp.header("strict-transport-security").is_some(),
            "{:?}",
            resp.headers
        );
        resp.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("__Host-gale_session="))
            .unwrap_or_else(|| panic!("no __Host- session cookie: {:?}", resp.headers))
            .to_owned()
    };
    let set = login(None);
    for attribute in ["; Secure", "; Path=/;", "; HttpOnly", "; SameSite=Strict"] {
        assert!(set.contains(attribute), "{attribute} missing from {set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    let cookie = set.split(';').next().expect("name=value").to_owned();
    let page = |c: &str| web.send("GET", "/", &[("cookie", c)], None);
    let home_page = page(&cookie);
    assert_eq!(home_page.status, 200);
    assert_eq!(home_page.header("cache-control"), Some("no-store"));
    let unprefixed = cookie.replacen("__Host-", "", 1);
    assert_eq!(
        page(&unprefixed).status,
        303,
        "only the __Host- cookie counts"
    );
    let asset = web.get("/favicon.svg");
    assert_eq!(asset.status, 200);
    assert_ne!(
        asset.header("cache-control"),
        Some("no-store"),
        "assets cache"
    );
    let api = web.get("/api/v1/dags");
    assert_eq!(
        api.header("cache-control"),
        Some("no-store"),
        "{:?}",
        api.headers
    );

    // A login sent with a session cookie gets a new one; the old one ends.
    let again = login(Some(&cookie));
    let renewed = again.split(';').next().expect("name=value").to_owned();
    assert_ne!(renewed, cookie, "a new session id at every login");
    assert_eq!(page(&cookie).status, 303, "the old session ended");

    // Used within the idle time it lives on; unused it ends.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(page(&renewed).status, 200, "a used session lives on");
    }
    std::thread::sleep(Duration::from_secs(6));
    let expired = page(&renewed);
    assert_eq!(expired.status, 303, "an idle session ends");
    assert!(
        expired
            .header("location")
            .is_some_and(|l| l.starts_with("/login")),
        "{:?}",
        expired.headers
    );
}
