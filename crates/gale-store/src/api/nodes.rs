//! Nodes: one row per Gale process, with its roles, heartbeat, clock skew
//! and the attempt lease its worker fences itself by.

use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

/// Whether a node's process is up, as its row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Running,
    /// It stopped on its own (shutdown).
    Stopped,
    /// Found dead by a later process on its host, which recovered its attempts.
    Dead,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Running => "running",
            NodeState::Stopped => "stopped",
            NodeState::Dead => "dead",
        }
    }

    /// The state a stored string names. Only the three are ever written;
    /// anything else reads as stopped.
    pub fn parse(s: &str) -> NodeState {
        match s {
            "running" => NodeState::Running,
            "dead" => NodeState::Dead,
            _ => NodeState::Stopped,
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for NodeState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
    pub roles: Vec<String>,
    pub version: String,
    /// `running`, `stopped` or `dead`.
    pub state: NodeState,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// The node's clock minus the store's, as of its last heartbeat (output only).
    pub clock_skew_us: i64,
    /// The attempt lease its worker fences itself by (0: no worker role). A
    /// reaper never ends this worker's attempts sooner, whatever its own lease.
    pub attempt_lease_ms: u64,
    /// Attempts running under this node's worker (output only).
    pub running_attempts: u32,
    /// The queues its worker claims from (none: no worker role).
    pub queues: Vec<String>,
}

/// A comma-separated list as stored (roles, queues), without empty items.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
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

    async fn set_node_state(&self, node_id: &str, state: NodeState) -> Result<()>;

    async fn list_nodes(&self) -> Result<Vec<NodeRow>>;
}
