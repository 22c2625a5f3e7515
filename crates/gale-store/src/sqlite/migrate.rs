//! The SQLite schema: the embedded migrations, applied in order and recorded
//! in `PRAGMA user_version`.

use super::*;

/// Embedded migrations, applied in order; `PRAGMA user_version` records the last.
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
    for (version, sql) in MIGRATIONS {
        if *version > current {
            tx.execute_batch(sql).map_err(map_err)?;
            tx.pragma_update(None, "user_version", version)
                .map_err(map_err)?;
        }
    }
    tx.commit().map_err(map_err)
}
