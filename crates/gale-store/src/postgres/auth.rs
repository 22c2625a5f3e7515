//! The PostgreSQL backend's `impl Auth for PgStore`: users, sessions and API tokens.

use jiff::SignedDuration;

use super::*;

#[async_trait]
impl Auth for PgStore {
    async fn create_user(&self, name: &str, role: Role, password_hash: &str) -> Result<bool> {
        let (name, role, hash) = (name.to_owned(), role.as_str(), password_hash.to_owned());
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.exec(
                    "INSERT INTO users (name, role, password_hash, created_at)
                     VALUES ($1, $2, $3, now()) ON CONFLICT (name) DO NOTHING",
                    &[&name, &role, &hash],
                )
                .await?
                    > 0)
            })
        })
        .await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRow>> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.opt(
                    &format!("SELECT {USER_COLS} FROM users WHERE name = $1"),
                    &[&name],
                )
                .await?
                .as_ref()
                .map(user_row))
            })
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<UserRow>> {
        self.single(|c| {
            Box::pin(async move {
                Ok(
                    c.rows(&format!("SELECT {USER_COLS} FROM users ORDER BY name"), &[])
                        .await?
                        .iter()
                        .map(user_row)
                        .collect(),
                )
            })
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.exec("DELETE FROM users WHERE name = $1", &[&name])
                    .await?
                    > 0)
            })
        })
        .await
    }

    async fn delete_user_keeping_an_admin(&self, name: &str) -> Result<UserChange> {
        let name = name.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let Some(role) = lock_admins_and_role(tx, &name).await? else {
                    return Ok(UserChange::NotFound);
                };
                if role.0 == Role::Admin && role.1 <= 1 {
                    return Ok(UserChange::LastAdmin);
                }
                tx.exec("DELETE FROM users WHERE name = $1", &[&name])
                    .await?;
                Ok(UserChange::Done)
            })
        })
        .await
    }

    async fn set_user_role(&self, name: &str, role: Role) -> Result<UserChange> {
        let name = name.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let Some((was, admins)) = lock_admins_and_role(tx, &name).await? else {
                    return Ok(UserChange::NotFound);
                };
                if was == Role::Admin && role != Role::Admin && admins <= 1 {
                    return Ok(UserChange::LastAdmin);
                }
                tx.exec(
                    "UPDATE users SET role = $2 WHERE name = $1",
                    &[&name, &role.as_str()],
                )
                .await?;
                Ok(UserChange::Done)
            })
        })
        .await
    }

    async fn record_login(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                c.exec(
                    "UPDATE users SET last_login_at = now() WHERE name = $1",
                    &[&name],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let changed = tx
                    .exec(
                        "UPDATE users SET password_hash = $2 WHERE name = $1",
                        &[&name, &hash],
                    )
                    .await?;
                // A new password ends every session and token of the old one.
                tx.exec("DELETE FROM sessions WHERE user_name = $1", &[&name])
                    .await?;
                tx.exec("DELETE FROM api_tokens WHERE user_name = $1", &[&name])
                    .await?;
                Ok(changed > 0)
            })
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
            Box::pin(async move {
                tx.exec("DELETE FROM sessions WHERE expires_at <= now()", &[])
                    .await?;
                tx.exec(
                    "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at,
                                           last_used_at)
                     VALUES ($1, $2, $3, now(), $4, now())",
                    &[&id, &user, &csrf, &expires_at],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_session(&self, id_hash: &str, idle: SignedDuration) -> Result<Option<SessionRow>> {
        let id = id_hash.to_owned();
        let idle_us = i64::try_from(idle.as_micros()).unwrap_or(i64::MAX).max(0);
        self.single(move |c| {
            Box::pin(async move {
                // Whole microseconds times an interval (exact). The refresh
                // is written only when the stored use is a hundredth of the
                // idle time old.
                Ok(c.opt(
                    "WITH live AS (
                         SELECT s.id_hash, s.user_name, u.role, s.csrf_token, s.expires_at,
                                s.last_used_at
                         FROM sessions s JOIN users u ON u.name = s.user_name
                         WHERE s.id_hash = $1 AND s.expires_at > now()
                           AND s.last_used_at > now() - $2::bigint * interval '1 microsecond'),
                     touched AS (
                         UPDATE sessions s SET last_used_at = now()
                         FROM live
                         WHERE s.id_hash = live.id_hash
                           AND live.last_used_at
                               < now() - ($2::bigint / 100) * interval '1 microsecond'
                         RETURNING s.last_used_at)
                     SELECT live.user_name, live.role, live.csrf_token, live.expires_at,
                            coalesce((SELECT last_used_at FROM touched), live.last_used_at)
                     FROM live",
                    &[&id, &idle_us],
                )
                .await?
                .map(|r| SessionRow {
                    user: r.get(0),
                    role: stored_role(r.get(1)),
                    csrf_token: r.get(2),
                    expires_at: r.get(3),
                    last_used_at: r.get(4),
                }))
            })
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let id = id_hash.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                c.exec("DELETE FROM sessions WHERE id_hash = $1", &[&id])
                    .await?;
                Ok(())
            })
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
        self.single(move |c| {
            Box::pin(async move {
                let row = c
                    .opt(
                        "INSERT INTO api_tokens (name, user_name, secret_hash, created_at, expires_at)
                         SELECT $1, name, $3, now(), $4 FROM users WHERE name = $2
                         RETURNING id",
                        &[&name, &user, &hash, &expires_at],
                    )
                    .await?;
                match row {
                    Some(r) => Ok(r.get(0)),
                    None => Err(no_user(&user)),
                }
            })
        })
        .await
    }

    async fn get_token(&self, secret_hash: &str) -> Result<Option<TokenRow>> {
        let hash = secret_hash.to_owned();
        let every = TOKEN_USE_RECORDED_EVERY.as_secs_f64();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TOKEN_COLS}, t.last_used_at IS NULL
                         OR t.last_used_at <= now() - make_interval(secs => $2)
                     FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE t.secret_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now())"
                );
                let Some(r) = c.opt(&sql, &[&hash, &every]).await? else {
                    return Ok(None);
                };
                let mut row = token_row(&r);
                if r.get::<_, bool>(7) {
                    // Conditional again, so requests racing here write once.
                    if let Some(t) = c
                        .opt(
                            "UPDATE api_tokens SET last_used_at = now()
                             WHERE id = $1 AND (last_used_at IS NULL
                                 OR last_used_at <= now() - make_interval(secs => $2))
                             RETURNING last_used_at",
                            &[&row.id, &every],
                        )
                        .await?
                    {
                        row.last_used_at = t.get(0);
                    }
                }
                Ok(Some(row))
            })
        })
        .await
    }

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>> {
        let user = user.map(str::to_owned);
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE $1::text IS NULL OR t.user_name = $1 ORDER BY t.id"
                );
                Ok(c.rows(&sql, &[&user])
                    .await?
                    .iter()
                    .map(token_row)
                    .collect())
            })
        })
        .await
    }

    async fn revoke_token(&self, id: i64) -> Result<bool> {
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.exec("DELETE FROM api_tokens WHERE id = $1", &[&id])
                    .await?
                    > 0)
            })
        })
        .await
    }
}

/// A user's role and how many admins there are, with the admins' rows (and
/// the user's) locked so two changes cannot each remove "the other" admin.
async fn lock_admins_and_role(tx: &Tx<'_>, name: &str) -> Result<Option<(Role, i64)>> {
    tx.exec(
        "SELECT 1 FROM users WHERE role = 'admin' OR name = $1 FOR UPDATE",
        &[&name],
    )
    .await?;
    let Some(r) = tx
        .opt("SELECT role FROM users WHERE name = $1", &[&name])
        .await?
    else {
        return Ok(None);
    };
    let admins: i64 = tx
        .one("SELECT count(*) FROM users WHERE role = 'admin'", &[])
        .await?
        .get(0);
    Ok(Some((stored_role(r.get(0)), admins)))
}
