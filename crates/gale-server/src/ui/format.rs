//! How pages write times, durations and ages: short, the same everywhere, and
//! always with the zone they are in. A page about one DAG writes its times in
//! that DAG's time zone (the one its schedule is evaluated in); every other
//! page writes UTC. The `gale_tz` cookie ([`TzChoice`]) makes every page use
//! UTC instead. Pure functions of their inputs (`now` is a parameter).

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The cookie that carries a person's choice of time zone.
pub const TZ_COOKIE: &str = "gale_tz";

/// Which zone pages about one DAG write their times in, as the `gale_tz`
/// cookie says. Not security-sensitive, but read strictly: a value other than
/// the two below is ignored (the default applies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TzChoice {
    /// The DAG's own time zone on its pages, UTC elsewhere (the default).
    #[default]
    Dag,
    /// UTC on every page.
    Utc,
}

impl TzChoice {
    /// `dag` or `utc`; anything else is `None`.
    pub fn parse(value: &str) -> Option<TzChoice> {
        match value {
            "dag" => Some(TzChoice::Dag),
            "utc" => Some(TzChoice::Utc),
            _ => None,
        }
    }

    /// The choice a cookie value makes: its own, or the default for a
    /// missing or unknown one.
    pub fn of_cookie(value: Option<&str>) -> TzChoice {
        value.and_then(TzChoice::parse).unwrap_or_default()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TzChoice::Dag => "dag",
            TzChoice::Utc => "utc",
        }
    }

    /// The zone of a page about a DAG whose time zone is `dag_tz`.
    pub fn zone_for(self, dag_tz: &str) -> Zone {
        match self {
            TzChoice::Dag => Zone::named(dag_tz),
            TzChoice::Utc => Zone::utc(),
        }
    }
}

/// A time zone and its IANA name, to write instants in.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            tz: TimeZone::UTC,
            name: "UTC".to_owned(),
        }
    }

    /// The zone called `name` (`Europe/Berlin`); UTC for a name this machine
    /// does not know (a DAG's zone was checked when its file was read, so
    /// only a changed time zone database gets here).
    pub fn named(name: &str) -> Zone {
        match gale_model::schedule::time_zone(name) {
            Ok(tz) if name != "UTC" => Zone {
                tz,
                name: name.to_owned(),
            },
            _ => Zone::utc(),
        }
    }

    /// The IANA name: `UTC`, `Europe/Berlin`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_utc(&self) -> bool {
        self.name == "UTC"
    }

    /// `2026-07-01 06:30:00 CEST`: the local time and the zone's abbreviation
    /// at that instant (so summer and winter time read differently).
    pub fn ts(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// [`Zone::ts`] of an optional time, `—` for none.
    pub fn ts_opt(&self, t: Option<Timestamp>) -> String {
        t.map_or_else(|| "—".to_owned(), |t| self.ts(t))
    }

    /// `06:30:00`: the local time of day alone (log lines, chart labels).
    pub fn clock(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%H:%M:%S").to_string()
    }

    /// `CEST`, `CET`, `UTC`: the zone's abbreviation at `t`.
    pub fn abbreviation(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%Z").to_string()
    }
}

/// `2026-01-02 03:04:05 UTC`: the pages that are about no one DAG.
pub fn ts(t: Timestamp) -> String {
    Zone::utc().ts(t)
}

/// [`ts`] of an optional time, `—` for none.
pub fn ts_opt(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "—".to_owned(), ts)
}

/// A schedule in words with the zone it is evaluated in: "At 06:30,
/// Europe/Berlin". `described` is the cron pattern's description (which
/// knows no zone); the zone is the DAG's whatever the reader chose, since it
/// is what the pattern means.
pub fn schedule(described: &str, dag_tz: &str) -> String {
    format!("{}, {dag_tz}", described.trim().trim_end_matches('.'))
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
