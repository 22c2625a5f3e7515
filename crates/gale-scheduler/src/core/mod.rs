//! The scheduler's decisions, as pure functions: given what the shell
//! ([`crate::scheduler`]) read from the store and the store's clock, which
//! writes to make ([`Due`], [`RunAction`], `gale_store::Reap`) and, through
//! [`Rounds`], when to stop writing and when to look at a run again. Due runs
//! and catch-up, the slot ledger, `max_active_runs` at creation, dependencies
//! and trigger rules, what waits for a pool or `max_active_tasks` and in which
//! order, retries and their times, and lost leases are all decided here; the
//! shell decides only how often to look (housekeeping a few times a second,
//! the runs that notifications name in between).
//!
//! Nothing here does I/O, reads a clock or keeps a connection: `now` is always a
//! parameter, so `tests/` drives it step by step with a fake clock and an
//! in-memory world. The shell writes what the core returns, in order, each as a
//! conditional write, and then performs what follows (waking workers, logging).
//!
//! Limits that span processes (`max_active_runs` when a queued run starts,
//! `max_active_tasks` and pool slots when a scheduled task is queued) are asked
//! for here and enforced by the store's conditional write: with several
//! schedulers a snapshot is always a little old, and only the store sees every
//! scheduler's writes.

use gale_model::{DagId, RunId, RunState};
use gale_store::{TiId, Transition};

pub mod agenda;
pub mod due;
pub mod plan;
pub mod pools;
pub mod reap;
pub mod rounds;
pub mod track;

pub use agenda::{Agenda, next_look};
pub use due::{Due, DueDag, due_runs};
pub use plan::{Plan, plan_run, run_actions, topo_order};
pub use reap::{lost_attempt, lost_message};
pub use rounds::Rounds;
pub use track::Tracker;

/// Transitions written per statement. A plan of thousands of ready tasks is
/// written in several, so workers can claim the first while the rest follow.
pub const TRANSITION_CHUNK: usize = 256;

/// One write that moves a running run along, for the shell to make. A run's
/// actions come in order: its transitions (in chunks), the enqueue, its end.
#[derive(Clone, Debug)]
pub enum RunAction {
    /// Move task instances, each only from the state it was read in.
    Transitions(Vec<Transition>),
    /// Queue `scheduled` task instances, most urgent first, as far as the
    /// DAG's `max_active_tasks` and their pools' slots leave room.
    Enqueue {
        dag_id: DagId,
        tis: Vec<TiId>,
        max_active_tasks: Option<u32>,
    },
    /// End the run: every task instance is finished. Written only when every
    /// transition of the same plan applied ([`Rounds::may_write`]).
    FinishRun {
        run_id: RunId,
        dag_id: DagId,
        state: RunState,
    },
}

#[cfg(test)]
mod tests;
