//! Task and run states, the trigger rules that decide when a task may start, and
//! the retry policy. Pure functions only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of one task in one run (a "task instance").
///
/// Transitions and the role that takes them:
/// `none -> scheduled` (scheduler, upstreams satisfied), `scheduled -> queued`
/// (scheduler, within limits), `none -> queued` (scheduler, upstreams satisfied
/// and no pool or `max_active_tasks` to wait for), `queued -> running` (worker
/// claim, new attempt),
/// `running -> success | failed | skipped | up_for_retry` (worker, fenced by attempt
/// and worker id; or the scheduler's reaper when the lease expired),
/// `up_for_retry -> scheduled | queued` (scheduler, after the retry delay, as
/// from `none`),
/// `none -> skipped | upstream_failed` (scheduler, trigger rule), and `removed` when
/// a task disappears from the DAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    None,
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    UpForRetry,
    Skipped,
    UpstreamFailed,
    Removed,
}

impl TaskState {
    pub const ALL: [TaskState; 10] = [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::Skipped,
        TaskState::UpstreamFailed,
        TaskState::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Scheduled => "scheduled",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::Skipped => "skipped",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Removed => "removed",
        }
    }

    /// A finished state: nothing will move the task again unless a user clears it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Success
                | TaskState::Failed
                | TaskState::Skipped
                | TaskState::UpstreamFailed
                | TaskState::Removed
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown task state {s:?}"))
    }
}

/// The state of a DAG run. `queued -> running` (scheduler, within
/// `max_active_runs`), `running -> success | failed` (scheduler, when every task
/// is finished), `queued | running -> cancelled` (an operator's cancel: its
/// running tasks killed and failed, the rest skipped, as Airflow leaves them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 5] = [
        RunState::Queued,
        RunState::Running,
        RunState::Success,
        RunState::Failed,
        RunState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Success | RunState::Failed | RunState::Cancelled
        )
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown run state {s:?}"))
    }
}

/// When a task may start, given its upstream tasks' states (Airflow's semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded. A failed upstream makes this task `upstream_failed`,
    /// a skipped one makes it `skipped`.
    #[default]
    AllSuccess,
    /// Every upstream failed (or is upstream_failed); any success or skip skips this task.
    AllFailed,
    /// Every upstream finished, whatever its outcome.
    AllDone,
    /// At least one upstream succeeded; starts without waiting for the others.
    OneSuccess,
    /// At least one upstream failed; starts without waiting for the others.
    OneFailed,
    /// No upstream failed (successes and skips are fine), once all are finished.
    NoneFailed,
    /// No upstream failed and at least one succeeded, once all are finished.
    NoneFailedMinOneSuccess,
    /// No upstream was skipped, once all are finished.
    NoneSkipped,
    /// Starts at once, whatever the upstreams do.
    Always,
}

/// What the upstream tasks of one task look like right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    pub total: usize,
    pub success: usize,
    /// `failed` and `upstream_failed`.
    pub failed: usize,
    /// `skipped` (and `removed`, which counts as skipped).
    pub skipped: usize,
}

impl UpstreamCounts {
    pub fn add(&mut self, state: TaskState) {
        self.total += 1;
        match state {
            TaskState::Success => self.success += 1,
            TaskState::Failed | TaskState::UpstreamFailed => self.failed += 1,
            TaskState::Skipped | TaskState::Removed => self.skipped += 1,
            _ => {}
        }
    }
    pub fn done(&self) -> usize {
        self.success + self.failed + self.skipped
    }
    pub fn all_done(&self) -> bool {
        self.done() == self.total
    }
}

/// The trigger rule's verdict for a task that has not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Not decidable yet: some upstream is still unfinished.
    Wait,
    /// Schedule it.
    Run,
    Skip,
    UpstreamFailed,
}

