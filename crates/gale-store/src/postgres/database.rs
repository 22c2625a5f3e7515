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
        self.single(|c| {
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
