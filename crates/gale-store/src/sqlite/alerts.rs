//! The SQLite backend's `impl Alerts for SqliteStore`: alert channels and the
//! delivery outbox, claimed under leases and finished fenced.

use super::*;

const CHANNEL_COLS: &str = "name, kind, config, sealed, key_id, description, updated_at";
const DELIVERY_COLS: &str = "id, created_at, channel, event_key, kind, dag_id, run_id, ti_id, \
     payload, state, attempts, next_at, claimed_by, lease_until, last_error, sent_at";

fn channel_row(r: &Row) -> rusqlite::Result<AlertChannelRow> {
    let kind: String = r.get(1)?;
    let sealed = match (
        r.get::<_, Option<String>>(3)?,
        r.get::<_, Option<String>>(4)?,
    ) {
        (Some(data), Some(key_id)) => Some(Sealed { key_id, data }),
        _ => None,
    };
    Ok(AlertChannelRow {
        name: r.get(0)?,
        // The schema holds only known kinds.
        kind: ChannelKind::parse(&kind).unwrap_or(ChannelKind::Command),
        config: json_map(&r.get::<_, String>(2)?),
        sealed,
        description: r.get(5)?,
        updated_at: Some(ts(r.get(6)?)),
    })
}

fn delivery_row(r: &Row) -> rusqlite::Result<DeliveryRow> {
    let state: String = r.get(9)?;
    Ok(DeliveryRow {
        id: r.get(0)?,
        created_at: ts(r.get(1)?),
        channel: r.get(2)?,
        event_key: r.get(3)?,
        kind: r.get(4)?,
        dag_id: r.get::<_, Option<String>>(5)?.map(DagId),
        run_id: r.get::<_, Option<i64>>(6)?.map(RunId),
        ti_id: r.get::<_, Option<i64>>(7)?.map(TiId),
        payload: json_map(&r.get::<_, String>(8)?),
        // The schema holds only known states.
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Failed),
        attempts: r.get::<_, i64>(10)?.clamp(0, i64::from(u32::MAX)) as u32,
        next_at: ts(r.get(11)?),
        claimed_by: r.get(12)?,
        lease_until: opt_ts(r.get(13)?),
        last_error: r.get(14)?,
        sent_at: opt_ts(r.get(15)?),
    })
}

