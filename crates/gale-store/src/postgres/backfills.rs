//! The PostgreSQL backend's `impl Backfills for PgStore`: backfills.

use super::*;

#[async_trait]
impl Backfills for PgStore {
    async fn create_backfill(
        &self,
        dag_id: &DagId,
        from: Timestamp,
        to: Timestamp,
        by: Option<&str>,
    ) -> Result<i64> {
        let (dag_id, by) = (dag_id.0.clone(), by.map(str::to_owned));
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.one(
                    "INSERT INTO backfills (dag_id, from_date, to_date, created_by, created_at)
                     VALUES ($1, $2, $3, $4, now()) RETURNING id",
                    &[&dag_id, &from, &to, &by],
                )
                .await?
                .get(0))
            })
        })
        .await
    }

    async fn list_backfills(&self, dag_id: Option<&DagId>, limit: u32) -> Result<Vec<BackfillRow>> {
        let dag_id = dag_id.map(|d| d.0.clone());
        let limit = i64::from(backfill_list_limit(limit));
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {BACKFILL_COLS} FROM backfills b
                     WHERE $1::text IS NULL OR b.dag_id = $1 ORDER BY b.id DESC LIMIT $2"
                );
                Ok(c.rows(&sql, &[&dag_id, &limit])
                    .await?
                    .iter()
                    .map(backfill_row)
                    .collect())
            })
        })
        .await
    }

    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {BACKFILL_COLS} FROM backfills b WHERE b.id = $1");
                Ok(c.opt(&sql, &[&id]).await?.as_ref().map(backfill_row))
            })
        })
        .await
    }

    async fn cancel_backfill(&self, id: i64) -> Result<CancelBackfill> {
        self.write(move |tx| {
            Box::pin(async move {
                let Some(row) = tx
                    .opt(
                        "SELECT cancelled_at FROM backfills WHERE id = $1 FOR UPDATE",
                        &[&id],
                    )
                    .await?
                else {
                    return Ok(CancelBackfill::NotFound);
                };
                if row.get::<_, Option<Timestamp>>(0).is_some() {
                    return Ok(CancelBackfill::AlreadyCancelled);
                }
                tx.exec(
                    "UPDATE backfills SET cancelled_at = now() WHERE id = $1",
                    &[&id],
                )
                .await?;
                Ok(CancelBackfill::Cancelled)
            })
        })
        .await
    }
}
