//! Rendering a batch for people: an e-mail's subject and plain-text body, and
//! a Slack message (mrkdwn, links as `<url|label>`). A digest counts its
//! events by kind and by run and then lists the first ones, a line each.
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
            let _ = writeln!(out, "{} alerts\n", many.len());
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
            if let Some(m) = &one.message {
                let _ = writeln!(out, "{}", slack_escape(m));
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

/// What an event is about, in a few words.
fn headline(e: &Event) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &e.dag_id {
        parts.push(d.clone());
    }
    if let Some(t) = &e.task_id {
        parts.push(t.clone());
    }
    let mut s = parts.join(" / ");
    if let Some(n) = e.try_number {
        let _ = write!(s, " (try {n})");
    }
    if let Some(r) = &e.run_key {
        let _ = write!(s, " in {r}");
    }
    if s.is_empty() {
        s = e
            .message
            .as_deref()
            .and_then(|m| m.lines().next())
            .unwrap_or(e.kind.as_str())
            .to_owned();
    }
    s
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
    if let Some(n) = e.try_number {
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

/// A digest's counts by kind and by run.
fn digest_counts(out: &mut String, batch: &Batch, escape: impl Fn(&str) -> String) {
    let _ = writeln!(out, "By kind:");
    for (k, n) in batch.counts() {
        let _ = writeln!(out, "  {k}: {n}");
    }
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
        e.task_id.as_ref().map(|t| match e.try_number {
            Some(n) => format!("{t}, try {n}"),
            None => t.clone(),
        }),
    );
    field("Link:", e.link.clone());
    if let Some(m) = &e.message {
        let _ = writeln!(out, "\n{m}");
    }
    if !e.log_tail.is_empty() {
        let _ = writeln!(out, "\nLast {} log lines:", e.log_tail.len());
        for l in &e.log_tail {
            let _ = writeln!(out, "  {l}");
        }
    }
    if !e.details.is_empty() {
        let _ = writeln!(out, "\nDetails:");
        for (k, v) in &e.details {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    let _ = writeln!(out, "\nEvent key: {}", e.key);
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
