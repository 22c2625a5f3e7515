//! Due runs: which schedule slots of a DAG get a run now, and which are passed
//! over into the slot ledger (catch-up, pause, a gap while no scheduler ran).

use gale_model::schedule::{Cursor, intervals_between, next_due_interval};
use gale_model::{Dag, NewRun};
use gale_store::{DagRow, SlotStatus};
use jiff::{SignedDuration, Timestamp};

/// Most slots recorded for one gap in a DAG's schedule (the newest ones).
pub const MAX_SLOTS_PASSED_OVER: usize = 1000;

/// Most slots a DAG's runs are tried for in one pass: a catch-up over years
/// creates runs as earlier ones finish.
pub const MAX_SLOTS_PER_PASS: usize = 16;

/// What [`due_runs`] looks at for one DAG.
#[derive(Clone, Copy, Debug)]
pub struct DueDag<'a> {
    pub row: &'a DagRow,
    /// The DAG's current version.
    pub dag: &'a Dag,
    /// Its schedule, parsed (once per version, by the caller).
    pub schedule: &'a gale_model::schedule::Schedule,
    /// Its queued and running runs (read only for an unpaused DAG: see
    /// [`DueDag::needs_active_runs`]).
    pub active_runs: u32,
}

impl DueDag<'_> {
    /// Whether a DAG can have due runs or slots to pass over at all: it is
    /// active (its file exists), has a schedule, and is not a paused DAG that
    /// never ran (its slots are recorded when it is unpaused).
    pub fn is_candidate(row: &DagRow) -> bool {
        row.active && row.schedule.is_some() && !(row.paused && row.last_interval_end.is_none())
    }

    /// Whether [`due_runs`] needs the DAG's count of active runs (a paused DAG
    /// creates none).
    pub fn needs_active_runs(row: &DagRow) -> bool {
        !row.paused
    }
}

/// What is due for one DAG.
#[derive(Clone, Debug, Default)]
pub struct Due {
    /// Slots to record in the ledger as never to run (`skipped` or `missed`);
    /// the DAG's cursor moves past them. Recorded before any run is created.
    pub passed_over: Option<(SlotStatus, Vec<(Timestamp, Timestamp)>)>,
    /// Runs to try to create, oldest slot first. The cursor moves past each
    /// slot even when its run already exists (a backfill's, or another
    /// scheduler's).
    pub runs: Vec<NewRun>,
    /// Stop once this many of `runs` were created: the room `max_active_runs`
    /// leaves. A run that already existed does not use it up.
    pub room: usize,
    /// A slot is due but `max_active_runs` leaves no room for its run: it
    /// is made when a run ends.
    pub held_back: bool,
}

/// What is due for one DAG at `now`: with `catchup: false`, the slots passed
/// over since its cursor (at most [`MAX_SLOTS_PASSED_OVER`], the newest); then,
/// unless paused and while `max_active_runs` leaves room, runs for the next due
/// slots (at most [`MAX_SLOTS_PER_PASS`]).
pub fn due_runs(d: DueDag<'_>, now: Timestamp) -> Due {
    let mut due = Due::default();
    if !DueDag::is_candidate(d.row) {
        return due;
    }
    let (dag, schedule) = (d.dag, d.schedule);
    let mut cursor = Cursor {
        start_date: dag.start_date,
        end_date: dag.end_date,
        catchup: dag.catchup,
        last_end: d.row.last_interval_end,
    };
    if !dag.catchup
        && let Some((status, slots)) = pass_over_slots(d.row, schedule, cursor, now)
    {
        cursor.last_end = cursor.last_end.max(slots.last().map(|s| s.1));
        due.passed_over = Some((status, slots));
    }
    if d.row.paused {
        return due;
    }
    due.room = dag.max_active_runs.saturating_sub(d.active_runs) as usize;
    if due.room == 0 {
        due.held_back = next_due_interval(schedule, cursor, now).is_some();
        return due;
    }
    for _ in 0..MAX_SLOTS_PER_PASS {
        let Some(interval) = next_due_interval(schedule, cursor, now) else {
            break;
        };
        due.runs.push(NewRun::scheduled(
            &d.row.dag_id,
            &d.row.version_hash,
            dag,
            interval,
        ));
        cursor.last_end = Some(interval.end);
    }
    due
}

/// The slots a DAG without catchup will never run: those that passed while it
/// was paused (`skipped`), before its first run (`skipped`), or while no
/// scheduler ran (`missed`): the newest [`MAX_SLOTS_PASSED_OVER`] of them, since
/// the cursor moves past all of them at once.
fn pass_over_slots(
    row: &DagRow,
    schedule: &gale_model::schedule::Schedule,
    cursor: Cursor,
    now: Timestamp,
) -> Option<(SlotStatus, Vec<(Timestamp, Timestamp)>)> {
    let latest = next_due_interval(schedule, cursor, now)?;
    let earliest = match (cursor.last_end, cursor.start_date) {
        (Some(end), _) => Some(end),
        (None, Some(start)) => schedule.next_at_or_after(start),
        (None, None) => None,
    };
    let mut from = earliest?;
    // Paused: the latest slot is passed over too; running: it gets a run.
    let (until, last) = if row.paused {
        (latest.start, Some(latest.start))
    } else {
        (
            latest.start - SignedDuration::from_micros(1),
            schedule.prev_before(latest.start),
        )
    };
    if from > until {
        return None;
    }
    // A long gap (a year of a minutely schedule) keeps its newest slots.
    let mut oldest_kept = last;
    for _ in 1..MAX_SLOTS_PASSED_OVER {
        match oldest_kept.and_then(|t| schedule.prev_before(t)) {
            Some(t) if t >= from => oldest_kept = Some(t),
            _ => break,
        }
    }
    if let Some(t) = oldest_kept {
        from = from.max(t);
    }
    let slots: Vec<(Timestamp, Timestamp)> =
        intervals_between(schedule, from, until, MAX_SLOTS_PASSED_OVER)
            .into_iter()
            .map(|iv| (iv.start, iv.end))
            .collect();
    if slots.is_empty() {
        return None;
    }
    let status = if row.paused || cursor.last_end.is_none() {
        SlotStatus::Skipped
    } else {
        SlotStatus::Missed
    };
    Some((status, slots))
}
