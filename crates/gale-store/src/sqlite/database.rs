//! The SQLite backend's `impl Database for SqliteStore`: the schema version and the endpoint.

use super::*;

#[async_trait]
impl Database for SqliteStore {
    async fn schema_version(&self) -> Result<i64> {
        self.call(|conn| {
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(map_err)
        })
        .await
    }

    fn endpoint(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}
