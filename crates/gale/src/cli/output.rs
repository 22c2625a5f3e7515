//! Printing helpers shared by the commands: JSON, plain tables, times and
//! durations.

use gale_model::time::rfc3339;
use gale_store::{RunRow, TaskRow};
use jiff::Timestamp;
use serde::Serialize;

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A run as the API writes it (`run_id`, its conf masked): one shape
/// wherever a command prints a run.
pub(crate) fn api_run(run: &RunRow) -> gale_server::api::runs::Run {
    gale_server::api::runs::Run::from(run)
}

/// A run and its task instances, as the API writes each.
pub(crate) fn api_run_with_tasks(run: &RunRow, tasks: &[TaskRow]) -> serde_json::Value {
    let tasks: Vec<_> = tasks
        .iter()
        .map(gale_server::api::tasks::TaskInstance::from)
        .collect();
    serde_json::json!({ "run": api_run(run), "tasks": tasks })
}

pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(headers.iter().map(|h| h.to_string()));
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
        .lines()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn when(ts: Option<Timestamp>) -> String {
    ts.map(rfc3339).unwrap_or_else(|| "-".into())
}

pub(super) fn took(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => {
            let ms = (e.as_millisecond() - s.as_millisecond()).max(0);
            if ms < 10_000 {
                format!("{:.2}s", ms as f64 / 1000.0)
            } else {
                format!("{}s", ms / 1000)
            }
        }
        _ => "-".into(),
    }
}

pub(super) fn task_table(tasks: &[TaskRow]) -> String {
    let rows = tasks
        .iter()
        .map(|t| {
            vec![
                t.task_id.0.clone(),
                t.state.to_string(),
                format!("{}/{}", t.try_number, t.max_tries),
                when(t.started_at),
                took(t.started_at, t.ended_at),
                t.worker_id
                    .clone()
                    .map(|w| w.0)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &["TASK", "STATE", "TRY", "STARTED", "DURATION", "WORKER"],
        rows,
    )
}
