//! The PostgreSQL backend's `impl Alerts for PgStore`: alert channels and the
//! delivery outbox, claimed with `FOR UPDATE SKIP LOCKED` under leases on the
//! database's clock and finished fenced.

use super::*;

const CHANNEL_COLS: &str = "name, kind, config, sealed, key_id, description, updated_at";
const DELIVERY_COLS: &str = "id, created_at, channel, event_key, kind, dag_id, run_id, ti_id, \
     payload, state, attempts, next_at, claimed_by, lease_until, last_error, sent_at";

fn text_map(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(text).unwrap_or_default()
}

fn text_of(map: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(map.clone()).to_string()
}

fn channel_row(r: &Row) -> AlertChannelRow {
    let sealed = match (r.get::<_, Option<String>>(3), r.get::<_, Option<String>>(4)) {
        (Some(data), Some(key_id)) => Some(Sealed { key_id, data }),
        _ => None,
    };
    AlertChannelRow {
        name: r.get(0),
        // The schema holds only known kinds.
        kind: ChannelKind::parse(r.get(1)).unwrap_or(ChannelKind::Command),
        config: text_map(r.get(2)),
        sealed,
        description: r.get(5),
        updated_at: Some(r.get(6)),
    }
}

fn delivery_row(r: &Row) -> DeliveryRow {
    DeliveryRow {
        id: r.get(0),
        created_at: r.get(1),
        channel: r.get(2),
        event_key: r.get(3),
        kind: r.get(4),
        dag_id: r.get::<_, Option<String>>(5).map(DagId),
        run_id: r.get::<_, Option<i64>>(6).map(RunId),
        ti_id: r.get::<_, Option<i64>>(7).map(TiId),
        payload: text_map(r.get(8)),
        // The schema holds only known states.
        state: DeliveryState::parse(r.get(9)).unwrap_or(DeliveryState::Failed),
        attempts: r.get::<_, i32>(10).max(0) as u32,
        next_at: r.get(11),
        claimed_by: r.get(12),
        lease_until: r.get(13),
        last_error: r.get(14),
        sent_at: r.get(15),
    }
}

