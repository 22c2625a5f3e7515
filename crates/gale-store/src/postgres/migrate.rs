//! The PostgreSQL schema: the embedded migrations, applied in order under an
//! advisory lock (so several processes may start at once), each recorded in
//! `gale_schema` (versions need not be consecutive: one missing below the
//! newest is applied when it appears).

use std::collections::BTreeSet;

use super::*;

/// Embedded migrations, applied in order under an advisory lock. Versions need
/// not be consecutive (there is no 7): each applied version is recorded, so a
/// version added later below the newest is still applied to a database that
/// lacks it.
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
    (8, include_str!("../../migrations/postgres/0008_audit.sql")),
    (
        9,
        include_str!("../../migrations/postgres/0009_secrets.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_alerts.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_admin_pages.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_runs_by_dag_date.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_dag_sources.sql"),
    ),
    (
        14,
        include_str!("../../migrations/postgres/0014_dags_by_change.sql"),
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
                let applied: BTreeSet<i64> = tx
                    .rows("SELECT version FROM gale_schema", &[])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let known: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
                for version in pending_migrations(&known, &applied, SCHEMA_VERSION)? {
                    let Some((_, sql)) = MIGRATIONS.iter().find(|(v, _)| *v == version) else {
                        continue;
                    };
                    tx.batch_execute(sql).await?;
                    tx.exec("INSERT INTO gale_schema (version) VALUES ($1)", &[&version])
                        .await?;
                    info!(version, "applied database migration");
                }
                Ok(())
            })
        })
        .await
    }
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
