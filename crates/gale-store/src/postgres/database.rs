//! The PostgreSQL backend's `impl Database for PgStore`: the schema version and the endpoint.

use super::*;

#[async_trait]
impl Database for PgStore {
    async fn schema_version(&self) -> Result<i64> {
        self.single(|c| {
            Box::pin(async move {
                Ok(
                    c.one("SELECT coalesce(max(version), 0) FROM gale_schema", &[])
                        .await?
                        .get(0),
                )
            })
        })
        .await
    }

    fn endpoint(&self) -> String {
        endpoint_of(&self.config)
    }
}
