//! Nodes: one row per Gale process, with its roles, heartbeat, clock skew
//! and the attempt lease its worker fences itself by.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
    pub roles: Vec<String>,
    pub version: String,
    /// `running` or `stopped`.
    pub state: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// The node's clock minus the store's, as of its last heartbeat (output only).
    pub clock_skew_us: i64,
    /// The attempt lease its worker fences itself by (0: no worker role). A
    /// reaper never ends this worker's attempts sooner, whatever its own lease.
    pub attempt_lease_ms: u64,
    /// Attempts running under this node's worker (output only).
    pub running_attempts: u32,
}

/// The nodes (Gale processes) of the cluster.
#[async_trait]
pub trait Nodes: Send + Sync + 'static {
    /// Records (or, on a restart, replaces) a process's row; `clock_skew_us` and
    /// `running_attempts` are ignored.
    async fn register_node(&self, node: &NodeRow) -> Result<()>;

    /// Renews a node's heartbeat on the store's clock and records how far the
    /// node's own clock (`local_now`, read just before the call) is from it.
    async fn heartbeat_node(&self, node_id: &str, local_now: Timestamp) -> Result<()>;

    async fn set_node_state(&self, node_id: &str, state: &str) -> Result<()>;

    async fn list_nodes(&self) -> Result<Vec<NodeRow>>;
}
