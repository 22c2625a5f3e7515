//! Conversions between `jiff::Timestamp` and the integer microseconds the stores keep.

use jiff::Timestamp;

/// Microseconds since the Unix epoch, the unit every store column of time uses.
pub fn to_micros(ts: Timestamp) -> i64 {
    ts.as_microsecond()
}

/// The inverse of [`to_micros`]; out-of-range values clamp to jiff's limits.
pub fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(if us < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// RFC 3339 in UTC with seconds precision, e.g. `2026-01-01T02:00:00Z`.
pub fn rfc3339(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
