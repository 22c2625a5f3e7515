//! The scheduler's decisions, as pure functions: given what the shell
//! ([`crate::scheduler`]) read from the store and the store's clock, which
//! [`Action`]s to take. Everything the scheduler decides is made here: due runs
//! and catch-up, the slot ledger, `max_active_runs` at creation, dependencies and
//! trigger rules, what waits for a pool or `max_active_tasks` and in which order,
//! retries and their times, and lost leases.
//!
//! Nothing here does I/O, reads a clock or keeps a connection: `now` is always a
//! parameter, so `tests/` drives it step by step with a fake clock and an
//! in-memory world. The shell persists the actions in order, each as a
//! conditional write, and then performs what follows (waking workers, logging).
//!
//! Limits that span processes (`max_active_runs` when a queued run starts,
//! `max_active_tasks` and pool slots when a scheduled task is queued) are asked
//! for here and enforced by the store's conditional write: with several
//! schedulers a snapshot is always a little old, and only the store sees every
//! scheduler's writes.

use gale_model::{DagId, NewRun, RunId, RunState};
use gale_store::{Reap, SlotStatus, TiId, Transition};
use jiff::Timestamp;

pub mod due;
pub mod plan;
pub mod pools;
pub mod reap;
pub mod track;

pub use due::{DueDag, due_runs};
pub use plan::{Plan, advance_run, plan_run, topo_order};
pub use reap::{lost_attempt, lost_message};
pub use track::Tracker;

/// Transitions written per statement. A plan of thousands of ready tasks is
/// written in several, so workers can claim the first while the rest follow.
pub const TRANSITION_CHUNK: usize = 256;

/// One decision, for the shell to write. The actions of one run come in order,
/// and the shell stops at the first conditional write that applies less than it
/// asked (the snapshot they were decided on was stale); the next pass decides
/// again from fresh rows.
#[derive(Clone, Debug)]
pub enum Action {
    /// Record schedule slots a DAG will never run in the ledger (`skipped` or
    /// `missed`); the DAG's cursor moves past them.
    RecordSlots {
        dag_id: DagId,
        status: SlotStatus,
        slots: Vec<(Timestamp, Timestamp)>,
    },
    /// Create a run (it starts `queued`; the store starts it within
    /// `max_active_runs`). The DAG's cursor moves past its slot even when the
    /// run already exists.
    CreateRun(NewRun),
    /// Move task instances of a run, each only from the state it was read in.
    Transitions {
        run_id: RunId,
        transitions: Vec<Transition>,
    },
    /// Queue `scheduled` task instances of a run, most urgent first, as far as
    /// the DAG's `max_active_tasks` and their pools' slots leave room.
    Enqueue {
        run_id: RunId,
        dag_id: DagId,
        tis: Vec<TiId>,
        max_active_tasks: Option<u32>,
    },
    /// End a running run: every task instance is finished.
    FinishRun {
        run_id: RunId,
        dag_id: DagId,
        state: RunState,
    },
    /// End an attempt whose lease ran out (retry or fail, as its task's policy
    /// says), only if it is still running under that worker with an old heartbeat.
    Reap { run_id: RunId, reap: Reap },
}

#[cfg(test)]
mod tests;
