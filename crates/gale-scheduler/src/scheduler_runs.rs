//! The scheduler shell's run pass: the running runs swept a page at a time,
//! the runs something moved read by id, and their plans made, small runs in
//! batches (each round's task instances of a batch in one query), large ones
//! one by one behind the tracker's cheap checks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use gale_model::RunId;
use gale_store::{RunRow, TaskRow};
use jiff::Timestamp;
use tracing::warn;

use super::{CachedDag, PassReport, RUNS_PER_READ, SMALL_RUN, Scheduler, SchedulerStore};
use crate::core::track::{activity_of, counts_of};
use crate::core::{Rounds, RunAction};

impl<S: SchedulerStore + ?Sized> Scheduler<S> {
    /// A page of the running runs, the next after the last one swept (from
    /// the first again once the last page is read), with their deadlines
    /// checked.
    pub(super) async fn sweep_page(&mut self, now: Timestamp) -> gale_store::Result<Vec<RunRow>> {
        let limit = self.opts.max_runs_per_pass;
        let from = self.swept_to;
        let page = self.store.running_runs(from, limit).await?;
        let last = page.len() < limit as usize;
        self.swept_to = if last {
            RunId(0)
        } else {
            page.last().map_or(RunId(0), |r| r.id)
        };
        let whole = last && from == RunId(0);
        if whole {
            // Every running run is listed: forget the ones that ended without
            // this scheduler (cancelled, marked, or finished by another).
            let ids: HashSet<RunId> = page.iter().map(|r| r.id).collect();
            self.tracker.keep_only(&ids);
        }
        // A deadline that cannot be written now is written at a later
        // housekeeping; it does not hold the pass up.
        if let Err(e) = self.deadlines(&page, whole, now).await {
            warn!(error = %e, "checking the runs' deadlines failed; checked again at the next housekeeping");
        }
        Ok(page)
    }

    /// Plans the runs given (each at most once): the small ones a batch at a
    /// time, each batch's task instances read in one query per round, the
    /// large ones one by one behind the tracker's cheap checks.
    pub(super) async fn advance_runs(
        &mut self,
        runs: &[RunRow],
        now: Timestamp,
        report: &mut PassReport,
    ) -> gale_store::Result<()> {
        let mut small = Vec::new();
        for run in runs {
            let Some(cached) = self.version(&run.dag_id, &run.version_hash).await? else {
                warn!(run_id = %run.id, dag_id = %run.dag_id, "run's DAG version is missing from the store");
                continue;
            };
            if cached.dag.tasks.len() <= SMALL_RUN {
                small.push((run, cached));
            } else {
                self.advance_run(run, &cached, now, report).await?;
            }
        }
        for batch in small.chunks(RUNS_PER_READ) {
            self.advance_small_runs(batch, now, report).await?;
        }
        Ok(())
    }

    /// Plans a batch of small runs together: the rounds of every run go in
    /// step, and each round's task instances are read in one query. What the
    /// tracker is told is what [`Self::advance_run`] tells it, from the rows
    /// instead of the counting queries.
    async fn advance_small_runs(
        &mut self,
        batch: &[(&RunRow, Arc<CachedDag>)],
        now: Timestamp,
        report: &mut PassReport,
    ) -> gale_store::Result<()> {
        let mut planning: Vec<(&RunRow, &CachedDag, Rounds)> = Vec::new();
        let ids: Vec<RunId> = batch.iter().map(|(run, _)| run.id).collect();
        let mut tasks = by_run(self.store.tasks_of_runs(&ids).await?);
        for (run, cached) in batch {
            let rows = tasks.get(&run.id).map(Vec::as_slice).unwrap_or_default();
            if !self.tracker.should_count(run.id, activity_of(rows))
                || !self.tracker.should_plan(run.id, counts_of(rows))
            {
                continue;
            }
            planning.push((run, cached, Rounds::new()));
        }
        while !planning.is_empty() {
            for (run, cached, rounds) in &mut planning {
                let rows = tasks.remove(&run.id).unwrap_or_default();
                for action in rounds.plan(run, &cached.dag, &cached.order, &rows, now) {
                    if rounds.may_write(&action) {
                        let changed = self
                            .write(&action, (run, &cached.dag, &rows, now), report)
                            .await?;
                        rounds.wrote(&action, changed);
                        if !matches!(action, RunAction::FinishRun { .. }) && changed > 0 {
                            // What this plan moved may let more move: look
                            // again next pass (said at once, so a later
                            // write's failure in the batch does not lose it).
                            self.notifier.mark_run(run.id);
                        }
                    }
                }
            }
            planning.retain_mut(|(_, _, rounds)| rounds.another());
            if !planning.is_empty() {
                let ids: Vec<RunId> = planning.iter().map(|(run, ..)| run.id).collect();
                tasks = by_run(self.store.tasks_of_runs(&ids).await?);
            }
        }
        Ok(())
    }

    async fn advance_run(
        &mut self,
        run: &RunRow,
        cached: &CachedDag,
        now: Timestamp,
        report: &mut PassReport,
    ) -> gale_store::Result<()> {
        // The activity check stops at the first matching row, so a large fan-out
        // costs nothing per finished task; counting states by index costs less
        // than reading the run.
        let activity = self.store.run_activity(run.id).await?;
        if !self.tracker.should_count(run.id, activity) {
            return Ok(());
        }
        let counts = self.store.run_state_counts(run.id).await?;
        if !self.tracker.should_plan(run.id, counts) {
            return Ok(());
        }
        // A few rounds, so that chains of skips settle in one pass.
        let moved_before = report.transitions + report.queued;
        let mut rounds = Rounds::new();
        while rounds.another() {
            let tasks = self.store.run_tasks(run.id).await?;
            for action in rounds.plan(run, &cached.dag, &cached.order, &tasks, now) {
                if rounds.may_write(&action) {
                    let changed = self
                        .write(&action, (run, &cached.dag, &tasks, now), report)
                        .await?;
                    rounds.wrote(&action, changed);
                }
            }
        }
        // What this plan moved may let more move: look again next pass.
        if report.transitions + report.queued > moved_before {
            self.notifier.mark_run(run.id);
        }
        Ok(())
    }
}

/// Task instances (in id order) grouped by run.
fn by_run(rows: Vec<TaskRow>) -> HashMap<RunId, Vec<TaskRow>> {
    let mut out: HashMap<RunId, Vec<TaskRow>> = HashMap::new();
    for row in rows {
        out.entry(row.run_id).or_default().push(row);
    }
    out
}
