//! The DAG page's history charts: each task's duration, tries and landing
//! time over a DAG's recent runs (one line per task, one column per run), and
//! the calendar of daily outcomes over the last year, each rendered as one
//! SVG document.
//!
//! Pure and deterministic: the same rows always give the same bytes, `today`
//! is a parameter, and every piece of text from the input is escaped. Bounded
//! by what the store returns (at most `HISTORY_MAX` runs, a year of days).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use gale_model::RunState;
use gale_store::{DayRuns, RunHistory};
use jiff::civil::Date;

use super::format;
use super::graph::{ClassName, Escaped, num, truncate};

/// What a chart plots for a task instance of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// End minus start of the last try, in seconds (finished tries only).
    Duration,
    /// Tries claimed so far (tasks that never started are left out).
    Tries,
    /// End of the task minus the end of the run's data interval, in seconds
    /// (finished tasks only): how late after its interval the data landed.
    Landing,
}

impl Metric {
    fn is_time(self) -> bool {
        matches!(self, Metric::Duration | Metric::Landing)
    }

    /// The chart's `data-metric`, and the tab's name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Duration => "duration",
            Metric::Tries => "tries",
            Metric::Landing => "landing",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Metric::Duration => "duration",
            Metric::Tries => "tries",
            Metric::Landing => "landing time",
        }
    }
}

/// One run, a column of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub run_id: i64,
    pub logical_date: String,
    pub href: String,
}

/// One task's values, a line of the chart: one per column, `None` where the
/// task has no value in that run.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub task_id: String,
    pub colour: &'static str,
    pub values: Vec<Option<f64>>,
}

/// A chart's data, oldest run first (left to right).
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub metric: Metric,
    pub columns: Vec<Column>,
    pub series: Vec<Series>,
}

/// Line colours, one per task in order, repeating after ten.
const PALETTE: &[&str] = &[
    "#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
    "#9333ea", "#475569",
];

/// Builds a chart of `metric` from a DAG's history (newest run first, as the
/// store returns it). Tasks come in `order` (the current DAG's), then any
/// task only older versions had, by id. Runs' dates are written in `zone`,
/// the page's.
pub fn chart(metric: Metric, order: &[&str], history: &[RunHistory], zone: &format::Zone) -> Chart {
    let mut task_ids: Vec<String> = order.iter().map(|t| (*t).to_owned()).collect();
    let mut extra: Vec<String> = history
        .iter()
        .flat_map(|h| h.tasks.iter())
        .map(|t| t.task_id.0.clone())
        .filter(|t| !order.contains(&t.as_str()))
        .collect();
    extra.sort();
    extra.dedup();
    task_ids.extend(extra);
    let runs: Vec<&RunHistory> = history.iter().rev().collect();
    let columns = runs
        .iter()
        .map(|h| Column {
            run_id: h.run.id.0,
            logical_date: zone.ts(h.run.logical_date),
            href: format!("/runs/{}", h.run.id.0),
        })
        .collect();
    let series = task_ids
        .iter()
        .enumerate()
        .map(|(i, task_id)| Series {
            task_id: task_id.clone(),
            colour: PALETTE[i % PALETTE.len()],
            values: runs
                .iter()
                .map(|h| {
                    let t = h.tasks.iter().find(|t| t.task_id.as_str() == task_id)?;
                    match metric {
                        Metric::Duration => {
                            let secs = t.ended_at?.duration_since(t.started_at?).as_secs_f64();
                            Some(secs.max(0.0))
                        }
                        Metric::Tries => (t.try_number > 0).then_some(f64::from(t.try_number)),
                        Metric::Landing => {
                            Some(t.ended_at?.duration_since(h.run.interval_end).as_secs_f64())
                        }
                    }
                })
                .collect(),
        })
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect();
    Chart {
        metric,
        columns,
        series,
    }
}

const CHART_W: f64 = 760.0;
const CHART_H: f64 = 240.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
const RIGHT: f64 = 16.0;
const TICKS: usize = 5;
const MAX_TASK_CHARS: usize = 40;

