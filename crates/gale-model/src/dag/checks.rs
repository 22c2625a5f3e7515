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

/// A schedule that has no slot after `now`: a cron expression that can
/// never fire (`0 0 30 2 *`, the 30th of February).
pub(super) fn fires(expr: &str, schedule: &Schedule, now: Timestamp) -> Option<String> {
    schedule.next_at_or_after(now).is_none().then(|| {
        format!(
            "schedule {expr:?} never fires (no date matches it): check its day and month fields"
        )
    })
}
