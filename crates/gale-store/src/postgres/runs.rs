//! The PostgreSQL backend's `impl Runs for PgStore`: runs and their task instances: creation, promotion, transitions and the reads.

use super::*;

#[async_trait]
impl Runs for PgStore {
    async fn create_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        let run = run.clone();
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let id = insert_run(tx, &run).await?;
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&origin])
                    .await?;
                Ok(id)
            })
        })
        .await
    }

    async fn create_runs(&self, runs: &[NewRun]) -> Result<Vec<Option<RunId>>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let runs = runs.to_vec();
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let mut ids = Vec::with_capacity(runs.len());
                for run in &runs {
                    ids.push(match insert_run(tx, run).await {
                        // A DAG gone: found by its row's absence, so the
                        // transaction goes on. Any other refusal aborted it.
                        Err(Error::Invalid(why)) if why == no_such_dag(run.dag_id.as_str()) => None,
                        other => other?,
                    });
                }
                tx.exec("SELECT pg_notify('gale_changed', $1)", &[&origin])
                    .await?;
                Ok(ids)
            })
        })
        .await
    }

    async fn count_active_runs_of(&self, dags: &[DagId]) -> Result<Vec<(DagId, u32)>> {
        let ids: Vec<String> = dags.iter().map(|d| d.0.clone()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT dag_id, count(*) FROM runs
                         WHERE dag_id = ANY($1) AND state IN ('queued', 'running') GROUP BY dag_id",
                        &[&ids],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let n: i64 = r.get(1);
                        (DagId(r.get(0)), u32::try_from(n).unwrap_or(u32::MAX))
                    })
                    .collect())
            })
        })
        .await
    }

    async fn count_active_runs(&self, dag_id: &DagId) -> Result<u32> {
        let id = dag_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let n: i64 = c
                    .one(
                        "SELECT count(*) FROM runs WHERE dag_id = $1 AND state IN ('queued', 'running')",
                        &[&id],
                    )
                    .await?
                    .get(0);
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            })
        })
        .await
    }

    async fn promote_runs(&self) -> Result<Vec<RunId>> {
        // Most calls find nothing to start: answer those without a transaction.
        let any: bool = self
            .single(|c| {
                Box::pin(async move {
                    Ok(c.one(
                        "SELECT EXISTS (SELECT 1 FROM runs r JOIN dags d ON d.dag_id = r.dag_id
                         WHERE r.state = 'queued' AND NOT d.paused)",
                        &[],
                    )
                    .await?
                    .get(0))
                })
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            Box::pin(async move {
                // The DAG rows guard `max_active_runs`: a DAG another scheduler is
                // promoting right now is left to it.
                let locked: Vec<String> = tx
                    .rows(
                        "SELECT d.dag_id FROM dags d
                         WHERE NOT d.paused
                           AND EXISTS (SELECT 1 FROM runs r WHERE r.dag_id = d.dag_id AND r.state = 'queued')
                         ORDER BY d.dag_id LIMIT 1000
                         FOR UPDATE OF d SKIP LOCKED",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if locked.is_empty() {
                    return Ok(Vec::new());
                }
                // A new statement: its snapshot sees every promotion committed
                // before the locks above were granted.
                let rows = tx
                    .rows(
                        "WITH ranked AS (
                             SELECT r.id,
                                    row_number() OVER (PARTITION BY r.dag_id ORDER BY r.logical_date, r.id) AS n,
                                    d.max_active_runs - (SELECT count(*) FROM runs x
                                        WHERE x.dag_id = r.dag_id AND x.state = 'running') AS room
                             FROM runs r JOIN dags d ON d.dag_id = r.dag_id
                             WHERE r.state = 'queued' AND r.dag_id = ANY($1))
                         UPDATE runs SET state = 'running', started_at = clock_timestamp()
                         FROM ranked WHERE runs.id = ranked.id AND ranked.n <= ranked.room
                           AND runs.state = 'queued'
                         RETURNING runs.id",
                        &[&locked],
                    )
                    .await?;
                let mut ids: Vec<RunId> = rows.iter().map(|r| RunId(r.get(0))).collect();
                ids.sort();
                Ok(ids)
            })
        })
        .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let dag_id = filter.dag_id.as_ref().map(|d| d.0.clone());
        let state = filter.state.map(|s| s.as_str());
        let run_type = filter.run_type.map(|t| t.as_str());
        let before = filter.before.map(|r| r.0);
        let limit = i64::from(run_list_limit(filter.limit));
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {RUN_COLS} FROM runs
                     WHERE ($1::text IS NULL OR dag_id = $1) AND ($2::text IS NULL OR state = $2)
                       AND ($4::text IS NULL OR run_type = $4) AND ($5::bigint IS NULL OR id < $5)
                     ORDER BY id DESC LIMIT $3"
                );
                Ok(c.rows(&sql, &[&dag_id, &state, &limit, &run_type, &before])
                    .await?
                    .iter()
                    .map(run_row)
                    .collect())
            })
        })
        .await
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<RunRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1");
                Ok(c.opt(&sql, &[&run_id.0]).await?.as_ref().map(run_row))
            })
        })
        .await
    }

    async fn running_runs(&self, after: RunId, limit: u32) -> Result<Vec<RunRow>> {
        let limit = i64::from(limit);
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {RUN_COLS} FROM runs WHERE state = 'running' AND id > $1
                     ORDER BY id LIMIT $2"
                );
                Ok(c.rows(&sql, &[&after.0, &limit])
                    .await?
                    .iter()
                    .map(run_row)
                    .collect())
            })
        })
        .await
    }

    async fn running_runs_by_id(&self, runs: &[RunId]) -> Result<Vec<RunRow>> {
        let ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {RUN_COLS} FROM runs WHERE id = ANY($1) AND state = 'running' ORDER BY id"
                );
                Ok(c.rows(&sql, &[&ids]).await?.iter().map(run_row).collect())
            })
        })
        .await
    }

    async fn finish_run(
        &self,
        run_id: RunId,
        state: RunState,
        alerts: &[NewDelivery],
    ) -> Result<bool> {
        let state = state.as_str();
        let mut rows = outbox::Rows::default();
        rows.add(run_id.0, 0, alerts)?;
        // One statement: the run's end and, only if it applied, its alerts.
        let sql = if rows.is_empty() {
            "UPDATE runs SET state = $2, ended_at = now() WHERE id = $1 AND state = 'running'
             RETURNING id"
                .to_owned()
        } else {
            format!(
                "WITH r AS (
                     UPDATE runs SET state = $2, ended_at = now() WHERE id = $1 AND state = 'running'
                     RETURNING id),
                 d AS ({})
                 SELECT id FROM r",
                outbox::insert_cte(3, "JOIN r ON r.id = x.cause")
            )
        };
        self.single(move |tx| {
            Box::pin(async move {
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&run_id.0, &state];
                if !rows.is_empty() {
                    params.extend(rows.params());
                }
                Ok(!tx.rows(&sql, &params).await?.is_empty())
            })
        })
        .await
    }

    async fn previous_finished_run(&self, dag_id: &DagId, before: RunId) -> Result<Option<RunRow>> {
        let dag_id = dag_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {RUN_COLS} FROM runs
                     WHERE dag_id = $1 AND id < $2 AND state IN ('success', 'failed')
                     ORDER BY id DESC LIMIT 1"
                );
                Ok(c.opt(&sql, &[&dag_id, &before.0])
                    .await?
                    .as_ref()
                    .map(run_row))
            })
        })
        .await
    }

    async fn run_tasks(&self, run_id: RunId) -> Result<Vec<TaskRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql =
                    format!("SELECT {TI_COLS} FROM task_instances WHERE run_id = $1 ORDER BY id");
                Ok(c.rows(&sql, &[&run_id.0])
                    .await?
                    .iter()
                    .map(ti_row)
                    .collect())
            })
        })
        .await
    }

    async fn run_state_counts(&self, run_id: RunId) -> Result<Vec<(TaskState, u32)>> {
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT state, count(*) FROM task_instances WHERE run_id = $1 GROUP BY state",
                        &[&run_id.0],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let state: TaskState = r.get::<_, &str>(0).parse().map_err(|e: String| {
                            Error::Database(format!("task instance state: {e}"))
                        })?;
                        Ok((state, u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX)))
                    })
                    .collect()
            })
        })
        .await
    }

    async fn run_activity(&self, run_id: RunId) -> Result<RunActivity> {
        self.single(move |c| {
            Box::pin(async move {
                let r = c
                    .one(
                        "SELECT EXISTS (SELECT 1 FROM task_instances WHERE run_id = $1
                                        AND state IN ('none', 'scheduled', 'up_for_retry')),
                                EXISTS (SELECT 1 FROM task_instances WHERE run_id = $1
                                        AND state IN ('queued', 'running'))",
                        &[&run_id.0],
                    )
                    .await?;
                Ok(RunActivity {
                    pending: r.get(0),
                    in_flight: r.get(1),
                })
            })
        })
        .await
    }

    async fn apply_transitions(&self, transitions: &[Transition]) -> Result<usize> {
        if transitions.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = transitions.iter().map(|t| t.ti.0).collect();
        let from: Vec<&str> = transitions.iter().map(|t| t.from.as_str()).collect();
        let to: Vec<&str> = transitions.iter().map(|t| t.to.as_str()).collect();
        let retry_at: Vec<Option<Timestamp>> = transitions.iter().map(|t| t.retry_at).collect();
        let terminal: Vec<bool> = transitions.iter().map(|t| t.to.is_terminal()).collect();
        let origin = self.origin.clone();
        self.single(move |tx| {
            Box::pin(async move {
                // One statement: the rows that became queued wake the workers.
                let row = tx
                    .one(
                        "WITH moved AS (
                             UPDATE task_instances t SET state = u.to_state, retry_at = u.retry_at,
                                 updated_at = now(),
                                 queued_at = CASE WHEN u.to_state = 'queued' THEN clock_timestamp()
                                     ELSE t.queued_at END,
                                 ended_at = CASE WHEN u.terminal THEN now()
                                     WHEN u.to_state IN ('scheduled', 'queued') THEN NULL
                                     ELSE t.ended_at END,
                                 -- A task waiting for its next try shows no previous worker.
                                 worker_id = CASE WHEN u.to_state IN ('scheduled', 'queued') THEN NULL
                                     ELSE t.worker_id END,
                                 started_at = CASE WHEN u.to_state IN ('scheduled', 'queued') THEN NULL
                                     ELSE t.started_at END
                             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::bool[])
                                 AS u(id, from_state, to_state, retry_at, terminal)
                             -- The rows by primary key, whatever the table's statistics say.
                             WHERE t.id = ANY($1::bigint[]) AND t.id = u.id AND t.state = u.from_state
                             RETURNING t.state)
                         SELECT (SELECT count(*) FROM moved),
                                (SELECT count(*) FROM (SELECT pg_notify('gale_queued', $6)
                                    WHERE EXISTS (SELECT 1 FROM moved WHERE state = 'queued')) n)",
                        &[&ids, &from, &to, &retry_at, &terminal, &origin],
                    )
                    .await?;
                Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX))
            })
        })
        .await
    }

    async fn get_task(&self, ti: TiId) -> Result<Option<TaskRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {TI_COLS} FROM task_instances WHERE id = $1");
                Ok(c.opt(&sql, &[&ti.0]).await?.as_ref().map(ti_row))
            })
        })
        .await
    }

    async fn tasks_of_runs(&self, runs: &[RunId]) -> Result<Vec<TaskRow>> {
        let ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TI_COLS} FROM task_instances WHERE run_id = ANY($1) ORDER BY run_id, id"
                );
                Ok(c.rows(&sql, &[&ids]).await?.iter().map(ti_row).collect())
            })
        })
        .await
    }

    async fn recent_runs(&self, dags: &[DagId], per_dag: u32) -> Result<Vec<RunRow>> {
        let per_dag = i64::from(per_dag);
        let dags: Vec<String> = dags.iter().map(|d| d.0.clone()).collect();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {} FROM unnest($2::text[]) AS d(dag_id) CROSS JOIN LATERAL (
                         SELECT * FROM runs WHERE runs.dag_id = d.dag_id ORDER BY id DESC LIMIT $1) r
                     ORDER BY d.dag_id, r.id DESC",
                    cols_of(RUN_COLS, "r")
                );
                Ok(c.rows(&sql, &[&per_dag, &dags]).await?.iter().map(run_row).collect())
            })
        })
        .await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT 'run', state, count(*), NULL::timestamptz FROM runs
                             WHERE state IN ('queued', 'running') GROUP BY state
                         UNION ALL
                         SELECT 'task', state, count(*), NULL FROM task_instances
                             WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')
                             GROUP BY state
                         UNION ALL
                         SELECT 'queue', queue, count(*), min(queued_at) FROM task_instances
                             WHERE state = 'queued' GROUP BY queue",
                        &[],
                    )
                    .await?;
                let mut out = StoreCounts::default();
                for r in &rows {
                    let (kind, key, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
                    let n = u64::try_from(n).unwrap_or(0);
                    match kind.as_str() {
                        "run" => out.runs_by_state.insert(key, n),
                        "task" => out.tasks_by_state.insert(key, n),
                        _ => {
                            if let Some(at) = r.get::<_, Option<Timestamp>>(3) {
                                out.oldest_queued.insert(key.clone(), at);
                            }
                            out.queued_by_queue.insert(key, n)
                        }
                    };
                }
                Ok(out)
            })
        })
        .await
    }

    async fn dag_history(&self, dag_id: &DagId, limit: u32) -> Result<Vec<RunHistory>> {
        let dag_id = dag_id.0.clone();
        let limit = i64::from(history_limit(limit));
        self.single(move |c| {
            Box::pin(async move {
                // The runs come from runs_by_dag, their task instances from the
                // (run_id, task_id) unique index: at most `limit` runs' worth of rows.
                let cols = RUN_COLS
                    .split(',')
                    .map(|col| format!("r.{}", col.trim()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {cols}, t.task_id, t.state, t.try_number, t.started_at, t.ended_at
                     FROM (SELECT * FROM runs WHERE dag_id = $1 ORDER BY id DESC LIMIT $2) r
                     LEFT JOIN task_instances t ON t.run_id = r.id
                     ORDER BY r.id DESC, t.task_id"
                );
                let rows = c.rows(&sql, &[&dag_id, &limit]).await?;
                Ok(group_history(rows.iter().map(|r| {
                    let task = r.get::<_, Option<String>>(13).map(|task_id| TaskHistory {
                        task_id: TaskId(task_id),
                        state: r.get::<_, String>(14).parse().unwrap_or(TaskState::Failed),
                        try_number: u32_of(r.get(15)),
                        started_at: r.get(16),
                        ended_at: r.get(17),
                    });
                    (run_row(r), task)
                })))
            })
        })
        .await
    }

    async fn daily_runs(&self, dag_id: &DagId, since: Timestamp) -> Result<Vec<DayRuns>> {
        let dag_id = dag_id.0.clone();
        let days = i32::try_from(DAILY_MAX_DAYS).unwrap_or(i32::MAX);
        self.single(move |c| {
            Box::pin(async move {
                // The range and the grouping read runs_by_dag_date alone (an
                // index-only scan: it covers dag_id, logical_date and state);
                // greatest() skips the NULL of a DAG without runs. Days of
                // 86,400 s, as the grouping's: `interval '1 day'` would follow
                // the session's zone across a DST change.
                let rows = c
                    .rows(
                        "SELECT floor(extract(epoch FROM logical_date) / 86400)::bigint AS day,
                                state, count(*)
                         FROM runs
                         WHERE dag_id = $1 AND logical_date >= greatest($2::timestamptz,
                             (SELECT max(logical_date) FROM runs WHERE dag_id = $1)
                                 - $3::int4 * interval '86400 seconds')
                         GROUP BY 1, 2",
                        &[&dag_id, &since, &days],
                    )
                    .await?;
                let mut out: Vec<DayRuns> = rows
                    .iter()
                    .filter_map(|r| day_runs(r.get::<_, i64>(0), &r.get::<_, String>(1), r.get(2)))
                    .collect();
                sort_days(&mut out);
                Ok(out)
            })
        })
        .await
    }
}

