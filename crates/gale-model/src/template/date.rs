//! Dates a template can use as dates, as Airflow's are: `logical_date`,
//! `data_interval_start` and the other instants render as Airflow 3 renders
//! its pendulum dates (`2026-01-01 00:00:00+00:00`) and have their methods
//! (`.strftime`, `.isoformat()`, `.add(days=1)`, `.subtract(hours=2)`,
//! `.in_timezone('Europe/Berlin')`, `.year` …); `macros.datetime(…)` makes one.
//! Nothing here reads the clock: `now()` is not offered.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use jiff::{Span, Timestamp, Zoned, tz::TimeZone};
use minijinja::value::{DynObject, Kwargs, Object, ObjectRepr, Value, from_args};
use minijinja::{Error, ErrorKind, State};

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// Python's `datetime.isoformat()` of `ts` in UTC, as Airflow renders its
/// dates: microseconds only when there are some, the offset as `+00:00`.
pub fn isoformat(ts: Timestamp) -> String {
    python(&ts.to_zoned(TimeZone::UTC), 'T', true)
}

/// Python's text of a date: `isoformat(sep)`, with the offset unless the
/// date is naive (as `macros.datetime(…)` makes them).
fn python(z: &Zoned, sep: char, offset: bool) -> String {
    let micros = if z.subsec_nanosecond() / 1000 != 0 {
        ".%6f"
    } else {
        ""
    };
    let zone = if offset { "%:z" } else { "" };
    z.strftime(&format!("%Y-%m-%d{sep}%H:%M:%S{micros}{zone}"))
        .to_string()
}

/// An instant in a time zone (UTC unless `.in_timezone` moved it); naive
/// when made by `macros.datetime`, as Python's `datetime` is: written
/// without an offset.
#[derive(Debug, Clone)]
pub struct DateTime {
    pub at: Zoned,
    pub naive: bool,
}

impl DateTime {
    fn aware(at: Zoned) -> Value {
        Value::from_object(DateTime { at, naive: false })
    }

    fn naive(at: Zoned) -> Value {
        Value::from_object(DateTime { at, naive: true })
    }
}

impl DateTime {
    /// The template value of an RFC 3339 text; the text itself when it is
    /// not one (a `None` stays `None`).
    pub fn value_of(text: &serde_json::Value) -> Value {
        match text.as_str().and_then(|s| s.parse::<Timestamp>().ok()) {
            Some(ts) => DateTime::aware(ts.to_zoned(TimeZone::UTC)),
            None => Value::from(minijinja::value::Serde(text)),
        }
    }

    fn shifted(&self, kwargs: Kwargs, sign: i64, name: &str) -> Result<Value, Error> {
        let mut span = Span::new();
        for unit in [
            "years", "months", "weeks", "days", "hours", "minutes", "seconds",
        ] {
            let Some(n) = kwargs.get::<Option<i64>>(unit)? else {
                continue;
            };
            let n = n.checked_mul(sign).unwrap_or(i64::MAX);
            let res = match unit {
                "years" => span.try_years(n),
                "months" => span.try_months(n),
                "weeks" => span.try_weeks(n),
                "days" => span.try_days(n),
                "hours" => span.try_hours(n),
                "minutes" => span.try_minutes(n),
                _ => span.try_seconds(n),
            };
            span = res.map_err(|e| bad(format!("{name}({unit}={n}): {e}")))?;
        }
        kwargs.assert_all_used().map_err(|e| {
            bad(format!(
                "{name} takes years, months, weeks, days, hours, minutes, seconds: {e}"
            ))
        })?;
        let at = self
            .at
            .checked_add(span)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        Ok(Value::from_object(DateTime {
            at,
            naive: self.naive,
        }))
    }
}

/// Python's `strftime` directives as jiff writes them: `%f` is always six
/// digits of microseconds in Python.
fn strftime(z: &Zoned, fmt: &str) -> String {
    z.strftime(&python_format(fmt)).to_string()
}

