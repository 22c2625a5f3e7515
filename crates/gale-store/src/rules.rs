//! The rules both backends keep, written once: how many rows a listing may
//! return, which scheduled task instances fit the DAG's and the pools' limits,
//! what an operator's mark records, and the refusals both give (a DAG id that
//! another file defines, a mark to a state a task cannot be marked, a token for
//! a user that does not exist). Pure: no SQL, no I/O; each backend reads and
//! writes, and asks these what to do.

use std::collections::HashMap;

use gale_model::TaskState;

use crate::{Error, Role, RunMark};

/// The most runs `list_runs` returns: `limit`, 0 meaning 100, never more than 10,000.
pub(crate) fn run_list_limit(limit: u32) -> u32 {
    if limit == 0 { 100 } else { limit.min(10_000) }
}

/// The most backfills `list_backfills` returns: `limit`, 0 meaning 100, never
/// more than 1,000.
pub(crate) fn backfill_list_limit(limit: u32) -> u32 {
    if limit == 0 { 100 } else { limit.min(1000) }
}

/// The most slots `list_slots` returns: at least 1, at most 10,000.
pub(crate) fn slot_list_limit(limit: u32) -> u32 {
    limit.clamp(1, 10_000)
}

/// One DAG per file: `upsert_dag` refuses a DAG id that another active file
/// (`other`) already defines.
pub(crate) fn duplicate_dag_id(dag_id: &str, other: &str) -> Error {
    Error::Invalid(format!(
        "duplicate DAG id {dag_id:?}: {other} already defines it; give one of them another `id:`"
    ))
}

/// A task instance can be marked `success` or `failed`, nothing else.
pub(crate) fn check_task_mark(to: TaskState) -> Result<(), Error> {
    if !matches!(to, TaskState::Success | TaskState::Failed) {
        return Err(Error::Invalid(format!(
            "a task can be marked success or failed, not {to}"
        )));
    }
    Ok(())
}

/// What a marked task instance's running attempt is recorded as, and the message.
pub(crate) fn task_mark_words(to: TaskState, by: &str) -> (String, String) {
    (format!("marked_{to}"), format!("marked {to} by {by}"))
}

/// `create_token` for a user that does not exist.
pub(crate) fn no_user(user: &str) -> Error {
    Error::Invalid(format!("no user {user:?}"))
}

/// Which candidates (scheduled task instances with their pool, in queueing
/// order) may be queued: while the DAG has room (`None`: no limit), skipping
/// those whose pool is full or missing from `pool_room`.
pub(crate) fn fit_limits(
    candidates: &[(i64, Option<String>)],
    mut dag_room: Option<i64>,
    mut pool_room: HashMap<String, i64>,
) -> Vec<i64> {
    let mut chosen = Vec::new();
    for (id, pool) in candidates {
        if dag_room.is_some_and(|r| r <= 0) {
            break;
        }
        if let Some(pool) = pool {
            match pool_room.get_mut(pool) {
                Some(room) if *room > 0 => *room -= 1,
                _ => continue,
            }
        }
        if let Some(r) = dag_room.as_mut() {
            *r -= 1;
        }
        chosen.push(*id);
    }
    chosen
}

/// What a marked run's running attempts are recorded as, and the message.
pub(crate) fn mark_words(mark: RunMark, by: &str) -> (&'static str, String) {
    match mark {
        RunMark::Success => ("marked_success", format!("run marked success by {by}")),
        RunMark::Failed => ("marked_failed", format!("run marked failed by {by}")),
        RunMark::Cancel => ("cancelled", format!("run cancelled by {by}")),
    }
}

/// A stored role. The schema allows only the three; anything else would read as
/// the least privilege, as the web layer has always taken it.
pub(crate) fn stored_role(role: &str) -> Role {
    Role::parse(role).unwrap_or(Role::Viewer)
}
