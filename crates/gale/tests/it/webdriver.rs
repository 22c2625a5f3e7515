//! A small WebDriver client for browser tests: headless Chromium driven by
//! `chromedriver` over the W3C WebDriver HTTP protocol.
//!
//! [`Browser::start`] runs `chromedriver` on a free port (in its own process
//! group, killed with the browser when the `Browser` is dropped), opens a session
//! on a fresh temporary profile and hands out [`Element`]s found by CSS selector.
//! Every error says what was being done (selector, URL) and carries the
//! WebDriver error message. Needs the Debian packages: `apt-get install -y
//! chromium chromium-driver`; [`start_or_skip`] skips a test where they are
//! missing, except under CI (`CI=true`), where it fails.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::{Value, json};

/// The Chromium that the session runs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str = "install it with `apt-get install -y chromium chromium-driver`";

/// Chromium's flags. The background-networking ones keep it from reaching out
/// to the internet, which this closed network refuses.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
];

/// How often the `wait_*` methods look again.
const POLL: Duration = Duration::from_millis(100);
/// How long one WebDriver command may take (page loads are capped below it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `chromedriver` may take to answer `/status` as ready.
const DRIVER_STARTUP: Duration = Duration::from_secs(30);
/// The W3C key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where `chromedriver` is: `/usr/bin/chromedriver`, or the first on PATH.
pub fn chromedriver_path() -> Option<PathBuf> {
    let default = PathBuf::from(CHROMEDRIVER);
    if default.is_file() {
        return Some(default);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

/// Starts a browser for `test`, or returns `None` where `chromedriver` is not
/// installed, after a loud SKIPPED line on stderr. Under CI (`CI=true`) a
/// missing `chromedriver` fails the test instead, as does any other failure.
pub async fn start_or_skip(test: &str) -> Option<Browser> {
    if chromedriver_path().is_none() {
        let why = format!("chromedriver is not installed: {INSTALL_HINT}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why} (browser tests do not skip under CI=true)");
        }
        // Straight to stderr, past the test harness's capture of eprintln!.
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {test}: {why} ***\n");
        return None;
    }
    match Browser::start().await {
        Ok(b) => Some(b),
        Err(e) => panic!("{test}: {e:?}"),
    }
}

/// The HTTP side of one session, cheap to clone into each [`Element`].
#[derive(Clone)]
struct Wire {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
}

impl Wire {
    /// Sends one command under the session and returns its `value`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        command(&self.http, method, &format!("{}{path}", self.session), body).await
    }
}

/// Sends one WebDriver command and returns the `value` of its answer, or an
/// error with the WebDriver error code and message.
async fn command(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = http.request(method.clone(), url);
    if let Some(body) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body)?);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {url}: no answer from chromedriver"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .with_context(|| format!("{method} {url}: reading the answer"))?;
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
        bail!(
            "{method} {url}: HTTP {status}, not JSON: {}",
            String::from_utf8_lossy(&bytes)
        );
    };
    let value = answer
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if let Some(code) = value.get("error").and_then(Value::as_str) {
        let message = value.get("message").and_then(Value::as_str).unwrap_or("");
        bail!(
            "WebDriver error `{code}` (HTTP {status}): {}",
            message.trim()
        );
    }
    if !status.is_success() {
        bail!("{method} {url}: HTTP {status}: {answer}");
    }
    Ok(value)
}