/// Inserts one run and its task instances (see `Runs::create_run`), in the
/// caller's transaction.
async fn insert_run(tx: &Tx<'_>, run: &NewRun) -> Result<Option<RunId>> {
    let conf = serde_json::Value::Object(run.conf.clone());
    let dag_id = run.dag_id.as_str();
    // The DAG's row, held shared until this commits, so a
    // `delete_dag` (which holds it exclusively while it looks for
    // unfinished runs) either sees this run or comes first, and
    // then no run is made for a DAG that is gone.
    if tx
        .opt("SELECT 1 FROM dags WHERE dag_id = $1 FOR SHARE", &[&dag_id])
        .await?
        .is_none()
    {
        return Err(Error::Invalid(no_such_dag(dag_id)));
    }
    if run.run_type == RunType::Scheduled {
        // The cursor moves even when the slot already has a run, so a
        // second scheduler that lost the race moves on too.
        tx.exec(
            "UPDATE dags SET last_interval_end = greatest(coalesce(last_interval_end, $2), $2)
                         WHERE dag_id = $1",
            &[&dag_id, &run.interval_end],
        )
        .await?;
    }
    let Some(row) = tx
        .opt(
            "INSERT INTO runs (dag_id, run_key, run_type, version_hash, logical_date,
                             interval_start, interval_end, conf, state, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', now())
                         ON CONFLICT DO NOTHING RETURNING id",
            &[
                &dag_id,
                &run.run_key,
                &run.run_type.as_str(),
                &run.version_hash,
                &run.logical_date,
                &run.interval_start,
                &run.interval_end,
                &conf,
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let run_id: i64 = row.get(0);
    let task_ids: Vec<&str> = run.tasks.iter().map(|t| t.task_id.as_str()).collect();
    let max_tries: Vec<i32> = run.tasks.iter().map(|t| i32_of(t.max_tries)).collect();
    let queues: Vec<&str> = run.tasks.iter().map(|t| t.queue.as_str()).collect();
    let priorities: Vec<i32> = run.tasks.iter().map(|t| t.priority).collect();
    let pools: Vec<Option<&str>> = run.tasks.iter().map(|t| t.pool.as_deref()).collect();
    tx.exec(
                    "INSERT INTO task_instances (run_id, dag_id, task_id, state, max_tries, queue,
                         priority, pool, updated_at)
                     SELECT $1, $2, u.task_id, 'none', u.max_tries, u.queue, u.priority, u.pool, now()
                     FROM unnest($3::text[], $4::int[], $5::text[], $6::int[], $7::text[])
                         AS u(task_id, max_tries, queue, priority, pool)",
                    &[&run_id, &dag_id, &task_ids, &max_tries, &queues, &priorities, &pools],
                )
                .await?;
    if matches!(run.run_type, RunType::Scheduled | RunType::Backfill) {
        tx.exec(
            "INSERT INTO schedule_slots (dag_id, logical_date, interval_end, status,
                             run_id, recorded_at)
                         VALUES ($1, $2, $3, 'run', $4, now())
                         ON CONFLICT (dag_id, logical_date) DO UPDATE
                             SET status = 'run', run_id = $4, recorded_at = now()",
            &[&dag_id, &run.logical_date, &run.interval_end, &run_id],
        )
        .await?;
    }
    Ok(Some(RunId(run_id)))
}
