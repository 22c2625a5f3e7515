//! HTTP through HAProxy's frontend with the admin's API token: a small
//! blocking client, the load generator (a manual run of the load DAG every
//! second, retried until the API takes it) and the API poller of the
//! webserver scenario (a read every 100 ms, each failure counted).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::epoch_now;

/// A blocking HTTP client for the cluster's API (reqwest on a runtime of its own).
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Http {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("building an HTTP client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the HTTP client");
        Http {
            rt,
            client,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// Sends a request; `Ok((status, body))` when an answer came.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).expect("serialising JSON"));
        }
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| format!("{e}"))?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| format!("{e}"))?;
            Ok((status, text))
        })
    }

    /// A request that must answer 2xx with JSON.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        match self.send(method, path, body)? {
            (s, text) if (200..300).contains(&s) => {
                serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))
            }
            (s, text) => Err(format!("HTTP {s}: {}", text.trim())),
        }
    }

    /// Creates a manual run of `dag_id`; its id.
    pub fn trigger(&self, dag_id: &str) -> Result<i64, String> {
        let v = self.json(
            "POST",
            &format!("/api/v1/dags/{dag_id}/runs"),
            Some(&json!({"conf": {}})),
        )?;
        v["run_id"]
            .as_i64()
            .ok_or_else(|| format!("no run_id in {v}"))
    }

    /// A run's state (`queued`, `running`, `success`, `failed`).
    pub fn run_state(&self, run_id: i64) -> Result<String, String> {
        let v = self.json("GET", &format!("/api/v1/runs/{run_id}"), None)?;
        let run = if v.get("run").is_some() {
            &v["run"]
        } else {
            &v
        };
        run["state"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no state in {v}"))
    }
}

/// What the load generator did.
#[derive(Default, Clone)]
pub struct LoadStats {
    /// Each run it created: (run id, this machine's time).
    pub runs: Vec<(i64, f64)>,
    /// Each try the API did not take: (time, why).
    pub failures: Vec<(f64, String)>,
}

impl LoadStats {
    pub fn failures_between(&self, from: f64, to: f64) -> usize {
        self.failures
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .count()
    }
}

/// Triggers `dag_id` every second through the API; a trigger the API does not
/// take is retried every 250 ms (each failure counted) before the next one.
pub struct LoadGen {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<LoadStats>>,
    thread: Option<JoinHandle<()>>,
}

impl LoadGen {
    pub fn start(base: &str, token: &str, dag_id: &str) -> LoadGen {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            let (base, token, dag_id) = (base.to_owned(), token.to_owned(), dag_id.to_owned());
            std::thread::spawn(move || {
                let http = Http::new(&base, &token, Duration::from_secs(3));
                let mut next = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(100)));
                        continue;
                    }
                    next = now.max(next) + Duration::from_secs(1);
                    loop {
                        let at = epoch_now();
                        let result = http.trigger(&dag_id);
                        let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                        match result {
                            Ok(id) => {
                                st.runs.push((id, at));
                                break;
                            }
                            Err(e) => st.failures.push((at, e)),
                        }
                        drop(st);
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
            })
        };
        LoadGen {
            stop,
            stats,
            thread: Some(thread),
        }
    }

    pub fn stats(&self) -> LoadStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops triggering (the last trigger is left to finish).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One poll of the API: when, and the status or error.
#[derive(Clone, Debug)]
pub struct Poll {
    pub at: f64,
    pub result: Result<u16, String>,
}

impl Poll {
    pub fn ok(&self) -> bool {
        matches!(self.result, Ok(200))
    }
}

/// Reads `path` through the API every 100 ms (1 s limit each) until stopped.
pub struct Poller {
    stop: Arc<AtomicBool>,
    polls: Arc<Mutex<Vec<Poll>>>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub fn start(base: &str, token: &str, path: &str) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, polls) = (stop.clone(), polls.clone());
            let (base, token, path) = (base.to_owned(), token.to_owned(), path.to_owned());
            std::thread::spawn(move || {
                let http = Http::new(&base, &token, Duration::from_secs(1));
                let mut next = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(next - now);
                    }
                    next = Instant::now() + Duration::from_millis(100);
                    let at = epoch_now();
                    let result = http.send("GET", &path, None).map(|(s, _)| s);
                    polls
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Poll { at, result });
                }
            })
        };
        Poller {
            stop,
            polls,
            thread: Some(thread),
        }
    }

    pub fn polls(&self) -> Vec<Poll> {
        self.polls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stop(mut self) -> Vec<Poll> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.polls()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
