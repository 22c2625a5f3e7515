//! When each scheduled DAG next needs a look: the scheduler's housekeeping
//! reads the DAGs whose look is due (and those whose row changed), not every
//! DAG, so its cost follows what is due and what changed, not the number of
//! DAGs.
//!
//! A look is a hint, never a promise: it is at or before the instant the DAG
//! can next have work (its schedule's next fire time, or at once while runs
//! or passed-over slots keep coming), and a DAG whose row changes (a new
//! version, a pause, a file gone) is looked at again at once. A cursor that
//! another scheduler moved only makes the work come later, so a look made
//! from a stale row finds nothing and is set again.

use std::collections::{BTreeSet, HashMap};

use gale_model::DagId;
use gale_model::schedule::Schedule;
use gale_store::DagRow;
use jiff::Timestamp;

use super::due::{Due, DueDag};

/// What a DAG's row was when it was last looked at: a different one means
/// a change, looked at at once.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    updated_at: Timestamp,
    version_hash: String,
    paused: bool,
    active: bool,
}

impl Stamp {
    fn of(row: &DagRow) -> Stamp {
        Stamp {
            updated_at: row.updated_at,
            version_hash: row.version_hash.clone(),
            paused: row.paused,
            active: row.active,
        }
    }
}

/// The scheduled DAGs and when each is next looked at, in time order.
#[derive(Debug, Default)]
pub struct Agenda {
    /// Each DAG's look, and its row when last read (`None`: put back
    /// without one, so the next reading of its row counts as a change).
    entries: HashMap<DagId, (Timestamp, Option<Stamp>)>,
    order: BTreeSet<(Timestamp, DagId)>,
}

impl Agenda {
    /// How many DAGs it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A DAG's row as read: a DAG that cannot have runs or slots
    /// ([`DueDag::is_candidate`]) leaves the agenda; one that is new or whose
    /// row changed is looked at `now`; one already held keeps its look.
    pub fn observe(&mut self, row: &DagRow, now: Timestamp) {
        if !DueDag::is_candidate(row) {
            self.remove(&row.dag_id);
            return;
        }
        let stamp = Stamp::of(row);
        match self.entries.get(&row.dag_id) {
            Some((_, Some(held))) if *held == stamp => {}
            _ => self.set(&row.dag_id, now, Some(stamp)),
        }
    }

    /// Keeps only the DAGs `present` names (a full listing: the others were
    /// deleted).
    pub fn retain(&mut self, present: &std::collections::HashSet<DagId>) {
        let gone: Vec<DagId> = self
            .entries
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// Takes out the DAGs whose look is due at `now`, soonest first. Each is
    /// put back by [`Agenda::looked`] (or leaves, when it no longer exists).
    pub fn take_due(&mut self, now: Timestamp) -> Vec<DagId> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.order.first()
            && *at <= now
        {
            let (_, id) = self.order.pop_first().expect("a first entry");
            self.entries.remove(&id);
            due.push(id);
        }
        due
    }

    /// A DAG was looked at, from `row`, and `due` was what it had: it is
    /// looked at next at [`next_look`] (not at all when it has none).
    pub fn looked(&mut self, row: &DagRow, schedule: &Schedule, due: &Due, now: Timestamp) {
        match next_look(row, schedule, due, now) {
            Some(at) => self.set(&row.dag_id, at, Some(Stamp::of(row))),
            None => self.remove(&row.dag_id),
        }
    }

    /// When `dag_id` is next looked at, if it is held.
    pub fn look_of(&self, dag_id: &DagId) -> Option<Timestamp> {
        self.entries.get(dag_id).map(|(at, _)| *at)
    }

    /// Puts a DAG whose look could not be made (its version unreadable) back,
    /// to be looked at `at`.
    pub fn again_at(&mut self, row: &DagRow, at: Timestamp) {
        self.set(&row.dag_id, at, Some(Stamp::of(row)));
    }

    /// Puts DAGs taken by [`Agenda::take_due`] back, to be looked at `at`,
    /// when their look could not be made (the store failed). A DAG held
    /// meanwhile (its row read again) keeps that entry.
    pub fn put_back(&mut self, dags: impl IntoIterator<Item = DagId>, at: Timestamp) {
        for dag_id in dags {
            if !self.entries.contains_key(&dag_id) {
                self.set(&dag_id, at, None);
            }
        }
    }

    fn set(&mut self, dag_id: &DagId, at: Timestamp, stamp: Option<Stamp>) {
        if let Some((old, _)) = self.entries.insert(dag_id.clone(), (at, stamp)) {
            self.order.remove(&(old, dag_id.clone()));
        }
        self.order.insert((at, dag_id.clone()));
    }

    fn remove(&mut self, dag_id: &DagId) {
        if let Some((at, _)) = self.entries.remove(dag_id) {
            self.order.remove(&(at, dag_id.clone()));
        }
    }
}

/// When a DAG looked at `now`, which had `due`, next needs a look: at once
/// (the next housekeeping) while work keeps coming (runs to make, even ones
/// that existed already, or slots passed over: more may follow, since a
/// catch-up tries at most [`super::due::MAX_SLOTS_PER_PASS`] a pass) or while
/// `max_active_runs` holds a due slot back (a run ending makes room); otherwise at
/// its schedule's next fire time after `now`, when the interval ending then
/// is complete. `None` for a DAG that cannot have work at all.
pub fn next_look(
    row: &DagRow,
    schedule: &Schedule,
    due: &Due,
    now: Timestamp,
) -> Option<Timestamp> {
    if !DueDag::is_candidate(row) {
        return None;
    }
    let working = !due.runs.is_empty() || due.passed_over.is_some();
    if working || due.held_back {
        return Some(now);
    }
    schedule.next_after(now)
}
