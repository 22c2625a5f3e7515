//! The PostgreSQL backend's `impl Queue for PgStore`: the attempt queue: enqueue within limits, claims, heartbeats, fenced results, reaping.

use super::*;

#[async_trait]
impl Queue for PgStore {
    async fn enqueue(
        &self,
        dag_id: &DagId,
        tis: &[TiId],
        max_active_tasks: Option<u32>,
    ) -> Result<usize> {
        if tis.is_empty() {
            return Ok(0);
        }
        let id = dag_id.0.clone();
        let ids: Vec<i64> = tis.iter().map(|t| t.0).collect();
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // Limits that span rows are checked under a lock: the DAG's row for
                // `max_active_tasks`, then (by name) each pool's row. Every count is
                // a statement of its own, after its lock, so it sees every change
                // committed before the lock was granted.
                let dag_room: Option<i64> = match max_active_tasks {
                    Some(max) => {
                        tx.exec("SELECT 1 FROM dags WHERE dag_id = $1 FOR UPDATE", &[&id])
                            .await?;
                        let active: i64 = tx
                            .one(
                                "SELECT count(*) FROM task_instances
                                 WHERE dag_id = $1 AND state IN ('queued', 'running')",
                                &[&id],
                            )
                            .await?
                            .get(0);
                        Some(i64::from(max) - active)
                    }
                    None => None,
                };
                if dag_room.is_some_and(|r| r <= 0) {
                    return Ok(0);
                }
                // In the order given, only this DAG's (the count above is this DAG's).
                let candidates: Vec<(i64, Option<String>)> = tx
                    .rows(
                        "SELECT t.id, t.pool FROM task_instances t
                         JOIN unnest($2::bigint[]) WITH ORDINALITY AS w(id, ord) ON w.id = t.id
                         WHERE t.id = ANY($2::bigint[]) AND t.state = 'scheduled' AND t.dag_id = $1
                         ORDER BY w.ord",
                        &[&id, &ids],
                    )
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let mut pools: Vec<&str> =
                    candidates.iter().filter_map(|(_, p)| p.as_deref()).collect();
                pools.sort_unstable();
                pools.dedup();
                let mut pool_room = HashMap::new();
                if !pools.is_empty() {
                    let slots = tx
                        .rows(
                            "SELECT name, slots FROM pools WHERE name = ANY($1)
                             ORDER BY name FOR UPDATE",
                            &[&pools],
                        )
                        .await?;
                    for r in &slots {
                        pool_room.insert(r.get::<_, String>(0), i64::from(r.get::<_, i32>(1)));
                    }
                    for r in tx
                        .rows(
                            "SELECT pool, count(*) FROM task_instances
                             WHERE pool = ANY($1) AND state IN ('queued', 'running') GROUP BY pool",
                            &[&pools],
                        )
                        .await?
                    {
                        if let Some(room) = pool_room.get_mut(r.get::<_, &str>(0)) {
                            *room -= r.get::<_, i64>(1);
                        }
                    }
                }
                let chosen = fit_limits(&candidates, dag_room, pool_room);
                if chosen.is_empty() {
                    return Ok(0);
                }
                let n = tx
                    .exec(
                        "UPDATE task_instances SET state = 'queued', queued_at = clock_timestamp(), updated_at = now()
                         WHERE id = ANY($1) AND state = 'scheduled'",
                        &[&chosen],
                    )
                    .await?;
                if n > 0 {
                    tx.exec("SELECT pg_notify('gale_queued', $1)", &[&origin]).await?;
                }
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
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
        let limit = i64::from(limit);
        // One statement: take queued rows no one else is taking, make them ours,
        // open their attempt records, and return them with their runs. Light:
        // an idle worker's safety claim needs no connection of its own.
        self.light(move |c| {
            Box::pin(async move {
                // One queue (the usual case) reads the queued index in order and
                // stops at the limit; several need a sort of their queued rows.
                let queue_test = if queues.len() == 1 {
                    "queue = ($2::text[])[1]"
                } else {
                    "queue = ANY($2)"
                };
                let sql = format!(
                    "WITH pick AS (
                         SELECT id FROM task_instances
                         WHERE state = 'queued' AND {queue_test}
                         ORDER BY priority DESC, id LIMIT $3
                         FOR UPDATE SKIP LOCKED),
                     claimed AS (
                         UPDATE task_instances t SET state = 'running', try_number = t.try_number + 1,
                             worker_id = $1, heartbeat_at = clock_timestamp(), started_at = clock_timestamp(), ended_at = NULL,
                             retry_at = NULL, outputs = NULL, updated_at = now()
                         -- By primary key alone: pick's rows are queued and locked by
                         -- this statement, and a state test here lets the planner scan
                         -- every queued row instead while the table's statistics are young.
                         WHERE t.id = ANY(ARRAY(SELECT id FROM pick))
                         RETURNING t.*),
                     opened AS (
                         INSERT INTO attempts (ti_id, try_number, run_id, task_id, worker_id, host,
                             state, started_at)
                         SELECT id, try_number, run_id, task_id, $1, $4, 'running', started_at FROM claimed
                         ON CONFLICT (ti_id, try_number) DO UPDATE SET worker_id = $1, host = $4,
                             pid = NULL, state = 'running', exit_code = NULL, message = NULL,
                             command = NULL, started_at = EXCLUDED.started_at, ended_at = NULL)
                     SELECT {}, {} FROM claimed c JOIN runs r ON r.id = c.run_id
                     ORDER BY c.priority DESC, c.id",
                    ti_cols_of("c"),
                    cols_of(RUN_COLS, "r"),
                );
                let rows = c.rows(&sql, &[&worker_id, &queues, &limit, &host]).await?;
                let width = TI_COLS.split(", ").count();
                Ok(rows
                    .iter()
                    .map(|r| Claim {
                        task: ti_row(r),
                        run: run_row_at(r, width),
                    })
                    .collect())
            })
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
        let try_number = i32_of(try_number);
        let command = command.to_owned();
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE attempts SET pid = $3, command = $4 WHERE ti_id = $1 AND try_number = $2",
                    &[&ti.0, &try_number, &pid, &command],
                )
                .await?;
                Ok(())
            })
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
        let try_number = i32_of(try_number);
        let worker_id = worker_id.0.clone();
        self.single(move |tx| {
            Box::pin(async move {
                let n = tx
                    .exec(
                        "UPDATE attempts SET ended_at = $4,
                             message = coalesce(message || '; ', '') || 'its process stopped at '
                                 || to_char($4 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                                 || ' (measured by its worker)'
                         WHERE ti_id = $1 AND try_number = $2 AND worker_id = $3 AND state = 'lost'",
                        &[&ti.0, &try_number, &worker_id, &stopped_at],
                    )
                    .await?;
                Ok(n > 0)
            })
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
        let mut held = held.to_vec();
        held.sort();
        let ids: Vec<i64> = held.iter().map(|(t, _)| t.0).collect();
        let tries: Vec<i32> = held.iter().map(|(_, n)| i32_of(*n)).collect();
        let worker_id = worker_id.0.clone();
        // Light: a renewal must not wait behind the pool (a worker with a
        // pool of one sends its results, logs and reads there); a late one
        // makes the worker fence its own attempts.
        self.light(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "UPDATE task_instances t SET heartbeat_at = now()
                         FROM unnest($2::bigint[], $3::int[]) AS h(id, try_number)
                         WHERE t.id = h.id AND t.try_number = h.try_number AND t.worker_id = $1
                           AND t.state = 'running'
                         RETURNING t.id",
                        &[&worker_id, &ids, &tries],
                    )
                    .await?;
                let mut renewed: Vec<TiId> = rows.iter().map(|r| TiId(r.get(0))).collect();
                renewed.sort();
                Ok(renewed)
            })
        })
        .await
    }

    async fn finish_attempt(&self, finish: &Finish) -> Result<bool> {
        let recorded = self.finish_attempts(std::slice::from_ref(finish)).await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    async fn finish_attempts(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        // One task's stray NUL must not fail the whole batch. In id order,
        // as renewals lock them: the two can run at once for one worker.
        let order = finishes;
        let mut finishes: Vec<Finish> = finishes.iter().map(without_nul).collect();
        finishes.sort_by_key(|f| (f.ti, f.try_number));
        let mut outputs = Vec::with_capacity(finishes.len());
        for f in &finishes {
            outputs.push(to_value(&f.outputs)?);
        }
        let ids: Vec<i64> = finishes.iter().map(|f| f.ti.0).collect();
        let tries: Vec<i32> = finishes.iter().map(|f| i32_of(f.try_number)).collect();
        let workers: Vec<String> = finishes.iter().map(|f| f.worker_id.0.clone()).collect();
        let states: Vec<&'static str> = finishes.iter().map(|f| f.state.as_str()).collect();
        let retry_at: Vec<Option<Timestamp>> = finishes.iter().map(|f| f.retry_at).collect();
        let outcomes: Vec<String> = finishes
            .iter()
            .map(|f| f.outcome.as_str().to_owned())
            .collect();
        let codes: Vec<Option<i32>> = finishes.iter().map(|f| f.exit_code).collect();
        let messages: Vec<Option<String>> = finishes.iter().map(|f| f.message.clone()).collect();
        let pids: Vec<Option<i64>> = finishes.iter().map(|f| f.pid).collect();
        let commands: Vec<Option<String>> = finishes.iter().map(|f| f.command.clone()).collect();
        let origin = self.origin.clone();
        let announce = self
            .announce_results
            .load(std::sync::atomic::Ordering::Relaxed);
        let alerts = outbox::Rows::of_finishes(&finishes)?;
        // One statement: the fenced changes, their attempt records, the
        // alerts of those recorded, and one wake-up per run.
        let sql = format!(
            "WITH f AS (
                 SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[],
                     $5::timestamptz[], $6::jsonb[], $7::text[], $8::int[], $9::text[],
                     $10::bigint[], $11::text[])
                 AS f(ti, try_number, worker_id, state, retry_at, outputs, outcome,
                     exit_code, message, pid, command)),
             t AS (
                 UPDATE task_instances ti SET state = f.state, retry_at = f.retry_at,
                     outputs = f.outputs, ended_at = now(), updated_at = now()
                 FROM f
                 WHERE ti.id = ANY($1::bigint[]) AND ti.id = f.ti
                   AND ti.worker_id = ANY($3::text[])
                   AND ti.try_number = f.try_number AND ti.worker_id = f.worker_id
                   AND ti.state = 'running'
                 RETURNING ti.id, ti.try_number, ti.run_id),
             a AS (
                 UPDATE attempts a SET state = f.outcome, exit_code = f.exit_code,
                     message = f.message, ended_at = now(),
                     pid = coalesce(f.pid, a.pid), command = coalesce(f.command, a.command)
                 FROM f JOIN t ON t.id = f.ti AND t.try_number = f.try_number
                 WHERE a.ti_id = f.ti AND a.try_number = f.try_number){}
             SELECT coalesce((SELECT array_agg(id) FROM t), '{{}}'),
                    coalesce((SELECT array_agg(try_number) FROM t), '{{}}'),
                    (SELECT count(*) FROM (SELECT pg_notify('gale_changed', $12 || ' ' || run_id)
                        FROM (SELECT DISTINCT run_id FROM t) r WHERE $13) n)",
            if alerts.is_empty() {
                String::new()
            } else {
                format!(
                    ",\n d AS ({})",
                    outbox::insert_cte(
                        14,
                        "JOIN t ON t.id = x.cause AND t.try_number = x.cause_try"
                    )
                )
            }
        );
        let recorded = self
            .single(move |c| {
                Box::pin(async move {
                    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
                        &ids, &tries, &workers, &states, &retry_at, &outputs, &outcomes, &codes,
                        &messages, &pids, &commands, &origin, &announce,
                    ];
                    if !alerts.is_empty() {
                        params.extend(alerts.params());
                    }
                    let row = c.one(&sql, &params).await?;
                    let ids: Vec<i64> = row.get(0);
                    let tries: Vec<i32> = row.get(1);
                    Ok(ids.into_iter().zip(tries).collect::<Vec<_>>())
                })
            })
            .await?;
        // By task instance and try: two tries of one task instance can be in
        // one batch (a late result of a reaped try beside its retry's).
        let recorded: std::collections::HashSet<(i64, i32)> = recorded.into_iter().collect();
        Ok(order
            .iter()
            .map(|f| recorded.contains(&(f.ti.0, i32_of(f.try_number))))
            .collect())
    }

    async fn expired_attempts(&self, lease: Duration) -> Result<Vec<TaskRow>> {
        // Whole microseconds times an interval: exact, where a float number
        // of seconds can round a millisecond down to 999 µs.
        let micros = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TI_COLS} FROM task_instances
                     WHERE state = 'running' AND heartbeat_at < now() - greatest($1::int8,
                         coalesce((SELECT n.attempt_lease_ms FROM nodes n
                                   WHERE n.node_id = task_instances.worker_id), 0)::int8 * 1000)
                         * interval '1 microsecond'
                     ORDER BY heartbeat_at LIMIT 1000"
                );
                Ok(c.rows(&sql, &[&micros]).await?.iter().map(ti_row).collect())
            })
        })
        .await
    }

    async fn worker_attempts(&self, worker_id: &WorkerId) -> Result<Vec<TaskRow>> {
        let worker_id = worker_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TI_COLS} FROM task_instances WHERE state = 'running' AND worker_id = $1"
                );
                Ok(c.rows(&sql, &[&worker_id]).await?.iter().map(ti_row).collect())
            })
        })
        .await
    }

    async fn reap_attempt(&self, reap: &Reap) -> Result<bool> {
        let r = reap.clone();
        let try_number = i32_of(r.try_number);
        // Zero: whatever the heartbeat.
        let lease: Option<i64> =
            (!r.lease.is_zero()).then(|| i64::try_from(r.lease.as_micros()).unwrap_or(i64::MAX));
        let refund = i32::from(r.refund_try);
        let origin = self.origin.clone();
        let mut alerts = outbox::Rows::default();
        alerts.add(r.ti.0, try_number, &r.alerts)?;
        let sql = format!(
            "WITH t AS (
                             UPDATE task_instances SET state = $4, retry_at = $5, ended_at = now(),
                                 updated_at = now(), max_tries = max_tries + $7
                             WHERE id = $1 AND try_number = $2 AND worker_id = $3 AND state = 'running'
                               AND ($6::int8 IS NULL
                                    OR heartbeat_at < now() - greatest($6::int8,
                                        coalesce((SELECT n.attempt_lease_ms FROM nodes n
                                                  WHERE n.node_id = $3), 0)::int8 * 1000)
                                        * interval '1 microsecond')
                             RETURNING id, run_id,
                                 heartbeat_at + greatest($6::int8,
                                     coalesce((SELECT n.attempt_lease_ms FROM nodes n
                                               WHERE n.node_id = $3), 0)::int8 * 1000)
                                     * interval '1 microsecond' AS lease_end),
                         a AS (
                             UPDATE attempts SET state = $8, message = $9,
                                 ended_at = least(now(), coalesce((SELECT lease_end FROM t), now()))
                             WHERE ti_id = $1 AND try_number = $2 AND EXISTS (SELECT 1 FROM t))
                         {}
                         SELECT (SELECT count(*) FROM t),
                                (SELECT count(*) FROM (SELECT pg_notify('gale_changed', $10 || ' ' || run_id) FROM t) n)",
            if alerts.is_empty() {
                String::new()
            } else {
                format!(
                    ", d AS ({})",
                    outbox::insert_cte(11, "JOIN t ON t.id = x.cause")
                )
            }
        );
        self.single(move |c| {
            Box::pin(async move {
                let (worker, to, outcome) =
                    (r.worker_id.as_str(), r.to.as_str(), r.outcome.as_str());
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![
                    &r.ti.0,
                    &try_number,
                    &worker,
                    &to,
                    &r.retry_at,
                    &lease,
                    &refund,
                    &outcome,
                    &r.message,
                    &origin,
                ];
                if !alerts.is_empty() {
                    params.extend(alerts.params());
                }
                let row = c.one(&sql, &params).await?;
                Ok(row.get::<_, i64>(0) > 0)
            })
        })
        .await
    }

    async fn attempts(&self, ti: TiId) -> Result<Vec<AttemptRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT ti_id, try_number, run_id, task_id, worker_id, host, pid, state,
                             exit_code, message, command, started_at, ended_at
                         FROM attempts WHERE ti_id = $1 ORDER BY try_number",
                        &[&ti.0],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| AttemptRow {
                        ti_id: TiId(r.get(0)),
                        try_number: u32_of(r.get(1)),
                        run_id: RunId(r.get(2)),
                        task_id: TaskId(r.get(3)),
                        worker_id: WorkerId(r.get(4)),
                        host: r.get(5),
                        pid: r.get(6),
                        state: AttemptState::parse(r.get(7)),
                        exit_code: r.get(8),
                        message: r.get(9),
                        command: r.get(10),
                        started_at: r.get(11),
                        ended_at: r.get(12),
                    })
                    .collect())
            })
        })
        .await
    }
}
