//! The SQLite backend's `impl Audit for SqliteStore`: the audit log, pruned to
//! its newest entries by id on every insert.

use super::*;

const AUDIT_COLS: &str = "id, at, actor, origin, action, target, detail, outcome";

fn audit_row(r: &Row) -> rusqlite::Result<AuditRow> {
    let (action, outcome, detail) = audit_fields(
        &r.get::<_, String>(4)?,
        &r.get::<_, String>(7)?,
        &r.get::<_, String>(6)?,
    );
    Ok(AuditRow {
        id: r.get(0)?,
        at: ts(r.get(1)?),
        actor: r.get(2)?,
        origin: r.get(3)?,
        action,
        target: r.get(5)?,
        detail,
        outcome,
    })
}

/// Deletes the entries more than `keep` ids older than the newest.
fn prune(tx: &Connection, keep: u64) -> Result<u64> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let n = tx
        .execute(
            "DELETE FROM audit_log
             WHERE id <= (SELECT coalesce(max(id), 0) FROM audit_log) - ?1",
            params![keep],
        )
        .map_err(map_err)?;
    Ok(n as u64)
}

#[async_trait]
impl Audit for SqliteStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let e = stored_audit(entry);
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO audit_log (at, actor, origin, action, target, detail, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    now_us(),
                    e.actor,
                    e.origin,
                    e.action,
                    e.target,
                    e.detail,
                    e.outcome
                ],
            )
            .map_err(map_err)?;
            let id = tx.last_insert_rowid();
            prune(tx, AUDIT_KEEP)?;
            Ok(id)
        })
        .await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        let f = filter.clone();
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {AUDIT_COLS} FROM audit_log
                     WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2)
                       AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR id < ?4)
                     ORDER BY id DESC LIMIT ?5"
                ),
                params![
                    f.actor,
                    f.action.map(AuditAction::as_str),
                    f.since.map(to_micros),
                    f.before,
                    audit_list_limit(f.limit)
                ],
                audit_row,
            )
        })
        .await
    }

    async fn prune_audit(&self, keep: u64) -> Result<u64> {
        self.write_large(move |tx| prune(tx, keep)).await
    }
}
