//! The database itself: its schema version and where it is.

use async_trait::async_trait;

use crate::*;

/// The database itself.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// The schema version the database is at.
    async fn schema_version(&self) -> Result<i64>;

    /// Where the store is, for people: a file path, or hosts and database
    /// (never a password).
    fn endpoint(&self) -> String;

    /// Which server answers writes now (its address and when it started), for
    /// telling a failover: a networked store moved to a new primary. `None`
    /// for an embedded store.
    async fn primary_identity(&self) -> Result<Option<String>> {
        Ok(None)
    }
}
