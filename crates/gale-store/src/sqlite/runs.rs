//! The SQLite backend's `impl Runs for SqliteStore`: runs and their task instances: creation, promotion, transitions and the reads.

use super::*;

#[async_trait]
impl Runs for SqliteStore {
    async fn create_run(&self, run: &NewRun) -> Result<Option<RunId>> {
        let conf = to_json(&run.conf)?;
        let run = run.clone();
        self.write(move |tx| insert_run(tx, &run, &conf, now_us()))
            .await
    }

    async fn create_runs(&self, runs: &[NewRun]) -> Result<Vec<Option<RunId>>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let runs: Vec<(NewRun, String)> = runs
            .iter()
            .map(|r| Ok((r.clone(), to_json(&r.conf)?)))
            .collect::<Result<_>>()?;
        self.write(move |tx| {
            let now = now_us();
            runs.iter()
                .map(|(run, conf)| match insert_run(tx, run, conf, now) {
                    Err(Error::Invalid(_)) => Ok(None),
                    other => other,
                })
                .collect()
        })
        .await
    }

    async fn count_active_runs_of(&self, dags: &[DagId]) -> Result<Vec<(DagId, u32)>> {
        if dags.is_empty() {
            return Ok(Vec::new());
        }
        let ids = name_list(dags)?;
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT dag_id, count(*) FROM runs
                 WHERE dag_id IN (SELECT value FROM json_each(?1))
                     AND state IN ('queued', 'running')
                 GROUP BY dag_id",
                params![ids],
                |r| Ok((DagId(r.get(0)?), r.get(1)?)),
            )
        })
        .await
    }

    async fn count_active_runs(&self, dag_id: &DagId) -> Result<u32> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            conn.query_row(
                "SELECT count(*) FROM runs WHERE dag_id = ?1 AND state IN ('queued', 'running')",
                params![dag_id],
                |r| r.get(0),
            )
            .map_err(map_err)
        })
        .await
    }

    async fn promote_runs(&self) -> Result<Vec<RunId>> {
        // Most calls find nothing to start: answer those from a reader, without
        // taking the write lock.
        let any = self
            .call(|conn| {
                conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM runs r JOIN dags d ON d.dag_id = r.dag_id
                     WHERE r.state = 'queued' AND d.paused = 0)",
                )
                .and_then(|mut stmt| stmt.query_row([], |r| r.get::<_, bool>(0)))
                .map_err(map_err)
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let candidates: Vec<(i64, String, u32)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT r.id, r.dag_id, d.max_active_runs FROM runs r
                         JOIN dags d ON d.dag_id = r.dag_id
                         WHERE r.state = 'queued' AND d.paused = 0
                         ORDER BY r.dag_id, r.logical_date, r.id LIMIT 10000",
                    )
                    .map_err(map_err)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(map_err)?
            };
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            let mut running: HashMap<String, u32> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT dag_id, count(*) FROM runs WHERE state = 'running' GROUP BY dag_id",
                    )
                    .map_err(map_err)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(map_err)?
            };
            let now = now_us();
            let mut promoted = Vec::new();
            for (id, dag_id, max) in candidates {
                let n = running.entry(dag_id).or_insert(0);
                if *n >= max {
                    continue;
                }
                // Prepared once: a slot shared by thousands of DAGs
                // promotes thousands of runs in one call.
                let changed = tx
                    .prepare_cached(
                        "UPDATE runs SET state = 'running', started_at = ?2
                         WHERE id = ?1 AND state = 'queued'",
                    )
                    .and_then(|mut stmt| stmt.execute(params![id, now]))
                    .map_err(map_err)?;
                if changed > 0 {
                    *n += 1;
                    promoted.push(RunId(id));
                }
            }
            Ok(promoted)
        })
        .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let filter = filter.clone();
        self.call(move |conn| {
            let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            if let Some(d) = &filter.dag_id {
                args.push(d.0.clone());
                sql.push_str(&format!(" AND dag_id = ?{}", args.len()));
            }
            if let Some(s) = filter.state {
                args.push(s.as_str().to_owned());
                sql.push_str(&format!(" AND state = ?{}", args.len()));
            }
            if let Some(t) = filter.run_type {
                args.push(t.as_str().to_owned());
                sql.push_str(&format!(" AND run_type = ?{}", args.len()));
            }
            if let Some(before) = filter.before {
                sql.push_str(&format!(" AND id < {}", before.0));
            }
            let limit = run_list_limit(filter.limit);
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
            query_all(conn, &sql, params_from_iter(args.iter()), run_row)
        })
        .await
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<RunRow>> {
        self.call(move |conn| {
            conn.prepare_cached(&format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"))
                .and_then(|mut stmt| stmt.query_row(params![run_id.0], run_row).optional())
                .map_err(map_err)
        })
        .await
    }

    async fn running_runs(&self, after: RunId, limit: u32) -> Result<Vec<RunRow>> {
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {RUN_COLS} FROM runs WHERE state = 'running' AND id > ?1
                     ORDER BY id LIMIT ?2"
                ),
                params![after.0, limit],
                run_row,
            )
        })
        .await
    }

    async fn running_runs_by_id(&self, runs: &[RunId]) -> Result<Vec<RunRow>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let ids = id_list(runs.iter().map(|r| r.0));
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {RUN_COLS} FROM runs
                     WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'running'
                     ORDER BY id"
                ),
                params![ids],
                run_row,
            )
        })
        .await
    }

    async fn finish_run(
        &self,
        run_id: RunId,
        state: RunState,
        alerts: &[NewDelivery],
    ) -> Result<bool> {
        outbox::check(alerts)?;
        let alerts = alerts.to_vec();
        self.write(move |tx| {
            let now = now_us();
            let changed = tx
                .prepare_cached(
                    "UPDATE runs SET state = ?2, ended_at = ?3 WHERE id = ?1 AND state = 'running'",
                )
                .and_then(|mut stmt| stmt.execute(params![run_id.0, state.as_str(), now]))
                .map_err(map_err)?
                > 0;
            if changed {
                outbox::insert(tx, &alerts, now)?;
            }
            Ok(changed)
        })
        .await
    }

    async fn previous_finished_run(&self, dag_id: &DagId, before: RunId) -> Result<Option<RunRow>> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {RUN_COLS} FROM runs
                     WHERE dag_id = ?1 AND id < ?2 AND state IN ('success', 'failed')
                     ORDER BY id DESC LIMIT 1"
                ),
                params![dag_id, before.0],
                run_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn run_tasks(&self, run_id: RunId) -> Result<Vec<TaskRow>> {
        self.call(move |conn| query_tis(conn, "run_id = ?1 ORDER BY id", params![run_id.0]))
            .await
    }

    async fn run_state_counts(&self, run_id: RunId) -> Result<Vec<(TaskState, u32)>> {
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT state, count(*) FROM task_instances WHERE run_id = ?1 GROUP BY state",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![run_id.0], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
                })
                .map_err(map_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (state, n) = row.map_err(map_err)?;
                let state = state
                    .parse()
                    .map_err(|e: String| Error::Database(format!("task instance state: {e}")))?;
                out.push((state, n));
            }
            Ok(out)
        })
        .await
    }

    async fn run_activity(&self, run_id: RunId) -> Result<RunActivity> {
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM task_instances WHERE run_id = ?1
                                AND state IN ('none', 'scheduled', 'up_for_retry')),
                        EXISTS (SELECT 1 FROM task_instances WHERE run_id = ?1
                                AND state IN ('queued', 'running'))",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![run_id.0], |r| {
                    Ok(RunActivity {
                        pending: r.get(0)?,
                        in_flight: r.get(1)?,
                    })
                })
            })
            .map_err(map_err)
        })
        .await
    }

    async fn apply_transitions(&self, transitions: &[Transition]) -> Result<usize> {
        if transitions.is_empty() {
            return Ok(0);
        }
        let transitions = transitions.to_vec();
        self.write(move |tx| {
            let now = now_us();
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE task_instances SET state = ?3, retry_at = ?4, updated_at = ?5,
                         queued_at = CASE WHEN ?3 = 'queued' THEN ?5 ELSE queued_at END,
                         ended_at = CASE WHEN ?6 THEN ?5
                             WHEN ?3 IN ('scheduled', 'queued') THEN NULL ELSE ended_at END,
                         -- A task waiting for its next try shows no previous worker.
                         worker_id = CASE WHEN ?3 IN ('scheduled', 'queued') THEN NULL
                             ELSE worker_id END,
                         started_at = CASE WHEN ?3 IN ('scheduled', 'queued') THEN NULL
                             ELSE started_at END
                     WHERE id = ?1 AND state = ?2",
                )
                .map_err(map_err)?;
            let mut n = 0;
            for t in &transitions {
                n += stmt
                    .execute(params![
                        t.ti.0,
                        t.from.as_str(),
                        t.to.as_str(),
                        t.retry_at.map(to_micros),
                        now,
                        t.to.is_terminal()
                    ])
                    .map_err(map_err)?;
            }
            Ok(n)
        })
        .await
    }

    async fn get_task(&self, ti: TiId) -> Result<Option<TaskRow>> {
        self.call(move |conn| Ok(query_tis(conn, "id = ?1", params![ti.0])?.pop()))
            .await
    }

    async fn tasks_of_runs(&self, runs: &[RunId]) -> Result<Vec<TaskRow>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let ids = id_list(runs.iter().map(|r| r.0));
        self.call(move |conn| {
            query_tis(
                conn,
                "run_id IN (SELECT value FROM json_each(?1)) ORDER BY run_id, id",
                params![ids],
            )
        })
        .await
    }

    async fn recent_runs(&self, dags: &[DagId], per_dag: u32) -> Result<Vec<RunRow>> {
        let dags: Vec<String> = dags.iter().map(|d| d.0.clone()).collect();
        self.call(move |conn| {
            let mut out = Vec::new();
            for d in dags {
                out.extend(query_all(
                    conn,
                    &format!(
                        "SELECT {RUN_COLS} FROM runs WHERE dag_id = ?1 ORDER BY id DESC LIMIT ?2"
                    ),
                    params![d, per_dag],
                    run_row,
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.call(|conn| {
            let pairs = |sql: &str| -> Result<BTreeMap<String, u64>> {
                Ok(query_all(conn, sql, [], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .into_iter()
                .map(|(k, v)| (k, u64::try_from(v).unwrap_or(0)))
                .collect())
            };
            let queues = query_all(
                conn,
                "SELECT queue, count(*), min(queued_at) FROM task_instances
                 WHERE state = 'queued' GROUP BY queue",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        opt_ts(r.get(2)?),
                    ))
                },
            )?;
            Ok(StoreCounts {
                queued_by_queue: queues
                    .iter()
                    .map(|(q, n, _)| (q.clone(), u64::try_from(*n).unwrap_or(0)))
                    .collect(),
                oldest_queued: queues
                    .into_iter()
                    .filter_map(|(q, _, at)| Some((q, at?)))
                    .collect(),
                runs_by_state: pairs(
                    "SELECT state, count(*) FROM runs WHERE state IN ('queued', 'running')
                     GROUP BY state",
                )?,
                tasks_by_state: pairs(
                    "SELECT state, count(*) FROM task_instances
                     WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')
                     GROUP BY state",
                )?,
            })
        })
        .await
    }

    async fn dag_history(&self, dag_id: &DagId, limit: u32) -> Result<Vec<RunHistory>> {
        let dag_id = dag_id.0.clone();
        let limit = history_limit(limit);
        self.call(move |conn| {
            // The runs come from runs_by_dag, their task instances from the
            // (run_id, task_id) unique index: at most `limit` runs' worth of rows.
            let sql = format!(
                "SELECT {}, t.task_id, t.state, t.try_number, t.started_at, t.ended_at
                 FROM (SELECT * FROM runs WHERE dag_id = ?1 ORDER BY id DESC LIMIT ?2) r
                 LEFT JOIN task_instances t ON t.run_id = r.id
                 ORDER BY r.id DESC, t.task_id",
                prefixed_run_cols("r")
            );
            let rows = query_all(conn, &sql, params![dag_id, limit], |r| {
                let run = run_row(r)?;
                let task = match r.get::<_, Option<String>>(13)? {
                    None => None,
                    Some(task_id) => Some(TaskHistory {
                        task_id: TaskId(task_id),
                        state: r.get::<_, String>(14)?.parse().unwrap_or(TaskState::Failed),
                        try_number: r.get(15)?,
                        started_at: opt_ts(r.get(16)?),
                        ended_at: opt_ts(r.get(17)?),
                    }),
                };
                Ok((run, task))
            })?;
            Ok(group_history(rows))
        })
        .await
    }

    async fn daily_runs(&self, dag_id: &DagId, since: Timestamp) -> Result<Vec<DayRuns>> {
        let dag_id = dag_id.0.clone();
        let since = to_micros(since);
        let span = i64::from(DAILY_MAX_DAYS) * MICROS_PER_DAY;
        self.call(move |conn| {
            // The range and the grouping read runs_by_dag_date alone (it covers
            // dag_id, logical_date and state). The day is floored, also before 1970.
            let rows = query_all(
                conn,
                "SELECT logical_date / ?4 - (logical_date < 0 AND logical_date % ?4 != 0) AS day,
                        state, count(*)
                 FROM runs
                 WHERE dag_id = ?1 AND logical_date >= max(?2,
                     coalesce((SELECT max(logical_date) FROM runs WHERE dag_id = ?1), 0) - ?3)
                 GROUP BY day, state",
                params![dag_id, since, span, MICROS_PER_DAY],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )?;
            let mut out: Vec<DayRuns> = rows
                .iter()
                .filter_map(|(day, state, n)| day_runs(*day, state, *n))
                .collect();
            sort_days(&mut out);
            Ok(out)
        })
        .await
    }
}

/// Most task instances inserted by one statement.
const TI_ROWS: usize = 8;

/// `INSERT INTO task_instances` of 1 to [`TI_ROWS`] rows (index: rows - 1),
/// built once: ?1 the run, ?2 the DAG, ?3 the time, then five parameters per
/// row.
static INSERT_TIS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (1..=TI_ROWS)
        .map(|rows| {
            let values: Vec<String> = (0..rows)
                .map(|i| {
                    let p = 4 + i * 5;
                    format!(
                        "(?1, ?2, ?{p}, 'none', ?{}, ?{}, ?{}, ?3, ?{})",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4
                    )
                })
                .collect();
            format!(
                "INSERT INTO task_instances (run_id, dag_id, task_id, state, max_tries, queue,
                     priority, updated_at, pool) VALUES {}",
                values.join(", ")
            )
        })
        .collect()
});

