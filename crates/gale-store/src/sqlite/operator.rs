//! The SQLite backend's `impl Operator for SqliteStore`: operators' marks and clears.

use super::*;

#[async_trait]
impl Operator for SqliteStore {
    async fn mark_run(&self, run_id: RunId, mark: RunMark, by: &str) -> Result<bool> {
        let by = by.to_owned();
        self.write(move |tx| {
            let now = now_us();
            let (run_state, from) = match mark {
                RunMark::Success => ("success", "state <> 'success'"),
                RunMark::Failed => ("failed", "state <> 'failed'"),
                RunMark::Cancel => ("cancelled", "state IN ('queued', 'running')"),
            };
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE runs SET state = ?2, ended_at = ?3
                         WHERE id = ?1 AND {from}"
                    ),
                    params![run_id.0, run_state, now],
                )
                .map_err(map_err)?;
            if changed == 0 {
                return Ok(false);
            }
            let (outcome, message) = mark_words(mark, &by);
            tx.execute(
                "UPDATE attempts SET state = ?2, message = ?3, ended_at = ?4
                 WHERE (ti_id, try_number) IN (SELECT id, try_number FROM task_instances
                                               WHERE run_id = ?1 AND state = 'running')",
                params![run_id.0, outcome, message, now],
            )
            .map_err(map_err)?;
            let sql = match mark {
                RunMark::Success => {
                    "UPDATE task_instances SET state = 'success', ended_at = ?2, updated_at = ?2, retry_at = NULL
                     WHERE run_id = ?1 AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                }
                RunMark::Failed | RunMark::Cancel => {
                    "UPDATE task_instances SET
                         state = CASE WHEN state IN ('queued', 'running') THEN 'failed' ELSE 'skipped' END,
                         ended_at = ?2, updated_at = ?2, retry_at = NULL
                     WHERE run_id = ?1 AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                }
            };
            tx.execute(sql, params![run_id.0, now]).map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn mark_task(&self, ti: TiId, to: TaskState, by: &str) -> Result<bool> {
        check_task_mark(to)?;
        let (outcome, message) = task_mark_words(to, by);
        self.write(move |tx| {
            let now = now_us();
            let current: Option<(String, u32)> = tx
                .query_row(
                    "SELECT state, try_number FROM task_instances WHERE id = ?1",
                    params![ti.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(map_err)?;
            let Some((state, try_number)) = current else {
                return Ok(false);
            };
            if state == to.as_str() {
                return Ok(false);
            }
            tx.execute(
                "UPDATE task_instances SET state = ?2, ended_at = ?3, updated_at = ?3, retry_at = NULL
                 WHERE id = ?1 AND state = ?4",
                params![ti.0, to.as_str(), now, state],
            )
            .map_err(map_err)?;
            if state == "running" {
                tx.execute(
                    "UPDATE attempts SET state = ?3, message = ?4, ended_at = ?5
                     WHERE ti_id = ?1 AND try_number = ?2",
                    params![ti.0, try_number, outcome, message, now],
                )
                .map_err(map_err)?;
            }
            Ok(true)
        })
        .await
    }

    async fn clear_tasks(&self, run_id: RunId, tasks: &[ClearTask]) -> Result<usize> {
        let tasks = tasks.to_vec();
        self.write(move |tx| {
            let now = now_us();
            let mut cleared = 0;
            for t in &tasks {
                if !t.from.is_terminal() {
                    continue;
                }
                cleared += tx
                    .execute(
                        "UPDATE task_instances SET state = 'none', max_tries = ?4, worker_id = NULL,
                             heartbeat_at = NULL, queued_at = NULL, started_at = NULL, ended_at = NULL,
                             retry_at = NULL, outputs = NULL, updated_at = ?5
                         WHERE id = ?1 AND run_id = ?2 AND state = ?3",
                        params![t.ti.0, run_id.0, t.from.as_str(), t.max_tries, now],
                    )
                    .map_err(map_err)?;
            }
            if cleared > 0 {
                tx.execute(
                    "UPDATE runs SET state = 'queued', ended_at = NULL
                     WHERE id = ?1 AND state IN ('success', 'failed', 'cancelled')",
                    params![run_id.0],
                )
                .map_err(map_err)?;
            }
            Ok(cleared)
        })
        .await
    }
}
