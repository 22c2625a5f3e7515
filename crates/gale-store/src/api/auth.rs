//! Users, browser sessions and API tokens (the secrets are stored only hashed).

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::*;

/// What a user may do: read (viewer), also change runs and DAGs (operator), also
/// manage users (admin). Ordered, so a higher role can do all a lower one can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A person (or script) who may use the web UI and API.
#[derive(Clone, Debug, Serialize)]
pub struct UserRow {
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: Role,
    /// A PHC string (argon2id); never shown.
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: Timestamp,
    /// Their last login through the login form (none before the first).
    pub last_login_at: Option<Timestamp>,
}

/// A logged-in browser session, found by the SHA-256 of its cookie.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub user: String,
    pub role: Role,
    /// The token every state-changing request of this session must echo.
    pub csrf_token: String,
    /// The absolute end, whatever its use.
    pub expires_at: Timestamp,
    /// When it was last used (on the store's clock); it ends once unused for
    /// the idle time its reader asks for.
    pub last_used_at: Timestamp,
}

/// An API token (the secret itself is shown once and stored only hashed).
#[derive(Clone, Debug, Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub user: String,
    /// The user's role (output only).
    pub role: Role,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// When it was last used, to within [`TOKEN_USE_RECORDED_EVERY`].
    pub last_used_at: Option<Timestamp>,
}

/// A token's use is written at most this often (per token), so a script
/// calling the API many times a second does not write on every request.
pub const TOKEN_USE_RECORDED_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// How a change to a user went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserChange {
    Done,
    NotFound,
    /// Refused: it would leave no admin.
    LastAdmin,
}

/// Users, sessions and API tokens.
#[async_trait]
pub trait Auth: Send + Sync + 'static {
    /// Returns false when a user of that name exists.
    async fn create_user(&self, name: &str, role: Role, password_hash: &str) -> Result<bool>;

    async fn get_user(&self, name: &str) -> Result<Option<UserRow>>;

    async fn list_users(&self) -> Result<Vec<UserRow>>;

    /// Deletes the user with their sessions and tokens; false when there was none.
    async fn delete_user(&self, name: &str) -> Result<bool>;

    /// Deletes the user with their sessions and tokens, unless they are the
    /// last admin (checked in the same transaction).
    async fn delete_user_keeping_an_admin(&self, name: &str) -> Result<UserChange>;

    /// Gives the user another role, unless that leaves no admin (checked in
    /// the same transaction). Their sessions and tokens carry the new role
    /// from their next request (the role is read with each).
    async fn set_user_role(&self, name: &str, role: Role) -> Result<UserChange>;

    /// Records that the user logged in now (the store's clock).
    async fn record_login(&self, name: &str) -> Result<()>;

    /// Sets a new password and ends the user's sessions and API tokens (made
    /// while someone else may have known the old one); false when there is
    /// no such user.
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool>;

    async fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<()>;

    /// A session that has not expired and was used within `idle` (both on
    /// the store's clock; expired rows are removed by the next
    /// `create_session`). Using it refreshes its `last_used_at`, written only
    /// when the stored one is older than a hundredth of `idle`, so a busy
    /// session does not write on every request.
    async fn get_session(&self, id_hash: &str, idle: SignedDuration) -> Result<Option<SessionRow>>;

    async fn delete_session(&self, id_hash: &str) -> Result<()>;

    async fn create_token(
        &self,
        name: &str,
        user: &str,
        secret_hash: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<i64>;

    /// The token with this hash, if it exists and has not expired. Records
    /// its use in `last_used_at` when the one stored is older than
    /// [`TOKEN_USE_RECORDED_EVERY`] (or none).
    async fn get_token(&self, secret_hash: &str) -> Result<Option<TokenRow>>;

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>>;

    async fn revoke_token(&self, id: i64) -> Result<bool>;
}
