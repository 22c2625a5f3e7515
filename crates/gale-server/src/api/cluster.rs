//! The cluster: Gale's version, its processes (nodes) and its pools.

use axum::extract::State;
use gale_store::Store;
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use crate::error::{ApiResult, Json, Problem};

#[derive(Serialize, ToSchema)]
pub struct Version {
    pub version: String,
    pub schema_version: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Node {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
    pub roles: Vec<String>,
    pub version: String,
    /// `running`, `unresponsive` (no recent heartbeat) or `stopped`.
    pub state: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: Timestamp,
    pub heartbeat_age_s: f64,
    pub running_attempts: u32,
    /// The node's clock minus the database's, in milliseconds.
    pub clock_skew_ms: f64,
}

#[derive(Serialize, ToSchema)]
pub struct Pool {
    pub name: String,
    pub slots: u32,
    pub description: Option<String>,
    pub queued: u32,
    pub running: u32,
    /// Ready to start, waiting for a slot (or another limit).
    pub waiting: u32,
}

/// Gale's version and the database schema version.
#[utoipa::path(get, path = "/api/v1/version", tag = "cluster",
    responses((status = 200, body = Version), (status = 503, body = Problem)))]
pub(super) async fn version(State(s): Shared) -> ApiResult<Json<Version>> {
    Ok(Json(Version {
        version: env!("CARGO_PKG_VERSION").into(),
        schema_version: s.store.schema_version().await?,
    }))
}

/// Every Gale process: roles, state, heartbeat age, running attempts.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "cluster",
    responses((status = 200, body = Vec<Node>)))]
pub(super) async fn list_nodes(State(s): Shared) -> ApiResult<Json<Vec<Node>>> {
    Ok(Json(nodes(&*s.store).await?))
}

/// The cluster's processes, as `/api/v1/nodes` and the cluster page show them.
pub async fn nodes(store: &dyn Store) -> ApiResult<Vec<Node>> {
    let now = store.now().await?;
    Ok(store
        .list_nodes()
        .await?
        .into_iter()
        .map(|n| {
            let age = now.duration_since(n.heartbeat_at).as_secs_f64().max(0.0);
            let state = if n.state != "running" {
                n.state.to_string()
            } else if age > crate::health::LIVE_WITHIN.as_secs_f64() {
                "unresponsive".into()
            } else {
                "running".into()
            };
            Node {
                node_id: n.node_id,
                host: n.host,
                pid: n.pid,
                roles: n.roles,
                version: n.version,
                state,
                started_at: n.started_at,
                heartbeat_at: n.heartbeat_at,
                heartbeat_age_s: (age * 10.0).round() / 10.0,
                running_attempts: n.running_attempts,
                clock_skew_ms: n.clock_skew_us as f64 / 1000.0,
            }
        })
        .collect())
}

/// Pools with their slots and use.
#[utoipa::path(get, path = "/api/v1/pools", tag = "cluster",
    responses((status = 200, body = Vec<Pool>)))]
pub(super) async fn list_pools(State(s): Shared) -> ApiResult<Json<Vec<Pool>>> {
    Ok(Json(
        s.store
            .list_pools()
            .await?
            .into_iter()
            .map(|p| Pool {
                name: p.name,
                slots: p.slots,
                description: p.description,
                queued: p.queued,
                running: p.running,
                waiting: p.waiting,
            })
            .collect(),
    ))
}
