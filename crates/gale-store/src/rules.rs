//! The rules both backends keep, written once: how many rows a listing may
//! return, which scheduled task instances fit the DAG's and the pools' limits,
//! what an operator's mark records, and the refusals both give (a DAG id that
//! another file defines, a mark to a state a task cannot be marked, a token for
//! a user that does not exist, an alert delivery without a channel or event
//! key), how an audit entry and a delivery's error are bounded, and which
//! migrations a database still needs. Pure: no SQL, no I/O; each backend reads
//! and writes, and asks these what to do.

use std::collections::{BTreeSet, HashMap};

use gale_model::{DagError, DagId, TaskState};

use crate::{Error, GitCommit, GitSourceSpec, OwnerKind, PUSH_OWNER, Role, RunMark, SourceRow};

/// The most runs `list_runs` returns: `limit`, 0 meaning 100, never more than 10,000.
pub(crate) fn run_list_limit(limit: u32) -> u32 {
    if limit == 0 { 100 } else { limit.min(10_000) }
}

/// The most runs `dag_history` returns: `limit`, 0 meaning 25, never more
/// than [`crate::HISTORY_MAX`].
pub(crate) fn history_limit(limit: u32) -> u32 {
    if limit == 0 {
        25
    } else {
        limit.min(crate::HISTORY_MAX)
    }
}

/// Folds the rows of a history query (a run, then one of its task instances
/// or none, ordered by run newest first and task id) into one entry per run.
pub(crate) fn group_history(
    rows: impl IntoIterator<Item = (crate::RunRow, Option<crate::TaskHistory>)>,
) -> Vec<crate::RunHistory> {
    let mut out: Vec<crate::RunHistory> = Vec::new();
    for (run, task) in rows {
        match out.last_mut() {
            Some(last) if last.run.id == run.id => last.tasks.extend(task),
            _ => out.push(crate::RunHistory {
                run,
                tasks: task.into_iter().collect(),
            }),
        }
    }
    out
}

/// Microseconds in a day: `daily_runs` on SQLite groups by this.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A `daily_runs` row from the day number the query grouped by; `None` for a
/// day outside the calendar's range or a state this binary does not know.
pub(crate) fn day_runs(day: i64, state: &str, n_runs: i64) -> Option<crate::DayRuns> {
    let ts = jiff::Timestamp::from_second(day.checked_mul(86_400)?).ok()?;
    Some(crate::DayRuns {
        day: ts.to_zoned(jiff::tz::TimeZone::UTC).date(),
        state: state.parse().ok()?,
        n_runs: u32::try_from(n_runs).unwrap_or(u32::MAX),
    })
}

