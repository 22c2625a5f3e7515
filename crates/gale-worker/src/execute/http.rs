//! HTTP tasks: the request a task describes, sent with the worker's client
//! within the task's timeout, and the outcome its answer makes.

use super::*;
pub(super) async fn run_http(
    work: &Work<'_>,
    task: &Task,
    spec: &HttpSpec,
    ctx: &Context,
    lines: LineTx,
    kill: CancellationToken,
) -> Outcome {
    let render = |s: &str| template::render(s, ctx);
    let url = match render(&spec.url) {
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
        match render(v) {
            Ok(v) => req = req.header(k, v),
            Err(e) => return failed(e),
        }
    }
    if let Some(body) = &spec.body {
        match render(body) {
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
        Err(e) => return failed(format!("HTTP request failed: {e}")),
    };
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let shown = &body[..body.len().min(work.limits.output_bytes as usize)];
    for l in String::from_utf8_lossy(shown).lines() {
        let _ = lines.send((Stream::Stdout, l.to_owned())).await;
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
