//! Backfilling: one `backfill` run per schedule slot of a date range.

use gale_model::{DagId, RunId, schedule};
use gale_store::{AuditAction, NewRun};
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
    let id = store
        .create_backfill(dag_id, from_ts, to_ts, Some(by))
        .await?;
    let mut created = Vec::new();
    let mut existing = 0;
    for iv in &intervals {
        let run = NewRun::backfill(dag_id, &row.version_hash, dag, *iv);
        match store.create_run(&run).await? {
            Some(id) => created.push(id),
            None => existing += 1,
        }
    }
    Ok(Backfill {
        id,
        created,
        existing,
    })
}
