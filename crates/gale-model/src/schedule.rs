//! When a DAG runs: cron expressions (5 or 6 fields, or a preset) in an IANA time
//! zone, and the data intervals that Airflow users know.
//!
//! A scheduled run covers one data interval `[start, end)` between two consecutive
//! cron slots; it is created once `end` has passed, and its logical date is `start`.

use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A parsed schedule: a cron pattern evaluated in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: TimeZone,
    /// The pattern and the zone's name: equal for schedules that find the
    /// same slots, so they share answers (see [`slot`]).
    key: std::sync::Arc<str>,
}

/// Which slot a question asks for.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Ask {
    NextAfter,
    NextAtOrAfter,
    PrevAtOrBefore,
    PrevBefore,
}

/// Answers kept per thread before the memo starts over.
const SLOTS_REMEMBERED: usize = 4096;

/// Answers by schedule key, question and instant.
type SlotMemo = std::collections::HashMap<(std::sync::Arc<str>, Ask, Timestamp), Option<Timestamp>>;

thread_local! {
    /// Recent answers, by schedule key, question and instant. Thousands of
    /// DAGs on one pattern ask the same questions when they share a slot
    /// (the latest slot before now, the one before it, the interval's end),
    /// and a cron search costs microseconds.
    static SLOTS: std::cell::RefCell<SlotMemo> = std::cell::RefCell::new(SlotMemo::new());
}

/// One data interval `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Expands the presets Airflow users write.
fn expand_preset(expr: &str) -> Result<&str, String> {
    Ok(match expr {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other if other.starts_with('@') => {
            return Err(format!(
                "unknown schedule preset {other:?}: use @hourly, @daily, @weekly, @monthly, @yearly or a cron expression"
            ));
        }
        other => other,
    })
}

/// Looks up an IANA time zone by name (`Europe/Berlin`, `UTC`).
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as UTC or Europe/Berlin")
    })
}

impl Schedule {
    pub fn parse(expr: &str, tz_name: &str) -> Result<Schedule, String> {
        let tz = time_zone(tz_name)?;
        let pattern = expand_preset(expr.trim())?;
        let fields = pattern.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "invalid cron expression {expr:?}: expected 5 fields (minute hour day month weekday) or 6 (with seconds first), found {fields}"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| {
                let said = e.to_string();
                let why = if said.contains("out of bounds") {
                    "a number is out of range (minute 0-59, hour 0-23, day of month 1-31, \
                     month 1-12, day of week 0-7; seconds 0-59 when there are six fields)"
                        .to_owned()
                } else {
                    said.trim_start_matches("Component error: ")
                        .trim_end_matches('.')
                        .to_owned()
                };
                format!("invalid cron expression {expr:?}: {why}")
            })?;
        // A zone without an IANA name (none is made here) shares nothing.
        let key = match tz.iana_name() {
            Some(name) => format!("{pattern}\u{0}{name}").into(),
            None => {
                static UNNAMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = UNNAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("\u{1}{n}").into()
            }
        };
        Ok(Schedule {
            expr: expr.trim().to_owned(),
            cron,
            tz,
            key,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The pattern in words, e.g. "At 02:00".
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    fn zoned(&self, t: Timestamp) -> Zoned {
        t.to_zoned(self.tz.clone())
    }

    /// The slot `ask` names for `t`, from the memo when this thread was
    /// asked it lately for the same pattern and zone.
    fn slot(&self, ask: Ask, t: Timestamp) -> Option<Timestamp> {
        let key = (self.key.clone(), ask, t);
        if let Some(hit) = SLOTS.with(|m| m.borrow().get(&key).copied()) {
            return hit;
        }
        let zoned = self.zoned(t);
        let found = match ask {
            Ask::NextAfter => self.cron.find_next_occurrence(&zoned, false),
            Ask::NextAtOrAfter => self.cron.find_next_occurrence(&zoned, true),
            Ask::PrevAtOrBefore => self.cron.find_previous_occurrence(&zoned, true),
            Ask::PrevBefore => self.cron.find_previous_occurrence(&zoned, false),
        }
        .ok()
        .map(|z| z.timestamp());
        SLOTS.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() >= SLOTS_REMEMBERED {
                m.clear();
            }
            m.insert(key, found);
        });
        found
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.slot(Ask::NextAfter, t)
    }

    /// The first slot at or after `t`.
    pub fn next_at_or_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.slot(Ask::NextAtOrAfter, t)
    }

    /// The last slot at or before `t`.
    pub fn prev_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        self.slot(Ask::PrevAtOrBefore, t)
    }

    /// The slot strictly before `t`.
    pub fn prev_before(&self, t: Timestamp) -> Option<Timestamp> {
        self.slot(Ask::PrevBefore, t)
    }

    /// The data interval that starts at slot `start`.
    pub fn interval_from(&self, start: Timestamp) -> Option<Interval> {
        self.next_after(start).map(|end| Interval { start, end })
    }
}

/// What the scheduler knows about a scheduled DAG when it decides the next run.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    /// Where scheduling may begin (the DAG's `start_date`), if set.
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub catchup: bool,
    /// The end of the last interval a run was created for, if any.
    pub last_end: Option<Timestamp>,
}

/// The next data interval to create a run for at `now`, if one is due.
///
/// With catchup every interval since `start_date` (or since the last run) gets a run,
/// oldest first; without it, only the most recent complete interval runs and older
/// missed ones are passed over.
pub fn next_due_interval(schedule: &Schedule, cur: Cursor, now: Timestamp) -> Option<Interval> {
    // The earliest interval start not yet covered.
    let earliest = match (cur.last_end, cur.start_date) {
        (Some(end), _) => Some(end),
        (None, Some(start)) => schedule.next_at_or_after(start),
        (None, None) => None,
    };
    // The most recent interval that is complete at `now`.
    let latest_end = schedule.prev_at_or_before(now)?;
    let latest_start = schedule.prev_before(latest_end)?;
    let start = match earliest {
        Some(e) if cur.catchup => e,
        Some(e) => e.max(latest_start),
        None => latest_start,
    };
    let interval = schedule.interval_from(start)?;
    if interval.end > now {
        return None;
    }
    if let Some(end_date) = cur.end_date
        && interval.start > end_date
    {
        return None;
    }
    if let Some(start_date) = cur.start_date
        && interval.start < start_date
    {
        return None;
    }
    Some(interval)
}

/// Every interval whose start lies in `[from, to]`, oldest first, at most `limit`.
pub fn intervals_between(
    schedule: &Schedule,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut slot = schedule.next_at_or_after(from);
    while let Some(start) = slot {
        if start > to || out.len() >= limit {
            break;
        }
        match schedule.interval_from(start) {
            Some(iv) => {
                slot = Some(iv.end);
                out.push(iv);
            }
            None => break,
        }
    }
    out
}

/// Parses a `start_date`/`end_date`/logical date: `2026-01-01`, `2026-01-01T02:00`,
/// `2026-01-01 02:00:00` (all in `tz`), or an RFC 3339 instant with an offset.
pub fn parse_date(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let s = text.trim();
    if let Ok(ts) = Timestamp::from_str(s) {
        return Ok(ts);
    }
    let civil = match jiff::civil::DateTime::from_str(s) {
        Ok(dt) => dt,
        Err(_) => jiff::civil::Date::from_str(s)
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|_| {
                format!(
                    "invalid date {text:?}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or an RFC 3339 time"
                )
            })?,
    };
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("invalid date {text:?}: {e}"))
}

#[cfg(test)]
mod tests;
