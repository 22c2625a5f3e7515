//! The PostgreSQL backend's `impl Database for PgStore`: the schema version and the
//! endpoint; and what TLS its sessions have.

use super::*;

#[async_trait]
impl Database for PgStore {
    async fn schema_version(&self) -> Result<i64> {
        self.single(|c| {
            Box::pin(async move {
                Ok(
                    c.one("SELECT coalesce(max(version), 0) FROM gale_schema", &[])
                        .await?
                        .get(0),
                )
            })
        })
        .await
    }

    async fn primary_identity(&self) -> Result<Option<String>> {
        self.light(|c| {
            Box::pin(async move {
                let row = c
                    .one(
                        "SELECT coalesce(host(inet_server_addr()), 'local') || ':'
                             || coalesce(inet_server_port(), 0)::text || ' started '
                             || to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                        &[],
                    )
                    .await?;
                Ok(Some(row.get(0)))
            })
        })
        .await
    }

    /// With the URL's `sslmode` when it is not the default (`prefer`).
    fn endpoint(&self) -> String {
        let endpoint = endpoint_of(&self.config);
        match self.tls_settings.mode {
            SslMode::Prefer => endpoint,
            mode => format!("{endpoint}?sslmode={}", mode.as_str()),
        }
    }
}

impl PgStore {
    /// The connections to this database whose `application_name` is `name`
    /// (this handle's own call aside), as the server counts them.
    pub async fn count_connections(&self, name: &str) -> Result<i64> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                let row = c
                    .one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE datname = current_database() AND application_name = $1
                           AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await?;
                Ok(row.get(0))
            })
        })
        .await
    }

    /// The transactions this database has committed and rolled back so far
    /// (`pg_stat_database`; each statement outside a transaction is one):
    /// the difference over a while is a cluster's statement rate.
    pub async fn transactions(&self) -> Result<i64> {
        self.single(|c| {
            Box::pin(async move {
                let row = c
                    .one(
                        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database
                         WHERE datname = current_database()",
                        &[],
                    )
                    .await?;
                Ok(row.get(0))
            })
        })
        .await
    }

    /// The TLS of a session of this store (`TLSv1.3 TLS_AES_256_GCM_SHA384`),
    /// as the server sees it (`pg_stat_ssl`); `None` when it is plaintext.
    pub async fn session_tls(&self) -> Result<Option<String>> {
        self.single(|c| {
            Box::pin(async move {
                let row = c
                    .opt(
                        "SELECT version || ' ' || cipher FROM pg_stat_ssl
                         WHERE pid = pg_backend_pid() AND ssl",
                        &[],
                    )
                    .await?;
                Ok(row.map(|r| r.get(0)))
            })
        })
        .await
    }

    /// The URL's TLS settings (`sslmode` and the files it named).
    pub fn tls_settings(&self) -> &TlsSettings {
        &self.tls_settings
    }
}