#[async_trait]
impl Alerts for PgStore {
    async fn put_channel(&self, row: &AlertChannelRow) -> Result<()> {
        let r = row.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (data, key_id) = match &r.sealed {
                    Some(s) => (Some(s.data.clone()), Some(s.key_id.clone())),
                    None => (None, None),
                };
                tx.exec(
                    "INSERT INTO alert_channels (name, kind, config, sealed, key_id, description, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, now())
                     ON CONFLICT (name) DO UPDATE SET kind = $2, config = $3, sealed = $4,
                         key_id = $5, description = $6, updated_at = now()",
                    &[&r.name, &r.kind.as_str(), &text_of(&r.config), &data, &key_id, &r.description],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn channel(&self, name: &str) -> Result<Option<AlertChannelRow>> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.opt(
                    &format!("SELECT {CHANNEL_COLS} FROM alert_channels WHERE name = $1"),
                    &[&name],
                )
                .await?
                .map(|r| channel_row(&r)))
            })
        })
        .await
    }

    async fn list_channels(&self) -> Result<Vec<AlertChannelRow>> {
        self.light(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        &format!(
                            "SELECT {CHANNEL_COLS} FROM alert_channels ORDER BY name LIMIT $1"
                        ),
                        &[&i64::from(CHANNELS_LISTED)],
                    )
                    .await?;
                Ok(rows.iter().map(channel_row).collect())
            })
        })
        .await
    }

    async fn delete_channel(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE alert_deliveries SET state = 'failed', last_error = 'channel deleted'
                     WHERE channel = $1 AND state = 'pending'",
                    &[&name],
                )
                .await?;
                Ok(tx
                    .exec("DELETE FROM alert_channels WHERE name = $1", &[&name])
                    .await?
                    > 0)
            })
        })
        .await
    }

    async fn enqueue_alerts(&self, new: &[NewDelivery]) -> Result<u64> {
        if new.is_empty() {
            return Ok(0);
        }
        for d in new {
            check_new_delivery(d)?;
        }
        let new = new.to_vec();
        self.write(move |tx| {
            Box::pin(async move {
                let mut n = 0;
                for d in &new {
                    let dag_id = d.dag_id.as_ref().map(|x| x.0.clone());
                    let (run_id, ti_id) = (d.run_id.map(|x| x.0), d.ti_id.map(|x| x.0));
                    n += tx
                        .exec(
                            "INSERT INTO alert_deliveries (created_at, channel, event_key, kind,
                                 dag_id, run_id, ti_id, payload, state, attempts, next_at)
                             VALUES (now(), $1, $2, $3, $4, $5, $6, $7, 'pending', 0, now())
                             ON CONFLICT (channel, event_key) DO NOTHING",
                            &[
                                &d.channel,
                                &d.event_key,
                                &d.kind,
                                &dag_id,
                                &run_id,
                                &ti_id,
                                &text_of(&d.payload),
                            ],
                        )
                        .await?;
                }
                Ok(n)
            })
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        claimer: &str,
        limit: u32,
        lease: Duration,
        window: Duration,
    ) -> Result<Vec<DeliveryRow>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let claimer = claimer.to_owned();
        // Whole microseconds times an interval: exact.
        let micros = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        // Most passes find nothing due: one light statement says so, without
        // a transaction or a connection of its own.
        let due = self
            .light(|c| {
                Box::pin(async move {
                    let row = c
                        .one(
                            "SELECT EXISTS (SELECT 1 FROM alert_deliveries
                                 WHERE (state = 'pending' AND next_at <= now())
                                    OR (state = 'sending' AND lease_until < now()))",
                            &[],
                        )
                        .await?;
                    Ok(row.get::<_, bool>(0))
                })
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            Box::pin(async move {
                // The channels that are not quiet and have something due,
                // locked: a concurrent claimer skips them (and, once this
                // commits, finds them quiet), so one channel's deliveries go
                // to one claimer at a time.
                let open: Vec<String> = tx
                    .rows(
                        "SELECT c.name FROM alert_channels c
                         WHERE (c.quiet_until IS NULL OR c.quiet_until <= now())
                           AND EXISTS (SELECT 1 FROM alert_deliveries d
                                       WHERE d.channel = c.name
                                         AND ((d.state = 'pending' AND d.next_at <= now())
                                           OR (d.state = 'sending' AND d.lease_until < now())))
                         ORDER BY c.name
                         FOR UPDATE SKIP LOCKED",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                // Deliveries of those channels, or of a channel that is gone
                // (to be given up).
                let sql = format!(
                    "WITH pick AS (
                         SELECT id FROM alert_deliveries d
                         WHERE ((state = 'pending' AND next_at <= now())
                            OR (state = 'sending' AND lease_until < now()))
                           AND (d.channel = ANY($4)
                             OR NOT EXISTS (SELECT 1 FROM alert_channels c WHERE c.name = d.channel))
                         ORDER BY coalesce(CASE WHEN state = 'sending' THEN lease_until END, next_at), id
                         LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                     UPDATE alert_deliveries d SET state = 'sending', claimed_by = $1,
                         lease_until = now() + $2::int8 * interval '1 microsecond',
                         attempts = d.attempts + 1
                     WHERE d.id = ANY(ARRAY(SELECT id FROM pick))
                     RETURNING {DELIVERY_COLS}"
                );
                let mut out: Vec<DeliveryRow> = tx
                    .rows(&sql, &[&claimer, &micros, &i64::from(limit), &open])
                    .await?
                    .iter()
                    .map(delivery_row)
                    .collect();
                out.sort_by_key(|d| d.id);
                let mut claimed: Vec<String> = out.iter().map(|d| d.channel.clone()).collect();
                claimed.sort_unstable();
                claimed.dedup();
                if !claimed.is_empty() {
                    tx.exec(
                        "UPDATE alert_channels
                         SET quiet_until = now() + $2::int8 * interval '1 microsecond'
                         WHERE name = ANY($1)",
                        &[&claimed, &window_us],
                    )
                    .await?;
                }
                Ok(out)
            })
        })
        .await
    }

    async fn finish_deliveries(
        &self,
        claimer: &str,
        results: &[(i64, u32, DeliveryResult)],
    ) -> Result<Vec<bool>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let (claimer, results) = (claimer.to_owned(), results.to_vec());
        self.write(move |tx| {
            Box::pin(async move {
                let fence =
                    "WHERE id = $1 AND state = 'sending' AND claimed_by = $2 AND attempts = $3";
                let mut done = Vec::with_capacity(results.len());
                for (id, attempt, result) in &results {
                    let attempt = i32::try_from(*attempt).unwrap_or(i32::MAX);
                    let n = match result {
                        DeliveryResult::Sent => {
                            tx.exec(
                                &format!(
                                    "UPDATE alert_deliveries SET state = 'sent', sent_at = now(), last_error = NULL,
                                         lease_until = NULL {fence}"
                                ),
                                &[id, &claimer, &attempt],
                            )
                            .await?
                        }
                        DeliveryResult::Retry { at, error } => {
                            tx.exec(
                                &format!(
                                    "UPDATE alert_deliveries SET state = 'pending', next_at = $4,
                                         last_error = $5, lease_until = NULL {fence}"
                                ),
                                &[id, &claimer, &attempt, at, &delivery_error(error)],
                            )
                            .await?
                        }
                        DeliveryResult::GiveUp { error } => {
                            tx.exec(
                                &format!(
                                    "UPDATE alert_deliveries SET state = 'failed', last_error = $4,
                                         lease_until = NULL {fence}"
                                ),
                                &[id, &claimer, &attempt, &delivery_error(error)],
                            )
                            .await?
                        }
                    };
                    done.push(n > 0);
                }
                Ok(done)
            })
        })
        .await
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let f = filter.clone();
        self.single(move |c| {
            Box::pin(async move {
                let run_id = f.run_id.map(|r| r.0);
                let state = f.state.map(DeliveryState::as_str);
                let limit = i64::from(delivery_list_limit(f.limit));
                let rows = c
                    .rows(
                        &format!(
                            "SELECT {DELIVERY_COLS} FROM alert_deliveries
                             WHERE ($1::int8 IS NULL OR run_id = $1)
                               AND ($2::text IS NULL OR channel = $2)
                               AND ($3::text IS NULL OR state = $3)
                               AND ($4::int8 IS NULL OR id < $4)
                             ORDER BY id DESC LIMIT $5"
                        ),
                        &[&run_id, &f.channel, &state, &f.before, &limit],
                    )
                    .await?;
                Ok(rows.iter().map(delivery_row).collect())
            })
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<(String, DeliveryState, u64)>> {
        let rows = self
            .single(|c| {
                Box::pin(async move {
                    let rows = c
                        .rows(
                            "SELECT channel, state, count(*) FROM alert_deliveries
                             GROUP BY channel, state",
                            &[],
                        )
                        .await?;
                    Ok(rows
                        .iter()
                        .map(|r| {
                            (
                                r.get::<_, String>(0),
                                r.get::<_, String>(1),
                                r.get::<_, i64>(2).max(0) as u64,
                            )
                        })
                        .collect::<Vec<_>>())
                })
            })
            .await?;
        let mut out: Vec<_> = rows
            .into_iter()
            .filter_map(|(c, s, n)| Some((c, DeliveryState::parse(&s)?, n)))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn prune_deliveries(&self, older_than: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "DELETE FROM alert_deliveries
                     WHERE state IN ('sent', 'failed') AND created_at < $1",
                    &[&older_than],
                )
                .await
            })
        })
        .await
    }
}
