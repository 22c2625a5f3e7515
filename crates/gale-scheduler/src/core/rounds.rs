//! The rounds of one run's pass: plan, write, and plan again while writes
//! apply, so that a chain of skips or upstream failures settles in one pass.
//! The shell (and the test harness, the same way) reads the run's task
//! instances, asks [`Rounds::plan`] for the writes, makes those that
//! [`Rounds::may_write`] allows and reports each with [`Rounds::wrote`]:
//!
//! ```text
//! while rounds.another() {
//!     let tasks = read(run);
//!     for action in rounds.plan(run, dag, order, &tasks, now) {
//!         if rounds.may_write(&action) { let n = write(&action); rounds.wrote(&action, n) }
//!     }
//! }
//! ```

use gale_model::Dag;
use gale_store::{RunRow, TaskRow};
use jiff::Timestamp;

use super::{RunAction, run_actions};

/// Most rounds in one pass.
pub const MAX_ROUNDS: usize = 4;

#[derive(Debug, Default)]
pub struct Rounds {
    done: usize,
    stopped: bool,
    /// Transitions this round asked for, and how many applied.
    asked: usize,
    applied: usize,
}

impl Rounds {
    pub fn new() -> Rounds {
        Rounds::default()
    }

    /// Whether to read the run and plan again: the last round moved something,
    /// did not end the run, and fewer than [`MAX_ROUNDS`] have run.
    pub fn another(&mut self) -> bool {
        if self.done > 0 && self.applied == 0 {
            self.stopped = true;
        }
        !self.stopped && self.done < MAX_ROUNDS
    }

    /// This round's writes, from the task instances just read.
    pub fn plan(
        &mut self,
        run: &RunRow,
        dag: &Dag,
        order: &[usize],
        tasks: &[TaskRow],
        now: Timestamp,
    ) -> Vec<RunAction> {
        self.done += 1;
        self.applied = 0;
        let actions = run_actions(run, dag, order, tasks, now);
        self.asked = actions
            .iter()
            .map(|a| match a {
                RunAction::Transitions(t) => t.len(),
                _ => 0,
            })
            .sum();
        actions
    }

    /// Whether to make this write. A plan that ends the run ends the rounds; the
    /// run is finished only when every transition of the plan applied, so its
    /// outcome was decided on states that hold (another scheduler or an
    /// operator may have moved some meanwhile: the next pass decides again).
    pub fn may_write(&mut self, action: &RunAction) -> bool {
        match action {
            RunAction::FinishRun { .. } => {
                self.stopped = true;
                self.applied == self.asked
            }
            _ => true,
        }
    }

    /// Reports a write: how many rows it changed.
    pub fn wrote(&mut self, action: &RunAction, changed: usize) {
        if let RunAction::Transitions(_) = action {
            self.applied += changed;
        }
    }
}
