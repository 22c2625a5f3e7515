//! The DAG page's history tabs (durations, tries, landing, calendar): which
//! runs they read, how many, and the views their charts are drawn into.

use gale_model::DagId;
use gale_store::Store;
use jiff::Timestamp;

use super::UiError;
use super::history::{self, Metric};
use crate::auth::url_escape;

/// Runs the history charts show unless told otherwise.
const HISTORY_RUNS: u32 = 25;
/// How many runs a history chart may be asked for.
const HISTORY_CHOICES: [u32; 4] = [10, 25, 50, 100];
/// Days the calendar covers, today included (53 weeks' columns).
const CALENDAR_DAYS: i64 = 371;

pub(crate) struct LegendItem {
    pub task_id: String,
    pub colour: &'static str,
}

pub(crate) struct HistoryView {
    pub tab: &'static str,
    pub action: String,
    pub caption: &'static str,
    pub choices: Vec<(u32, bool)>,
    pub n_runs: usize,
    pub legend: Vec<LegendItem>,
    pub svg: String,
}

pub(crate) struct CalendarView {
    pub from: String,
    pub to: String,
    pub n_runs: u32,
    pub n_days: usize,
    pub svg: String,
}

/// How many runs a history chart shows: one of [`HISTORY_CHOICES`], or (not
/// given) [`HISTORY_RUNS`].
pub(super) fn history_runs(s: Option<&str>) -> Result<u32, UiError> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(HISTORY_RUNS),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=gale_store::HISTORY_MAX).contains(n))
            .ok_or_else(|| {
                UiError::BadRequest(format!(
                    "runs={s:?}: give a number of runs from 1 to {}",
                    gale_store::HISTORY_MAX
                ))
            }),
    }
}

// ------------------------------------------------------------------ history

pub(super) async fn history_view(
    store: &dyn Store,
    dag_id: &DagId,
    spec: &gale_model::Dag,
    metric: Metric,
    n: u32,
    zone: &super::format::Zone,
) -> Result<HistoryView, UiError> {
    let runs = store.dag_history(dag_id, n).await?;
    let order: Vec<&str> = spec.tasks.iter().map(|t| t.id.as_str()).collect();
    let chart = history::chart(metric, &order, &runs, zone);
    let (tab, caption) = match metric {
        Metric::Duration => (
            "durations",
            "How long each task's last try took (end minus start), per run, oldest run on the left. Finished tries only.",
        ),
        Metric::Tries => (
            "tries",
            "How many tries each task took, per run, oldest run on the left. Tasks that never started are left out.",
        ),
        Metric::Landing => (
            "landing",
            "Landing time: when each task finished, after the end of its run's data interval (task end minus interval end), per run, oldest run on the left. Negative for a run triggered before its interval ended.",
        ),
    };
    Ok(HistoryView {
        tab,
        action: format!("/dags/{}", url_escape(&dag_id.0)),
        caption,
        choices: HISTORY_CHOICES.iter().map(|c| (*c, *c == n)).collect(),
        n_runs: runs.len(),
        legend: chart
            .series
            .iter()
            .map(|s| LegendItem {
                task_id: s.task_id.clone(),
                colour: s.colour,
            })
            .collect(),
        svg: history::svg(&chart),
    })
}

pub(super) async fn calendar_view(
    store: &dyn Store,
    dag_id: &DagId,
    now: Timestamp,
) -> Result<CalendarView, UiError> {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let first = today
        .checked_sub(jiff::Span::new().days(CALENDAR_DAYS - 1))
        .unwrap_or(today);
    let since = first
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(now);
    let days = store.daily_runs(dag_id, since).await?;
    let mut seen: Vec<jiff::civil::Date> = days.iter().map(|d| d.day).collect();
    seen.dedup();
    Ok(CalendarView {
        from: first.to_string(),
        to: today.to_string(),
        n_runs: days.iter().map(|d| d.n_runs).sum(),
        n_days: seen.len(),
        svg: history::calendar(&days, today),
    })
}
