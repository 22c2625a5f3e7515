//! The PostgreSQL backend's `impl Operator for PgStore`: operators' marks and clears.

use super::*;

#[async_trait]
impl Operator for PgStore {
    async fn mark_run(&self, run_id: RunId, mark: RunMark, by: &str) -> Result<bool> {
        let (outcome, message) = mark_words(mark, by);
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (run_state, from) = match mark {
                    RunMark::Success => ("success", "state <> 'success'"),
                    RunMark::Failed => ("failed", "state <> 'failed'"),
                    RunMark::Cancel => ("cancelled", "state IN ('queued', 'running')"),
                };
                let changed = tx
                    .exec(
                        &format!(
                            "UPDATE runs SET state = $2, ended_at = now()
                             WHERE id = $1 AND {from}"
                        ),
                        &[&run_id.0, &run_state],
                    )
                    .await?;
                if changed == 0 {
                    return Ok(false);
                }
                // Lock the run's unfinished task instances first: a claim that
                // commits after this statement skips them, and one in progress is
                // waited for, so the attempt it opened is ended below (instead of
                // its task failing under an attempt left `running`).
                tx.exec(
                    "SELECT 1 FROM task_instances
                     WHERE run_id = $1
                       AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')
                     FOR UPDATE",
                    &[&run_id.0],
                )
                .await?;
                tx.exec(
                    "UPDATE attempts a SET state = $2, message = $3, ended_at = now()
                     FROM task_instances t
                     WHERE t.run_id = $1 AND t.state = 'running'
                       AND a.ti_id = t.id AND a.try_number = t.try_number",
                    &[&run_id.0, &outcome, &message],
                )
                .await?;
                let sql = match mark {
                    RunMark::Success => {
                        "UPDATE task_instances SET state = 'success', ended_at = now(), updated_at = now(),
                             retry_at = NULL
                         WHERE run_id = $1
                           AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                    }
                    RunMark::Failed | RunMark::Cancel => {
                        "UPDATE task_instances SET
                             state = CASE WHEN state IN ('queued', 'running') THEN 'failed' ELSE 'skipped' END,
                             ended_at = now(), updated_at = now(), retry_at = NULL
                         WHERE run_id = $1
                           AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')"
                    }
                };
                tx.exec(sql, &[&run_id.0]).await?;
                let payload = format!("{origin} {}", run_id.0);
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&payload])
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn mark_task(&self, ti: TiId, to: TaskState, by: &str) -> Result<bool> {
        check_task_mark(to)?;
        let (outcome, message) = task_mark_words(to, by);
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let Some(row) = tx
                    .opt(
                        "SELECT state, try_number, run_id FROM task_instances WHERE id = $1 FOR UPDATE",
                        &[&ti.0],
                    )
                    .await?
                else {
                    return Ok(false);
                };
                let (state, try_number, run_id): (String, i32, i64) =
                    (row.get(0), row.get(1), row.get(2));
                if state == to.as_str() {
                    return Ok(false);
                }
                tx.exec(
                    "UPDATE task_instances SET state = $2, ended_at = now(), updated_at = now(),
                         retry_at = NULL
                     WHERE id = $1",
                    &[&ti.0, &to.as_str()],
                )
                .await?;
                if state == "running" {
                    tx.exec(
                        "UPDATE attempts SET state = $3, message = $4, ended_at = now()
                         WHERE ti_id = $1 AND try_number = $2",
                        &[&ti.0, &try_number, &outcome, &message],
                    )
                    .await?;
                }
                let payload = format!("{origin} {run_id}");
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&payload])
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn clear_tasks(&self, run_id: RunId, tasks: &[ClearTask]) -> Result<usize> {
        let ids: Vec<i64> = tasks
            .iter()
            .filter(|t| t.from.is_terminal())
            .map(|t| t.ti.0)
            .collect();
        let froms: Vec<&'static str> = tasks
            .iter()
            .filter(|t| t.from.is_terminal())
            .map(|t| t.from.as_str())
            .collect();
        let tries: Vec<i32> = tasks
            .iter()
            .filter(|t| t.from.is_terminal())
            .map(|t| i32_of(t.max_tries))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let cleared = tx
                    .exec(
                        "UPDATE task_instances t SET state = 'none', max_tries = c.tries,
                             worker_id = NULL, heartbeat_at = NULL, queued_at = NULL,
                             started_at = NULL, ended_at = NULL, retry_at = NULL, outputs = NULL,
                             updated_at = now()
                         FROM unnest($2::bigint[], $3::text[], $4::int[]) AS c(id, from_state, tries)
                         WHERE t.id = c.id AND t.run_id = $1 AND t.state = c.from_state",
                        &[&run_id.0, &ids, &froms, &tries],
                    )
                    .await?;
                if cleared > 0 {
                    tx.exec(
                        "UPDATE runs SET state = 'queued', ended_at = NULL
                         WHERE id = $1 AND state IN ('success', 'failed', 'cancelled')",
                        &[&run_id.0],
                    )
                    .await?;
                    let payload = format!("{origin} {}", run_id.0);
                    tx.exec("SELECT pg_notify('gale_changed', $1)", &[&payload])
                        .await?;
                }
                Ok(usize::try_from(cleared).unwrap_or(0))
            })
        })
        .await
    }
}
