//! Pools: named slot counts that the attempts of every task naming them share.

use async_trait::async_trait;
use serde::Serialize;

use crate::*;

/// A pool: a number of slots that the attempts of every task naming it share,
/// across DAGs (e.g. connections to one database).
#[derive(Clone, Debug, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub slots: u32,
    pub description: Option<String>,
    /// Task instances of this pool now queued, and running (output only).
    pub queued: u32,
    pub running: u32,
    /// Task instances of this pool ready to start but not yet queued: waiting
    /// for a slot (or another limit) (output only).
    #[serde(default)]
    pub waiting: u32,
}

/// Pools of slots shared across DAGs.
#[async_trait]
pub trait Pools: Send + Sync + 'static {
    /// Creates a pool or changes its slots and description.
    async fn set_pool(&self, name: &str, slots: u32, description: Option<&str>) -> Result<()>;

    /// Returns false when there was no such pool.
    async fn delete_pool(&self, name: &str) -> Result<bool>;

    async fn list_pools(&self) -> Result<Vec<PoolRow>>;
}
