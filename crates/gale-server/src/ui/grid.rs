//! The DAG page's grid: runs as columns (oldest left), tasks as rows (in the
//! DAG's order), a cell per task instance coloured by its state. Pure: it
//! arranges what one `list_runs` and one `tasks_of_runs` returned.

use std::collections::{HashMap, HashSet};

use gale_store::{RunRow, TaskRow};
use jiff::Timestamp;

use super::format;
use crate::auth::url_escape;

/// The heights of run bars, in pixels.
const MIN_BAR: f64 = 6.0;
const MAX_BAR: f64 = 36.0;

/// One column: a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub run_id: i64,
    pub state: &'static str,
    pub href: String,
    /// Tooltip: key, state, logical date.
    pub title: String,
    /// Height of its bar in pixels: its duration relative to the longest
    /// run in view.
    pub height: u32,
}

/// One cell: a task instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub run_id: i64,
    pub task_id: String,
    pub state: &'static str,
    pub href: String,
    pub title: String,
}

/// One row: a task, with a cell per column (`None`: the run's version had no
/// such task).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub task_id: String,
    pub cells: Vec<Option<Cell>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grid {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// Arranges `runs` (newest first, as `list_runs` returns them) and their task
/// instances into a grid. Rows follow `task_order` (the current version's
/// tasks); tasks only older runs had come after, in the order first seen.
/// `now` ends the runs still going, for their bars' heights; tooltips write
/// times in `zone`.
pub fn assemble(
    task_order: &[&str],
    runs: &[RunRow],
    tasks: &[TaskRow],
    now: Timestamp,
    zone: &format::Zone,
) -> Grid {
    let runs: Vec<&RunRow> = runs.iter().rev().collect();
    let secs = |r: &RunRow| match r.started_at {
        Some(start) => r
            .ended_at
            .unwrap_or(now)
            .duration_since(start)
            .as_secs_f64()
            .max(0.0),
        None => 0.0,
    };
    let longest = runs.iter().map(|r| secs(r)).fold(0.0, f64::max);
    let columns = runs
        .iter()
        .map(|r| Column {
            run_id: r.id.0,
            state: r.state.as_str(),
            href: format!("/runs/{}", r.id.0),
            title: format!(
                "run {} · {} · {} · {} · {}",
                r.id.0,
                r.run_key,
                r.state.as_str(),
                zone.ts(r.logical_date),
                format::span(r.started_at, r.ended_at, now)
            ),
            height: if longest > 0.0 {
                (MIN_BAR + (MAX_BAR - MIN_BAR) * secs(r) / longest).round() as u32
            } else {
                MIN_BAR as u32
            },
        })
        .collect();
    let mut by_cell: HashMap<(i64, &str), &TaskRow> = HashMap::with_capacity(tasks.len());
    for t in tasks {
        by_cell.insert((t.run_id.0, t.task_id.as_str()), t);
    }
    let mut order: Vec<&str> = task_order.to_vec();
    let mut known: HashSet<&str> = order.iter().copied().collect();
    // Tasks of older versions, in the order their newest run lists them.
    for r in runs.iter().rev() {
        for t in tasks.iter().filter(|t| t.run_id == r.id) {
            if known.insert(t.task_id.as_str()) {
                order.push(t.task_id.as_str());
            }
        }
    }
    let rows = order
        .into_iter()
        .map(|task_id| Row {
            task_id: task_id.to_owned(),
            cells: runs
                .iter()
                .map(|r| {
                    by_cell.get(&(r.id.0, task_id)).map(|t| Cell {
                        run_id: r.id.0,
                        task_id: task_id.to_owned(),
                        state: t.state.as_str(),
                        href: format!("/runs/{}/tasks/{}", r.id.0, url_escape(task_id)),
                        title: format!(
                            "{task_id} · run {} · {}{}",
                            r.id.0,
                            t.state.as_str(),
                            if t.try_number > 1 {
                                format!(" · try {}", t.try_number)
                            } else {
                                String::new()
                            }
                        ),
                    })
                })
                .collect(),
        })
        .collect();
    Grid { columns, rows }
}
