//! The Gantt chart of one run: a row per task, a bar per attempt, on a time
//! axis relative to the run's first start, rendered as one SVG document.
//!
//! Pure and deterministic: `now` is a parameter (it ends the bars of attempts
//! still running) and the same input always gives the same bytes. Every piece of
//! text from the input is escaped.

use std::collections::HashMap;
use std::fmt::Write;

use jiff::Timestamp;

use super::graph::{ClassName, Escaped, num, truncate};

/// One attempt of a task, as the chart shows it.
#[derive(Clone, Debug)]
pub struct GanttBar {
    pub task_id: String,
    pub try_number: u32,
    pub state: String,
    pub start: Timestamp,
    /// `None` while the attempt runs: the bar then ends at `now`.
    pub end: Option<Timestamp>,
    /// Where a click on the bar leads.
    pub href: Option<String>,
}

const ROW_H: f64 = 22.0;
const BAR_H: f64 = 14.0;
const AXIS_H: f64 = 22.0;
const CHART_W: f64 = 720.0;
/// Room right of the chart for the last tick's label.
const RIGHT_PAD: f64 = 32.0;
const BOTTOM_PAD: f64 = 6.0;
const LABEL_PAD: f64 = 8.0;
const LABEL_CHAR_W: f64 = 7.0;
const MIN_LABEL_W: f64 = 80.0;
const MAX_LABEL_CHARS: usize = 32;
/// Attempts shorter than this still show as a sliver.
const MIN_BAR_W: f64 = 2.0;
/// The axis never shows less than this, so instant attempts do not fill it.
const MIN_SPAN_MS: i64 = 1_000;
const MAX_TICKS: i64 = 8;

