//! HTTP against a running `gale` webserver, for the API, health, metrics and
//! browser tests: start `gale standalone` and find its address in its log,
//! make users and API tokens, and send requests with a small blocking client
//! ([`Web`], reqwest on a runtime of its own) whose answers keep status,
//! headers and raw body.
//!
//! Sync tests call [`Web::send`] and friends; async tests (browser tests)
//! call [`Web::fetch`], since a runtime cannot block inside another.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::Value;

use crate::harness::{Home, Standalone, wait_until};

/// How long one request may take: `follow` on a log waits up to 10 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The base URL (`http://127.0.0.1:PORT`, no trailing slash) in the last
/// `  web UI     http://ADDR:PORT/` line a `gale` process printed.
pub fn url_in_log(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|l| l.trim_start().strip_prefix("web UI"))
        .find_map(|rest| rest.split_whitespace().next())
        .map(|url| url.trim_end_matches('/').to_owned())
}

/// Waits until `log` shows the web address, and returns it.
pub fn wait_url(what: &str, log: impl Fn() -> String) -> String {
    wait_until(&format!("{what} to print its web address"), || {
        url_in_log(&log())
    })
}

/// Starts `gale standalone` (see [`Home::start`]) and returns it with a client
/// that acts as `admin` (created on first start) once `/health/ready` answers.
pub fn start(home: &Home) -> (Standalone, Web) {
    let standalone = home.start();
    let web = connect(home, &standalone);
    (standalone, web)
}

/// The client of a started standalone, acting as `admin` once the server
/// answers `/health/ready` (by then the first start created `admin`).
pub fn connect(home: &Home, standalone: &Standalone) -> Web {
    let base = wait_url("gale standalone", || standalone.log());
    let web = Web::new(&base);
    web.wait_ready();
    web.with_token(&token(home, "admin"))
}

/// Creates an API token for `user` (`gale tokens create`) and returns it.
pub fn token(home: &Home, user: &str) -> String {
    let name = format!("{user}-test-token");
    let out = home.ok(&["tokens", "create", "--user", user, "--name", &name]);
    let token = out.stdout.trim().to_owned();
    assert!(token.starts_with("gale_"), "not a token: {out}");
    token
}

/// Creates a user with `role` (`viewer`, `operator` or `admin`) and returns an
/// API token for them.
pub fn user_token(home: &Home, user: &str, role: &str) -> String {
    home.ok(&["users", "create", user, "--role", role]);
    token(home, user)
}

/// A webserver's answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, if it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): HTTP {} {}", self.status, self.text()))
    }

    /// Asserts the status is `status` and returns the JSON body.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected HTTP {status}, got {}: {}",
            self.status,
            self.text()
        );
        self.json()
    }

    /// Asserts an RFC 9457 problem with `status` (its content type, and a
    /// body naming the same status) and returns its `detail`.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "expected a {status} problem, got HTTP {}: {}",
            self.status,
            self.text()
        );
        assert_eq!(
            self.header(CONTENT_TYPE.as_str()),
            Some("application/problem+json"),
            "HTTP {status}: {}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{body}");
        assert!(body["title"].is_string(), "{body}");
        body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("a problem without detail: {body}"))
            .to_owned()
    }
}

/// A blocking HTTP client for one webserver, with or without a bearer token.
/// Cheap to clone.
#[derive(Clone)]
pub struct Web {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Web {
    /// A client for `base` (`http://127.0.0.1:PORT`) without credentials.
    pub fn new(base: &str) -> Web {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("building an HTTP client");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the HTTP client");
        Web {
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            http,
            runtime: Arc::new(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same server, sending `Authorization: Bearer TOKEN`.
    pub fn with_token(&self, token: &str) -> Web {
        Web {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same server, without credentials.
    pub fn anonymous(&self) -> Web {
        Web {
            token: None,
            ..self.clone()
        }
    }

    /// Sends a request: `path` is appended to the base URL, `headers` go after
    /// the bearer token (so they may replace it), `body` is sent as it is.
    pub async fn fetch(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// [`Web::fetch`], blocking; panics when the server does not answer.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        self.runtime
            .block_on(self.fetch(method, path, headers, body))
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e:?}", self.base))
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], None)
    }

    /// A request with a JSON body.
    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("serialising JSON");
        self.send(
            method,
            path,
            &[("content-type", "application/json")],
            Some(bytes),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json("POST", path, body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Response {
        self.send_json("PATCH", path, body)
    }

    /// Waits until `/health/ready` answers 200 (the server is up and its
    /// database answers).
    pub fn wait_ready(&self) {
        wait_until(&format!("{}/health/ready to answer 200", self.base), || {
            let resp = self
                .runtime
                .block_on(self.fetch("GET", "/health/ready", &[], None))
                .ok()?;
            (resp.status == 200).then_some(())
        });
    }
}