#[async_trait]
impl Alerts for SqliteStore {
    async fn put_channel(&self, row: &AlertChannelRow) -> Result<()> {
        let r = row.clone();
        let config = to_json(&r.config)?;
        self.write(move |tx| {
            let (data, key_id) = match &r.sealed {
                Some(s) => (Some(s.data.clone()), Some(s.key_id.clone())),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO alert_channels (name, kind, config, sealed, key_id, description, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET kind = ?2, config = ?3, sealed = ?4,
                     key_id = ?5, description = ?6, updated_at = ?7",
                params![r.name, r.kind.as_str(), config, data, key_id, r.description, now_us()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn channel(&self, name: &str) -> Result<Option<AlertChannelRow>> {
        let name = name.to_owned();
        self.call(move |conn| {
            Ok(query_all(
                conn,
                &format!("SELECT {CHANNEL_COLS} FROM alert_channels WHERE name = ?1"),
                params![name],
                channel_row,
            )?
            .pop())
        })
        .await
    }

    async fn list_channels(&self) -> Result<Vec<AlertChannelRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {CHANNEL_COLS} FROM alert_channels ORDER BY name LIMIT ?1"),
                params![CHANNELS_LISTED],
                channel_row,
            )
        })
        .await
    }

    async fn delete_channel(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE alert_deliveries SET state = 'failed', last_error = 'channel deleted'
                 WHERE channel = ?1 AND state = 'pending'",
                params![name],
            )
            .map_err(map_err)?;
            Ok(tx
                .execute("DELETE FROM alert_channels WHERE name = ?1", params![name])
                .map_err(map_err)?
                > 0)
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
        self.write(move |tx| super::outbox::insert(tx, &new, now_us()))
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
        // Most looks find nothing due: asked on a reader, so an idle
        // deliverer never takes the writer.
        let now = now_us();
        let any_due: bool = self
            .call(move |conn| {
                conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM alert_deliveries
                         WHERE state = 'pending' AND next_at <= ?1)
                     OR EXISTS (SELECT 1 FROM alert_deliveries
                         WHERE state = 'sending' AND lease_until < ?1)",
                    params![now],
                    |r| r.get(0),
                )
                .map_err(map_err)
            })
            .await?;
        if !any_due {
            return Ok(Vec::new());
        }
        let claimer = claimer.to_owned();
        let lease_us = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        // One writer at a time: no other claimer runs between the pick and
        // the channels' quiet time being set.
        self.write(move |tx| {
            let now = now_us();
            let ids: Vec<i64> = query_all(
                tx,
                "SELECT d.id FROM (
                     SELECT id, channel, next_at AS due FROM alert_deliveries
                     WHERE state = 'pending' AND next_at <= ?1
                     UNION ALL
                     SELECT id, channel, lease_until FROM alert_deliveries
                     WHERE state = 'sending' AND lease_until < ?1) d
                 LEFT JOIN alert_channels c ON c.name = d.channel
                 WHERE c.quiet_until IS NULL OR c.quiet_until <= ?1
                 ORDER BY d.due, d.id LIMIT ?2",
                params![now, limit],
                |r| r.get(0),
            )?;
            let mut stmt = tx
                .prepare_cached(&format!(
                    "UPDATE alert_deliveries SET state = 'sending', claimed_by = ?2,
                         lease_until = ?3, attempts = attempts + 1
                     WHERE id = ?1 RETURNING {DELIVERY_COLS}"
                ))
                .map_err(map_err)?;
            let until = now.saturating_add(lease_us);
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(
                    stmt.query_row(params![id, claimer, until], delivery_row)
                        .map_err(map_err)?,
                );
            }
            let mut channels: Vec<&str> = out.iter().map(|d| d.channel.as_str()).collect();
            channels.sort_unstable();
            channels.dedup();
            let mut quiet = tx
                .prepare_cached("UPDATE alert_channels SET quiet_until = ?2 WHERE name = ?1")
                .map_err(map_err)?;
            let quiet_until = now.saturating_add(window_us);
            for name in channels {
                quiet.execute(params![name, quiet_until]).map_err(map_err)?;
            }
            Ok(out)
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
            let now = now_us();
            let fence = "WHERE id = ?1 AND state = 'sending' AND claimed_by = ?2 AND attempts = ?3";
            let mut done = Vec::with_capacity(results.len());
            for (id, attempt, result) in &results {
                let n = match result {
                    DeliveryResult::Sent => tx
                        .prepare_cached(&format!(
                            "UPDATE alert_deliveries SET state = 'sent', sent_at = ?4, last_error = NULL,
                                 lease_until = NULL {fence}"
                        ))
                        .and_then(|mut st| st.execute(params![id, claimer, attempt, now])),
                    DeliveryResult::Retry { at, error } => tx
                        .prepare_cached(&format!(
                            "UPDATE alert_deliveries SET state = 'pending', next_at = ?4,
                                 last_error = ?5, lease_until = NULL {fence}"
                        ))
                        .and_then(|mut st| {
                            st.execute(params![
                                id,
                                claimer,
                                attempt,
                                to_micros(*at),
                                delivery_error(error)
                            ])
                        }),
                    DeliveryResult::GiveUp { error } => tx
                        .prepare_cached(&format!(
                            "UPDATE alert_deliveries SET state = 'failed', last_error = ?4,
                                 lease_until = NULL {fence}"
                        ))
                        .and_then(|mut st| {
                            st.execute(params![id, claimer, attempt, delivery_error(error)])
                        }),
                }
                .map_err(map_err)?;
                done.push(n > 0);
            }
            Ok(done)
        })
        .await
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let f = filter.clone();
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {DELIVERY_COLS} FROM alert_deliveries
                     WHERE (?1 IS NULL OR run_id = ?1) AND (?2 IS NULL OR channel = ?2)
                       AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR id < ?4)
                     ORDER BY id DESC LIMIT ?5"
                ),
                params![
                    f.run_id.map(|r| r.0),
                    f.channel,
                    f.state.map(DeliveryState::as_str),
                    f.before,
                    delivery_list_limit(f.limit)
                ],
                delivery_row,
            )
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<(String, DeliveryState, u64)>> {
        let rows = self
            .call(|conn| {
                query_all(
                    conn,
                    "SELECT channel, state, count(*) FROM alert_deliveries
                     GROUP BY channel, state",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?.max(0) as u64,
                        ))
                    },
                )
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
        self.write_large(move |tx| {
            Ok(tx
                .execute(
                    "DELETE FROM alert_deliveries
                     WHERE state IN ('sent', 'failed') AND created_at < ?1",
                    params![to_micros(older_than)],
                )
                .map_err(map_err)? as u64)
        })
        .await
    }
}
