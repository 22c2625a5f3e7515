//! Backfilling: one `backfill` run per schedule slot of a date range, and
//! cancelling one (no more runs of it are created; its unfinished runs are
//! cancelled as `gale runs cancel` cancels a run).

use gale_model::{DagId, RunId, RunState, RunType, schedule};
use gale_store::{AuditAction, CancelBackfill, NewRun, RunFilter, RunMark};
use serde_json::json;

use crate::audit::{Actor, audited, detail};
use crate::{ActionStore, Error, Result, current_dag};

/// The most runs one backfill may create.
pub const MAX_BACKFILL_RUNS: usize = 10_000;

/// What a backfill created.
#[derive(Debug)]
pub struct Backfill {
    pub id: i64,
    pub created: Vec<RunId>,
    /// Slots that already had a run.
    pub existing: usize,
}

/// Creates one `backfill` run per schedule slot of the DAG whose logical date
/// lies in `[from, to]` (dates in the DAG's time zone unless they carry an
/// offset; a bare `to` date is the whole of that day; nothing before the
/// DAG's `start_date`), and records the backfill as created by the actor.
pub async fn backfill(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    dag_id: &DagId,
    from: &str,
    to: &str,
) -> Result<Backfill> {
    let result = create(store, dag_id, from, to, &actor.name).await;
    audited(
        store,
        actor,
        AuditAction::BackfillCreate,
        &format!("dag/{dag_id}"),
        detail([("from", json!(from)), ("to", json!(to))]),
        result,
        |b, d| {
            d.insert("backfill_id".into(), json!(b.id));
            d.insert("created_runs".into(), json!(b.created.len()));
            d.insert("existing".into(), json!(b.existing));
        },
    )
    .await
}

async fn create(
    store: &(impl ActionStore + ?Sized),
    dag_id: &DagId,
    from: &str,
    to: &str,
    by: &str,
) -> Result<Backfill> {
    let (row, version) = current_dag(store, dag_id).await?;
    let dag = &version.spec;
    let Some(sched) = dag.parsed_schedule() else {
        return Err(Error::Invalid(format!(
            "{dag_id} has no schedule: trigger it instead"
        )));
    };
    let tz = schedule::time_zone(&dag.timezone).map_err(Error::Invalid)?;
    let from_ts =
        schedule::parse_date(from, &tz).map_err(|e| Error::Invalid(format!("from: {e}")))?;
    let to_ts = schedule::parse_date(to, &tz).map_err(|e| Error::Invalid(format!("to: {e}")))?;
    // A bare date is the whole day: `--to 2026-11-29` takes that day's slots.
    let mut last = to_ts;
    if let Ok(day) = to.trim().parse::<jiff::civil::Date>()
        && to.trim().len() == 10
        && let Ok(next) = day
            .tomorrow()
            .and_then(|d| d.to_zoned(tz.clone()))
            .map(|z| z.timestamp())
    {
        last = next
            .checked_sub(jiff::SignedDuration::from_micros(1))
            .unwrap_or(to_ts);
    }
    if to_ts < from_ts {
        return Err(Error::Invalid(format!(
            "`to` ({to}) is before `from` ({from})"
        )));
    }
    if let Some(start) = dag.start_date
        && last < start
    {
        return Err(Error::Invalid(format!(
            "the range ends before {dag_id}'s start_date ({start}): no slot of it is due"
        )));
    }
    let from_ts = match dag.start_date {
        Some(start) if from_ts < start => start,
        _ => from_ts,
    };
    let intervals = schedule::intervals_between(&sched, from_ts, last, MAX_BACKFILL_RUNS + 1);
    if intervals.len() > MAX_BACKFILL_RUNS {
        return Err(Error::Invalid(format!(
            "that range has more than {MAX_BACKFILL_RUNS} schedule slots: backfill it in parts"
        )));
    }
    if intervals.is_empty() {
        return Err(Error::Invalid(format!(
            "no schedule slot of {dag_id} ({}) lies between {from_ts} and {to_ts}",
            sched.expr()
        )));
    }
    // Recorded to its last instant (a bare `to` date's end of day), so its
    // progress and its cancel take in the last day's slots.
    let id = store
        .create_backfill(dag_id, from_ts, last, Some(by))
        .await?;
    let mut created = Vec::new();
    let mut existing = 0;
    let cancelled = || async {
        Ok::<bool, Error>(
            store
                .get_backfill(id)
                .await?
                .is_some_and(|b| b.cancelled_at.is_some()),
        )
    };
    for iv in &intervals {
        // A cancel that arrives while a long range is being created stops it.
        if cancelled().await? {
            break;
        }
        let run = NewRun::backfill(dag_id, &row.version_hash, dag, *iv);
        match store.create_run(&run).await.map_err(crate::trigger::gone)? {
            Some(run_id) => {
                created.push(run_id);
                // A cancel that listed the backfill's runs before this one was
                // made did not see it: it is cancelled here. (A cancel sets
                // `cancelled_at` before listing, so one of the two sees it.)
                if cancelled().await? {
                    store.mark_run(run_id, RunMark::Cancel, by).await?;
                    break;
                }
            }
            None => existing += 1,
        }
    }
    Ok(Backfill {
        id,
        created,
        existing,
    })
}

/// What cancelling a backfill did.
#[derive(Debug)]
pub struct BackfillCancelled {
    pub id: i64,
    pub dag_id: DagId,
    /// Its runs this cancel cancelled (they were queued or running).
    pub cancelled_runs: Vec<RunId>,
}

/// Cancels a backfill: records it cancelled, so no more of its runs are
/// created, and cancels each of its queued or running runs through
/// [`crate::cancel_run`] (each audited as `run.cancel`). An unknown id is
/// `NotFound`; one already cancelled with nothing left to cancel, a
/// `Conflict`.
pub async fn cancel_backfill(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    id: i64,
) -> Result<BackfillCancelled> {
    let result = cancel(store, actor, id).await;
    audited(
        store,
        actor,
        AuditAction::BackfillCancel,
        &format!("backfill/{id}"),
        serde_json::Map::new(),
        result,
        |c, d| {
            d.insert("dag_id".into(), json!(c.dag_id));
            d.insert("cancelled_runs".into(), json!(c.cancelled_runs.len()));
        },
    )
    .await
}

async fn cancel(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    id: i64,
) -> Result<BackfillCancelled> {
    let already = match store.cancel_backfill(id).await? {
        CancelBackfill::NotFound => return Err(Error::NotFound(format!("no backfill {id}"))),
        CancelBackfill::AlreadyCancelled => true,
        CancelBackfill::Cancelled => false,
    };
    let row = store
        .get_backfill(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no backfill {id}")))?;
    let mut cancelled_runs = Vec::new();
    for state in [RunState::Queued, RunState::Running] {
        let runs = store
            .list_runs(&RunFilter {
                dag_id: Some(row.dag_id.clone()),
                state: Some(state),
                run_type: Some(RunType::Backfill),
                before: None,
                limit: 10_000,
            })
            .await?;
        for run in runs
            .iter()
            .filter(|r| r.logical_date >= row.from_date && r.logical_date <= row.to_date)
        {
            match crate::cancel_run(store, actor, run.id).await {
                Ok(_) => cancelled_runs.push(run.id),
                // Finished meanwhile: nothing to cancel.
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if already && cancelled_runs.is_empty() {
        return Err(Error::Conflict(format!(
            "backfill {id} was already cancelled and has no unfinished run"
        )));
    }
    cancelled_runs.sort();
    Ok(BackfillCancelled {
        id,
        dag_id: row.dag_id,
        cancelled_runs,
    })
}
