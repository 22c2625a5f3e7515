//! `/metrics` in Prometheus text format: unfinished runs and task instances by state,
//! queue depth per queue and live nodes by role (read from the store at each
//! scrape), and this process's own measurements (claim-to-start latency, queue
//! wait, task duration, scheduler pass duration, store errors by kind, failed
//! and refused logins, alert deliveries this process's deliverer recorded).
//! Alert deliveries by channel and state are read from the store too.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use gale_model::{RunState, TaskState};
use gale_store::DeliveryState;
use gale_store::telemetry::ErrorLabels;

use crate::AppState;

/// The queue of tasks that name none; its depth is shown even at 0.
const DEFAULT_QUEUE: &str = "default";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    channel: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

/// The Prometheus text of this scrape.
pub async fn render(state: &AppState) -> String {
    let mut registry = Registry::with_prefix("gale");
    let t = gale_store::telemetry::telemetry();
    registry.register(
        "task_claim_to_start_seconds",
        "Seconds from an attempt's claim to its process starting (this process's worker)",
        t.claim_to_start.clone(),
    );
    registry.register(
        "task_queue_wait_seconds",
        "Seconds a task instance waited queued before a worker claimed it (this process's worker)",
        t.queue_wait.clone(),
    );
    registry.register(
        "task_duration_seconds",
        "Seconds an attempt ran (this process's worker)",
        t.task_duration.clone(),
    );
    registry.register(
        "scheduler_loop_seconds",
        "Seconds one scheduler pass took (this process's scheduler)",
        t.scheduler_pass.clone(),
    );
    // Every series exists from the first scrape, at 0: a counter that only
    // appears with its first increment hides that increment from `rate()`
    // and `increase()`, and a missing gauge reads as "no data", not 0.
    let backend = if state.store.endpoint().starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    for kind in ["unavailable", "full", "database"] {
        t.db_errors
            .get_or_create(&ErrorLabels { kind, backend })
            .inc_by(0);
    }
    registry.register(
        "db_errors",
        "Store errors by kind (unavailable, full, database) and backend; refused input is not counted",
        t.db_errors.clone(),
    );
    for state in ["success", "failed"] {
        t.runs_finished
            .get_or_create(&gale_store::telemetry::StateLabels { state })
            .inc_by(0);
    }
    registry.register(
        "runs_finished",
        "Runs this process's scheduler finished, by state",
        t.runs_finished.clone(),
    );
    for state in ["success", "failed", "up_for_retry", "skipped"] {
        t.attempts_finished
            .get_or_create(&gale_store::telemetry::StateLabels { state })
            .inc_by(0);
    }
    registry.register(
        "task_attempts_finished",
        "Attempts this process's worker finished, by the task's next state",
        t.attempts_finished.clone(),
    );
    registry.register(
        "login_failures",
        "Logins refused for a wrong user name or password (this webserver)",
        state.logins.failures.clone(),
    );
    registry.register(
        "login_refusals",
        "Logins answered 429 (locked out) or 503 (every check busy) unchecked (this webserver)",
        state.logins.refused.clone(),
    );
    let up = Gauge::<i64>::default();
    registry.register(
        "database_up",
        "1 when the database answered this scrape",
        up.clone(),
    );
    match (state.store.counts().await, state.store.list_nodes().await) {
        (Ok(counts), Ok(nodes)) => {
            up.set(1);
            let runs = Family::<StateLabel, Gauge>::default();
            for s in [RunState::Queued, RunState::Running] {
                runs.get_or_create(&StateLabel {
                    state: s.as_str().into(),
                })
                .set(0);
            }
            for (s, n) in &counts.runs_by_state {
                runs.get_or_create(&StateLabel { state: s.clone() })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
            registry.register("runs", "Unfinished DAG runs by state", runs);
            let tasks = Family::<StateLabel, Gauge>::default();
            for s in TaskState::ALL.into_iter().filter(|s| !s.is_terminal()) {
                tasks
                    .get_or_create(&StateLabel {
                        state: s.as_str().into(),
                    })
                    .set(0);
            }
            for (s, n) in &counts.tasks_by_state {
                tasks
                    .get_or_create(&StateLabel { state: s.clone() })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
            registry.register(
                "task_instances",
                "Unfinished task instances by state",
                tasks,
            );
            let queued = Family::<QueueLabel, Gauge>::default();
            queued
                .get_or_create(&QueueLabel {
                    queue: DEFAULT_QUEUE.into(),
                })
                .set(0);
            for (q, n) in &counts.queued_by_queue {
                queued
                    .get_or_create(&QueueLabel { queue: q.clone() })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
            registry.register("queue_depth", "Task instances queued, per queue", queued);
            let live = Family::<RoleLabel, Gauge>::default();
            let now = state
                .store
                .now()
                .await
                .unwrap_or_else(|_| jiff::Timestamp::now());
            for role in ["scheduler", "worker"] {
                live.get_or_create(&RoleLabel { role: role.into() }).set(0);
            }
            for n in nodes.iter().filter(|n| {
                n.state == gale_store::NodeState::Running
                    && now.duration_since(n.heartbeat_at).as_secs_f64()
                        <= crate::health::LIVE_WITHIN.as_secs_f64()
            }) {
                for r in &n.roles {
                    live.get_or_create(&RoleLabel { role: r.clone() }).inc();
                }
            }
            registry.register(
                "live_nodes",
                "Gale processes with a recent heartbeat, by role",
                live,
            );
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "metrics: database unavailable");
            up.set(0);
        }
    }
    alert_metrics(state, &mut registry).await;
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

/// Deliveries by channel and state (every channel's four states, from 0),
/// and the sends this process's deliverer recorded, when it runs one.
async fn alert_metrics(state: &AppState, registry: &mut Registry) {
    let channels = match state.store.list_channels().await {
        Ok(c) => c.into_iter().map(|c| c.name).collect::<Vec<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot list alert channels");
            return;
        }
    };
    let counts = match state.store.delivery_counts().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot count alert deliveries");
            return;
        }
    };
    let deliveries = Family::<DeliveryLabels, Gauge>::default();
    let every_state = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Sent,
        DeliveryState::Failed,
    ];
    let named = channels
        .iter()
        .map(String::as_str)
        .chain(counts.iter().map(|(c, _, _)| c.as_str()));
    for channel in named {
        for s in every_state {
            deliveries
                .get_or_create(&DeliveryLabels {
                    channel: channel.to_owned(),
                    state: s.as_str().to_owned(),
                })
                .set(0);
        }
    }
    for (channel, s, n) in &counts {
        deliveries
            .get_or_create(&DeliveryLabels {
                channel: channel.clone(),
                state: s.as_str().to_owned(),
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(
        "alert_deliveries",
        "Alert deliveries in the outbox, by channel and state",
        deliveries,
    );
    let Some(counters) = &state.alert_counters else {
        return;
    };
    let sends = Family::<SendLabels, Counter>::default();
    for channel in &channels {
        for result in ["sent", "failed"] {
            sends
                .get_or_create(&SendLabels {
                    channel: channel.clone(),
                    result,
                })
                .inc_by(0);
        }
    }
    for (channel, c) in counters.snapshot() {
        let label = |result| SendLabels {
            channel: channel.clone(),
            result,
        };
        sends.get_or_create(&label("sent")).inc_by(c.sent);
        sends
            .get_or_create(&label("failed"))
            .inc_by(c.retried + c.failed);
    }
    registry.register(
        "alert_sends",
        "Alert deliveries this process's deliverer sent, or failed to send (to retry or given up), by channel",
        sends,
    );
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = render(&state).await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
