//! The SQLite schema: the embedded migrations, applied in order, each
//! recorded in `gale_schema` (versions need not be consecutive: one missing
//! below the newest is applied when it appears), the newest also in
//! `PRAGMA user_version`.

use std::collections::BTreeSet;

use super::*;

/// Embedded migrations, applied in order. Versions need not be consecutive
/// (there is no 8): `gale_schema` records each version applied, so a version
/// added later below the newest is still applied to a database that lacks it.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_run_state_index.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_slots_and_clock.sql"),
    ),
    (4, include_str!("../../migrations/sqlite/0004_pools.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_node_lease.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_file_owner.sql"),
    ),
    (7, include_str!("../../migrations/sqlite/0007_web.sql")),
    (
        8,
        include_str!("../../migrations/sqlite/0008_auth_hardening.sql"),
    ),
    (9, include_str!("../../migrations/sqlite/0009_audit.sql")),
    (10, include_str!("../../migrations/sqlite/0010_secrets.sql")),
    (11, include_str!("../../migrations/sqlite/0011_alerts.sql")),
    (
        12,
        include_str!("../../migrations/sqlite/0012_admin_pages.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_runs_by_dag_date.sql"),
    ),
    (
        14,
        include_str!("../../migrations/sqlite/0014_dag_sources.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_dags_by_change.sql"),
    ),
];

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)?;
    if current > SCHEMA_VERSION {
        return Err(Error::Invalid(format!(
            "the database schema is version {current}, newer than this gale ({SCHEMA_VERSION}): upgrade gale"
        )));
    }
    let recorded: bool = tx
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'gale_schema'",
            [],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    if !recorded {
        tx.execute_batch(
            "CREATE TABLE gale_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .map_err(map_err)?;
        // Before each version was recorded, `user_version` was the last one
        // applied, and every migration up to it had been.
        for (version, _) in MIGRATIONS.iter().filter(|(v, _)| *v <= current) {
            tx.execute(
                "INSERT INTO gale_schema (version, applied_at) VALUES (?1, ?2)",
                params![version, now_us()],
            )
            .map_err(map_err)?;
        }
    }
    let applied: BTreeSet<i64> = {
        let mut stmt = tx
            .prepare("SELECT version FROM gale_schema")
            .map_err(map_err)?;
        stmt.query_map([], |r| r.get(0))
            .map_err(map_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(map_err)?
    };
    let known: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
    for version in pending_migrations(&known, &applied, SCHEMA_VERSION)? {
        let Some((_, sql)) = MIGRATIONS.iter().find(|(v, _)| *v == version) else {
            continue;
        };
        tx.execute_batch(sql).map_err(map_err)?;
        tx.execute(
            "INSERT INTO gale_schema (version, applied_at) VALUES (?1, ?2)",
            params![version, now_us()],
        )
        .map_err(map_err)?;
    }
    let newest: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM gale_schema",
            [],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    tx.pragma_update(None, "user_version", newest)
        .map_err(map_err)?;
    tx.commit().map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_rise_and_the_last_is_the_schema_version() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(SCHEMA_VERSION));
    }
}
