//! The SQLite backend's `impl Clock for SqliteStore`: the store's clock.

use super::*;

#[async_trait]
impl Clock for SqliteStore {
    async fn now(&self) -> Result<Timestamp> {
        Ok(Timestamp::now())
    }
}
