//! Checks of a task's and a schedule's values that parse but cannot be
//! meant: retries by the billion, an HTTP task whose URL or method cannot
//! work, a cron expression that never fires.

use jiff::Timestamp;

use super::HttpSpec;
use crate::schedule::Schedule;

/// The most retries a task may have: more is a typo, and with a short delay a
/// loop of attempts.
pub const MAX_RETRIES: u32 = 100;

/// The HTTP methods a task may use.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

pub(super) fn retries(task: &str, retries: Option<u32>) -> Option<String> {
    let n = retries?;
    (n > MAX_RETRIES).then(|| {
        format!(
            "task {task:?}: `retries: {n}` is more than {MAX_RETRIES}, the most a task may have"
        )
    })
}

/// The URL (when it has no template in it) and the method of an HTTP task.
pub(super) fn http(task: &str, spec: &HttpSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let url = spec.url.trim();
    if !url.is_empty() && !url.contains("{{") {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let host = url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
        match (scheme.as_deref(), host) {
            (Some("http" | "https"), Some(h)) if !h.is_empty() => {}
            _ => errors.push(format!(
                "task {task:?}: `http.url: {url:?}` is not an http:// or https:// URL, e.g. https://example.com/hook"
            )),
        }
    }
    if !METHODS.contains(&spec.method.to_ascii_uppercase().as_str()) {
        errors.push(format!(
            "task {task:?}: `http.method: {}` is not an HTTP method: use one of {}",
            spec.method,
            METHODS.join(", ")
        ));
    }
    errors
}

/// A schedule that has no slot at all: a cron expression that can never
/// fire (`0 0 30 2 *`, the 30th of February). Cron has no year, so one slot
/// since the epoch means slots for ever.
pub(super) fn fires(expr: &str, schedule: &Schedule) -> Option<String> {
    schedule
        .next_at_or_after(Timestamp::UNIX_EPOCH)
        .is_none()
        .then(|| {
            format!(
                "schedule {expr:?} never fires (no date matches it): check its day and month fields"
            )
        })
}

/// The first line of serde-saphyr's rendered error, without its snippet and
/// location prefix; our own `file:line:col` replaces them.
pub(super) fn yaml_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Drop a leading "line X column Y: " that our own position replaces.
    let first = match first.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(first, |(_, msg)| msg),
        None => first,
    };
    // Drop a trailing " at line X column Y" that the location already says.
    let message = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    message.to_owned()
}

/// Every templated field of every task checked (see
/// [`crate::template::check`]): (task id, its field's key in the file, the
/// message naming the field).
pub(super) fn templates(dag: &super::Dag) -> Vec<(String, String, String)> {
    use crate::template::{Known, check};
    let params = (!dag.allow_undeclared_conf).then(|| {
        dag.params
            .keys()
            .chain(dag.param_specs.keys())
            .map(String::as_str)
            .collect()
    });
    let index: std::collections::HashMap<&str, &super::Task> =
        dag.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut out = Vec::new();
    for task in &dag.tasks {
        let mut fields: Vec<(String, &str)> = Vec::new();
        match &task.kind {
            super::TaskKind::Shell { run } => fields.push(("run".into(), run)),
            super::TaskKind::Http(h) => {
                fields.push(("http.url".into(), &h.url));
                for (k, v) in &h.headers {
                    fields.push((format!("http.headers.{k}"), v));
                }
                if let Some(b) = &h.body {
                    fields.push(("http.body".into(), b));
                }
            }
        }
        for (k, v) in &task.env {
            fields.push((format!("env.{k}"), v));
        }
        if let Some(cwd) = &task.cwd {
            fields.push(("cwd".into(), cwd));
        }
        let templated = |t: &str| t.contains("{{") || t.contains("{%") || t.contains("{#");
        if !fields.iter().any(|(_, t)| templated(t)) {
            continue;
        }
        let known = Known {
            params: params.clone(),
            upstream: super::ancestors(&index, task.id.as_str()),
        };
        for (field, text) in fields {
            for e in check(text, &known) {
                let top = field.split('.').next().unwrap_or_default().to_owned();
                out.push((
                    task.id.0.clone(),
                    top,
                    format!("task {:?}: {field}: {e}", task.id.0),
                ));
            }
        }
    }
    out
}