/// Tick intervals the axis may use, in milliseconds: the smallest that keeps
/// the ticks to [`MAX_TICKS`] wins.
const TICK_STEPS_MS: &[i64] = &[
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    2 * 60_000,
    5 * 60_000,
    10 * 60_000,
    15 * 60_000,
    30 * 60_000,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
    2 * DAY_MS,
    7 * DAY_MS,
    14 * DAY_MS,
    30 * DAY_MS,
];
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Renders the attempts as an SVG document (without an XML declaration, ready
/// to be inlined in a page).
pub fn svg(bars: &[GanttBar], now: Timestamp) -> String {
    if bars.is_empty() {
        return concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="gantt empty" "#,
            r#"viewBox="0 0 200 40" width="200" height="40" role="img" aria-label="attempts over time">"#,
            r##"<text x="16" y="25" font-family="system-ui, sans-serif" font-size="12" fill="#888">no attempts yet</text>"##,
            "</svg>"
        )
        .to_owned();
    }
    let now_ms = now.as_millisecond();
    let (tasks, row_of) = rows(bars);
    let origin = bars
        .iter()
        .map(|bar| bar.start.as_millisecond())
        .min()
        .unwrap_or(now_ms);
    let finish = bars
        .iter()
        .map(|bar| bar_end(bar, now_ms))
        .max()
        .unwrap_or(origin);
    let span = (finish - origin).max(MIN_SPAN_MS);
    let scale = CHART_W / span as f64;

    let longest = tasks
        .iter()
        .map(|t| t.chars().count().min(MAX_LABEL_CHARS))
        .max()
        .unwrap_or(0);
    let chart_x = (longest as f64 * LABEL_CHAR_W + 2.0 * LABEL_PAD)
        .max(MIN_LABEL_W)
        .ceil();
    let width = chart_x + CHART_W + RIGHT_PAD;
    let height = AXIS_H + tasks.len() as f64 * ROW_H + BOTTOM_PAD;
    let x_at = |ms: i64| chart_x + (ms - origin) as f64 * scale;

    let mut out = String::with_capacity(512 + tasks.len() * 120 + bars.len() * 260);
    let (w, h) = (num(width), num(height));
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="gantt" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="attempts over time" font-family="system-ui, sans-serif" font-size="12">"##
    );

    out.push_str(r#"<g class="rows">"#);
    for (row, task) in tasks.iter().enumerate() {
        let top = AXIS_H + row as f64 * ROW_H;
        if row % 2 == 1 {
            let _ = write!(
                out,
                r##"<rect class="stripe" x="0" y="{}" width="{w}" height="{ROW_H}" fill="#f4f5f7"/>"##,
                num(top)
            );
        }
        let _ = write!(
            out,
            r#"<text class="task" x="{LABEL_PAD}" y="{}" data-task="{}">"#,
            num(top + ROW_H / 2.0 + 4.0),
            Escaped(task),
        );
        let shown = truncate(task, MAX_LABEL_CHARS);
        if shown != *task {
            let _ = write!(out, "<title>{}</title>", Escaped(task));
        }
        let _ = write!(out, "{}</text>", Escaped(&shown));
    }
    out.push_str("</g>");

    let step = tick_step(span);
    out.push_str(r##"<g class="axis" font-size="11" fill="#6b7280" stroke="#d8dce3">"##);
    let mut tick = 0;
    while tick <= span {
        let x = num(x_at(origin + tick));
        let _ = write!(
            out,
            r#"<line class="tick" x1="{x}" x2="{x}" y1="{}" y2="{}"/><text x="{x}" y="14" text-anchor="middle" stroke="none">{}</text>"#,
            num(AXIS_H - 4.0),
            num(height - BOTTOM_PAD),
            tick_label(tick),
        );
        tick += step;
    }
    out.push_str("</g>");

    out.push_str(r##"<g class="bars" fill="#8a94a6">"##);
    for (bar, &row) in bars.iter().zip(&row_of) {
        let start = bar.start.as_millisecond();
        let end = bar_end(bar, now_ms);
        let x = x_at(start);
        let bar_w = ((end - start) as f64 * scale).max(MIN_BAR_W);
        let top = AXIS_H + row as f64 * ROW_H + (ROW_H - BAR_H) / 2.0;
        if let Some(href) = &bar.href {
            let _ = write!(out, r#"<a href="{}">"#, Escaped(href));
        }
        let _ = write!(
            out,
            r#"<rect class="bar state-{}" data-task="{}" data-try="{}" x="{}" y="{}" width="{}" height="{BAR_H}" rx="3"><title>{} · try {} · {} · {}{}</title></rect>"#,
            ClassName(&bar.state),
            Escaped(&bar.task_id),
            bar.try_number,
            num(x),
            num(top),
            num(bar_w),
            Escaped(&bar.task_id),
            bar.try_number,
            Escaped(&bar.state),
            duration_label(end - start),
            if bar.end.is_none() { " so far" } else { "" },
        );
        if bar.href.is_some() {
            out.push_str("</a>");
        }
    }
    out.push_str("</g>");

    if bars.iter().any(|bar| bar.end.is_none()) {
        let x = num(x_at(now_ms));
        let _ = write!(
            out,
            r##"<line class="now" x1="{x}" x2="{x}" y1="{}" y2="{}" stroke="#d97706"/>"##,
            num(AXIS_H - 4.0),
            num(height - BOTTOM_PAD),
        );
    }
    out.push_str("</svg>");
    out
}

/// Where a bar ends: its end, or `now` while it runs; never before its start
/// (clocks may disagree).
fn bar_end(bar: &GanttBar, now_ms: i64) -> i64 {
    let start = bar.start.as_millisecond();
    bar.end.map_or(now_ms, Timestamp::as_millisecond).max(start)
}

/// The task of each row (ordered by first start, then id) and the row of each
/// bar. All tries of a task share its row.
fn rows(bars: &[GanttBar]) -> (Vec<&str>, Vec<usize>) {
    let mut first_start: HashMap<&str, Timestamp> = HashMap::new();
    for bar in bars {
        first_start
            .entry(bar.task_id.as_str())
            .and_modify(|start| *start = (*start).min(bar.start))
            .or_insert(bar.start);
    }
    let mut tasks: Vec<(&str, Timestamp)> = first_start.into_iter().collect();
    tasks.sort_unstable_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    let row_of_task: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(row, &(task, _))| (task, row))
        .collect();
    let row_of_bar = bars
        .iter()
        .map(|bar| row_of_task[bar.task_id.as_str()])
        .collect();
    (
        tasks.into_iter().map(|(task, _)| task).collect(),
        row_of_bar,
    )
}

/// The tick interval for an axis `span_ms` long: the smallest of
/// [`TICK_STEPS_MS`] giving at most [`MAX_TICKS`] intervals, or whole multiples
/// of 30 days beyond them.
fn tick_step(span_ms: i64) -> i64 {
    TICK_STEPS_MS
        .iter()
        .copied()
        .find(|&step| span_ms <= step * MAX_TICKS)
        .unwrap_or_else(|| {
            let month = 30 * DAY_MS;
            let per_tick = span_ms / MAX_TICKS;
            ((per_tick + month - 1) / month).max(1) * month
        })
}

/// A tick's offset from the run's start: "0s", "1.5s", "2m", "1h30m", "2d".
/// Ticks fall on tenths of a second or whole seconds, so nothing is lost.
fn tick_label(offset_ms: i64) -> String {
    if offset_ms % 1_000 == 0 {
        compound(offset_ms / 1_000)
    } else {
        format!("{}.{}s", offset_ms / 1_000, offset_ms % 1_000 / 100)
    }
}

/// An attempt's duration for its tooltip: "850ms", "1.5s", "42s", "2m5s".
fn duration_label(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 10_000 {
        let tenths = (ms + 50) / 100;
        if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else if ms < 60_000 {
        format!("{}s", (ms + 500) / 1_000)
    } else {
        compound(ms / 1_000)
    }
}

/// Whole seconds as their two most significant units: "0s", "45s", "2m",
/// "1m30s", "1h30m", "1d12h".
fn compound(secs: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(i) = UNITS.iter().position(|&(size, _)| secs >= size) else {
        return "0s".to_owned();
    };
    let (size, unit) = UNITS[i];
    let mut out = format!("{}{unit}", secs / size);
    if let Some(&(next_size, next_unit)) = UNITS.get(i + 1) {
        let count = secs % size / next_size;
        if count > 0 {
            let _ = write!(out, "{count}{next_unit}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Timestamp {
        Timestamp::from_millisecond((secs * 1_000.0) as i64 + 1_800_000_000_000).unwrap()
    }

    fn bar(task: &str, try_number: u32, state: &str, start: f64, end: Option<f64>) -> GanttBar {
        GanttBar {
            task_id: task.to_owned(),
            try_number,
            state: state.to_owned(),
            start: at(start),
            end: end.map(at),
            href: None,
        }
    }

    #[test]
    fn ticks_fit_the_span() {
        let check = |span_ms: i64, step_ms: i64| {
            assert_eq!(tick_step(span_ms), step_ms, "span {span_ms}ms");
            assert!(span_ms / step_ms <= MAX_TICKS);
        };
        check(0, 100);
        check(800, 100);
        check(1_000, 200);
        check(3_000, 500);
        check(10_000, 2_000);
        check(45_000, 10_000);
        check(5 * 60_000, 60_000);
        check(2 * HOUR_MS, 15 * 60_000);
        check(20 * HOUR_MS, 3 * HOUR_MS);
        check(100 * DAY_MS, 14 * DAY_MS);
        check(1_000 * DAY_MS, 150 * DAY_MS);
    }

    #[test]
    fn tick_labels_are_short() {
        let labels: Vec<String> = [
            0,
            500,
            1_500,
            2_000,
            60_000,
            90_000,
            120_000,
            5_400_000,
            HOUR_MS,
            36 * HOUR_MS,
        ]
        .into_iter()
        .map(tick_label)
        .collect();
        assert_eq!(
            labels,
            [
                "0s", "0.5s", "1.5s", "2s", "1m", "1m30s", "2m", "1h30m", "1h", "1d12h"
            ]
        );
    }

    #[test]
    fn durations_are_short() {
        let labels: Vec<String> = [0, 850, 1_000, 1_540, 9_990, 42_400, 125_000, 3_725_000]
            .into_iter()
            .map(duration_label)
            .collect();
        assert_eq!(
            labels,
            ["0ms", "850ms", "1s", "1.5s", "10s", "42s", "2m5s", "1h2m"]
        );
    }

    #[test]
    fn rows_follow_first_start_and_share_tries() {
        let bars = [
            bar("b", 1, "success", 2.0, Some(3.0)),
            bar("a", 1, "failed", 1.0, Some(1.5)),
            bar("a", 2, "success", 3.0, Some(4.0)),
            bar("c", 1, "success", 2.0, Some(2.5)),
            bar("d", 2, "running", 0.5, None),
        ];
        let (tasks, row_of) = rows(&bars);
        assert_eq!(tasks, ["d", "a", "b", "c"]);
        assert_eq!(row_of, [2, 1, 1, 3, 0]);
        let svg = svg(&bars, at(5.0));
        assert_eq!(svg.matches("<rect class=\"bar ").count(), 5);
        assert_eq!(svg.matches("<text class=\"task\"").count(), 4);
    }

    #[test]
    fn running_bars_reach_now() {
        // The run starts at 0s; "a" runs from 1s and now is 5s: the axis spans
        // 5s, so the bar covers 4/5 of the chart and a "now" line is drawn.
        let bars = [
            bar("a", 1, "running", 1.0, None),
            bar("b", 1, "success", 0.0, Some(0.0)),
        ];
        let svg = svg(&bars, at(5.0));
        let expected_w = num(CHART_W * 4.0 / 5.0).to_string();
        assert!(
            svg.contains(&format!("width=\"{expected_w}\" height=\"{BAR_H}\"")),
            "{svg}"
        );
        assert!(svg.contains("a · try 1 · running · 4s so far"), "{svg}");
        assert!(svg.contains("<line class=\"now\""));
        // The instant attempt is still visible.
        assert!(
            svg.contains(&format!("width=\"{MIN_BAR_W}\" height=\"{BAR_H}\"")),
            "{svg}"
        );
        assert!(svg.contains(">5s</text>"), "{svg}");
    }

    #[test]
    fn escapes_ids_states_and_hrefs() {
        let bars = [GanttBar {
            task_id: r#"<&>"'"#.to_owned(),
            try_number: 3,
            state: "a b\"".to_owned(),
            start: at(0.0),
            end: Some(at(1.0)),
            href: Some("/x?a=1&b=2".to_owned()),
        }];
        let svg = svg(&bars, at(2.0));
        assert!(svg.contains("<a href=\"/x?a=1&amp;b=2\">"), "{svg}");
        assert!(svg.contains("class=\"bar state-a_b_\""), "{svg}");
        assert!(
            svg.contains("data-task=\"&lt;&amp;&gt;&quot;&#39;\""),
            "{svg}"
        );
        assert!(
            svg.contains("<title>&lt;&amp;&gt;&quot;&#39; · try 3 · a b&quot; · 1s</title>"),
            "{svg}"
        );
        assert!(svg.contains(">&lt;&amp;&gt;&quot;&#39;</text>"), "{svg}");
        assert!(!svg.contains("<&"));
        assert!(!svg.contains("<line class=\"now\""));
    }

    #[test]
    fn long_task_ids_are_cut() {
        let id = "a_very_long_task_identifier_that_does_not_fit";
        let svg = svg(&[bar(id, 1, "success", 0.0, Some(1.0))], at(1.0));
        assert!(
            svg.contains(&format!(
                "<title>{id}</title>a_very_long_task_identifier_tha…</text>"
            )),
            "{svg}"
        );
    }

    #[test]
    fn empty_says_so() {
        let svg = svg(&[], at(0.0));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("no attempts yet"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn end_before_start_is_a_sliver() {
        let svg = svg(&[bar("a", 1, "success", 2.0, Some(1.0))], at(3.0));
        assert!(svg.contains(&format!("width=\"{MIN_BAR_W}\"")), "{svg}");
        assert!(svg.contains("· 0ms</title>"), "{svg}");
    }
}
