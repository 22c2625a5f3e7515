//! The store's clock, the one lease arithmetic uses (see the crate docs).

use async_trait::async_trait;
use jiff::Timestamp;

use crate::*;

/// The store's clock: leases and heartbeats are measured on it.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The store's clock: leases and heartbeats are measured on it.
    async fn now(&self) -> Result<Timestamp>;
}
