//! The PostgreSQL backend's `impl Slots for PgStore`: the schedule-slot ledger.

use super::*;

#[async_trait]
impl Slots for PgStore {
    async fn record_slots(
        &self,
        dag_id: &DagId,
        status: SlotStatus,
        slots: &[(Timestamp, Timestamp)],
    ) -> Result<usize> {
        if slots.is_empty() {
            return Ok(0);
        }
        let id = dag_id.0.clone();
        let starts: Vec<Timestamp> = slots.iter().map(|s| s.0).collect();
        let ends: Vec<Timestamp> = slots.iter().map(|s| s.1).collect();
        let last_end = ends.iter().max().copied();
        let status = status.as_str();
        self.write(move |tx| {
            Box::pin(async move {
                let n = tx
                    .exec(
                        "INSERT INTO schedule_slots (dag_id, logical_date, interval_end, status, recorded_at)
                         SELECT $1, u.s, u.e, $4, now() FROM unnest($2::timestamptz[], $3::timestamptz[]) AS u(s, e)
                         ON CONFLICT (dag_id, logical_date) DO NOTHING",
                        &[&id, &starts, &ends, &status],
                    )
                    .await?;
                tx.exec(
                    "UPDATE dags SET last_interval_end = greatest(coalesce(last_interval_end, $2), $2)
                     WHERE dag_id = $1",
                    &[&id, &last_end],
                )
                .await?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
        })
        .await
    }

    async fn list_slots(&self, dag_id: &DagId, limit: u32) -> Result<Vec<SlotRow>> {
        let id = dag_id.0.clone();
        let limit = i64::from(slot_list_limit(limit));
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT logical_date, interval_end, status, run_id, recorded_at
                         FROM schedule_slots WHERE dag_id = $1 ORDER BY logical_date DESC LIMIT $2",
                        &[&id, &limit],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| SlotRow {
                        dag_id: DagId(id.clone()),
                        logical_date: r.get(0),
                        interval_end: r.get(1),
                        status: SlotStatus::parse(r.get(2)),
                        run_id: r.get::<_, Option<i64>>(3).map(RunId),
                        recorded_at: r.get(4),
                    })
                    .collect())
            })
        })
        .await
    }
}
