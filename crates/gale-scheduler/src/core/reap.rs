//! Lost leases: how an attempt whose worker stopped heart-beating ends.

use std::time::Duration;

use gale_model::Task;
use gale_model::TaskState;
use gale_model::state::RetryPolicy;
use gale_store::{Reap, TaskRow};
use jiff::Timestamp;

/// The message recorded on an attempt lost because `worker` went silent.
pub fn lost_message(worker: &str, lease: Duration) -> String {
    format!(
        "attempt lost: worker {worker} stopped heart-beating for more than {}s",
        lease.as_secs()
    )
}

/// Ends `ti`'s running attempt as `lost` at `now` (the store's clock): a retry
/// when its task's policy has tries left (due after the policy's delay), else
/// `failed`; `failed` too when its task is gone from the run's DAG version
/// (`task` is `None`). The write applies only while the attempt still runs under
/// `worker` with a heartbeat older than `lease` (zero: whatever its heartbeat).
pub fn lost_attempt(
    ti: &TaskRow,
    task: Option<&Task>,
    worker: &str,
    lease: Duration,
    message: &str,
    now: Timestamp,
) -> Reap {
    let (to, retry_at) = match task {
        Some(task) => {
            let next = RetryPolicy::of(task, ti.max_tries).after_failure(ti.try_number);
            (next.state(), next.retry_at(now))
        }
        None => (TaskState::Failed, None),
    };
    Reap {
        alerts: Vec::new(),
        ti: ti.id,
        try_number: ti.try_number,
        worker_id: worker.into(),
        lease,
        to,
        retry_at,
        outcome: gale_store::Outcome::Lost,
        message: message.to_owned(),
        refund_try: false,
    }
}
