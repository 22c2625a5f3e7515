//! Which running runs are worth planning: reading a large run costs
//! milliseconds, so a run is re-read only when something a plan looks at may
//! have changed. This is the scheduler's only memory between passes, and it is
//! only a cache: a fresh scheduler (an empty tracker) plans every run once.

use std::collections::{HashMap, HashSet};

use gale_model::{RunId, TaskState};
use gale_store::{RunActivity, TaskRow};

/// Most runs whose last plan's counts are remembered.
const MAX_REMEMBERED: usize = 10_000;

#[derive(Debug, Default)]
pub struct Tracker {
    /// Each running run's task-state counts as of its last plan: a run whose
    /// counts have not moved (and has no retry waiting) has nothing new to plan.
    planned: HashMap<RunId, Vec<(TaskState, u32)>>,
    /// Running runs planned on every pass, not only when they change: some of
    /// their tasks wait for room (`max_active_tasks`, a pool) or a retry time.
    watch: HashSet<RunId>,
}

impl Tracker {
    /// Runs to plan on every pass (see `watch`).
    pub fn watched(&self) -> impl Iterator<Item = RunId> + '_ {
        self.watch.iter().copied()
    }

    /// After reading the run's activity: whether its state counts are worth
    /// reading. Nothing waiting and something in flight: a plan would change
    /// nothing (a run ends only when every task has).
    pub fn should_count(&mut self, run_id: RunId, activity: RunActivity) -> bool {
        if !activity.pending && activity.in_flight {
            self.watch.remove(&run_id);
            return false;
        }
        true
    }

    /// After counting the run's task states: whether to plan it now.
    pub fn should_plan(&mut self, run_id: RunId, mut counts: Vec<(TaskState, u32)>) -> bool {
        counts.sort_by_key(|(s, _)| s.as_str());
        let count = |state: TaskState| {
            counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n)
        };
        let waiting = count(TaskState::None);
        // Scheduled ones may be held back by `max_active_tasks` or a pool, which
        // other runs' attempts free, and retries wait for their time: such runs
        // get planned every pass.
        let scheduled = count(TaskState::Scheduled);
        let retrying = count(TaskState::UpForRetry);
        if scheduled > 0 || retrying > 0 {
            self.watch.insert(run_id);
        } else {
            self.watch.remove(&run_id);
        }
        let in_flight = count(TaskState::Queued) + count(TaskState::Running);
        // States only move forward (a retry cycle ends in flight again), so equal
        // counts mean no upstream finished since the last plan.
        let unchanged = self.planned.get(&run_id) == Some(&counts);
        if scheduled == 0 && retrying == 0 && in_flight > 0 && (waiting == 0 || unchanged) {
            return false;
        }
        if self.planned.len() > MAX_REMEMBERED {
            self.planned.clear();
        }
        self.planned.insert(run_id, counts);
        true
    }

    /// Forgets every run not in `running` (the whole list of running runs):
    /// those that ended without this scheduler, cancelled, marked, or finished
    /// by another one.
    pub fn keep_only(&mut self, running: &HashSet<RunId>) {
        self.planned.retain(|id, _| running.contains(id));
        self.watch.retain(|id| running.contains(id));
    }

    /// How many runs it remembers.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.planned.len().max(self.watch.len())
    }

    /// The run ended (or is no longer running: cancelled, marked): forget it.
    pub fn finished(&mut self, run_id: RunId) {
        self.planned.remove(&run_id);
        self.watch.remove(&run_id);
    }
}

/// What `Runs::run_activity` answers, from a run's rows.
pub fn activity_of(rows: &[TaskRow]) -> RunActivity {
    RunActivity {
        pending: rows.iter().any(|t| {
            matches!(
                t.state,
                TaskState::None | TaskState::Scheduled | TaskState::UpForRetry
            )
        }),
        in_flight: rows
            .iter()
            .any(|t| matches!(t.state, TaskState::Queued | TaskState::Running)),
    }
}

/// What `Runs::run_state_counts` answers, from a run's rows.
pub fn counts_of(rows: &[TaskRow]) -> Vec<(TaskState, u32)> {
    let mut counts: Vec<(TaskState, u32)> = Vec::new();
    for t in rows {
        match counts.iter_mut().find(|(s, _)| *s == t.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((t.state, 1)),
        }
    }
    counts
}
