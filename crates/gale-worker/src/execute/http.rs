//! HTTP tasks: the request a task describes, sent with the worker's client
//! within the task's timeout, and the outcome its answer makes.

use super::*;

/// How values are escaped in a request body: by its declared content type,
/// else by its look (a body that opens with `{` or `[` is JSON).
fn body_escape(spec: &HttpSpec, body: &str) -> template::Escape {
    let content_type = spec
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase());
    match content_type.as_deref() {
        Some(t) if t.contains("json") => template::Escape::Json,
        Some(t) if t.contains("x-www-form-urlencoded") => template::Escape::Url,
        Some(_) => template::Escape::None,
        None if body.trim_start().starts_with(['{', '[']) => template::Escape::Json,
        None => template::Escape::None,
    }
}

pub(super) async fn run_http(
    work: &Work<'_>,
    task: &Task,
    spec: &HttpSpec,
    ctx: &Context,
    lines: LineTx,
    kill: CancellationToken,
) -> Outcome {
    let render = |s: &str, escape| template::render(s, ctx, escape);
    let url = match render(&spec.url, template::Escape::Url) {
        Ok(u) => u,
        Err(e) => return failed(e),
    };
    let method = match reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return failed(format!("invalid HTTP method {:?}", spec.method)),
    };
    let timeout = task
        .timeout
        .map(|t| t.0)
        .unwrap_or(Duration::from_secs(300));
    let mut req = work.http.request(method.clone(), &url).timeout(timeout);
    for (k, v) in &spec.headers {
        match render(v, template::Escape::None) {
            Ok(v) => req = req.header(k, v),
            Err(e) => return failed(e),
        }
    }
    if let Some(body) = &spec.body {
        match render(body, body_escape(spec, body)) {
            Ok(b) => req = req.body(b),
            Err(e) => return failed(e),
        }
    }
    let _ = lines
        .send((Stream::System, format!("[gale] {method} {url}")))
        .await;
    let resp = tokio::select! {
        r = req.send() => r,
        _ = kill.cancelled() => return Outcome { kind: OutcomeKind::Killed, exit_code: None, message: Some("killed".into()), outputs: BTreeMap::new() , pid: None, command: None },
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Outcome {
                kind: OutcomeKind::TimedOut,
                exit_code: None,
                message: Some(format!(
                    "HTTP request timed out after {}",
                    task.timeout
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "300s".into())
                )),
                outputs: BTreeMap::new(),
                pid: None,
                command: None,
            };
        }
        Err(e) => return failed(format!("HTTP request failed: {}", cause(&e))),
    };
    let status = resp.status().as_u16();
    let bound = usize::try_from(work.limits.output_bytes).unwrap_or(usize::MAX);
    let (body, cut) = tokio::select! {
        b = read_bounded(resp, bound) => b,
        _ = kill.cancelled() => return Outcome { kind: OutcomeKind::Killed, exit_code: None, message: Some("killed".into()), outputs: BTreeMap::new() , pid: None, command: None },
    };
    for l in String::from_utf8_lossy(&body).lines() {
        let _ = lines.send((Stream::Stdout, l.to_owned())).await;
    }
    if cut {
        let _ = lines
            .send((
                Stream::System,
                format!("[gale] the response body was cut at {bound} bytes; the rest was not read"),
            ))
            .await;
    }
    let ok = if spec.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        spec.expect_status.contains(&status)
    };
    let mut outputs = BTreeMap::new();
    outputs.insert("status".to_owned(), status.to_string());
    if ok {
        Outcome {
            kind: OutcomeKind::Success,
            exit_code: None,
            message: Some(format!("HTTP {status}")),
            outputs,
            pid: None,
            command: None,
        }
    } else {
        Outcome {
            kind: OutcomeKind::Failed,
            exit_code: None,
            message: Some(format!("HTTP {status} is not an expected status")),
            outputs,
            pid: None,
            command: None,
        }
    }
}

/// The response body up to `bound` bytes, read as it streams in: a larger
/// answer is never held whole, its connection is dropped at the bound. True
/// when it was cut. A body that breaks off midway keeps what came.
async fn read_bounded(mut resp: reqwest::Response, bound: usize) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = bound - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (body, true);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) | Err(_) => return (body, false),
        }
    }
}

/// What went wrong, innermost cause first (`Connection refused (os error
/// 111)`), then what it happened in: reqwest's own words alone ("error
/// sending request") hide it.
fn cause(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        let t = c.to_string();
        if !causes.iter().any(|k: &String| k.contains(&t)) {
            causes.push(t);
        }
        cur = c.source();
    }
    let outer = if e.is_connect() {
        "cannot connect"
    } else if e.is_request() {
        "sending the request"
    } else if e.is_body() || e.is_decode() {
        "reading the answer"
    } else {
        "the request"
    };
    match causes.pop() {
        Some(inner) => format!("{inner} ({outer})"),
        None => format!("{e} ({outer})"),
    }
}
