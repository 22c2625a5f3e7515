//! The SQLite backend's `impl Pools for SqliteStore`: pools.

use super::*;

#[async_trait]
impl Pools for SqliteStore {
    async fn set_pool(&self, name: &str, slots: u32, description: Option<&str>) -> Result<()> {
        let (name, description) = (name.to_owned(), description.map(str::to_owned));
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO pools (name, slots, description, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET slots = ?2, description = ?3, updated_at = ?4",
                params![name, slots, description, now_us()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM pools WHERE name = ?1", params![name])
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn list_pools(&self) -> Result<Vec<PoolRow>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT p.name, p.slots, p.description,
                     (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'queued'),
                     (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'running'),
                     (SELECT count(*) FROM task_instances t WHERE t.pool = p.name AND t.state = 'scheduled')
                 FROM pools p ORDER BY p.name",
                [],
                |r| {
                    Ok(PoolRow {
                        name: r.get(0)?,
                        slots: r.get(1)?,
                        description: r.get(2)?,
                        queued: r.get(3)?,
                        running: r.get(4)?,
                        waiting: r.get(5)?,
                    })
                },
            )
        })
        .await
    }
}