/// The value as an axis label or a tooltip shows it.
fn value_label(metric: Metric, v: f64) -> String {
    if metric.is_time() {
        if v < 0.0 {
            format!("-{}", format::duration(-v))
        } else {
            format::duration(v)
        }
    } else {
        format!("{v}")
    }
}

/// A step of 1, 2 or 5 times a power of ten (of seconds or tries) that splits
/// `span` into at most [`TICKS`] parts.
fn nice_step(span: f64) -> f64 {
    let raw = (span / TICKS as f64).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Renders a chart as an SVG document: a y axis of the metric, one column per
/// run (its id under it, every few), a line and dots per task, each dot with a
/// tooltip naming the task, the run and the value, linked to the run.
pub fn svg(chart: &Chart) -> String {
    let label = chart.metric.label();
    if chart.series.is_empty() {
        return format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" class="history empty" viewBox="0 0 260 40" width="260" height="40" role="img" aria-label="{label} per run"><text x="16" y="25" font-family="system-ui, sans-serif" font-size="12" fill="#888">no finished tasks yet</text></svg>"##
        );
    }
    let values = chart.series.iter().flat_map(|s| s.values.iter().flatten());
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    let min_span = if chart.metric.is_time() { 1.0 } else { 2.0 };
    let step = nice_step((hi - lo).max(min_span));
    let lo = (lo / step).floor() * step;
    let hi = ((hi / step).ceil() * step).max(lo + step);
    let plot_w = CHART_W - LEFT - RIGHT;
    let plot_h = CHART_H - TOP - BOTTOM;
    let n = chart.columns.len().max(1);
    let x_at = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_at = |v: f64| TOP + plot_h * (hi - v) / (hi - lo);

    let mut out = String::with_capacity(2048 + chart.series.len() * n * 200);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="history" data-metric="{}" viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" height="{CHART_H}" role="img" aria-label="{label} per run" font-family="system-ui, sans-serif" font-size="11">"##,
        chart.metric.name(),
    );
    out.push_str(r##"<g class="axis" fill="#6b7280" stroke="#e5e7eb">"##);
    let mut tick = lo;
    while tick <= hi + step / 2.0 {
        let y = num(y_at(tick));
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}"/><text x="{}" y="{}" text-anchor="end" stroke="none">{}</text>"#,
            num(CHART_W - RIGHT),
            num(LEFT - 6.0),
            num(y_at(tick) + 4.0),
            Escaped(&value_label(chart.metric, tick)),
        );
        tick += step;
    }
    // At most about ten run labels, so they do not overlap.
    let every = n.div_ceil(10).max(1);
    for (i, c) in chart.columns.iter().enumerate() {
        if i % every == 0 || i + 1 == n {
            let _ = write!(
                out,
                r#"<text class="run" x="{}" y="{}" text-anchor="middle" stroke="none"><title>{}</title>{}</text>"#,
                num(x_at(i)),
                num(CHART_H - 8.0),
                Escaped(&c.logical_date),
                c.run_id,
            );
        }
    }
    out.push_str("</g>");

    for s in &chart.series {
        let task = Escaped(&s.task_id);
        let _ = write!(
            out,
            r#"<g class="series" data-task="{task}" stroke="{c}" fill="{c}">"#,
            c = s.colour
        );
        // A gap (a run without a value) breaks the line.
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, out: &mut String| {
            if segment.len() > 1 {
                let _ = write!(
                    out,
                    r#"<polyline fill="none" stroke-width="1.5" points="{}"/>"#,
                    segment.join(" ")
                );
            }
            segment.clear();
        };
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => segment.push(format!("{},{}", num(x_at(i)), num(y_at(*v)))),
                None => flush(&mut segment, &mut out),
            }
        }
        flush(&mut segment, &mut out);
        for (i, (v, c)) in s.values.iter().zip(&chart.columns).enumerate() {
            let Some(v) = v else { continue };
            let _ = write!(
                out,
                r#"<a href="{}"><circle class="point" data-run="{}" data-value="{}" cx="{}" cy="{}" r="3"><title>{} · run {} ({}) · {}</title></circle></a>"#,
                Escaped(&c.href),
                c.run_id,
                num(*v),
                num(x_at(i)),
                num(y_at(*v)),
                Escaped(&truncate(&s.task_id, MAX_TASK_CHARS)),
                c.run_id,
                Escaped(&c.logical_date),
                Escaped(&value_label(chart.metric, *v)),
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

// ------------------------------------------------------------------ calendar

const CELL: f64 = 12.0;
const GAP: f64 = 2.0;
const CAL_LEFT: f64 = 30.0;
const CAL_TOP: f64 = 16.0;

/// How bad a run state is for the calendar: a day takes its worst state's
/// colour (a failure on a day with successes still shows; a cancel is
/// worse than a success, not a failure).
fn severity(s: RunState) -> u8 {
    match s {
        RunState::Success => 0,
        RunState::Cancelled => 1,
        RunState::Queued => 2,
        RunState::Running => 3,
        RunState::Failed => 4,
    }
}

/// Renders the calendar of the 53 weeks up to `today` (a column per week,
/// Monday on top), one cell per day coloured by the worst state of its runs,
/// its tooltip the counts per state. Days without runs are left grey.
pub fn calendar(days: &[DayRuns], today: Date) -> String {
    let mut by_day: BTreeMap<Date, Vec<(RunState, u32)>> = BTreeMap::new();
    for d in days {
        by_day.entry(d.day).or_default().push((d.state, d.n_runs));
    }
    // The first column starts on the Monday 52 weeks before today's week.
    let monday = today
        .checked_sub(jiff::Span::new().days(i64::from(today.weekday().to_monday_zero_offset())))
        .unwrap_or(today);
    let start = monday
        .checked_sub(jiff::Span::new().weeks(52))
        .unwrap_or(monday);
    let weeks = 53;
    let width = CAL_LEFT + weeks as f64 * (CELL + GAP) + GAP;
    let height = CAL_TOP + 7.0 * (CELL + GAP) + GAP;
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="calendar" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="runs per day" font-family="system-ui, sans-serif" font-size="10" fill="#6b7280">"##,
        w = num(width),
        h = num(height),
    );
    for (row, name) in [(0, "Mon"), (2, "Wed"), (4, "Fri")] {
        let _ = write!(
            out,
            r#"<text x="0" y="{}">{name}</text>"#,
            num(CAL_TOP + row as f64 * (CELL + GAP) + CELL - 2.0)
        );
    }
    let mut months_shown: BTreeSet<(i16, i8)> = BTreeSet::new();
    let mut day = start;
    let mut i = 0usize;
    while day <= today {
        let (week, weekday) = (i / 7, i % 7);
        let x = CAL_LEFT + week as f64 * (CELL + GAP);
        let y = CAL_TOP + weekday as f64 * (CELL + GAP);
        if day.day() <= 7 && months_shown.insert((day.year(), day.month())) {
            let _ = write!(
                out,
                r#"<text x="{}" y="10">{}</text>"#,
                num(x),
                day.strftime("%b")
            );
        }
        let states = by_day.get(&day);
        let total: u32 = states.map_or(0, |s| s.iter().map(|(_, n)| n).sum());
        let worst = states.and_then(|s| s.iter().map(|(st, _)| *st).max_by_key(|st| severity(*st)));
        let class = worst.map_or("none", RunState::as_str);
        let mut title = format!("{}: ", day);
        if total == 0 {
            title.push_str("no runs");
        } else {
            let parts: Vec<String> = states
                .into_iter()
                .flatten()
                .map(|(st, n)| format!("{n} {}", st.as_str()))
                .collect();
            let _ = write!(
                title,
                "{total} run{} ({})",
                if total == 1 { "" } else { "s" },
                parts.join(", ")
            );
        }
        let _ = write!(
            out,
            r#"<rect class="day state-{}" data-day="{day}" data-runs="{total}" x="{}" y="{}" width="{CELL}" height="{CELL}" rx="2"><title>{}</title></rect>"#,
            ClassName(class),
            num(x),
            num(y),
            Escaped(&title),
        );
        let Some(next) = day.tomorrow().ok() else {
            break;
        };
        day = next;
        i += 1;
    }
    out.push_str("</svg>");
    out
}