/// A headless Chromium session, with its `chromedriver` and temporary profile.
/// Dropping it ends the session and kills `chromedriver` with the browser.
pub struct Browser {
    wire: Wire,
    driver: Child,
    /// `127.0.0.1:PORT` of `chromedriver`.
    addr: String,
    session_id: String,
    session_open: bool,
    /// Holds the profile (`profile/`) and what chromedriver and Chromium print
    /// (`chromedriver.log`). Dropped last, once the browser is dead.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless Chromium
    /// session on a fresh profile.
    pub async fn start() -> Result<Browser> {
        let driver_path = chromedriver_path().ok_or_else(|| {
            anyhow!("chromedriver not found in /usr/bin or on PATH: {INSTALL_HINT}")
        })?;
        if !Path::new(CHROMIUM).is_file() {
            bail!("{CHROMIUM} not found: {INSTALL_HINT}");
        }
        let dir = tempfile::Builder::new()
            .prefix("gale-browser-")
            .tempdir()
            .context("creating the browser's temporary directory")?;
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).context("creating the browser profile directory")?;
        let log_path = dir.path().join("chromedriver.log");
        let log = File::create(&log_path).context("creating chromedriver.log")?;

        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(&driver_path)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", driver_path.display()))?
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        let mut browser = Browser {
            wire: Wire {
                http,
                session: String::new(),
            },
            driver,
            addr,
            session_id: String::new(),
            session_open: false,
            dir,
        };
        let what = format!("starting {} on port {port}", driver_path.display());
        browser
            .wait_driver_ready()
            .await
            .with_context(|| browser.with_log(&what))?;
        browser
            .new_session(&profile)
            .await
            .with_context(|| browser.with_log("creating a headless Chromium session"))?;
        Ok(browser)
    }

    /// Waits until `chromedriver` answers `/status` with `ready: true`.
    async fn wait_driver_ready(&mut self) -> Result<()> {
        let url = format!("http://{}/status", self.addr);
        let start = Instant::now();
        loop {
            if let Some(status) = self.driver.try_wait()? {
                bail!("chromedriver exited at startup with {status}");
            }
            match command(&self.wire.http, Method::GET, &url, None).await {
                Ok(v) if v.get("ready") == Some(&Value::Bool(true)) => return Ok(()),
                Ok(v) if start.elapsed() > DRIVER_STARTUP => bail!("not ready: {v}"),
                Err(e) if start.elapsed() > DRIVER_STARTUP => {
                    return Err(e.context(format!("no ready /status after {DRIVER_STARTUP:?}")));
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn new_session(&mut self, profile: &Path) -> Result<()> {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                }
            }
        });
        let url = format!("http://{}/session", self.addr);
        let value = command(&self.wire.http, Method::POST, &url, Some(caps)).await?;
        let id = value
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("no sessionId in the new session: {value}"))?;
        self.session_id = id.to_string();
        self.wire.session = format!("http://{}/session/{id}", self.addr);
        self.session_open = true;
        Ok(())
    }

    /// `what`, followed by the end of chromedriver's output.
    fn with_log(&self, what: &str) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("{what}\n--- chromedriver.log (last lines)\n{tail}")
    }

    /// Loads `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.wire
            .call(Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .with_context(|| format!("going to {url}"))?;
        Ok(())
    }

    pub async fn current_url(&self) -> Result<String> {
        let v = self
            .wire
            .call(Method::GET, "/url", None)
            .await
            .context("reading the current URL")?;
        as_string(v).context("reading the current URL")
    }

    pub async fn title(&self) -> Result<String> {
        let v = self
            .wire
            .call(Method::GET, "/title", None)
            .await
            .context("reading the page title")?;
        as_string(v).context("reading the page title")
    }

    /// The page's current HTML.
    pub async fn page_source(&self) -> Result<String> {
        let v = self
            .wire
            .call(Method::GET, "/source", None)
            .await
            .context("reading the page source")?;
        as_string(v).context("reading the page source")
    }

    /// The first element matching the CSS selector `css`; an error if none does.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let what = || format!("finding an element matching `{css}`");
        let v = self
            .wire
            .call(Method::POST, "/element", Some(by_css(css)))
            .await
            .with_context(what)?;
        self.element(&v, css).with_context(what)
    }

    /// Every element matching the CSS selector `css`, maybe none.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let what = || format!("finding the elements matching `{css}`");
        let v = self
            .wire
            .call(Method::POST, "/elements", Some(by_css(css)))
            .await
            .with_context(what)?;
        let list = v
            .as_array()
            .ok_or_else(|| anyhow!("not a list: {v}"))
            .with_context(what)?;
        list.iter()
            .map(|e| self.element(e, css).with_context(what))
            .collect()
    }

    fn element(&self, v: &Value, css: &str) -> Result<Element> {
        let id = v
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("not an element reference: {v}"))?;
        Ok(Element {
            wire: self.wire.clone(),
            id: id.to_string(),
            selector: css.to_string(),
        })
    }

    /// Polls `check` every 100 ms until it returns `Ok(Some(_))`, for at most
    /// `timeout`. An `Err` from `check` (a stale element, say) counts as "not
    /// yet"; the last one is in the error on timeout. `what` names the awaited
    /// condition in that error.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl AsyncFnMut(&Browser) -> Result<Option<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut last_error = None;
        loop {
            match check(self).await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if start.elapsed() >= timeout {
                let url = self
                    .current_url()
                    .await
                    .unwrap_or_else(|e| format!("(URL unknown: {e:#})"));
                let mut msg = format!("timed out after {timeout:?} waiting for {what} on {url}");
                if let Some(e) = last_error {
                    msg.push_str(&format!("; last error: {e:#}"));
                }
                bail!(msg);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an element matching `css` to exist and returns it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let what = format!("an element matching `{css}`");
        self.wait_until(timeout, &what, async |b| {
            Ok(b.find_all(css).await?.into_iter().next())
        })
        .await
    }

    /// Waits for an element matching `css` whose text contains `needle`, and
    /// returns it. On timeout the error shows the texts last seen.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<Element> {
        let what = format!("an element matching `{css}` with text containing {needle:?}");
        let mut seen: Vec<String> = Vec::new();
        let found = self
            .wait_until(timeout, &what, async |b| {
                seen.clear();
                for el in b.find_all(css).await? {
                    let text = el.text().await?;
                    if text.contains(needle) {
                        return Ok(Some(el));
                    }
                    seen.push(text);
                }
                Ok(None)
            })
            .await;
        found.with_context(|| format!("texts last seen for `{css}`: {seen:?}"))
    }

    /// Runs `js` as the body of a function with `arguments` = `args`, and returns
    /// what it returns. Elements can be passed with [`Element::to_arg`].
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> Result<Value> {
        self.wire
            .call(
                Method::POST,
                "/execute/sync",
                Some(json!({ "script": js, "args": args })),
            )
            .await
            .with_context(|| format!("executing script: {}", abbreviate(js)))
    }

    /// Saves a PNG of the page (the viewport) to `path`, creating its folders.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let what = || format!("taking a screenshot into {}", path.display());
        let v = self
            .wire
            .call(Method::GET, "/screenshot", None)
            .await
            .with_context(what)?;
        let png = base64_decode(
            v.as_str()
                .ok_or_else(|| anyhow!("not a string: {v}"))
                .with_context(what)?,
        )
        .with_context(what)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(what)?;
        }
        std::fs::write(path, png).with_context(what)
    }

    /// Ends the session and reports how that went; dropping does it silently.
    pub async fn quit(mut self) -> Result<()> {
        self.session_open = false;
        self.wire
            .call(Method::DELETE, "", None)
            .await
            .context("ending the browser session")?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.session_open {
            // Blocking on purpose: Drop cannot await, and ending the session lets
            // chromedriver close Chromium cleanly. Best effort.
            let _ = delete_session_blocking(&self.addr, &self.session_id);
        }
        // Whatever is left of chromedriver and its browser is in its group.
        let _ = killpg(Pid::from_raw(self.driver.id() as i32), Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/ID` by hand, on a plain socket, so Drop needs no runtime.
fn delete_session_blocking(addr: &str, session_id: &str) -> std::io::Result<()> {
    let timeout = Duration::from_secs(10);
    let mut s = TcpStream::connect_timeout(&addr.parse().map_err(std::io::Error::other)?, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // Read the whole answer: by then chromedriver has closed the browser.
    // chromedriver keeps the connection open, so stop at the body's end.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if len.is_some_and(|len| buf.len() >= end + 4 + len) {
            return Ok(());
        }
    }
}

/// An element of the page, as found by [`Browser::find`] and friends.
#[derive(Clone)]
pub struct Element {
    wire: Wire,
    id: String,
    /// The CSS selector that found it, for error messages.
    selector: String,
}

impl Element {
    async fn call(
        &self,
        method: Method,
        action: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Value> {
        self.wire
            .call(method, &format!("/element/{}{action}", self.id), body)
            .await
            .with_context(|| format!("{what} the element matching `{}`", self.selector))
    }

    pub async fn click(&self) -> Result<()> {
        self.call(Method::POST, "/click", Some(json!({})), "clicking")
            .await?;
        Ok(())
    }

    /// Types `text` into the element (after what it already holds).
    pub async fn send_keys(&self, text: &str) -> Result<()> {
        let what = format!("typing {:?} into", abbreviate(text));
        self.call(Method::POST, "/value", Some(json!({ "text": text })), &what)
            .await?;
        Ok(())
    }

    pub async fn clear(&self) -> Result<()> {
        self.call(Method::POST, "/clear", Some(json!({})), "clearing")
            .await?;
        Ok(())
    }

    /// Its rendered text, as a person would see it.
    pub async fn text(&self) -> Result<String> {
        let v = self
            .call(Method::GET, "/text", None, "reading the text of")
            .await?;
        as_string(v).with_context(|| format!("reading the text of `{}`", self.selector))
    }

    /// The HTML attribute `name` as written in the page, or `None` if absent.
    /// What was typed into an input is its property: `prop("value")`.
    pub async fn attr(&self, name: &str) -> Result<Option<String>> {
        let what = format!("reading attribute {name:?} of");
        let v = self
            .call(Method::GET, &format!("/attribute/{name}"), None, &what)
            .await?;
        Ok(match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        })
    }

    /// The DOM property `name` (`value`, `checked`, ...), `Null` if unset.
    pub async fn prop(&self, name: &str) -> Result<Value> {
        let what = format!("reading property {name:?} of");
        self.call(Method::GET, &format!("/property/{name}"), None, &what)
            .await
    }

    /// Whether a checkbox, radio button or option is selected.
    pub async fn is_selected(&self) -> Result<bool> {
        let v = self
            .call(Method::GET, "/selected", None, "reading whether selected:")
            .await?;
        v.as_bool()
            .ok_or_else(|| anyhow!("not a boolean: {v}"))
            .with_context(|| format!("reading whether `{}` is selected", self.selector))
    }

    /// The element as an argument to [`Browser::execute`].
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

fn by_css(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

fn as_string(v: Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(anyhow!("not a string: {other}")),
    }
}

/// At most the first 80 characters of `s`, for error messages.
fn abbreviate(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Decodes standard base64 (padding and line breaks allowed), as screenshots
/// come.
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in s.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => bail!("not base64: byte {c:#04x} at {i}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// `data:text/html,` URL of `html`.
pub fn data_url(html: &str) -> String {
    let mut url = String::from("data:text/html;charset=utf-8,");
    for b in html.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("").unwrap(), b"");
    assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
    assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
    assert_eq!(base64_decode("TQ==").unwrap(), b"M");
    assert_eq!(
        base64_decode("iVBORw0K\nGgo=").unwrap(),
        b"\x89PNG\r\n\x1a\n"
    );
    assert!(base64_decode("TW*u").is_err());
}

/// The browser itself: type, click, wait for a delayed change, read it back,
/// and take a screenshot.
#[tokio::test]
async fn webdriver_drives_headless_chromium() {
    let started = Instant::now();
    let Some(browser) = start_or_skip("webdriver_drives_headless_chromium").await else {
        return;
    };
    let page = data_url(
        r#"<!doctype html>
<html><head><title>Gale WebDriver self-test</title></head>
<body>
  <input id="name" type="text">
  <label><input id="agree" type="checkbox"> agree</label>
  <button id="go" onclick="setTimeout(() => {
      document.getElementById('out').textContent =
        'Hello, ' + document.getElementById('name').value + '!';
    }, 300)">Go</button>
  <div id="out"></div>
</body></html>"#,
    );
    browser.goto(&page).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Gale WebDriver self-test");
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .starts_with("data:text/html")
    );
    assert_eq!(browser.find_all("input").await.unwrap().len(), 2);
    assert!(browser.find_all(".nothing").await.unwrap().is_empty());

    let input = browser
        .wait_for("#name", Duration::from_secs(10))
        .await
        .unwrap();
    input.send_keys("wrong").await.unwrap();
    input.clear().await.unwrap();
    input.send_keys("Gale & <friends>").await.unwrap();
    assert_eq!(
        input.prop("value").await.unwrap(),
        json!("Gale & <friends>")
    );
    assert_eq!(input.attr("type").await.unwrap().as_deref(), Some("text"));
    assert_eq!(input.attr("data-nothing").await.unwrap(), None);

    let agree = browser.find("#agree").await.unwrap();
    assert!(!agree.is_selected().await.unwrap());
    agree.click().await.unwrap();
    assert!(agree.is_selected().await.unwrap());

    browser.find("#go").await.unwrap().click().await.unwrap();
    let out = browser
        .wait_for_text("#out", "Hello, Gale", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out.text().await.unwrap(), "Hello, Gale & <friends>!");
    let len = browser
        .execute(
            "return arguments[0].textContent.length;",
            vec![out.to_arg()],
        )
        .await
        .unwrap();
    assert_eq!(len, json!("Hello, Gale & <friends>!".len()));
    assert!(browser.page_source().await.unwrap().contains(r#"id="out""#));

    // Failures name what was looked for and carry WebDriver's message.
    let err = format!("{:#}", browser.find("#missing").await.err().unwrap());
    assert!(
        err.contains("`#missing`") && err.contains("no such element"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        browser
            .wait_for_text("#out", "never", Duration::from_millis(300))
            .await
            .err()
            .unwrap()
    );
    assert!(
        err.contains("timed out") && err.contains("Hello, Gale"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shots/page.png");
    browser.screenshot(&shot).await.unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &png[..png.len().min(16)]
    );
    assert!(png.len() > 1000, "a tiny PNG: {} bytes", png.len());

    browser.quit().await.unwrap();
    eprintln!("webdriver self-test took {:?}", started.elapsed());
}
