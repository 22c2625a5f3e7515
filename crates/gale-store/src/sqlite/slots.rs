//! The SQLite backend's `impl Slots for SqliteStore`: the schedule-slot ledger.

use super::*;

#[async_trait]
impl Slots for SqliteStore {
    async fn record_slots(
        &self,
        dag_id: &DagId,
        status: SlotStatus,
        slots: &[(Timestamp, Timestamp)],
    ) -> Result<usize> {
        if slots.is_empty() {
            return Ok(0);
        }
        let (dag_id, slots) = (dag_id.0.clone(), slots.to_vec());
        self.write(move |tx| {
            let now = now_us();
            let mut n = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO schedule_slots (dag_id, logical_date, interval_end,
                             status, recorded_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(map_err)?;
                for (start, end) in &slots {
                    n += stmt
                        .execute(params![
                            dag_id,
                            to_micros(*start),
                            to_micros(*end),
                            status.as_str(),
                            now
                        ])
                        .map_err(map_err)?;
                }
            }
            if let Some(last_end) = slots.iter().map(|s| s.1).max() {
                tx.execute(
                    "UPDATE dags SET last_interval_end = max(coalesce(last_interval_end, ?2), ?2)
                     WHERE dag_id = ?1",
                    params![dag_id, to_micros(last_end)],
                )
                .map_err(map_err)?;
            }
            Ok(n)
        })
        .await
    }

    async fn list_slots(&self, dag_id: &DagId, limit: u32) -> Result<Vec<SlotRow>> {
        let dag_id = dag_id.0.clone();
        let limit = slot_list_limit(limit);
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT logical_date, interval_end, status, run_id, recorded_at
                     FROM schedule_slots WHERE dag_id = ?1 ORDER BY logical_date DESC LIMIT ?2",
                params![dag_id, limit],
                |r| {
                    Ok(SlotRow {
                        dag_id: DagId(dag_id.clone()),
                        logical_date: ts(r.get(0)?),
                        interval_end: ts(r.get(1)?),
                        status: SlotStatus::parse(&r.get::<_, String>(2)?),
                        run_id: r.get::<_, Option<i64>>(3)?.map(RunId),
                        recorded_at: ts(r.get(4)?),
                    })
                },
            )
        })
        .await
    }
}
