//! Health for load balancers and orchestrators. `/health` answers 200 only when
//! this node can serve: the database answers and at least one scheduler is
//! alive (so runs move); else 503, with the reasons in the JSON.
//! `/health/live`: the process is up. `/health/ready`: the database answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gale_store::{NodeRow, NodeState};
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// A node whose heartbeat is older than this is not counted as live.
pub const LIVE_WITHIN: Duration = Duration::from_secs(15);
/// How long a health check waits for the database.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    pub database: DatabaseHealth,
    pub schedulers: Vec<LiveNode>,
    pub workers: Vec<LiveNode>,
    /// Why the status is not `ok`.
    pub problems: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseHealth {
    pub reachable: bool,
    /// Round trip of one query, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Where the database is (never with a password).
    pub endpoint: String,
    pub schema_version: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LiveNode {
    pub node_id: String,
    pub host: String,
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: Timestamp,
    pub heartbeat_age_s: f64,
}

/// Checks the database and the live nodes.
pub async fn check(state: &AppState) -> Health {
    let started = Instant::now();
    let store = state.store.clone();
    let probe = tokio::time::timeout(DB_TIMEOUT, async move {
        let version = store.schema_version().await?;
        let now = store.now().await?;
        let nodes = store.list_nodes().await?;
        Ok::<_, gale_store::Error>((version, now, nodes))
    })
    .await;
    let latency = started.elapsed();
    let mut problems = Vec::new();
    let (database, nodes, now) = match probe {
        Ok(Ok((version, now, nodes))) => (
            DatabaseHealth {
                reachable: true,
                latency_ms: Some(latency.as_secs_f64() * 1000.0),
                endpoint: state.store.endpoint(),
                schema_version: Some(version),
            },
            nodes,
            now,
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            problems.push("the database is unreachable".to_owned());
            (unreachable_db(state), Vec::new(), Timestamp::now())
        }
        Err(_) => {
            problems.push(format!(
                "the database did not answer within {}s",
                DB_TIMEOUT.as_secs()
            ));
            (unreachable_db(state), Vec::new(), Timestamp::now())
        }
    };
    let live = |role: &str| -> Vec<LiveNode> {
        nodes
            .iter()
            .filter(|n| n.state == NodeState::Running && n.roles.iter().any(|r| r == role))
            .filter_map(|n| live_node(n, now))
            .collect()
    };
    let (schedulers, workers) = (live("scheduler"), live("worker"));
    if database.reachable && schedulers.is_empty() {
        problems.push("no live scheduler: runs will not move".to_owned());
    }
    Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "unavailable"
        },
        database,
        schedulers,
        workers,
        problems,
    }
}

fn unreachable_db(state: &AppState) -> DatabaseHealth {
    DatabaseHealth {
        reachable: false,
        latency_ms: None,
        endpoint: state.store.endpoint(),
        schema_version: None,
    }
}

fn live_node(n: &NodeRow, now: Timestamp) -> Option<LiveNode> {
    let age = now.duration_since(n.heartbeat_at).as_secs_f64().max(0.0);
    (age <= LIVE_WITHIN.as_secs_f64()).then(|| LiveNode {
        node_id: n.node_id.clone(),
        host: n.host.clone(),
        heartbeat_at: n.heartbeat_at,
        heartbeat_age_s: (age * 10.0).round() / 10.0,
    })
}

/// Whether this node can serve, with the database, live schedulers and workers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "This node can serve", body = Health),
              (status = 503, description = "It cannot: see `problems`", body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let h = check(&state).await;
    let code = if h.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(h)).into_response()
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is up")))]
pub async fn live() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// The database answers, so this webserver can serve requests.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "The database does not answer")))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    match tokio::time::timeout(DB_TIMEOUT, async move { store.now().await }).await {
        Ok(Ok(_)) => axum::Json(serde_json::json!({ "status": "ok" })).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "problems": ["the database is unreachable"] })),
        )
            .into_response(),
    }
}
