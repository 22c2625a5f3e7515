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
}
