//! Hostile input through a trigger's conf, and secrets through every view:
//!
//! - a conf value carrying `;`, `$(...)`, backticks, quotes and a newline
//!   reaches a shell task's program as one argument and creates no file; an
//!   HTTP task gets it as one percent-encoded path segment and one JSON
//!   string; a key the DAG does not declare, or a value its spec does not
//!   allow, is refused with a message naming the key (API and CLI);
//! - a secret param, a secret `env` value and an `Authorization` header
//!   never appear in the stored log, the outputs, the rendered command, the
//!   API's answers, the pages as a viewer sees them, or the CLI's output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::Home;
use crate::web;

/// What the echo server saw of each request: its path and body, and the
/// value of its Authorization header.
#[derive(Clone, Debug, Default)]
struct Seen {
    path: String,
    body: String,
    authorization: String,
}

/// A one-thread HTTP server that records each request and answers 200 with
/// a body that repeats the request's Authorization header (so the task's log
/// would show it, were it not masked).
fn echo_server() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut s = Seen {
                path: request_line.split(' ').nth(1).unwrap_or("").to_owned(),
                ..Seen::default()
            };
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.trim().to_owned();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "authorization" => s.authorization = value,
                    _ => {}
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            s.body = String::from_utf8_lossy(&body).into_owned();
            let answer = format!("echo: authorization={}\n", s.authorization);
            record.lock().unwrap().push(s);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}

const TOKEN_DEFAULT: &str = "tok-DEFAULT-4f2a9e";
const TOKEN_GIVEN: &str = "tok-GIVEN-77b1e3c";
const ENV_SECRET: &str = "envsecret-9c1d7a";

fn dag(port: u16) -> String {
    format!(
        r#"id: inject
params:
  region: {{type: string, description: "where the job runs"}}
  token: {{type: string, secret: true, default: "{TOKEN_DEFAULT}"}}
  level: {{type: integer, enum: [1, 2, 3], default: 1}}
tasks:
  argv:
    run: printf 'ARG<%s>\n' {{{{ params.region }}}}
  secrets:
    run: |
      echo "token={{{{ params.token | raw }}}} env=$API_TOKEN"
      echo "leak=$API_TOKEN" >> "$GALE_OUTPUT"
      echo "given={{{{ params.token | raw }}}}" >> "$GALE_OUTPUT"
    env:
      API_TOKEN: "{ENV_SECRET}"
  call:
    http:
      url: "http://127.0.0.1:{port}/echo/{{{{ params.region }}}}?level={{{{ params.level }}}}"
      method: POST
      headers:
        Authorization: "Bearer {{{{ params.token }}}}"
        Content-Type: application/json
      body: '{{"region": "{{{{ params.region }}}}", "level": {{{{ params.level }}}}}}'
"#
    )
}

