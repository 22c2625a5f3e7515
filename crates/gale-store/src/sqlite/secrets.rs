//! The SQLite backend's `impl Secrets for SqliteStore`: variables and
//! connections, their secret parts sealed.

use super::*;

const VAR_COLS: &str = "name, value, sealed, key_id, is_json, secret, description, updated_at";
const CONN_COLS: &str =
    "name, conn_type, host, port, login, schema_name, sealed, key_id, description, updated_at";

fn sealed_of(data: Option<String>, key_id: Option<String>) -> Option<Sealed> {
    Some(Sealed {
        key_id: key_id?,
        data: data?,
    })
}

fn variable_row(r: &Row) -> rusqlite::Result<VariableRow> {
    Ok(VariableRow {
        name: r.get(0)?,
        value: r.get(1)?,
        sealed: sealed_of(r.get(2)?, r.get(3)?),
        json: r.get(4)?,
        secret: r.get(5)?,
        description: r.get(6)?,
        updated_at: Some(ts(r.get(7)?)),
    })
}

fn connection_row(r: &Row) -> rusqlite::Result<ConnectionRow> {
    Ok(ConnectionRow {
        name: r.get(0)?,
        conn_type: r.get(1)?,
        host: r.get(2)?,
        port: r
            .get::<_, Option<i64>>(3)?
            .and_then(|p| u16::try_from(p).ok()),
        login: r.get(4)?,
        schema: r.get(5)?,
        sealed: sealed_of(r.get(6)?, r.get(7)?),
        description: r.get(8)?,
        updated_at: Some(ts(r.get(9)?)),
    })
}

fn table(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Variable => "variables",
        SecretKind::Connection => "connections",
        SecretKind::Channel => "alert_channels",
    }
}

#[async_trait]
impl Secrets for SqliteStore {
    async fn put_variable(&self, row: &VariableRow) -> Result<()> {
        let r = row.clone();
        self.write(move |tx| {
            let (data, key_id) = match &r.sealed {
                Some(s) => (Some(s.data.clone()), Some(s.key_id.clone())),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO variables (name, value, sealed, key_id, is_json, secret, description, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET value = ?2, sealed = ?3, key_id = ?4,
                     is_json = ?5, secret = ?6, description = ?7, updated_at = ?8",
                params![r.name, r.value, data, key_id, r.json, r.secret, r.description, now_us()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn variable(&self, name: &str) -> Result<Option<VariableRow>> {
        let name = name.to_owned();
        self.call(move |conn| {
            Ok(query_all(
                conn,
                &format!("SELECT {VAR_COLS} FROM variables WHERE name = ?1"),
                params![name],
                variable_row,
            )?
            .pop())
        })
        .await
    }

    async fn list_variables(&self) -> Result<Vec<VariableRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {VAR_COLS} FROM variables ORDER BY name LIMIT ?1"),
                params![SECRETS_LISTED],
                variable_row,
            )
        })
        .await
    }

    async fn delete_variable(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM variables WHERE name = ?1", params![name])
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn put_connection(&self, row: &ConnectionRow) -> Result<()> {
        let r = row.clone();
        self.write(move |tx| {
            let (data, key_id) = match &r.sealed {
                Some(s) => (Some(s.data.clone()), Some(s.key_id.clone())),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO connections (name, conn_type, host, port, login, schema_name, sealed, key_id, description, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (name) DO UPDATE SET conn_type = ?2, host = ?3, port = ?4, login = ?5,
                     schema_name = ?6, sealed = ?7, key_id = ?8, description = ?9, updated_at = ?10",
                params![
                    r.name,
                    r.conn_type,
                    r.host,
                    r.port,
                    r.login,
                    r.schema,
                    data,
                    key_id,
                    r.description,
                    now_us()
                ],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn connection(&self, name: &str) -> Result<Option<ConnectionRow>> {
        let name = name.to_owned();
        self.call(move |conn| {
            Ok(query_all(
                conn,
                &format!("SELECT {CONN_COLS} FROM connections WHERE name = ?1"),
                params![name],
                connection_row,
            )?
            .pop())
        })
        .await
    }

    async fn list_connections(&self) -> Result<Vec<ConnectionRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {CONN_COLS} FROM connections ORDER BY name LIMIT ?1"),
                params![SECRETS_LISTED],
                connection_row,
            )
        })
        .await
    }

    async fn delete_connection(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM connections WHERE name = ?1", params![name])
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn sealed_under_other_keys(&self, key_id: &str, limit: u32) -> Result<Vec<SealedRef>> {
        let key_id = key_id.to_owned();
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT kind, name, key_id, sealed FROM (
                     SELECT 0 AS kind, name, key_id, sealed FROM variables
                     WHERE key_id IS NOT NULL AND key_id <> ?1
                     UNION ALL
                     SELECT 1, name, key_id, sealed FROM connections
                     WHERE key_id IS NOT NULL AND key_id <> ?1
                     UNION ALL
                     SELECT 2, name, key_id, sealed FROM alert_channels
                     WHERE key_id IS NOT NULL AND key_id <> ?1)
                 ORDER BY kind, name LIMIT ?2",
                params![key_id, limit],
                |r| {
                    Ok(SealedRef {
                        kind: match r.get::<_, i64>(0)? {
                            0 => SecretKind::Variable,
                            1 => SecretKind::Connection,
                            _ => SecretKind::Channel,
                        },
                        name: r.get(1)?,
                        sealed: Sealed {
                            key_id: r.get(2)?,
                            data: r.get(3)?,
                        },
                    })
                },
            )
        })
        .await
    }

    async fn reseal(
        &self,
        kind: SecretKind,
        name: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool> {
        let (name, old, new) = (name.to_owned(), old.clone(), new.clone());
        self.write(move |tx| {
            Ok(tx
                .execute(
                    &format!(
                        "UPDATE {} SET sealed = ?1, key_id = ?2
                         WHERE name = ?3 AND sealed = ?4 AND key_id = ?5",
                        table(kind)
                    ),
                    params![new.data, new.key_id, name, old.data, old.key_id],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn sealed_counts(&self) -> Result<Vec<(String, u64)>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT key_id, count(*) FROM (
                     SELECT key_id FROM variables WHERE key_id IS NOT NULL
                     UNION ALL SELECT key_id FROM connections WHERE key_id IS NOT NULL
                     UNION ALL SELECT key_id FROM alert_channels WHERE key_id IS NOT NULL)
                 GROUP BY key_id ORDER BY key_id",
                [],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)),
            )
        })
        .await
    }
}