impl TriggerRule {
    pub fn evaluate(self, up: UpstreamCounts) -> Readiness {
        use Readiness::*;
        if up.total == 0 {
            return Run;
        }
        let done = up.all_done();
        match self {
            TriggerRule::Always => Run,
            TriggerRule::AllSuccess => {
                if up.failed > 0 {
                    UpstreamFailed
                } else if up.skipped > 0 {
                    Skip
                } else if up.success == up.total {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::AllFailed => {
                if up.success > 0 || up.skipped > 0 {
                    Skip
                } else if up.failed == up.total {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::AllDone => {
                if done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::OneSuccess => {
                if up.success > 0 {
                    Run
                } else if !done {
                    Wait
                } else if up.skipped == up.total {
                    Skip
                } else {
                    UpstreamFailed
                }
            }
            TriggerRule::OneFailed => {
                if up.failed > 0 {
                    Run
                } else if done {
                    Skip
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailed => {
                if up.failed > 0 {
                    UpstreamFailed
                } else if done {
                    Run
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailedMinOneSuccess => {
                if up.failed > 0 {
                    UpstreamFailed
                } else if !done {
                    Wait
                } else if up.success > 0 {
                    Run
                } else {
                    Skip
                }
            }
            TriggerRule::NoneSkipped => {
                if up.skipped > 0 {
                    Skip
                } else if done {
                    Run
                } else {
                    Wait
                }
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::NoneSkipped => "none_skipped",
            TriggerRule::Always => "always",
        }
    }
}

/// A task's retry policy: how many tries it has and how long a retry waits.
/// Built once from the task ([`RetryPolicy::of`]); the worker (a try that failed)
/// and the scheduler (a try whose lease ran out) both ask it what comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries allowed after the first try.
    pub retries: u32,
    /// Wait before the first retry.
    pub delay_ms: u64,
    /// Double the wait with every further retry.
    pub exponential: bool,
    /// Longest wait (with `exponential` and no cap: one day, as in Airflow).
    pub max_delay_ms: Option<u64>,
}

/// What follows a try that did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Tries are left: `up_for_retry`, due after this wait.
    Retry { delay_ms: u64 },
    /// No tries left: `failed`.
    Fail,
}

impl AfterFailure {
    /// The task instance's next state.
    pub fn state(self) -> TaskState {
        match self {
            AfterFailure::Retry { .. } => TaskState::UpForRetry,
            AfterFailure::Fail => TaskState::Failed,
        }
    }

    /// When the retry is due, for a try that ended at `now` (the store's clock).
    pub fn retry_at(self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        match self {
            AfterFailure::Retry { delay_ms } => Some(
                now.saturating_add(jiff::SignedDuration::from_millis(
                    i64::try_from(delay_ms).unwrap_or(i64::MAX),
                ))
                .unwrap_or(jiff::Timestamp::MAX),
            ),
            AfterFailure::Fail => None,
        }
    }
}

/// The shortest wait before a retry, whatever `retry_delay` says: a task
/// that fails at once with `retry_delay: 0s` would otherwise spend its
/// retries in a tight loop of process starts.
pub const MIN_RETRY_DELAY_MS: u64 = 1_000;

impl RetryPolicy {
    /// The policy of `task`, for a task instance created with `max_tries` tries
    /// (the task's retries when its run was created, plus one: a DAG version
    /// changed since then does not change a running run's budget).
    pub fn of(task: &crate::Task, max_tries: u32) -> RetryPolicy {
        RetryPolicy {
            retries: max_tries.saturating_sub(1),
            delay_ms: task.retry_delay.as_millis(),
            exponential: task.retry_backoff,
            max_delay_ms: task.max_retry_delay.map(|d| d.as_millis()),
        }
    }

    /// How try `try_number` (1-based), which just ended without success, leaves
    /// the task.
    pub fn after_failure(&self, try_number: u32) -> AfterFailure {
        if try_number > self.retries {
            return AfterFailure::Fail;
        }
        let mut delay = self.delay_ms;
        if self.exponential {
            let shift = try_number.saturating_sub(1).min(30);
            delay = delay.saturating_mul(1u64 << shift);
        }
        // An exponential backoff without an explicit cap stops at one day, as Airflow does.
        let cap = self.max_delay_ms.unwrap_or(if self.exponential {
            86_400_000
        } else {
            u64::MAX
        });
        AfterFailure::Retry {
            delay_ms: delay.min(cap).max(MIN_RETRY_DELAY_MS),
        }
    }
}

/// The final state of a run whose tasks are all finished: failed when any leaf task
/// (one nothing depends on) failed or was upstream_failed, success otherwise.
pub fn run_outcome<'a>(leaf_states: impl IntoIterator<Item = &'a TaskState>) -> RunState {
    let failed = leaf_states
        .into_iter()
        .any(|s| matches!(s, TaskState::Failed | TaskState::UpstreamFailed));
    if failed {
        RunState::Failed
    } else {
        RunState::Success
    }
}

#[cfg(test)]
mod tests;
