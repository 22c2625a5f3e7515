//! The PostgreSQL backend's `impl Audit for PgStore`: the audit log, pruned to
//! its newest entries by id on every insert.

use super::*;

const AUDIT_COLS: &str = "id, at, actor, origin, action, target, detail, outcome";

fn audit_row(r: &Row) -> AuditRow {
    let (action, outcome, detail) = audit_fields(r.get(4), r.get(7), r.get(6));
    AuditRow {
        id: r.get(0),
        at: r.get(1),
        actor: r.get(2),
        origin: r.get(3),
        action,
        target: r.get(5),
        detail,
        outcome,
    }
}

/// Deletes the entries more than `keep` ids older than the newest (an index
/// range on the primary key).
const PRUNE: &str = "DELETE FROM audit_log
     WHERE id <= (SELECT coalesce(max(id), 0) FROM audit_log) - $1";

fn keep_of(keep: u64) -> i64 {
    i64::try_from(keep).unwrap_or(i64::MAX)
}

#[async_trait]
impl Audit for PgStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let e = stored_audit(entry);
        self.write(move |tx| {
            Box::pin(async move {
                let id: i64 = tx
                    .one(
                        "INSERT INTO audit_log (at, actor, origin, action, target, detail, outcome)
                         VALUES (now(), $1, $2, $3, $4, $5, $6) RETURNING id",
                        &[
                            &e.actor, &e.origin, &e.action, &e.target, &e.detail, &e.outcome,
                        ],
                    )
                    .await?
                    .get(0);
                tx.exec(PRUNE, &[&keep_of(AUDIT_KEEP)]).await?;
                Ok(id)
            })
        })
        .await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        let f = filter.clone();
        self.single(move |c| {
            Box::pin(async move {
                let action = f.action.map(AuditAction::as_str);
                let limit = i64::from(audit_list_limit(f.limit));
                Ok(c.rows(
                    &format!(
                        "SELECT {AUDIT_COLS} FROM audit_log
                         WHERE ($1::text IS NULL OR actor = $1)
                           AND ($2::text IS NULL OR action = $2)
                           AND ($3::timestamptz IS NULL OR at >= $3)
                           AND ($4::bigint IS NULL OR id < $4)
                         ORDER BY id DESC LIMIT $5"
                    ),
                    &[&f.actor, &action, &f.since, &f.before, &limit],
                )
                .await?
                .iter()
                .map(audit_row)
                .collect())
            })
        })
        .await
    }

    async fn prune_audit(&self, keep: u64) -> Result<u64> {
        self.single(move |c| Box::pin(async move { c.exec(PRUNE, &[&keep_of(keep)]).await }))
            .await
    }
}
