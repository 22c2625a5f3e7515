//! Tests of cron schedules, time zones and data intervals.

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn berlin_local(t: Timestamp) -> String {
    t.to_zoned(time_zone("Europe/Berlin").unwrap())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[test]
fn presets_and_errors() {
    assert!(Schedule::parse("@daily", "UTC").is_ok());
    assert!(Schedule::parse("0 2 * * *", "Europe/Berlin").is_ok());
    assert!(Schedule::parse("*/10 * * * * *", "UTC").is_ok());
    let e = Schedule::parse("@fortnightly", "UTC").unwrap_err();
    assert!(e.contains("unknown schedule preset"), "{e}");
    let e = Schedule::parse("61 * * * *", "UTC").unwrap_err();
    assert!(e.contains("invalid cron expression"), "{e}");
    let e = Schedule::parse("* * *", "UTC").unwrap_err();
    assert!(e.contains("expected 5 fields"), "{e}");
    let e = Schedule::parse("@daily", "Mars/Olympus").unwrap_err();
    assert!(e.contains("unknown time zone"), "{e}");
}

#[test]
fn daily_slots_in_berlin_across_spring_forward() {
    // 2026-03-29: clocks jump from 02:00 to 03:00 in Europe/Berlin. A 02:30 job has
    // no 02:30 that day; it runs once, right after the gap, and keeps one run a day.
    let s = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
    let slots = intervals_between(
        &s,
        ts("2026-03-27T00:00:00Z"),
        ts("2026-03-31T00:00:00Z"),
        10,
    );
    let local: Vec<String> = slots.iter().map(|i| berlin_local(i.start)).collect();
    assert_eq!(
        local,
        [
            "2026-03-27 02:30 CET",
            "2026-03-28 02:30 CET",
            "2026-03-29 03:00 CEST",
            "2026-03-30 02:30 CEST",
        ]
    );
    // In UTC the day before the change is 24h, the change day is shorter.
    assert_eq!(slots[0].start, ts("2026-03-27T01:30:00Z"));
    assert_eq!(slots[3].start, ts("2026-03-30T00:30:00Z"));
}

#[test]
fn daily_slots_in_berlin_across_fall_back() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice. The job
    // runs once that day, not twice.
    let s = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
    let slots = intervals_between(
        &s,
        ts("2026-10-24T00:00:00Z"),
        ts("2026-10-27T00:00:00Z"),
        10,
    );
    let starts: Vec<Timestamp> = slots.iter().map(|i| i.start).collect();
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert_eq!(starts[0], ts("2026-10-24T00:30:00Z")); // 02:30 CEST
    assert!(
        starts[1] == ts("2026-10-25T00:30:00Z") || starts[1] == ts("2026-10-25T01:30:00Z"),
        "one 02:30 on the fall-back day, got {}",
        starts[1]
    );
    assert_eq!(starts[2], ts("2026-10-26T01:30:00Z")); // 02:30 CET
}

#[test]
fn hourly_in_berlin_has_no_duplicate_on_fall_back() {
    let s = Schedule::parse("0 * * * *", "Europe/Berlin").unwrap();
    let slots = intervals_between(
        &s,
        ts("2026-10-24T22:00:00Z"),
        ts("2026-10-25T04:00:00Z"),
        100,
    );
    // Every slot is a distinct instant one real hour apart.
    for pair in slots.windows(2) {
        assert_eq!(pair[0].end, pair[1].start);
        assert!(pair[1].start > pair[0].start);
    }
}

fn cursor(start: &str, catchup: bool, last_end: Option<&str>) -> Cursor {
    Cursor {
        start_date: Some(ts(&format!("{start}T00:00:00Z"))),
        end_date: None,
        catchup,
        last_end: last_end.map(ts),
    }
}

