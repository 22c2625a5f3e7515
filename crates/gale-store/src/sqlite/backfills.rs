//! The SQLite backend's `impl Backfills for SqliteStore`: backfills.

use super::*;

#[async_trait]
impl Backfills for SqliteStore {
    async fn create_backfill(
        &self,
        dag_id: &DagId,
        from: Timestamp,
        to: Timestamp,
        by: Option<&str>,
    ) -> Result<i64> {
        let (dag_id, by) = (dag_id.0.clone(), by.map(str::to_owned));
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO backfills (dag_id, from_date, to_date, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![dag_id, to_micros(from), to_micros(to), by, now_us()],
            )
            .map_err(map_err)?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn list_backfills(&self, dag_id: Option<&DagId>, limit: u32) -> Result<Vec<BackfillRow>> {
        let dag_id = dag_id.map(|d| d.0.clone());
        self.call(move |conn| {
            let limit = backfill_list_limit(limit);
            let mut rows = query_all(
                conn,
                &format!(
                    "SELECT {BACKFILL_COLS} FROM backfills WHERE ?1 IS NULL OR dag_id = ?1
                     ORDER BY id DESC LIMIT ?2"
                ),
                params![dag_id, limit],
                backfill_row,
            )?;
            for b in &mut rows {
                backfill_progress(conn, b)?;
            }
            Ok(rows)
        })
        .await
    }

    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        self.call(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {BACKFILL_COLS} FROM backfills WHERE id = ?1"),
                    params![id],
                    backfill_row,
                )
                .optional()
                .map_err(map_err)?;
            match row {
                Some(mut b) => {
                    backfill_progress(conn, &mut b)?;
                    Ok(Some(b))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn cancel_backfill(&self, id: i64) -> Result<CancelBackfill> {
        self.write(move |tx| {
            let cancelled: Option<Option<i64>> = tx
                .query_row(
                    "SELECT cancelled_at FROM backfills WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            Ok(match cancelled {
                None => CancelBackfill::NotFound,
                Some(Some(_)) => CancelBackfill::AlreadyCancelled,
                Some(None) => {
                    tx.execute(
                        "UPDATE backfills SET cancelled_at = ?2 WHERE id = ?1",
                        params![id, now_us()],
                    )
                    .map_err(map_err)?;
                    CancelBackfill::Cancelled
                }
            })
        })
        .await
    }
}