/// Inserts one run and its task instances (see `Runs::create_run`), in the
/// writer's transaction.
fn insert_run(tx: &Connection, run: &NewRun, conf: &str, now: i64) -> Result<Option<RunId>> {
    // Writes are one at a time, so a DAG seen here is not deleted
    // before this run is in.
    // Each statement prepared once per connection: a slot shared by
    // thousands of DAGs makes thousands of runs in a row.
    let known = if run.run_type == RunType::Scheduled {
        // The cursor moves even when the slot already has a run, so a second
        // scheduler that lost the race moves on too; no row moved, no DAG.
        tx.prepare_cached(
            "UPDATE dags SET last_interval_end = max(coalesce(last_interval_end, ?2), ?2)
                 WHERE dag_id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![run.dag_id.as_str(), to_micros(run.interval_end)])
        })
        .map_err(map_err)?
            > 0
    } else {
        tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM dags WHERE dag_id = ?1)")
            .and_then(|mut stmt| stmt.query_row(params![run.dag_id.as_str()], |r| r.get(0)))
            .map_err(map_err)?
    };
    if !known {
        return Err(Error::Invalid(no_such_dag(run.dag_id.as_str())));
    }
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO runs (dag_id, run_key, run_type, version_hash, logical_date,
                     interval_start, interval_end, conf, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run.dag_id.as_str(),
                run.run_key,
                run.run_type.as_str(),
                run.version_hash,
                to_micros(run.logical_date),
                to_micros(run.interval_start),
                to_micros(run.interval_end),
                conf,
                now
            ])
        })
        .map_err(map_err)?;
    if inserted == 0 {
        return Ok(None);
    }
    let run_id = tx.last_insert_rowid();
    // Up to TI_ROWS task instances per statement (one statement per run of a
    // small DAG): fewer statement runs per slot shared by thousands of DAGs.
    for chunk in run.tasks.chunks(TI_ROWS) {
        let mut stmt = tx
            .prepare_cached(&INSERT_TIS[chunk.len() - 1])
            .map_err(map_err)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 5 + 3);
        values.extend([&run_id as &dyn rusqlite::ToSql, &run.dag_id.0, &now]);
        for t in chunk {
            values.extend([
                &t.task_id.0 as &dyn rusqlite::ToSql,
                &t.max_tries,
                &t.queue,
                &t.priority,
                &t.pool,
            ]);
        }
        stmt.execute(values.as_slice()).map_err(map_err)?;
    }
    if matches!(run.run_type, RunType::Scheduled | RunType::Backfill) {
        tx.prepare_cached(
            "INSERT INTO schedule_slots (dag_id, logical_date, interval_end, status, run_id,
                     recorded_at)
                 VALUES (?1, ?2, ?3, 'run', ?4, ?5)
                 ON CONFLICT (dag_id, logical_date) DO UPDATE
                     SET status = 'run', run_id = ?4, recorded_at = ?5",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run.dag_id.as_str(),
                to_micros(run.logical_date),
                to_micros(run.interval_end),
                run_id,
                now
            ])
        })
        .map_err(map_err)?;
    }
    Ok(Some(RunId(run_id)))
}
