//! The PostgreSQL backend's alert outbox writes that ride in another
//! aggregate's statement: a finished attempt, a reaped one, a finished run.
//! Each is one more data-modifying CTE of that statement, inserting only the
//! alerts of the changes that applied, so the change and its alerts commit
//! together or not at all.

use super::*;
use crate::rules::check_new_delivery;

/// The insert, as a CTE body: the alerts as `x`, each with the id (and try)
/// of what caused it, from the nine parameters from `$first` on; `applied`
/// is the join (or filter) that keeps only the alerts whose change applied.
pub(super) fn insert_cte(first: usize, applied: &str) -> String {
    let p: Vec<String> = (first..first + 9).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO alert_deliveries (created_at, channel, event_key, kind,
             dag_id, run_id, ti_id, payload, state, attempts, next_at)
         SELECT now(), x.channel, x.event_key, x.kind, x.dag_id, x.run_id, x.ti_id, x.payload,
             'pending', 0, now()
         FROM unnest({}::bigint[], {}::int[], {}::text[], {}::text[], {}::text[], {}::text[],
             {}::bigint[], {}::bigint[], {}::text[])
             AS x(cause, cause_try, channel, event_key, kind, dag_id, run_id, ti_id, payload)
         {applied}
         ON CONFLICT (channel, event_key) DO NOTHING",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
    )
}

/// Alerts as the columns `insert_cte` unnests.
#[derive(Default)]
pub(super) struct Rows {
    cause: Vec<i64>,
    cause_try: Vec<i32>,
    channel: Vec<String>,
    event_key: Vec<String>,
    kind: Vec<String>,
    dag_id: Vec<Option<String>>,
    run_id: Vec<Option<i64>>,
    ti_id: Vec<Option<i64>>,
    payload: Vec<String>,
}

impl Rows {
    /// Each alert of `alerts`, caused by `cause` (an id) at try `cause_try`;
    /// refused as `enqueue_alerts` would refuse it.
    pub(super) fn add(&mut self, cause: i64, cause_try: i32, alerts: &[NewDelivery]) -> Result<()> {
        for d in alerts {
            check_new_delivery(d)?;
            let clean = |s: &str| s.replace('\0', "\u{fffd}");
            self.cause.push(cause);
            self.cause_try.push(cause_try);
            self.channel.push(d.channel.clone());
            self.event_key.push(d.event_key.clone());
            self.kind.push(d.kind.clone());
            self.dag_id.push(d.dag_id.as_ref().map(|x| x.0.clone()));
            self.run_id.push(d.run_id.map(|x| x.0));
            self.ti_id.push(d.ti_id.map(|x| x.0));
            self.payload.push(clean(
                &serde_json::Value::Object(d.payload.clone()).to_string(),
            ));
        }
        Ok(())
    }

    /// The alerts of every finish, each caused by its task instance and try.
    pub(super) fn of_finishes(finishes: &[Finish]) -> Result<Rows> {
        let mut rows = Rows::default();
        for f in finishes {
            rows.add(f.ti.0, i32_of(f.try_number), &f.alerts)?;
        }
        Ok(rows)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.cause.is_empty()
    }

    /// The nine parameters `insert_cte` names.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.cause,
            &self.cause_try,
            &self.channel,
            &self.event_key,
            &self.kind,
            &self.dag_id,
            &self.run_id,
            &self.ti_id,
            &self.payload,
        ]
    }
}
