//! The SQLite backend's alert outbox writes that ride in another aggregate's
//! transaction: a finished attempt, a reaped one, a finished run.

use super::*;
use crate::rules::check_new_delivery;

/// Refuses `alerts` as `enqueue_alerts` would.
pub(super) fn check(alerts: &[NewDelivery]) -> Result<()> {
    for d in alerts {
        check_new_delivery(d)?;
    }
    Ok(())
}

/// Adds `alerts` to the outbox in the transaction `tx`, due now; one whose
/// (channel, event key) is there already is left out.
pub(super) fn insert(tx: &Connection, alerts: &[NewDelivery], now: i64) -> Result<u64> {
    if alerts.is_empty() {
        return Ok(0);
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO alert_deliveries (created_at, channel, event_key, kind, dag_id,
                 run_id, ti_id, payload, state, attempts, next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?1)
             ON CONFLICT (channel, event_key) DO NOTHING",
        )
        .map_err(map_err)?;
    let mut n = 0u64;
    for d in alerts {
        n += stmt
            .execute(params![
                now,
                d.channel,
                d.event_key,
                d.kind,
                d.dag_id.as_ref().map(|x| x.0.clone()),
                d.run_id.map(|x| x.0),
                d.ti_id.map(|x| x.0),
                to_json(&d.payload)?
            ])
            .map_err(map_err)? as u64;
    }
    Ok(n)
}
