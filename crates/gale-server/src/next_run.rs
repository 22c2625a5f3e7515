//! When a DAG's next scheduled run is due, as the API and the pages show it.

use gale_store::DagRow;
use jiff::Timestamp;

/// When a DAG's next scheduled run is due (its next slot's interval end), if
/// it has a schedule and is not past its end date.
pub fn next_run(dag: &DagRow, spec: &gale_model::Dag, now: Timestamp) -> Option<Timestamp> {
    let sched = spec.parsed_schedule()?;
    let from = dag.last_interval_end.or(spec.start_date).unwrap_or(now);
    let start = sched.next_at_or_after(from)?;
    if spec.end_date.is_some_and(|end| start > end) {
        return None;
    }
    sched.interval_from(start).map(|iv| iv.end)
}
