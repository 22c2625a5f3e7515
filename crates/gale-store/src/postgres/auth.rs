//! The PostgreSQL backend's `impl Auth for PgStore`: users, sessions and API tokens.

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
                    "SELECT name, role, password_hash, created_at FROM users WHERE name = $1",
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
                Ok(c.rows(
                    "SELECT name, role, password_hash, created_at FROM users ORDER BY name",
                    &[],
                )
                .await?
                .iter()
                .map(user_row)
                .collect())
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
                // A new password ends every session of the old one.
                tx.exec("DELETE FROM sessions WHERE user_name = $1", &[&name])
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
                    "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at)
                     VALUES ($1, $2, $3, now(), $4)",
                    &[&id, &user, &csrf, &expires_at],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        let id = id_hash.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.opt(
                    "SELECT s.user_name, u.role, s.csrf_token, s.expires_at
                     FROM sessions s JOIN users u ON u.name = s.user_name
                     WHERE s.id_hash = $1 AND s.expires_at > now()",
                    &[&id],
                )
                .await?
                .map(|r| SessionRow {
                    user: r.get(0),
                    role: stored_role(r.get(1)),
                    csrf_token: r.get(2),
                    expires_at: r.get(3),
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
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.name = t.user_name
                     WHERE t.secret_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now())"
                );
                Ok(c.opt(&sql, &[&hash]).await?.as_ref().map(token_row))
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
