//! The PostgreSQL backend's `impl Clock for PgStore`: the store's clock.

use super::*;

#[async_trait]
impl Clock for PgStore {
    async fn now(&self) -> Result<Timestamp> {
        self.single(|c| Box::pin(async move { Ok(c.one("SELECT now()", &[]).await?.get(0)) }))
            .await
    }
}
