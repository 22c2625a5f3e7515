//! The PostgreSQL schema: the embedded migrations, applied in order under an
//! advisory lock (so several processes may start at once) and recorded in
//! `gale_schema`.

use super::*;

/// Embedded migrations, applied in order under an advisory lock.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_pools.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_node_lease.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_file_owner.sql"),
    ),
    (5, include_str!("../../migrations/postgres/0005_web.sql")),
    (
        6,
        include_str!("../../migrations/postgres/0006_lean_indexes.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_auth_hardening.sql"),
    ),
];

/// Key of the advisory lock that serialises migrations between processes.
const MIGRATION_LOCK: i64 = 0x6761_6c65_6d69_6721;

impl PgStore {
    pub(super) async fn migrate(&self) -> Result<()> {
        self.write(|tx| {
            Box::pin(async move {
                tx.exec("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                    .await?;
                tx.exec(
                    "CREATE TABLE IF NOT EXISTS gale_schema (
                         version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                    &[],
                )
                .await?;
                let current: i64 = tx
                    .one("SELECT coalesce(max(version), 0) FROM gale_schema", &[])
                    .await?
                    .get(0);
                if current > SCHEMA_VERSION {
                    return Err(Error::Invalid(format!(
                        "the database schema is version {current}, newer than this gale ({SCHEMA_VERSION}): upgrade gale"
                    )));
                }
                for (version, sql) in MIGRATIONS {
                    if *version > current {
                        tx.batch_execute(sql).await?;
                        tx.exec("INSERT INTO gale_schema (version) VALUES ($1)", &[version])
                            .await?;
                        info!(version, "applied database migration");
                    }
                }
                Ok(())
            })
        })
        .await
    }
}