/// A Python date format in jiff's directives: `%f` becomes `%6f`; `%%` (a
/// literal percent sign) stays as it is, so `%%f` is `%f` written out.
fn python_format(fmt: &str) -> String {
    let mut out = String::with_capacity(fmt.len() + 4);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some('f') => out.push_str("6f"),
            Some(next) => out.push(next),
            None => {}
        }
    }
    out
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&python(&self.at, ' ', !self.naive))
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let z = &self.at;
        Some(Value::from(match key.as_str()? {
            "year" => i64::from(z.year()),
            "month" => i64::from(z.month()),
            "day" => i64::from(z.day()),
            "hour" => i64::from(z.hour()),
            "minute" => i64::from(z.minute()),
            "second" => i64::from(z.second()),
            "microsecond" => i64::from(z.subsec_nanosecond() / 1000),
            "int_timestamp" => z.timestamp().as_second(),
            // pendulum 3: Monday is 0.
            "day_of_week" => i64::from(z.weekday().to_monday_zero_offset()),
            "day_of_year" => i64::from(z.day_of_year()),
            "timezone_name" | "tzname" => {
                return Some(Value::from(z.time_zone().iana_name().unwrap_or("UTC")));
            }
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let z = &self.at;
        match method {
            "strftime" => {
                let (fmt,): (&str,) = from_args(args)
                    .map_err(|_| bad("strftime takes one format, e.g. '%Y-%m-%d'".into()))?;
                Ok(Value::from(strftime(z, fmt)))
            }
            "isoformat" => Ok(Value::from(python(z, 'T', !self.naive))),
            "date" | "to_date_string" => Ok(Value::from(z.strftime("%Y-%m-%d").to_string())),
            "timestamp" => Ok(Value::from(
                z.timestamp().as_microsecond() as f64 / 1_000_000.0,
            )),
            "add" | "subtract" => {
                let (kwargs,): (Kwargs,) = from_args(args)
                    .map_err(|_| bad(format!("{method} takes keywords, e.g. days=1")))?;
                self.shifted(kwargs, if method == "add" { 1 } else { -1 }, method)
            }
            "in_timezone" | "in_tz" | "astimezone" => {
                let (name,): (&str,) = from_args(args).map_err(|_| {
                    bad(format!(
                        "{method} takes a time zone name, e.g. 'Europe/Berlin'"
                    ))
                })?;
                let tz = TimeZone::get(name)
                    .map_err(|_| bad(format!("{method}: {name:?} is not a known time zone")))?;
                Ok(DateTime::aware(z.with_time_zone(tz)))
            }
            other => Err(bad(format!(
                "a date has no method {other} (it has strftime, isoformat, date, timestamp, add, subtract, in_timezone)"
            ))),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<DateTime>()?;
        Some(self.at.timestamp().cmp(&other.at.timestamp()))
    }
}

/// `macros.datetime`, Python's `datetime`: `macros.datetime(2026, 1, 31)`
/// (hour, minute, second optional), `macros.datetime.strptime(text, format)`
/// and `macros.datetime.fromisoformat(text)`; naive unless the text has an
/// offset (then that instant at that offset, as Python keeps it).
#[derive(Debug)]
pub struct Constructor;

fn utc(date: jiff::civil::DateTime, what: &str) -> Result<Value, Error> {
    let z = date
        .to_zoned(TimeZone::UTC)
        .map_err(|e| bad(format!("{what}: {e}")))?;
    Ok(DateTime::naive(z))
}

/// What Python's `fromisoformat` reads, most precise first.
const ISO_FORMATS: [&str; 5] = [
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
];

/// Python's `datetime.strptime`: a text with an offset is that instant at
/// that offset; one without is naive.
fn strptime(text: &str, fmt: &str) -> Result<Value, jiff::Error> {
    let parsed = jiff::fmt::strtime::parse(python_format(fmt), text)?;
    if let Some(offset) = parsed.offset() {
        let ts = parsed.to_timestamp()?;
        return Ok(DateTime::aware(ts.to_zoned(TimeZone::fixed(offset))));
    }
    let date = match parsed.to_datetime() {
        Ok(d) => d,
        Err(_) => parsed.to_date()?.to_datetime(jiff::civil::Time::midnight()),
    };
    Ok(DateTime::naive(date.to_zoned(TimeZone::UTC)?))
}

impl Object for Constructor {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<class 'datetime.datetime'>")
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let usage = "macros.datetime takes (year, month, day[, hour, minute, second])";
        let mut n = [0i64; 6];
        if !(3..=6).contains(&args.len()) {
            return Err(bad(usage.into()));
        }
        for (slot, arg) in n.iter_mut().zip(args) {
            *slot = i64::try_from(arg.clone())
                .map_err(|_| bad(format!("{usage}: {arg} is not a whole number")))?;
        }
        let narrow =
            |v: i64| i8::try_from(v).map_err(|_| bad(format!("{usage}: {v} is out of range")));
        let year =
            i16::try_from(n[0]).map_err(|_| bad(format!("{usage}: {} is out of range", n[0])))?;
        let date = jiff::civil::DateTime::new(
            year,
            narrow(n[1])?,
            narrow(n[2])?,
            narrow(n[3])?,
            narrow(n[4])?,
            narrow(n[5])?,
            0,
        )
        .map_err(|e| bad(format!("macros.datetime: {e}")))?;
        utc(date, "macros.datetime")
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strptime" => {
                let (text, fmt): (&str, &str) = from_args(args)
                    .map_err(|_| bad("macros.datetime.strptime takes (text, format)".into()))?;
                strptime(text, fmt).map_err(|e| bad(format!("{text:?} is not a {fmt} date: {e}")))
            }
            "fromisoformat" => {
                let (text,): (&str,) = from_args(args)
                    .map_err(|_| bad("macros.datetime.fromisoformat takes (text)".into()))?;
                // Python (3.11 on) reads a time's trailing `Z` as UTC.
                let utc = match text.strip_suffix(['Z', 'z']) {
                    Some(rest) if rest.len() > 10 => format!("{rest}+00:00"),
                    _ => text.to_owned(),
                };
                ISO_FORMATS
                    .iter()
                    .find_map(|fmt| strptime(&utc, fmt).ok())
                    .ok_or_else(|| bad(format!("{text:?} is not an ISO 8601 date")))
            }
            other => Err(bad(format!(
                "macros.datetime.{other} is not there (it has strptime and fromisoformat; templates read no clock)"
            ))),
        }
    }
}