/// The order `daily_runs` returns its rows in: oldest day first, states in
/// their declared order within a day.
pub(crate) fn sort_days(rows: &mut [crate::DayRuns]) {
    let rank = |s: gale_model::RunState| match s {
        gale_model::RunState::Queued => 0,
        gale_model::RunState::Running => 1,
        gale_model::RunState::Success => 2,
        gale_model::RunState::Failed => 3,
        gale_model::RunState::Cancelled => 4,
    };
    rows.sort_by_key(|r| (r.day, rank(r.state)));
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

/// The most audit entries `list_audit` returns: `limit`, 0 meaning 100, never
/// more than 1,000.
pub(crate) fn audit_list_limit(limit: u32) -> u32 {
    if limit == 0 { 100 } else { limit.min(1000) }
}

/// The most deliveries `list_deliveries` returns: `limit`, 0 meaning 100,
/// never more than [`crate::DELIVERIES_LISTED`].
pub(crate) fn delivery_list_limit(limit: u32) -> u32 {
    if limit == 0 {
        100
    } else {
        limit.min(crate::DELIVERIES_LISTED)
    }
}

/// A delivery's error as stored: at most [`crate::DELIVERY_ERROR_MAX`]
/// characters, without NUL characters.
pub(crate) fn delivery_error(error: &str) -> String {
    error
        .chars()
        .take(crate::DELIVERY_ERROR_MAX)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

/// The longest channel name or event key a delivery may have, in bytes.
pub(crate) const DELIVERY_KEY_MAX: usize = 500;

/// Refuses a delivery without a channel or event key, or with one longer
/// than [`DELIVERY_KEY_MAX`].
pub(crate) fn check_new_delivery(d: &crate::NewDelivery) -> Result<(), Error> {
    for (what, value) in [
        ("channel", &d.channel),
        ("event key", &d.event_key),
        ("kind", &d.kind),
    ] {
        if value.is_empty() {
            return Err(Error::Invalid(format!("an alert delivery needs a {what}")));
        }
        if value.len() > DELIVERY_KEY_MAX || value.contains('\0') {
            return Err(Error::Invalid(format!(
                "an alert delivery's {what} must be at most {DELIVERY_KEY_MAX} bytes, without NUL characters"
            )));
        }
    }
    Ok(())
}

/// An audit entry as stored: its text fields cut to a bound and without NUL
/// characters (PostgreSQL's text cannot hold one; a failed login's name is
/// whatever was typed), its detail as JSON text of at most 16 KiB (a larger one
/// is replaced by a note saying so).
pub(crate) struct StoredAudit {
    pub actor: String,
    pub origin: String,
    pub action: &'static str,
    pub target: String,
    pub detail: String,
    pub outcome: &'static str,
}

const AUDIT_DETAIL_MAX: usize = 16 * 1024;

pub(crate) fn stored_audit(e: &crate::AuditEntry) -> StoredAudit {
    fn bounded(s: &str, max_chars: usize) -> String {
        s.chars()
            .take(max_chars)
            .map(|c| if c == '\0' { '\u{fffd}' } else { c })
            .collect()
    }
    let mut detail = serde_json::Value::Object(e.detail.clone()).to_string();
    if detail.len() > AUDIT_DETAIL_MAX {
        detail = serde_json::json!({ "truncated": true, "bytes": detail.len() }).to_string();
    }
    StoredAudit {
        actor: bounded(&e.actor, 200),
        origin: bounded(&e.origin, 200),
        action: e.action.as_str(),
        target: bounded(&e.target, 500),
        detail,
        outcome: e.outcome.as_str(),
    }
}

/// A stored audit row's action, outcome and detail, read back; a value the
/// schema would not hold reads as a failed login with no detail.
pub(crate) fn audit_fields(
    action: &str,
    outcome: &str,
    detail: &str,
) -> (
    crate::AuditAction,
    crate::AuditOutcome,
    serde_json::Map<String, serde_json::Value>,
) {
    (
        crate::AuditAction::parse(action).unwrap_or(crate::AuditAction::Login),
        crate::AuditOutcome::parse(outcome).unwrap_or(crate::AuditOutcome::Failure),
        serde_json::from_str(detail).unwrap_or_default(),
    )
}

/// The migrations (of `known`, this binary's, in order) that a database which
/// has `applied` still needs, in order. Versions need not be consecutive: a
/// version missing from `known` is one this binary never had, and one missing
/// from `applied` below the newest applied is applied now (two branches that
/// each added one merge in either order). A database that holds a version this
/// binary does not know was written by another gale: refused.
pub(crate) fn pending_migrations(
    known: &[i64],
    applied: &BTreeSet<i64>,
    schema_version: i64,
) -> Result<Vec<i64>, Error> {
    if let Some(&unknown) = applied.iter().find(|v| !known.contains(v)) {
        return Err(if unknown > schema_version {
            Error::Invalid(format!(
                "the database schema is version {unknown}, newer than this gale ({schema_version}): upgrade gale"
            ))
        } else {
            Error::Invalid(format!(
                "the database has migration {unknown}, which this gale does not have (a newer or \
                 differently built gale applied it): run a gale that has it"
            ))
        });
    }
    Ok(known
        .iter()
        .copied()
        .filter(|v| !applied.contains(v))
        .collect())
}

/// One DAG id, one source: whether `owner` may store `dag_id` from `file`
/// while the active row `held` (its file and owner) has it. A folder's
/// processor may replace only its own file's (processors of one path on
/// several hosts take turns); a push replaces a pushed DAG whatever the
/// file's name; a git source replaces its own. Anything else is refused,
/// naming who holds the id.
pub(crate) fn refuse_claim(
    dag_id: &str,
    file: &str,
    owner: &str,
    held: Option<(&str, &str)>,
) -> Option<Error> {
    let (held_file, held_owner) = held?;
    let allowed = match OwnerKind::of(owner) {
        OwnerKind::Folder => held_file == file,
        OwnerKind::Push => held_owner == PUSH_OWNER,
        OwnerKind::Git => held_owner == owner,
    };
    (!allowed).then(|| duplicate_dag_id(dag_id, held_file, held_owner))
}

/// The import errors a stored git commit leaves: its broken files' own, and
/// each refused file's refusal, as `(file, dag id, errors)`.
pub(crate) fn git_import_errors(
    commit: &GitCommit,
    refused: &[(String, DagId, String)],
) -> Vec<(String, Option<String>, Vec<DagError>)> {
    let mut errors: Vec<_> = commit
        .errors
        .iter()
        .map(|(file, errors)| (file.clone(), None, errors.clone()))
        .collect();
    errors.extend(refused.iter().map(|(file, dag_id, message)| {
        let error = DagError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: message.clone(),
        };
        (file.clone(), Some(dag_id.0.clone()), vec![error])
    }));
    errors
}

/// A git source registered again must follow what its name already does.
pub(crate) fn check_same_source(spec: &GitSourceSpec, row: &SourceRow) -> Result<(), Error> {
    if spec.url == row.url && spec.reference == row.reference && spec.path == row.path {
        return Ok(());
    }
    let show = |url: &str, reference: &str, path: &str| {
        let reference = if reference.is_empty() {
            "its default branch"
        } else {
            reference
        };
        let path = if path.is_empty() { "/" } else { path };
        format!("{url} ({reference}, folder {path})")
    };
    Err(Error::Invalid(format!(
        "the git source {:?} already follows {}, not {}: give this one another name \
         (--dags-git-name) or follow the same repository, reference and folder",
        row.name,
        show(&row.url, &row.reference, &row.path),
        show(&spec.url, &spec.reference, &spec.path)
    )))
}

/// The refusal of a DAG id that another active file (`other`, stored by
/// `owner`) already defines.
pub(crate) fn duplicate_dag_id(dag_id: &str, other: &str, owner: &str) -> Error {
    let holder = match OwnerKind::of(owner) {
        OwnerKind::Folder => other.to_owned(),
        OwnerKind::Push => format!(
            "the pushed file {} (drop it with `gale dags delete {dag_id}`)",
            other.strip_prefix("push:").unwrap_or(other)
        ),
        OwnerKind::Git => format!("{other} (git source {})", &owner["git:".len()..]),
    };
    Error::Invalid(format!(
        "duplicate DAG id {dag_id:?}: {holder} already defines it; give one of them another `id:`"
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

/// `create_run` for a DAG that does not exist (deleted meanwhile): the only
/// refusal `create_run` makes.
pub(crate) fn no_such_dag(dag_id: &str) -> String {
    format!("no DAG {dag_id} (it was deleted)")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_migrations_fill_gaps_and_refuse_unknown_ones() {
        let known = [1, 2, 3, 5];
        let set = |v: &[i64]| v.iter().copied().collect::<BTreeSet<i64>>();
        assert_eq!(
            pending_migrations(&known, &set(&[]), 5).expect("fresh"),
            vec![1, 2, 3, 5]
        );
        assert_eq!(
            pending_migrations(&known, &set(&[1, 2, 5]), 5).expect("a gap"),
            vec![3],
            "a migration missing below the newest applied one is applied"
        );
        assert!(
            pending_migrations(&known, &set(&[1, 2, 3, 5]), 5)
                .expect("current")
                .is_empty()
        );
        let newer = pending_migrations(&known, &set(&[1, 2, 3, 5, 6]), 5).expect_err("newer");
        assert!(newer.to_string().contains("newer"), "{newer}");
        let other = pending_migrations(&known, &set(&[1, 2, 3, 4]), 5).expect_err("unknown");
        assert!(other.to_string().contains("migration 4"), "{other}");
    }

    #[test]
    fn audit_entries_are_bounded() {
        let mut detail = serde_json::Map::new();
        detail.insert("big".into(), serde_json::json!("x".repeat(20_000)));
        let e = crate::AuditEntry {
            actor: format!("a\0b{}", "y".repeat(300)),
            origin: "cli".into(),
            action: crate::AuditAction::Login,
            target: "user/x".into(),
            detail,
            outcome: crate::AuditOutcome::Failure,
        };
        let s = stored_audit(&e);
        assert_eq!(s.actor.chars().count(), 200);
        assert!(s.actor.starts_with("a\u{fffd}b"), "{}", s.actor);
        assert!(s.detail.contains("truncated"), "{}", s.detail);
        assert!(s.detail.len() < 100);
    }
}
