//! The cluster page: every Gale process and its health, queue depths, task and
//! run counts, pools, and the database. The live part refreshes itself every
//! 5 s (`/cluster/live`).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Ctx, Layout, UiError, format, html};
use crate::AppState;
use crate::api;

/// A clock this far from the database's is worth a warning.
const SKEW_WARN_MS: f64 = 1000.0;

pub(crate) struct NodeLine {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
    pub roles: Vec<String>,
    pub version: String,
    pub state: String,
    /// `ok`, `warn` or `bad`: the health dot.
    pub health: &'static str,
    pub started: String,
    pub started_title: String,
    pub heartbeat: String,
    pub running: u32,
    pub skew: String,
    pub skew_warn: bool,
}

pub(crate) struct PoolLine {
    pub name: String,
    pub slots: u32,
    pub running: u32,
    pub queued: u32,
    pub waiting: u32,
    pub percent: u32,
    pub description: String,
}

pub(crate) struct Live {
    pub nodes: Vec<NodeLine>,
    pub n_running: usize,
    pub queues: Vec<(String, u64)>,
    pub runs: Vec<(String, u64)>,
    pub tasks: Vec<(String, u64)>,
    pub pools: Vec<PoolLine>,
    pub endpoint: String,
    pub schema_version: i64,
    pub version: &'static str,
    pub checked: String,
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct ClusterPage {
    page: Layout,
    live: Live,
}

#[derive(Template)]
#[template(path = "cluster_live.html")]
struct ClusterFragment {
    live: Live,
}

pub async fn page(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let res = async {
        let live = live(&s).await?;
        Ok(ctx.page(
            StatusCode::OK,
            &ClusterPage {
                page: ctx.layout("cluster"),
                live,
            },
        ))
    }
    .await;
    ctx.respond(res)
}

pub async fn fragment(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let res = async {
        Ok(html(&ClusterFragment {
            live: live(&s).await?,
        }))
    }
    .await;
    ctx.respond(res)
}

/// The counts of `states`, in that order, zeros included.
fn fixed(counts: &BTreeMap<String, u64>, states: &[&str]) -> Vec<(String, u64)> {
    states
        .iter()
        .map(|s| ((*s).to_owned(), counts.get(*s).copied().unwrap_or(0)))
        .collect()
}

/// `+12 ms`, `-3 ms`, `0 ms`.
pub(crate) fn skew(ms: f64) -> String {
    let rounded = ms.round();
    if rounded == 0.0 {
        "0 ms".to_owned()
    } else {
        format!("{rounded:+} ms")
    }
}

async fn live(s: &AppState) -> Result<Live, UiError> {
    let store = &*s.store;
    let nodes = api::cluster::nodes(store).await.map_err(|e| {
        tracing::warn!(detail = %e.detail, "cluster page: listing nodes failed");
        UiError::Unavailable
    })?;
    let now = store.now().await?;
    let counts = store.counts().await?;
    let pools = store.list_pools().await?;
    let n_running = nodes.iter().filter(|n| n.state == "running").count();
    Ok(Live {
        n_running,
        nodes: nodes
            .into_iter()
            .map(|n| NodeLine {
                health: match n.state.as_str() {
                    "running" => "ok",
                    "unresponsive" => "bad",
                    _ => "",
                },
                skew_warn: n.clock_skew_ms.abs() > SKEW_WARN_MS,
                skew: skew(n.clock_skew_ms),
                node_id: n.node_id,
                host: n.host,
                pid: n.pid,
                roles: n.roles,
                version: n.version,
                state: n.state,
                started: format::ago(n.started_at, now),
                started_title: format::ts(n.started_at),
                heartbeat: format!("{} ago", format::duration(n.heartbeat_age_s)),
                running: n.running_attempts,
            })
            .collect(),
        queues: counts.queued_by_queue.into_iter().collect(),
        runs: fixed(&counts.runs_by_state, &["queued", "running"]),
        tasks: fixed(
            &counts.tasks_by_state,
            &["none", "scheduled", "queued", "running", "up_for_retry"],
        ),
        pools: pools
            .into_iter()
            .map(|p| PoolLine {
                percent: (p.running * 100)
                    .checked_div(p.slots)
                    .map_or(100, |pct| pct.min(100)),
                name: p.name,
                slots: p.slots,
                running: p.running,
                queued: p.queued,
                waiting: p.waiting,
                description: p.description.unwrap_or_default(),
            })
            .collect(),
        endpoint: store.endpoint(),
        schema_version: store.schema_version().await?,
        version: env!("CARGO_PKG_VERSION"),
        checked: format::ts(now),
    })
}
