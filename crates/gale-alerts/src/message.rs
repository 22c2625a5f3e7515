//! Rendering a batch for people: an e-mail's subject and plain-text body, and
//! a Slack message (mrkdwn, links as `<url|label>`). A digest counts its
//! events by kind (in its first line) and by run and then lists the first
//! ones, a line each. Nothing is said twice: an event's message is not
//! repeated after a headline made of it, nor a digest's counts by kind.
//! Everything is bounded; no I/O here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::event::{Batch, Event};

/// The longest subject, in characters.
pub const SUBJECT_MAX: usize = 200;
/// The longest e-mail body, in bytes.
pub const BODY_MAX: usize = 64 * 1024;
/// The longest Slack text, in bytes (Slack cuts at 40,000 characters).
pub const SLACK_MAX: usize = 32 * 1024;
/// How many events a digest lists one line each.
pub const DIGEST_LINES: usize = 20;
/// How many runs a digest counts by name.
const DIGEST_RUNS: usize = 20;
/// The longest message kept of one event in a line.
const LINE_MESSAGE_MAX: usize = 200;
/// How many of a failed run's tasks its message names.
const FAILED_TASKS_NAMED: usize = 10;

/// An e-mail's subject: one line, at most [`SUBJECT_MAX`] characters.
pub fn subject(prefix: &str, batch: &Batch) -> String {
    let text = match batch.events() {
        [one] => format!("{prefix} {}: {}", one.kind, headline(one)),
        many => format!("{prefix} {} alerts: {}", many.len(), kinds_summary(batch)),
    };
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > SUBJECT_MAX {
        let mut cut: String = one_line.chars().take(SUBJECT_MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        one_line
    }
}

/// An e-mail's plain-text body, at most [`BODY_MAX`] bytes.
pub fn text(batch: &Batch) -> String {
    let mut out = String::new();
    match batch.events() {
        [one] => event_text(&mut out, one),
        many => {
            let _ = writeln!(out, "{} alerts: {}\n", many.len(), kinds_summary(batch));
            digest_counts(&mut out, batch, |s| s.to_owned());
            let _ = writeln!(out, "\nEvents:");
            for e in many.iter().take(DIGEST_LINES) {
                let _ = write!(out, "  {}", line(e));
                if let Some(link) = &e.link {
                    let _ = write!(out, "  {link}");
                }
                out.push('\n');
            }
            more(&mut out, many.len());
            // The first events' log tails (the deliverer reads a few).
            for e in many.iter().filter(|e| !e.log_tail.is_empty()) {
                let _ = writeln!(out, "\nLast lines of {}:", line(e));
                for l in &e.log_tail {
                    let _ = writeln!(out, "  {l}");
                }
            }
            let _ = writeln!(out, "\nDigest key: {}", batch.key());
        }
    }
    bound(out, BODY_MAX)
}

/// A Slack message's text (mrkdwn), at most [`SLACK_MAX`] bytes.
pub fn slack(batch: &Batch) -> String {
    let mut out = String::new();
    match batch.events() {
        [one] => {
            let _ = write!(out, "*{}*: {}", one.kind, slack_escape(&headline(one)));
            if let Some(link) = &one.link {
                let _ = write!(out, " (<{}|open>)", slack_escape(link));
            }
            out.push('\n');
            if let Some(m) = rest_of_message(one) {
                let _ = writeln!(out, "{}", slack_escape(m));
            }
            if let Some(tasks) = failed_tasks(one) {
                let _ = writeln!(out, "Failed tasks: {}", slack_escape(&tasks));
            }
            if !one.log_tail.is_empty() {
                let tail = one.log_tail.join("\n").replace("```", "'''");
                let _ = writeln!(out, "```\n{}\n```", slack_escape(&tail));
            }
        }
        many => {
            let _ = writeln!(
                out,
                "*{} alerts*: {}",
                many.len(),
                slack_escape(&kinds_summary(batch))
            );
            digest_counts(&mut out, batch, slack_escape);
            out.push('\n');
            for e in many.iter().take(DIGEST_LINES) {
                let label = slack_escape(&line(e));
                match &e.link {
                    Some(link) => {
                        let _ = writeln!(out, "• <{}|{label}>", slack_escape(link));
                    }
                    None => {
                        let _ = writeln!(out, "• {label}");
                    }
                }
            }
            more(&mut out, many.len());
        }
    }
    bound(out, SLACK_MAX)
}

/// Slack's three escapes for text it reads as mrkdwn.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What an event is about, in a few words: its DAG, task and try, and
/// run; else its message's first line; else its kind.
fn headline(e: &Event) -> String {
    about(e).unwrap_or_else(|| {
        e.message
            .as_deref()
            .and_then(|m| m.lines().next())
            .unwrap_or(e.kind.as_str())
            .to_owned()
    })
}

/// The DAG, task and try, and run an event is about, if any. A run's
/// event shows no try: the one it carries is its first failed task's, for
/// the log shown.
fn about(e: &Event) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(d) = &e.dag_id {
        parts.push(d.clone());
    }
    if let Some(t) = &e.task_id {
        parts.push(t.clone());
    }
    let mut s = parts.join(" / ");
    if let Some(n) = task_try(e) {
        let _ = write!(s, " (try {n})");
    }
    if let Some(r) = &e.run_key {
        let _ = write!(s, " in {r}");
    }
    (!s.is_empty()).then_some(s)
}

