//! How pages write times, durations and ages: short, in UTC, and the same
//! everywhere. Pure functions of their inputs (`now` is a parameter).

use jiff::Timestamp;

/// `2026-01-02 03:04:05` (UTC).
pub fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// [`ts`] of an optional time, `—` for none.
pub fn ts_opt(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "—".to_owned(), ts)
}

/// A duration in seconds, as a person reads it: `0.4s`, `12s`, `3m 05s`,
/// `2h 03m`, `4d 01h`.
pub fn duration(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long from `start` to `end` (or to `now`, while it lasts); `—` before
/// it started.
pub fn span(start: Option<Timestamp>, end: Option<Timestamp>, now: Timestamp) -> String {
    match start {
        Some(start) => duration(end.unwrap_or(now).duration_since(start).as_secs_f64()),
        None => "—".to_owned(),
    }
}

/// `5s ago`, `3m ago`, `2h ago`, `4d ago`; `in 5m` for a time ahead.
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(t).as_secs();
    let (n, ahead) = (secs.unsigned_abs(), secs < 0);
    let amount = match n {
        0..60 => format!("{n}s"),
        60..3600 => format!("{}m", n / 60),
        3600..86_400 => format!("{}h", n / 3600),
        _ => format!("{}d", n / 86_400),
    };
    if ahead {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// The first 12 characters of a content hash.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
