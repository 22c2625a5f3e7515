//! The SQLite backend's `impl Auth for SqliteStore`: users, sessions and API tokens.

use jiff::SignedDuration;

use super::*;

#[async_trait]
impl Auth for SqliteStore {
    async fn create_user(&self, name: &str, role: Role, password_hash: &str) -> Result<bool> {
        let (name, role, hash) = (name.to_owned(), role.as_str(), password_hash.to_owned());
        self.write(move |tx| {
            Ok(tx
                .execute(
                    "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO NOTHING",
                    params![name, role, hash, now_us()],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRow>> {
        let name = name.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE name = ?1"),
                params![name],
                user_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<UserRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {USER_COLS} FROM users ORDER BY name"),
                [],
                user_row,
            )
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM users WHERE name = ?1", params![name])
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn delete_user_keeping_an_admin(&self, name: &str) -> Result<UserChange> {
        let name = name.to_owned();
        self.write(move |tx| {
            let Some(role) = user_role(tx, &name)? else {
                return Ok(UserChange::NotFound);
            };
            if role == Role::Admin && admins(tx)? <= 1 {
                return Ok(UserChange::LastAdmin);
            }
            tx.execute("DELETE FROM users WHERE name = ?1", params![name])
                .map_err(map_err)?;
            Ok(UserChange::Done)
        })
        .await
    }

    async fn set_user_role(&self, name: &str, role: Role) -> Result<UserChange> {
        let name = name.to_owned();
        self.write(move |tx| {
            let Some(was) = user_role(tx, &name)? else {
                return Ok(UserChange::NotFound);
            };
            if was == Role::Admin && role != Role::Admin && admins(tx)? <= 1 {
                return Ok(UserChange::LastAdmin);
            }
            tx.execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                params![name, role.as_str()],
            )
            .map_err(map_err)?;
            Ok(UserChange::Done)
        })
        .await
    }

    async fn record_login(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE users SET last_login_at = ?2 WHERE name = ?1",
                params![name, now_us()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                    params![name, hash],
                )
                .map_err(map_err)?;
            // A new password ends every session and token of the old one.
            tx.execute("DELETE FROM sessions WHERE user_name = ?1", params![name])
                .map_err(map_err)?;
            tx.execute("DELETE FROM api_tokens WHERE user_name = ?1", params![name])
                .map_err(map_err)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        let (id, user, csrf) = (id_hash.to_owned(), user.to_owned(), csrf_token.to_owned());
        self.write(move |tx| {
            let now = now_us();
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])
                .map_err(map_err)?;
            tx.execute(
                "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at,
                                       last_used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
                params![id, user, csrf, now, to_micros(expires_at)],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id_hash: &str, idle: SignedDuration) -> Result<Option<SessionRow>> {
        let id = id_hash.to_owned();
        let idle_us = i64::try_from(idle.as_micros()).unwrap_or(i64::MAX).max(0);
        let now = now_us();
        let id_read = id.clone();
        let found = self
            .call(move |conn| {
                conn.query_row(
                    "SELECT s.user_name, u.role, s.csrf_token, s.expires_at, s.last_used_at
                     FROM sessions s JOIN users u ON u.name = s.user_name
                     WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND s.last_used_at > ?2 - ?3",
                    params![id_read, now, idle_us],
                    |r| {
                        Ok(SessionRow {
                            user: r.get(0)?,
                            role: stored_role(&r.get::<_, String>(1)?),
                            csrf_token: r.get(2)?,
                            expires_at: ts(r.get(3)?),
                            last_used_at: ts(r.get(4)?),
                        })
                    },
                )
                .optional()
                .map_err(map_err)
            })
            .await?;
        let Some(mut row) = found else {
            return Ok(None);
        };
        if now - to_micros(row.last_used_at) > idle_us / 100 {
            self.write(move |tx| {
                tx.execute(
                    "UPDATE sessions SET last_used_at = max(last_used_at, ?2) WHERE id_hash = ?1",
                    params![id, now],
                )
                .map_err(map_err)?;
                Ok(())
            })
            .await?;
            row.last_used_at = ts(now);
        }
        Ok(Some(row))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let id = id_hash.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn create_token(
        &self,
        name: &str,
        user: &str,
        secret_hash: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<i64> {
        let (name, user, hash) = (name.to_owned(), user.to_owned(), secret_hash.to_owned());
        self.write(move |tx| {
            let exists: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM users WHERE name = ?1",
                    params![user],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            if !exists {
                return Err(no_user(&user));
            }
            tx.execute(
                "INSERT INTO api_tokens (name, user_name, secret_hash, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, user, hash, now_us(), expires_at.map(to_micros)],
            )
            .map_err(map_err)?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn get_token(&self, secret_hash: &str) -> Result<Option<TokenRow>> {
        let hash = secret_hash.to_owned();
        let now = now_us();
        let found = self
            .call(move |conn| {
                conn.query_row(
                    &format!(
                        "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                         WHERE t.secret_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)"
                    ),
                    params![hash, now],
                    token_row,
                )
                .optional()
                .map_err(map_err)
            })
            .await?;
        let Some(mut row) = found else {
            return Ok(None);
        };
        let every = i64::try_from(TOKEN_USE_RECORDED_EVERY.as_micros()).unwrap_or(i64::MAX);
        if row.last_used_at.is_none_or(|t| now - to_micros(t) >= every) {
            let id = row.id;
            self.write(move |tx| {
                tx.execute(
                    "UPDATE api_tokens SET last_used_at = ?2
                     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?2 - ?3)",
                    params![id, now, every],
                )
                .map_err(map_err)?;
                Ok(())
            })
            .await?;
            row.last_used_at = Some(ts(now));
        }
        Ok(Some(row))
    }

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>> {
        let user = user.map(str::to_owned);
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE ?1 IS NULL OR t.user_name = ?1 ORDER BY t.id"
                ),
                params![user],
                token_row,
            )
        })
        .await
    }

    async fn revoke_token(&self, id: i64) -> Result<bool> {
        self.write(move |tx| {
            Ok(tx
                .execute("DELETE FROM api_tokens WHERE id = ?1", params![id])
                .map_err(map_err)?
                > 0)
        })
        .await
    }
}

fn user_role(conn: &Connection, name: &str) -> Result<Option<Role>> {
    Ok(conn
        .query_row(
            "SELECT role FROM users WHERE name = ?1",
            params![name],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(map_err)?
        .map(|r| stored_role(&r)))
}

fn admins(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
        r.get(0)
    })
    .map_err(map_err)
}