/// `s` with `%XX` escapes decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hostile_conf_cannot_inject_and_secrets_never_show() {
    let home = Home::new();
    let marks = home.path().join("marks");
    std::fs::create_dir_all(&marks).expect("marks dir");
    let m = marks.display();
    let hostile = format!(
        "eu; touch {m}/semi $(touch {m}/dollar) `touch {m}/tick`\ntouch {m}/newline 'q\" \\ $HOME"
    );
    let (port, seen) = echo_server();
    home.write_dag("inject.yaml", &dag(port));
    let (_gale, admin) = web::start(&home);
    crate::api::wait_dag(&admin, "inject");
    let viewer = admin.with_token(&web::user_token(&home, "vera", "viewer"));

    // Refused: undeclared keys, values the spec does not allow; each named.
    for (conf, names) in [
        (
            json!({"region": "eu", "cmd": "$(id)"}),
            "\"cmd\" is not a param",
        ),
        (
            json!({"region": "eu", "level": 7}),
            "\"level\": the value 7 is not one of",
        ),
        (
            json!({"region": ["eu"]}),
            "\"region\": the value [\"eu\"] is not of type string",
        ),
    ] {
        let detail = admin
            .post("/api/v1/dags/inject/runs", &json!({ "conf": conf }))
            .problem(400);
        assert!(detail.contains(names), "{conf}: {detail}");
    }
    let out = home.gale(&["dags", "trigger", "inject", "--conf", r#"{"sneaky": "x"}"#]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("\"sneaky\" is not a param"), "{out}");
    let runs = admin.get("/api/v1/runs?dag_id=inject").expect(200);
    assert_eq!(runs["runs"], json!([]), "a refused trigger makes no run");

    let conf = json!({"region": hostile, "token": TOKEN_GIVEN, "level": 2});
    let run = admin
        .post("/api/v1/dags/inject/runs", &json!({ "conf": conf }))
        .expect(201);
    let run_id = run["run_id"].as_i64().expect("run id");
    let done = crate::api::wait_run(&admin, run_id);
    assert_eq!(done["state"], "success", "{done:#}");

    // The shell: no file, and the value arrived as one argument, whole.
    let made: Vec<_> = std::fs::read_dir(&marks)
        .expect("marks")
        .flatten()
        .collect();
    assert!(made.is_empty(), "the conf value ran as a command: {made:?}");
    let argv_log = home
        .ok(&["tasks", "logs", &run_id.to_string(), "argv"])
        .stdout;
    assert_eq!(
        argv_log.matches("ARG<").count(),
        1,
        "one argument, not several: {argv_log}"
    );
    assert!(
        argv_log.contains(&format!("ARG<{}", hostile.lines().next().unwrap())),
        "{argv_log}"
    );
    assert!(
        argv_log.contains(&format!("{}>", hostile.lines().nth(1).unwrap())),
        "{argv_log}"
    );

    // HTTP: one path segment, one JSON string; the header was sent.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    let (path, query) = r.path.split_once('?').expect("a query");
    let segment = path.strip_prefix("/echo/").expect("the path");
    assert!(!segment.contains('/'), "one segment: {path}");
    assert_eq!(percent_decode(segment), hostile);
    assert_eq!(query, "level=2");
    let body: Value = serde_json::from_str(&r.body).expect("the body is JSON");
    assert_eq!(body, json!({"region": hostile, "level": 2}));
    assert_eq!(r.authorization, format!("Bearer {TOKEN_GIVEN}"));

    // Secrets: nowhere a reader can look.
    let secrets = [TOKEN_DEFAULT, TOKEN_GIVEN, ENV_SECRET];
    let check = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
        }
    };
    let run_s = run_id.to_string();
    for task in ["argv", "secrets", "call"] {
        let log = home.ok(&["tasks", "logs", &run_s, task]).stdout;
        check(&format!("gale tasks logs {task}"), &log);
        if task == "secrets" {
            assert!(
                log.contains("token=*** env=***"),
                "masked, not dropped: {log}"
            );
        }
        if task == "call" {
            assert!(
                log.contains("authorization=***"),
                "the echoed header is masked: {log}"
            );
        }
        for who in [&admin, &viewer] {
            check(
                &format!("API task {task}"),
                &who.get(&format!("/api/v1/runs/{run_id}/tasks/{task}"))
                    .text(),
            );
            check(
                &format!("API log {task}"),
                &who.get(&format!("/api/v1/runs/{run_id}/tasks/{task}/logs"))
                    .text(),
            );
        }
        check(
            &format!("page of {task}"),
            &viewer.get(&format!("/runs/{run_id}/tasks/{task}")).text(),
        );
    }
    let detail = admin
        .get(&format!("/api/v1/runs/{run_id}/tasks/secrets"))
        .expect(200);
    let command = detail["attempts"][0]["command"]
        .as_str()
        .unwrap_or_default();
    assert!(
        command.contains("token=***"),
        "the stored command is masked: {detail:#}"
    );
    let shown = detail.to_string();
    assert!(
        shown.contains("leak") && shown.contains("***"),
        "the outputs are kept, masked: {detail:#}"
    );
    let argv = admin
        .get(&format!("/api/v1/runs/{run_id}/tasks/argv"))
        .expect(200);
    let command = argv["attempts"][0]["command"].as_str().unwrap_or_default();
    assert!(
        command.starts_with("printf 'ARG<%s>\\n' 'eu; touch"),
        "{argv:#}"
    );
    for page in [
        format!("/runs/{run_id}"),
        "/dags/inject".to_owned(),
        "/dags/inject?tab=source".to_owned(),
        "/dags/inject?tab=trigger".to_owned(),
    ] {
        check(&page, &viewer.get(&page).text());
    }
    check(
        "API source as a viewer",
        &viewer.get("/api/v1/dags/inject/source").text(),
    );
    check("API DAG", &viewer.get("/api/v1/dags/inject").text());
    check(
        "API run",
        &viewer.get(&format!("/api/v1/runs/{run_id}")).text(),
    );
    assert!(
        admin
            .get("/api/v1/dags/inject/source")
            .text()
            .contains(TOKEN_DEFAULT),
        "an admin sees the source whole"
    );
    for args in [
        vec!["runs", "show", &run_s],
        vec!["runs", "show", &run_s, "--output", "json"],
        vec!["runs", "list", "--dag", "inject", "--output", "json"],
    ] {
        let out = home.gale(&args);
        check(
            &format!("gale {}", args.join(" ")),
            &format!("{}{}", out.stdout, out.stderr),
        );
    }
}

/// An HTTP task's answer is read as it streams in and dropped at the bound:
/// a server sending 256 MiB finds the connection closed long before.
#[test]
fn an_http_answer_is_read_only_up_to_the_bound() {
    const TOTAL: usize = 256 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let mut stream = stream;
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {TOTAL}\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < TOTAL {
            match stream.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n,
            }
        }
        let _ = tx.send(sent);
    });
    let home = Home::new();
    home.write_dag(
        "big.yaml",
        &format!(
            "id: big\ntasks:\n  get:\n    http:\n      url: \"http://127.0.0.1:{port}/big\"\n"
        ),
    );
    let (_gale, admin) = web::start(&home);
    crate::api::wait_dag(&admin, "big");
    let run = admin.post("/api/v1/dags/big/runs", &json!({})).expect(201);
    let run_id = run["run_id"].as_i64().expect("run id");
    let done = crate::api::wait_run(&admin, run_id);
    assert_eq!(done["state"], "success", "{done:#}");
    let sent = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the server's write ended");
    assert!(
        sent < TOTAL / 4,
        "the worker read on after the bound: the server sent {sent} of {TOTAL} bytes"
    );
    let log = home
        .ok(&["tasks", "logs", &run_id.to_string(), "get"])
        .stdout;
    assert!(log.contains("the response body was cut at"), "{log}");
}
