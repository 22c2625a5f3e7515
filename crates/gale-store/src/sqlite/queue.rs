//! The SQLite backend's `impl Queue for SqliteStore`: the attempt queue: enqueue within limits, claims, heartbeats, fenced results, reaping.

use super::*;

#[async_trait]
impl Queue for SqliteStore {
    async fn enqueue(
        &self,
        dag_id: &DagId,
        tis: &[TiId],
        max_active_tasks: Option<u32>,
    ) -> Result<usize> {
        if tis.is_empty() {
            return Ok(0);
        }
        let (dag_id, tis) = (dag_id.0.clone(), tis.to_vec());
        self.write(move |tx| {
            let dag_room = match max_active_tasks {
                Some(max) => {
                    let active: i64 = tx
                        .query_row(
                            "SELECT count(*) FROM task_instances
                             WHERE dag_id = ?1 AND state IN ('queued', 'running')",
                            params![dag_id],
                            |r| r.get(0),
                        )
                        .map_err(map_err)?;
                    Some(i64::from(max) - active)
                }
                None => None,
            };
            if dag_room.is_some_and(|r| r <= 0) {
                return Ok(0);
            }
            // In the order given, only this DAG's (the count above is this DAG's).
            let mut candidates = Vec::with_capacity(tis.len());
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT pool FROM task_instances
                         WHERE id = ?1 AND state = 'scheduled' AND dag_id = ?2",
                    )
                    .map_err(map_err)?;
                for ti in &tis {
                    let pool: Option<Option<String>> = stmt
                        .query_row(params![ti.0, dag_id], |r| r.get(0))
                        .optional()
                        .map_err(map_err)?;
                    if let Some(pool) = pool {
                        candidates.push((ti.0, pool));
                    }
                }
            }
            let mut pool_room = HashMap::new();
            for pool in candidates.iter().filter_map(|(_, p)| p.as_deref()) {
                if pool_room.contains_key(pool) {
                    continue;
                }
                let room: Option<i64> = tx
                    .query_row(
                        "SELECT p.slots - (SELECT count(*) FROM task_instances t
                             WHERE t.pool = p.name AND t.state IN ('queued', 'running'))
                         FROM pools p WHERE p.name = ?1",
                        params![pool],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_err)?;
                if let Some(room) = room {
                    pool_room.insert(pool.to_owned(), room);
                }
            }
            let now = now_us();
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE task_instances SET state = 'queued', queued_at = ?2, updated_at = ?2
                     WHERE id = ?1 AND state = 'scheduled'",
                )
                .map_err(map_err)?;
            let mut n = 0;
            for id in fit_limits(&candidates, dag_room, pool_room) {
                n += stmt.execute(params![id, now]).map_err(map_err)?;
            }
            Ok(n)
        })
        .await
    }

    async fn claim(
        &self,
        worker_id: &WorkerId,
        host: &str,
        queues: &[String],
        limit: u32,
    ) -> Result<Vec<Claim>> {
        if queues.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (worker_id, host, queues) = (worker_id.0.clone(), host.to_owned(), queues.to_vec());
        self.write(move |tx| {
            let now = now_us();
            let placeholders: Vec<String> = (0..queues.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT id FROM task_instances WHERE state = 'queued' AND queue IN ({})
                 ORDER BY priority DESC, id LIMIT ?1",
                placeholders.join(", ")
            );
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
                let mut args: Vec<rusqlite::types::Value> = vec![i64::from(limit).into()];
                args.extend(queues.iter().map(|q| rusqlite::types::Value::from(q.clone())));
                stmt.query_map(params_from_iter(args), |r| r.get(0))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(map_err)?
            };
            let mut tasks = Vec::with_capacity(ids.len());
            {
                let mut update = tx
                    .prepare_cached(&format!(
                        "UPDATE task_instances SET state = 'running', try_number = try_number + 1,
                             worker_id = ?2, heartbeat_at = ?3, started_at = ?3, ended_at = NULL,
                             retry_at = NULL, outputs = NULL, updated_at = ?3
                         WHERE id = ?1 AND state = 'queued' RETURNING {TI_COLS}"
                    ))
                    .map_err(map_err)?;
                let mut attempt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO attempts (ti_id, try_number, run_id, task_id, worker_id,
                             host, state, started_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7)",
                    )
                    .map_err(map_err)?;
                for id in ids {
                    let row = update
                        .query_row(params![id, worker_id, now], ti_row)
                        .optional()
                        .map_err(map_err)?;
                    if let Some(t) = row {
                        attempt
                            .execute(params![
                                t.id.0,
                                t.try_number,
                                t.run_id.0,
                                t.task_id.as_str(),
                                worker_id,
                                host,
                                now
                            ])
                            .map_err(map_err)?;
                        tasks.push(t);
                    }
                }
            }
            let mut runs: HashMap<i64, RunRow> = HashMap::new();
            for t in &tasks {
                if let std::collections::hash_map::Entry::Vacant(slot) = runs.entry(t.run_id.0) {
                    let run = tx
                        .query_row(
                            &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"),
                            params![t.run_id.0],
                            run_row,
                        )
                        .map_err(map_err)?;
                    slot.insert(run);
                }
            }
            Ok(tasks
                .into_iter()
                .map(|task| Claim {
                    run: runs[&task.run_id.0].clone(),
                    task,
                })
                .collect())
        })
        .await
    }

    async fn record_process(
        &self,
        ti: TiId,
        try_number: u32,
        pid: Option<i64>,
        command: &str,
    ) -> Result<()> {
        let command = command.to_owned();
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE attempts SET pid = ?3, command = ?4 WHERE ti_id = ?1 AND try_number = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![ti.0, try_number, pid, command]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn record_stop(
        &self,
        ti: TiId,
        try_number: u32,
        worker_id: &WorkerId,
        stopped_at: Timestamp,
    ) -> Result<bool> {
        let worker_id = worker_id.0.clone();
        let note = format!(
            "its process stopped at {} (measured by its worker)",
            gale_model::time::rfc3339(stopped_at)
        );
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE attempts SET ended_at = ?4,
                         message = coalesce(message || '; ', '') || ?5
                     WHERE ti_id = ?1 AND try_number = ?2 AND worker_id = ?3 AND state = 'lost'",
                    params![ti.0, try_number, worker_id, to_micros(stopped_at), note],
                )
                .map_err(map_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn heartbeat_attempts(
        &self,
        worker_id: &WorkerId,
        held: &[(TiId, u32)],
    ) -> Result<Vec<TiId>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (worker_id, held) = (worker_id.0.clone(), held.to_vec());
        self.write(move |tx| {
            let now = now_us();
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE task_instances SET heartbeat_at = ?4
                     WHERE id = ?1 AND try_number = ?2 AND worker_id = ?3 AND state = 'running'",
                )
                .map_err(map_err)?;
            let mut renewed = Vec::new();
            for (ti, try_number) in held {
                if stmt
                    .execute(params![ti.0, try_number, worker_id, now])
                    .map_err(map_err)?
                    > 0
                {
                    renewed.push(ti);
                }
            }
            Ok(renewed)
        })
        .await
    }

    async fn finish_attempt(&self, finish: &Finish) -> Result<bool> {
        outbox::check(&finish.alerts)?;
        let outputs = to_json(&finish.outputs)?;
        let f = finish.clone();
        self.write(move |tx| finish_one(tx, &f, &outputs, now_us()))
            .await
    }

    async fn finish_attempts(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Vec::with_capacity(finishes.len());
        for f in finishes {
            outbox::check(&f.alerts)?;
            batch.push((f.clone(), to_json(&f.outputs)?));
        }
        // One transaction (one commit) for the whole batch.
        self.write(move |tx| {
            let now = now_us();
            batch
                .iter()
                .map(|(f, outputs)| finish_one(tx, f, outputs, now))
                .collect()
        })
        .await
    }

    async fn expired_attempts(&self, lease: Duration) -> Result<Vec<TaskRow>> {
        let (now, lease) = (
            now_us(),
            i64::try_from(lease.as_micros()).unwrap_or(i64::MAX),
        );
        self.call(move |conn| {
            query_tis(
                conn,
                "state = 'running' AND heartbeat_at < ?1 - max(?2, coalesce(
                     (SELECT attempt_lease_ms * 1000 FROM nodes WHERE node_id = worker_id), 0))
                 ORDER BY heartbeat_at LIMIT 1000",
                params![now, lease],
            )
        })
        .await
    }

    async fn worker_attempts(&self, worker_id: &WorkerId) -> Result<Vec<TaskRow>> {
        let worker_id = worker_id.0.clone();
        self.call(move |conn| {
            query_tis(
                conn,
                "state = 'running' AND worker_id = ?1",
                params![worker_id],
            )
        })
        .await
    }

    async fn reap_attempt(&self, reap: &Reap) -> Result<bool> {
        outbox::check(&reap.alerts)?;
        let r = reap.clone();
        self.write(move |tx| {
            let now = now_us();
            // Zero: whatever the heartbeat.
            let lease: Option<i64> =
                (!r.lease.is_zero()).then_some(i64::try_from(r.lease.as_micros()).unwrap_or(i64::MAX));
            let changed = tx
                .execute(
                    "UPDATE task_instances SET state = ?4, retry_at = ?5, ended_at = ?6, updated_at = ?6,
                         max_tries = max_tries + ?8
                     WHERE id = ?1 AND try_number = ?2 AND worker_id = ?3 AND state = 'running'
                       AND (?7 IS NULL OR heartbeat_at < ?6 - max(?7, coalesce(
                           (SELECT attempt_lease_ms * 1000 FROM nodes WHERE node_id = ?3), 0)))",
                    params![
                        r.ti.0,
                        r.try_number,
                        r.worker_id.as_str(),
                        r.to.as_str(),
                        r.retry_at.map(to_micros),
                        now,
                        lease,
                        i64::from(r.refund_try)
                    ],
                )
                .map_err(map_err)?;
            if changed == 0 {
                return Ok(false);
            }
            // A lease that ran out: the try ended, at the latest, when its lease
            // did (its worker's fence had stopped it by then), not when it was
            // noticed.
            let ended = match lease {
                None => now,
                Some(lease) => tx
                    .query_row(
                        "SELECT min(?3, heartbeat_at + max(?4, coalesce(
                             (SELECT attempt_lease_ms * 1000 FROM nodes WHERE node_id = ?2), 0)))
                         FROM task_instances WHERE id = ?1",
                        params![r.ti.0, r.worker_id.as_str(), now, lease],
                        |row| row.get::<_, Option<i64>>(0),
                    )
                    .map_err(map_err)?
                    .unwrap_or(now),
            };
            outbox::insert(tx, &r.alerts, now)?;
            tx.execute(
                "UPDATE attempts SET state = ?3, message = ?4, ended_at = ?5
                 WHERE ti_id = ?1 AND try_number = ?2",
                params![r.ti.0, r.try_number, r.outcome.as_str(), r.message, ended],
            )
            .map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn attempts(&self, ti: TiId) -> Result<Vec<AttemptRow>> {
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT ti_id, try_number, run_id, task_id, worker_id, host, pid, state, exit_code,
                         message, command, started_at, ended_at
                     FROM attempts WHERE ti_id = ?1 ORDER BY try_number",
                params![ti.0],
                |r| {
                    Ok(AttemptRow {
                        ti_id: TiId(r.get(0)?),
                        try_number: r.get(1)?,
                        run_id: RunId(r.get(2)?),
                        task_id: TaskId(r.get(3)?),
                        worker_id: WorkerId(r.get(4)?),
                        host: r.get(5)?,
                        pid: r.get(6)?,
                        state: AttemptState::parse(&r.get::<_, String>(7)?),
                        exit_code: r.get(8)?,
                        message: r.get(9)?,
                        command: r.get(10)?,
                        started_at: ts(r.get(11)?),
                        ended_at: opt_ts(r.get(12)?),
                    })
                },
            )
        })
        .await
    }
}

/// One fenced result (see [`Queue::finish_attempt`]) inside a write transaction.
fn finish_one(tx: &Connection, f: &Finish, outputs: &str, now: i64) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE task_instances SET state = ?4, retry_at = ?5, outputs = ?6, ended_at = ?7,
                 updated_at = ?7
             WHERE id = ?1 AND try_number = ?2 AND worker_id = ?3 AND state = 'running'",
        )
        .and_then(|mut st| {
            st.execute(params![
                f.ti.0,
                f.try_number,
                f.worker_id.as_str(),
                f.state.as_str(),
                f.retry_at.map(to_micros),
                outputs,
                now
            ])
        })
        .map_err(map_err)?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE attempts SET state = ?3, exit_code = ?4, message = ?5, ended_at = ?6,
             pid = coalesce(?7, pid), command = coalesce(?8, command)
         WHERE ti_id = ?1 AND try_number = ?2",
    )
    .and_then(|mut st| {
        st.execute(params![
            f.ti.0,
            f.try_number,
            f.outcome.as_str(),
            f.exit_code,
            f.message,
            now,
            f.pid,
            f.command
        ])
    })
    .map_err(map_err)?;
    outbox::insert(tx, &f.alerts, now)?;
    Ok(true)
}