/// The try a task's event is about; none for other events.
fn task_try(e: &Event) -> Option<u32> {
    e.try_number.filter(|_| e.kind.is_task())
}

/// The message, without the line the headline already shows.
fn rest_of_message(e: &Event) -> Option<&str> {
    let m = e.message.as_deref()?;
    let rest = if about(e).is_some() {
        m
    } else {
        m.split_once('\n').map_or("", |(_, rest)| rest)
    };
    let rest = rest.trim_matches(['\n', '\r']);
    (!rest.trim().is_empty()).then_some(rest)
}

/// A failed run's failed tasks, named: `a, b (+3 more)`.
fn failed_tasks(e: &Event) -> Option<String> {
    if e.kind != crate::event::EventKind::RunFailed {
        return None;
    }
    let listed = e.details.get("failed_tasks")?.as_array()?;
    let names: Vec<&str> = listed
        .iter()
        .filter_map(|t| t.get("task_id").and_then(serde_json::Value::as_str))
        .collect();
    if names.is_empty() {
        return None;
    }
    let count = e
        .details
        .get("failed_count")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(names.len())
        .max(names.len());
    let shown = names.len().min(FAILED_TASKS_NAMED);
    let mut s = names[..shown].join(", ");
    if count > shown {
        let _ = write!(s, " (+{} more)", count - shown);
    }
    Some(
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

/// One event on one line: kind, DAG, run, task, try, state.
fn line(e: &Event) -> String {
    let mut s = e.kind.as_str().to_owned();
    if let Some(d) = &e.dag_id {
        let _ = write!(s, " {d}");
    }
    match (&e.run_key, e.run_id) {
        (Some(k), _) => {
            let _ = write!(s, " {k}");
        }
        (None, Some(id)) => {
            let _ = write!(s, " run {id}");
        }
        _ => {}
    }
    if let Some(t) = &e.task_id {
        let _ = write!(s, " {t}");
    }
    if let Some(n) = task_try(e) {
        let _ = write!(s, " try {n}");
    }
    if let Some(st) = &e.state {
        let _ = write!(s, ": {st}");
    }
    if e.dag_id.is_none()
        && let Some(m) = e.message.as_deref().and_then(|m| m.lines().next())
    {
        let m: String = m.chars().take(LINE_MESSAGE_MAX).collect();
        let _ = write!(s, ": {m}");
    }
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn kinds_summary(batch: &Batch) -> String {
    batch
        .counts()
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A digest's counts by run (its first line has them by kind).
fn digest_counts(out: &mut String, batch: &Batch, escape: impl Fn(&str) -> String) {
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    let mut no_run = 0;
    for e in batch.events() {
        match (&e.dag_id, &e.run_key, e.run_id) {
            (Some(d), Some(k), _) => *runs.entry(format!("{d} {k}")).or_insert(0) += 1,
            (Some(d), None, Some(id)) => *runs.entry(format!("{d} run {id}")).or_insert(0) += 1,
            _ => no_run += 1,
        }
    }
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(out, "By run:");
    let mut by_count: Vec<(String, usize)> = runs.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let shown = by_count.len().min(DIGEST_RUNS);
    for (run, n) in &by_count[..shown] {
        let _ = writeln!(out, "  {}: {n}", escape(run));
    }
    if by_count.len() > shown {
        let rest: usize = by_count[shown..].iter().map(|(_, n)| n).sum();
        let _ = writeln!(out, "  … {} more runs: {rest}", by_count.len() - shown);
    }
    if no_run > 0 {
        let _ = writeln!(out, "  (no run): {no_run}");
    }
}

fn more(out: &mut String, n: usize) {
    if n > DIGEST_LINES {
        let _ = writeln!(out, "… and {} more", n - DIGEST_LINES);
    }
}

fn event_text(out: &mut String, e: &Event) {
    let _ = writeln!(out, "{}: {}\n", e.kind, headline(e));
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            let _ = writeln!(out, "{name:<9} {v}");
        }
    };
    field("State:", e.state.clone());
    field("When:", Some(e.at.to_string()));
    field("DAG:", e.dag_id.clone());
    field(
        "Run:",
        match (&e.run_key, e.run_id) {
            (Some(k), Some(id)) => Some(format!("{k} (id {id})")),
            (Some(k), None) => Some(k.clone()),
            (None, Some(id)) => Some(format!("id {id}")),
            (None, None) => None,
        },
    );
    field(
        "Task:",
        e.task_id.as_ref().map(|t| match task_try(e) {
            Some(n) => format!("{t}, try {n}"),
            None => t.clone(),
        }),
    );
    let failed = failed_tasks(e);
    field("Failed tasks:", failed.clone());
    field("Link:", e.link.clone());
    if let Some(m) = rest_of_message(e) {
        let _ = writeln!(out, "\n{m}");
    }
    if !e.log_tail.is_empty() {
        let _ = write!(out, "\nLast {} log lines", e.log_tail.len());
        // A failed run's log is its first failed task's.
        if e.task_id.is_none()
            && let Some(first) = first_failed_task(e)
        {
            let _ = write!(out, " of {first}");
            if let Some(n) = e.try_number {
                let _ = write!(out, ", try {n}");
            }
        }
        out.push_str(":\n");
        for l in &e.log_tail {
            let _ = writeln!(out, "  {l}");
        }
    }
    // What the lines above show is not repeated as JSON.
    let shown: &[&str] = if failed.is_some() {
        &["failed_tasks", "failed_count"]
    } else {
        &[]
    };
    let details: Vec<_> = e
        .details
        .iter()
        .filter(|(k, _)| !shown.contains(&k.as_str()))
        .collect();
    if !details.is_empty() {
        let _ = writeln!(out, "\nDetails:");
        for (k, v) in details {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    let _ = writeln!(out, "\nEvent key: {}", e.key);
}

/// A failed run's first failed task, whose log its event carries.
fn first_failed_task(e: &Event) -> Option<String> {
    let first = e.details.get("failed_tasks")?.as_array()?.first()?;
    let name = first.get("task_id")?.as_str()?;
    Some(
        name.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

/// `s` cut to at most `max` bytes, at a character boundary, saying so.
pub(crate) fn bound(mut s: String, max: usize) -> String {
    const CUT: &str = "\n… (cut)\n";
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub(CUT.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(CUT);
    s
}

#[cfg(test)]
mod tests;
