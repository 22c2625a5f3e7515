//! When a DAG's next scheduled run is due, as the API and the pages show it,
//! and its schedule parsed once for all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gale_model::schedule::Schedule;
use gale_store::DagRow;
use jiff::Timestamp;

/// Parsed schedules and their words, by (expression, time zone): a page of
/// 100 DAGs (most of which share a few expressions) parses none again.
static PARSED: Mutex<Option<ParsedCache>> = Mutex::new(None);
type ParsedCache = HashMap<(String, String), Arc<Parsed>>;
/// Most kept (then the cache starts again).
const PARSED_MAX: usize = 4096;

/// A schedule and how it reads (`describe`).
pub struct Parsed {
    pub schedule: Schedule,
    pub words: String,
}

/// The DAG's schedule, parsed (once per expression and time zone).
pub fn schedule_of(spec: &gale_model::Dag) -> Option<Arc<Parsed>> {
    let expr = spec.schedule.as_deref()?;
    let key = (expr.to_owned(), spec.timezone.clone());
    let mut guard = PARSED.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(p) = map.get(&key) {
        return Some(p.clone());
    }
    let schedule = spec.parsed_schedule()?;
    let parsed = Arc::new(Parsed {
        words: schedule.describe(),
        schedule,
    });
    if map.len() >= PARSED_MAX {
        map.clear();
    }
    map.insert(key, parsed.clone());
    Some(parsed)
}

/// When a DAG's next scheduled run is due (its next slot's interval end), if
/// it has a schedule and is not past its end date.
pub fn next_run(dag: &DagRow, spec: &gale_model::Dag, now: Timestamp) -> Option<Timestamp> {
    let parsed = schedule_of(spec)?;
    let sched = &parsed.schedule;
    let from = dag.last_interval_end.or(spec.start_date).unwrap_or(now);
    let start = sched.next_at_or_after(from)?;
    if spec.end_date.is_some_and(|end| start > end) {
        return None;
    }
    sched.interval_from(start).map(|iv| iv.end)
}
