//! The Gantt chart of one run: a row per task, a bar per attempt, on a time
//! axis relative to the run's first instant (its clock time written in the
//! page's zone), rendered as one SVG document. As in Airflow, an attempt's
//! time in the queue (from when it was queued to its start) is a lighter bar
//! before its running bar; a legend under the chart says which is which.
//!
//! Pure and deterministic: `now` and the zone are parameters (`now` ends the
//! bars of attempts still running) and the same input always gives the same
//! bytes. Every piece of text from the input is escaped.

use std::collections::HashMap;
use std::fmt::Write;

use jiff::Timestamp;

use super::format::Zone;
use super::graph::{ClassName, Escaped, num, truncate};

/// One attempt of a task, as the chart shows it.
#[derive(Clone, Debug)]
pub struct GanttBar {
    pub task_id: String,
    pub try_number: u32,
    pub state: String,
    /// When it was queued, if known and not after `start`: drawn as the
    /// lighter part before the bar.
    pub queued: Option<Timestamp>,
    pub start: Timestamp,
    /// `None` while the attempt runs: the bar then ends at `now`.
    pub end: Option<Timestamp>,
    /// Where a click on the bar leads.
    pub href: Option<String>,
}

const ROW_H: f64 = 22.0;
const BAR_H: f64 = 14.0;
const AXIS_H: f64 = 22.0;
/// The legend's band under the rows.
const LEGEND_H: f64 = 22.0;
/// How opaque a queued part is, against its running bar's full colour.
const QUEUED_OPACITY: &str = "0.35";
/// The width of an axis-label character (font size 11), for the origin's label.
const AXIS_CHAR_W: f64 = 6.5;
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
/// to be inlined in a page); clock times are written in `zone`.
pub fn svg(bars: &[GanttBar], now: Timestamp, zone: &Zone) -> String {
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
    let origin = bars.iter().map(bar_begin).min().unwrap_or(now_ms);
    let origin_at = Timestamp::from_millisecond(origin).unwrap_or(now);
    let origin_label = format!("{} {}", zone.clock(origin_at), zone.abbreviation(origin_at));
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
        .max(origin_label.chars().count() as f64 * AXIS_CHAR_W + 2.0 * LABEL_PAD)
        .max(MIN_LABEL_W)
        .ceil();
    let width = chart_x + CHART_W + RIGHT_PAD;
    let rows_bottom = AXIS_H + tasks.len() as f64 * ROW_H + BOTTOM_PAD;
    let height = rows_bottom + LEGEND_H;
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
    // The clock time the axis counts from, left of its first tick.
    let _ = write!(
        out,
        r#"<text class="origin" x="{LABEL_PAD}" y="14" stroke="none"><title>0s is {}</title>{}</text>"#,
        Escaped(&zone.ts(origin_at)),
        Escaped(&origin_label),
    );
    let mut tick = 0;
    while tick <= span {
        let x = num(x_at(origin + tick));
        let _ = write!(
            out,
            r#"<line class="tick" x1="{x}" x2="{x}" y1="{}" y2="{}"/><text x="{x}" y="14" text-anchor="middle" stroke="none">{}</text>"#,
            num(AXIS_H - 4.0),
            num(rows_bottom - BOTTOM_PAD),
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
        let queued_ms = start - bar_begin(bar);
        let queued_words = if queued_ms > 0 {
            format!(" · queued {}", duration_label(queued_ms))
        } else {
            String::new()
        };
        let title = format!(
            "{} · try {} · {} · {}{}{queued_words} · started {} {}",
            bar.task_id,
            bar.try_number,
            bar.state,
            duration_label(end - start),
            if bar.end.is_none() { " so far" } else { "" },
            zone.clock(bar.start),
            zone.abbreviation(bar.start),
        );
        if queued_ms > 0 {
            // Drawn first, so it ends under the running bar's rounded corner.
            let queued_x = x_at(bar_begin(bar));
            let _ = write!(
                out,
                r#"<rect class="wait state-{}" data-task="{}" data-try="{}" x="{}" y="{}" width="{}" height="{BAR_H}" rx="3" fill-opacity="{QUEUED_OPACITY}"><title>{}</title></rect>"#,
                ClassName(&bar.state),
                Escaped(&bar.task_id),
                bar.try_number,
                num(queued_x),
                num(top),
                num((x - queued_x).max(MIN_BAR_W)),
                Escaped(&title),
            );
        }
        let _ = write!(
            out,
            r#"<rect class="bar state-{}" data-task="{}" data-try="{}" x="{}" y="{}" width="{}" height="{BAR_H}" rx="3"><title>{}</title></rect>"#,
            ClassName(&bar.state),
            Escaped(&bar.task_id),
            bar.try_number,
            num(x),
            num(top),
            num(bar_w),
            Escaped(&title),
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
            num(rows_bottom - BOTTOM_PAD),
        );
    }
    legend(&mut out, chart_x, rows_bottom);
    out.push_str("</svg>");
    out
}

/// The legend under the rows: a lighter swatch for the time queued, a full
/// one for the time running.
fn legend(out: &mut String, chart_x: f64, top: f64) {
    let y = num(top + (LEGEND_H - 10.0) / 2.0);
    let text_y = num(top + LEGEND_H / 2.0 + 4.0);
    let x = chart_x;
    let _ = write!(
        out,
        r##"<g class="legend" font-size="11"><rect class="swatch wait state-running" x="{}" y="{y}" width="16" height="10" rx="2" fill="#2bb3a0" fill-opacity="{QUEUED_OPACITY}"/><text x="{}" y="{text_y}">queued: waiting to start on a worker</text><rect class="swatch state-running" x="{}" y="{y}" width="16" height="10" rx="2" fill="#2bb3a0"/><text x="{}" y="{text_y}">running, coloured by its outcome</text></g>"##,
        num(x),
        num(x + 22.0),
        num(x + 260.0),
        num(x + 282.0),
    );
}

/// Where a bar begins: when it was queued, or its start if that is unknown.
fn bar_begin(bar: &GanttBar) -> i64 {
    let start = bar.start.as_millisecond();
    bar.queued
        .map_or(start, Timestamp::as_millisecond)
        .min(start)
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
            queued: None,
            start: at(start),
            end: end.map(at),
            href: None,
        }
    }

    fn utc() -> Zone {
        Zone::utc()
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
        let svg = svg(&bars, at(5.0), &utc());
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
        let svg = svg(&bars, at(5.0), &utc());
        let expected_w = num(CHART_W * 4.0 / 5.0).to_string();
        assert!(
            svg.contains(&format!("width=\"{expected_w}\" height=\"{BAR_H}\"")),
            "{svg}"
        );
        assert!(
            svg.contains("a · try 1 · running · 4s so far · started"),
            "{svg}"
        );
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
            queued: None,
            start: at(0.0),
            end: Some(at(1.0)),
            href: Some("/x?a=1&b=2".to_owned()),
        }];
        let svg = svg(&bars, at(2.0), &utc());
        assert!(svg.contains("<a href=\"/x?a=1&amp;b=2\">"), "{svg}");
        assert!(svg.contains("class=\"bar state-a_b_\""), "{svg}");
        assert!(
            svg.contains("data-task=\"&lt;&amp;&gt;&quot;&#39;\""),
            "{svg}"
        );
        assert!(
            svg.contains("<title>&lt;&amp;&gt;&quot;&#39; · try 3 · a b&quot; · 1s · started "),
            "{svg}"
        );
        assert!(svg.contains(">&lt;&amp;&gt;&quot;&#39;</text>"), "{svg}");
        assert!(!svg.contains("<&"));
        assert!(!svg.contains("<line class=\"now\""));
    }

    #[test]
    fn long_task_ids_are_cut() {
        let id = "a_very_long_task_identifier_that_does_not_fit";
        let svg = svg(&[bar(id, 1, "success", 0.0, Some(1.0))], at(1.0), &utc());
        assert!(
            svg.contains(&format!(
                "<title>{id}</title>a_very_long_task_identifier_tha…</text>"
            )),
            "{svg}"
        );
    }

    #[test]
    fn empty_says_so() {
        let svg = svg(&[], at(0.0), &utc());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("no attempts yet"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn end_before_start_is_a_sliver() {
        let svg = svg(&[bar("a", 1, "success", 2.0, Some(1.0))], at(3.0), &utc());
        assert!(svg.contains(&format!("width=\"{MIN_BAR_W}\"")), "{svg}");
        assert!(svg.contains("· 0ms · started"), "{svg}");
    }

    /// The `x` and `width` of the first `<rect class="{class} ...` in `svg`.
    fn geometry(svg: &str, class: &str) -> (f64, f64) {
        let at = svg
            .find(&format!("<rect class=\"{class}"))
            .unwrap_or_else(|| panic!("no {class} rect in {svg}"));
        let rect = &svg[at..at + svg[at..].find('>').unwrap_or(0)];
        let attr = |name: &str| -> f64 {
            let from = rect.find(&format!(" {name}=\"")).expect("the attribute") + name.len() + 3;
            rect[from..from + rect[from..].find('"').expect("its end")]
                .parse()
                .expect("a number")
        };
        (attr("x"), attr("width"))
    }

    #[test]
    fn queued_time_is_a_lighter_bar_before_the_running_one() {
        // "a" was queued at 0s and ran from 2s to 10s; "b" ran 4s-6s with no
        // known queued instant. The axis starts at the queueing (0s) and
        // spans 10s, so the queued part covers 1/5 of the chart and ends
        // where the running bar begins.
        let bars = [
            GanttBar {
                queued: Some(at(0.0)),
                ..bar("a", 1, "success", 2.0, Some(10.0))
            },
            bar("b", 1, "failed", 4.0, Some(6.0)),
        ];
        let svg = svg(&bars, at(20.0), &utc());
        let (wait_x, wait_w) = geometry(&svg, "wait state-success");
        let (bar_x, bar_w) = geometry(&svg, "bar state-success");
        let unit = CHART_W / 10.0;
        assert!((wait_w - 2.0 * unit).abs() < 0.01, "{wait_w} in {svg}");
        assert!((wait_x + wait_w - bar_x).abs() < 0.01, "{svg}");
        assert!((bar_w - 8.0 * unit).abs() < 0.01, "{bar_w} in {svg}");
        let (b_x, _) = geometry(&svg, "bar state-failed");
        assert!((b_x - bar_x - 2.0 * unit).abs() < 0.01, "{svg}");
        assert_eq!(svg.matches("<rect class=\"wait state-success\"").count(), 1);
        assert_eq!(
            svg.matches("<rect class=\"wait state-failed\"").count(),
            0,
            "no queued part without a queued instant"
        );
        assert!(
            svg.contains("a · try 1 · success · 8s · queued 2s · started"),
            "{svg}"
        );
        assert!(
            svg.contains("queued: waiting to start"),
            "the legend says so"
        );
        assert!(svg.contains("running, coloured by its outcome"));
    }

    #[test]
    fn a_queued_instant_after_the_start_draws_no_queued_part() {
        let bars = [GanttBar {
            queued: Some(at(3.0)),
            ..bar("a", 1, "success", 2.0, Some(4.0))
        }];
        let svg = svg(&bars, at(5.0), &utc());
        assert!(!svg.contains("<rect class=\"wait state-success\""), "{svg}");
        assert_eq!(geometry(&svg, "bar state-success").1, CHART_W);
    }

    #[test]
    fn the_axis_names_its_origin_in_the_zone() {
        // 1_800_000_000 s is 2027-01-15 08:00:00 UTC: 09:00 in Berlin (CET).
        let bars = [bar("a", 1, "success", 0.0, Some(1.0))];
        let berlin = svg(&bars, at(1.0), &Zone::named("Europe/Berlin"));
        assert!(berlin.contains(">09:00:00 CET</text>"), "{berlin}");
        assert!(berlin.contains("0s is 2027-01-15 09:00:00 CET"), "{berlin}");
        assert!(berlin.contains("started 09:00:00 CET"), "{berlin}");
        let utc = svg(&bars, at(1.0), &utc());
        assert!(utc.contains(">08:00:00 UTC</text>"), "{utc}");
    }
}
