//! The PostgreSQL backend's `impl Pools for PgStore`: pools.

use super::*;

#[async_trait]
impl Pools for PgStore {
    async fn set_pool(&self, name: &str, slots: u32, description: Option<&str>) -> Result<()> {
        let (name, description) = (name.to_owned(), description.map(str::to_owned));
        let slots = i32_of(slots);
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO pools (name, slots, description, updated_at) VALUES ($1, $2, $3, now())
                     ON CONFLICT (name) DO UPDATE SET slots = $2, description = $3, updated_at = now()",
                    &[&name, &slots, &description],
                )
                .await?;
                // More room may let waiting task instances be queued.
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&origin]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .exec("DELETE FROM pools WHERE name = $1", &[&name])
                    .await?
                    > 0)
            })
        })
        .await
    }

    async fn list_pools(&self) -> Result<Vec<PoolRow>> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT p.name, p.slots, p.description,
                             (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'queued'),
                             (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'running'),
                     (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'scheduled')
                         FROM pools p ORDER BY p.name",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| PoolRow {
                        name: r.get(0),
                        slots: u32_of(r.get(1)),
                        description: r.get(2),
                        queued: u32::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                        running: u32::try_from(r.get::<_, i64>(4)).unwrap_or(0),
                        waiting: u32::try_from(r.get::<_, i64>(5)).unwrap_or(0),
                    })
                    .collect())
            })
        })
        .await
    }
}
