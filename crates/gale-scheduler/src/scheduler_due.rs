//! The scheduler shell's due-run pass: the agenda kept up to date from the
//! DAGs that changed, the runs of the DAGs whose look is due, and the check
//! for pools nobody created (of the versions listed since the last check).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gale_model::time::rfc3339;
use gale_model::{DagId, NewRun};
use gale_store::{DagRow, SlotStatus};
use jiff::{SignedDuration, Timestamp};
use tracing::{info, warn};

use super::{SMALL_RUN, Scheduler, SchedulerStore, VERSIONS_CACHED};
use crate::core::{self, DueDag};

/// How often every DAG is listed; in between, only the changed ones.
const FULL_LISTING_EVERY: Duration = Duration::from_secs(60);
/// How far back a read of changed DAGs reaches before the previous one.
const CHANGE_MARGIN: SignedDuration = SignedDuration::from_secs(10);
/// Due DAGs looked at together (their rows and run counts read at once).
const DAGS_PER_BATCH: usize = 256;
/// Runs made in one transaction when many DAGs share a slot.
const RUNS_PER_TRANSACTION: usize = 256;

impl<S: SchedulerStore + ?Sized> Scheduler<S> {
    /// Brings the agenda up to date: every DAG once a minute (and at the
    /// first pass), in between only those whose row changed since the last
    /// read (less a margin, for a change whose transaction began before that
    /// read and committed after it).
    async fn refresh_agenda(&mut self, now: Timestamp) -> gale_store::Result<()> {
        let full = self
            .last_full_listing
            .is_none_or(|at| at.elapsed() >= FULL_LISTING_EVERY);
        let rows = match self.changes_read_at {
            Some(since) if !full => self.store.dags_changed_since(since - CHANGE_MARGIN).await?,
            _ => {
                let rows = self.store.list_dags().await?;
                let present: HashSet<DagId> = rows.iter().map(|r| r.dag_id.clone()).collect();
                self.agenda.retain(&present);
                self.last_full_listing = Some(std::time::Instant::now());
                self.dags_listed = rows.len();
                rows
            }
        };
        self.changes_read_at = Some(now);
        for row in &rows {
            self.agenda.observe(row, now);
            if row.active && self.pools_checked.get(&row.dag_id) != Some(&row.version_hash) {
                self.pools_pending
                    .insert(row.dag_id.clone(), row.version_hash.clone());
            }
        }
        // A version cache of a few times the DAGs: a slot shared by
        // every DAG reads each version once. (Sized at every read, not only
        // at the full listing: the first one may come before the DAG
        // processor has stored most of them.)
        self.versions_cap = VERSIONS_CACHED.max(self.agenda.len().max(self.dags_listed) * 2);
        Ok(())
    }

    pub(super) async fn create_due_runs(&mut self, now: Timestamp) -> gale_store::Result<usize> {
        let mut created = 0;
        self.refresh_agenda(now).await?;
        let due = self.agenda.take_due(now);
        // Each batch's runs are made while the next batch is looked at (its
        // reads overlap the transaction): `making` is the previous batch's.
        let mut making: Vec<NewRun> = Vec::new();
        for (i, dags) in due.chunks(DAGS_PER_BATCH).enumerate() {
            let store = self.store.clone();
            let runs = std::mem::take(&mut making);
            let (looked, made) = tokio::join!(
                self.look_at(dags, now, &mut created),
                make_runs(&*store, runs)
            );
            // The store failed (an outage, a failover): the DAGs whose runs
            // may not be made yet are due again at once, so the pass after
            // the store is back makes their runs.
            match made {
                Ok(n) => created += n,
                Err(e) => {
                    let from = i.saturating_sub(1) * DAGS_PER_BATCH;
                    self.agenda.put_back(due[from..].iter().cloned(), now);
                    return Err(e);
                }
            }
            match looked {
                Ok(runs) => making = runs,
                Err(e) => {
                    self.agenda
                        .put_back(due[i * DAGS_PER_BATCH..].iter().cloned(), now);
                    return Err(e);
                }
            }
        }
        match make_runs(&*self.store, making).await {
            Ok(n) => created += n,
            Err(e) => {
                let from = due.len().saturating_sub(1) / DAGS_PER_BATCH * DAGS_PER_BATCH;
                self.agenda.put_back(due[from..].iter().cloned(), now);
                return Err(e);
            }
        }
        Ok(created)
    }

