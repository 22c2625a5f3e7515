//! What people ask Gale to do, shared by the API, the UI and the command line:
//! trigger a run, backfill a date range (and cancel one), clear tasks so they run again, mark a
//! run or a task success or failed, cancel a run, pause, unpause, unpause, push or delete a DAG; set, reveal, import and export
//! variables and connections, and rotate their key; and what admins change
//! ([`admin`]: users' roles, users, API tokens, pools).
//! Each action validates its input, reads what it needs and makes its change
//! through conditional store writes; it records who asked, from where, and how
//! it went in the audit log ([`audit`]); it reports what went wrong as an
//! [`Error`] that each face (HTTP, pages, exit codes) maps on its own. No HTTP,
//! no page or terminal types here.

pub mod admin;
pub mod alerts;
pub mod audit;
mod backfill;
mod clear;
mod delete;
mod mark;
mod pause;
mod push;
mod secrets;
mod trigger;
mod waiting;

#[cfg(test)]
mod tests;

use gale_model::DagId;
use gale_store::{Audit, Backfills, Clock, DagRow, DagVersion, Dags, Operator, Runs};

pub use audit::Actor;
pub use backfill::{Backfill, BackfillCancelled, MAX_BACKFILL_RUNS, backfill, cancel_backfill};
pub use clear::{ClearWhat, clear};
pub use delete::{comes_back_note, delete_dag};
pub use mark::{Mark, cancel_run, mark_run, mark_task};
pub use pause::set_paused;
pub use push::{MAX_PUSHED_FILES, PushFile, Pushed, push_dags};
pub use secrets::{
    delete_connection, delete_variable, export_connections, export_variables, reveal_connection,
    reveal_variable, rotate_key, set_connection, set_variable,
};
pub use trigger::trigger;
pub use waiting::waiting_reasons;

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A DAG, run or task that does not exist (the API answers 404).
    #[error("{0}")]
    NotFound(String),
    /// A request that conflicts with the current state (409): a finished run
    /// cancelled, a task marked with the state it has, a running task cleared.
    #[error("{0}")]
    Conflict(String),
    /// Input the action refuses (400): a bad date, an empty range, a DAG with
    /// no schedule to backfill.
    #[error("{0}")]
    Invalid(String),
    /// The store lacks a row it should hold (a DAG's current version, a run
    /// just created). Answered as a refusal (400), as any other failure of an
    /// action that is not the store's own.
    #[error("{0}")]
    Inconsistent(String),
    /// DAG files that do not load (422), each error as
    /// `file:line:column: message`.
    #[error("{}", .0.join("\n"))]
    Rejected(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] gale_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The parts of the store the actions use: DAG versions, runs and their task
/// instances, backfills, operators' marks and clears, the audit log and the
/// store's clock.
pub trait ActionStore: Clock + Dags + Runs + Backfills + Operator + Audit {}

impl<T: Clock + Dags + Runs + Backfills + Operator + Audit + ?Sized> ActionStore for T {}

/// A DAG's row and its current version.
pub async fn current_dag(
    store: &(impl ActionStore + ?Sized),
    dag_id: &DagId,
) -> Result<(DagRow, DagVersion)> {
    let row = store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no DAG {dag_id}")))?;
    let version = store
        .get_version(dag_id, &row.version_hash)
        .await?
        .ok_or_else(|| {
            Error::Inconsistent(format!(
                "the current version of {dag_id} is missing from the store"
            ))
        })?;
    Ok((row, version))
}