#[test]
fn catchup_walks_every_missed_interval_in_order() {
    let s = Schedule::parse("@daily", "UTC").unwrap();
    let now = ts("2026-01-04T12:00:00Z");
    let first = next_due_interval(&s, cursor("2026-01-01", true, None), now).unwrap();
    assert_eq!(first.start, ts("2026-01-01T00:00:00Z"));
    assert_eq!(first.end, ts("2026-01-02T00:00:00Z"));
    let second = next_due_interval(
        &s,
        cursor("2026-01-01", true, Some("2026-01-02T00:00:00Z")),
        now,
    )
    .unwrap();
    assert_eq!(second.start, ts("2026-01-02T00:00:00Z"));
    // The interval [01-04, 01-05) is not complete yet.
    assert!(
        next_due_interval(
            &s,
            cursor("2026-01-01", true, Some("2026-01-04T00:00:00Z")),
            now
        )
        .is_none()
    );
}

#[test]
fn without_catchup_only_the_latest_interval_runs() {
    let s = Schedule::parse("@daily", "UTC").unwrap();
    let now = ts("2026-01-04T12:00:00Z");
    let iv = next_due_interval(&s, cursor("2026-01-01", false, None), now).unwrap();
    assert_eq!(iv.start, ts("2026-01-03T00:00:00Z"));
    // And once it ran, nothing more is due today.
    assert!(
        next_due_interval(
            &s,
            cursor("2026-01-01", false, Some("2026-01-04T00:00:00Z")),
            now
        )
        .is_none()
    );
}

#[test]
fn nothing_runs_before_start_date_or_after_end_date() {
    let s = Schedule::parse("@daily", "UTC").unwrap();
    let now = ts("2026-01-04T12:00:00Z");
    assert!(next_due_interval(&s, cursor("2026-02-01", true, None), now).is_none());
    let mut c = cursor("2026-01-01", true, Some("2026-01-03T00:00:00Z"));
    c.end_date = Some(ts("2026-01-02T00:00:00Z"));
    assert!(next_due_interval(&s, c, now).is_none());
}

#[test]
fn dates_in_a_zone() {
    let tz = time_zone("Europe/Berlin").unwrap();
    assert_eq!(
        parse_date("2026-01-01", &tz).unwrap(),
        ts("2025-12-31T23:00:00Z")
    );
    assert_eq!(
        parse_date("2026-07-01T02:00", &tz).unwrap(),
        ts("2026-07-01T00:00:00Z")
    );
    assert_eq!(
        parse_date("2026-07-01T02:00:00Z", &tz).unwrap(),
        ts("2026-07-01T02:00:00Z")
    );
    assert!(
        parse_date("yesterday", &tz)
            .unwrap_err()
            .contains("invalid date")
    );
}

#[test]
fn remembered_slots_are_kept_apart_by_pattern_and_zone() {
    // Asked alternately on one thread, so each answer could come from the
    // memo of another schedule's question at the same instant.
    let t = ts("2026-03-10T10:10:00Z");
    let utc = Schedule::parse("0 * * * *", "UTC").unwrap();
    let kolkata = Schedule::parse("0 * * * *", "Asia/Kolkata").unwrap();
    let half = Schedule::parse("30 * * * *", "UTC").unwrap();
    let utc_again = Schedule::parse("@hourly", "UTC").unwrap();
    for _ in 0..2 {
        assert_eq!(utc.next_after(t), Some(ts("2026-03-10T11:00:00Z")));
        assert_eq!(kolkata.next_after(t), Some(ts("2026-03-10T10:30:00Z")));
        assert_eq!(half.next_after(t), Some(ts("2026-03-10T10:30:00Z")));
        assert_eq!(utc_again.next_after(t), Some(ts("2026-03-10T11:00:00Z")));
        assert_eq!(utc.prev_at_or_before(t), Some(ts("2026-03-10T10:00:00Z")));
        assert_eq!(
            kolkata.prev_at_or_before(t),
            Some(ts("2026-03-10T09:30:00Z"))
        );
        assert_eq!(
            utc.prev_before(ts("2026-03-10T10:00:00Z")),
            Some(ts("2026-03-10T09:00:00Z"))
        );
        assert_eq!(
            utc.next_at_or_after(ts("2026-03-10T10:00:00Z")),
            Some(ts("2026-03-10T10:00:00Z"))
        );
        assert_eq!(half.prev_before(t), Some(ts("2026-03-10T09:30:00Z")));
    }
}