    /// Looks at DAGs whose look is due: records their passed-over slots,
    /// makes the runs of those that are not small or have more than one run
    /// due (counted into `created`), sets their next looks, and returns the
    /// runs of the rest (one each, a slot they share) for [`make_runs`].
    /// Their rows and run counts are read in one query each.
    async fn look_at(
        &mut self,
        dag_ids: &[DagId],
        now: Timestamp,
        created: &mut usize,
    ) -> gale_store::Result<Vec<NewRun>> {
        // The rows as they are now (a cursor may have moved): a DAG gone, or
        // no longer able to have runs, leaves the agenda.
        let rows: Vec<DagRow> = self
            .store
            .get_dags(dag_ids)
            .await?
            .into_iter()
            .filter(DueDag::is_candidate)
            .collect();
        let counted: Vec<DagId> = rows
            .iter()
            .filter(|r| DueDag::needs_active_runs(r))
            .map(|r| r.dag_id.clone())
            .collect();
        let active: HashMap<DagId, u32> = self
            .store
            .count_active_runs_of(&counted)
            .await?
            .into_iter()
            .collect();
        let mut looked = Vec::new();
        let mut together = Vec::new();
        for row in rows {
            let Some(cached) = self.version(&row.dag_id, &row.version_hash).await? else {
                // Its version is not readable yet: looked at again soon.
                self.agenda
                    .again_at(&row, now + SignedDuration::from_secs(1));
                continue;
            };
            let Some(schedule) = cached.schedule.as_ref() else {
                continue;
            };
            let due = core::due_runs(
                DueDag {
                    row: &row,
                    dag: &cached.dag,
                    schedule,
                    active_runs: active.get(&row.dag_id).copied().unwrap_or(0),
                },
                now,
            );
            if let Some((status, slots)) = &due.passed_over {
                let n = self.store.record_slots(&row.dag_id, *status, slots).await?;
                if n > 0 && *status == SlotStatus::Missed {
                    warn!(dag_id = %row.dag_id, slots = n, "schedule slots passed while no scheduler ran; catchup is off, so they are recorded as missed");
                }
            }
            // A slot many small DAGs share is made in batches; a large
            // DAG's run (thousands of task instances) or a catch-up is made
            // on its own.
            if due.runs.len() == 1 && due.room >= 1 && cached.dag.tasks.len() <= SMALL_RUN {
                together.push(due.runs[0].clone());
            } else {
                *created += create_in_order(&*self.store, &due.runs, due.room).await?;
            }
            looked.push((row, cached, due));
        }
        for (row, cached, due) in &looked {
            if let Some(schedule) = cached.schedule.as_ref() {
                self.agenda.looked(row, schedule, due, now);
            }
        }
        Ok(together)
    }

    /// Warns (once per DAG and pool) about tasks that name a pool that does not
    /// exist: their task instances wait in `scheduled` until it is created.
    pub(super) async fn check_pools(&mut self) -> gale_store::Result<()> {
        let pools: HashSet<String> = self
            .store
            .list_pools()
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        // A new set of pools: every DAG is checked again, from the next full
        // listing; otherwise only the versions listed since the last check.
        if self.pools_known.as_ref() != Some(&pools) {
            self.pools_known = Some(pools);
            self.pools_checked.clear();
            self.pools_pending.clear();
            self.last_full_listing = None;
            return Ok(());
        }
        let pools = self.pools_known.clone().unwrap_or_default();
        let mut dags = Vec::new();
        for (dag_id, hash) in std::mem::take(&mut self.pools_pending) {
            if self.pools_checked.get(&dag_id) == Some(&hash) {
                continue;
            }
            if let Some(cached) = self.version(&dag_id, &hash).await? {
                self.pools_checked.insert(dag_id.clone(), hash);
                dags.push((dag_id, cached));
            }
        }
        let dags = dags.iter().map(|(id, cached)| (id, &cached.dag));
        for m in core::pools::missing_pools(dags, &pools, &mut self.warned_pools) {
            warn!(dag_id = %m.dag_id, task_id = %m.task_id, pool = %m.pool, "task names a pool that does not exist: its attempts wait until `gale pools set {} SLOTS` creates it", m.pool);
        }
        Ok(())
    }
}

/// Makes scheduled runs (one per DAG, small DAGs) in transactions of
/// [`RUNS_PER_TRANSACTION`]; returns how many were made. A batch the store
/// refuses (bad data in one run) is made run by run, so only that one is
/// left out, and said why.
async fn make_runs<S: SchedulerStore + ?Sized>(
    store: &S,
    runs: Vec<NewRun>,
) -> gale_store::Result<usize> {
    let mut created = 0;
    for chunk in runs.chunks(RUNS_PER_TRANSACTION) {
        let ids = match store.create_runs(chunk).await {
            Ok(ids) => ids,
            Err(gale_store::Error::Invalid(why)) => {
                warn!("a batch of scheduled runs was refused ({why}); making them one by one");
                for run in chunk {
                    created += create_in_order(store, std::slice::from_ref(run), 1).await?;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        for (run, id) in chunk.iter().zip(ids) {
            if let Some(run_id) = id {
                info!(dag_id = %run.dag_id, %run_id, logical_date = %rfc3339(run.logical_date), "created scheduled run");
                created += 1;
            }
        }
    }
    Ok(created)
}

/// Makes a DAG's due runs one by one, oldest slot first, until `room` (what
/// `max_active_runs` leaves) is used up; returns how many were made.
async fn create_in_order<S: SchedulerStore + ?Sized>(
    store: &S,
    runs: &[NewRun],
    room: usize,
) -> gale_store::Result<usize> {
    let mut created = 0;
    for run in runs {
        if created == room {
            break;
        }
        match store.create_run(run).await {
            Ok(Some(run_id)) => {
                info!(dag_id = %run.dag_id, %run_id, logical_date = %rfc3339(run.logical_date), "created scheduled run");
                created += 1;
            }
            Ok(None) => {}
            // Deleted since the pass read it: nothing more to make.
            Err(gale_store::Error::Invalid(why)) => {
                info!(dag_id = %run.dag_id, "{why}");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}
