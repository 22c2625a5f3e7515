//! Variables and connections as stored (and, for key rotation, every sealed
//! value: alert channels' too): their public fields in clear and
//! their secret part sealed ([`Sealed`]: ciphertext and the id of the key it
//! was sealed under). The store never sees a key or a plaintext secret;
//! sealing and opening is `gale-secrets`' work. Key rotation reads the values
//! sealed under other keys and replaces each only if it is unchanged since.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

/// The most variables, or connections, a listing returns.
pub const SECRETS_LISTED: u32 = 10_000;

/// A value sealed under one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Sealed {
    /// The key's id (a digest of the key, never the key).
    pub key_id: String,
    /// Nonce and ciphertext with its tag, as text.
    pub data: String,
}

/// A stored variable: its value in clear when it is not secret, else sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VariableRow {
    pub name: String,
    pub value: Option<String>,
    pub sealed: Option<Sealed>,
    pub json: bool,
    pub secret: bool,
    pub description: Option<String>,
    /// Set by the store (ignored on put).
    pub updated_at: Option<Timestamp>,
}

/// A stored connection: its password and extra sealed together, when it has
/// either.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionRow {
    pub name: String,
    pub conn_type: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub sealed: Option<Sealed>,
    pub description: Option<String>,
    /// Set by the store (ignored on put).
    pub updated_at: Option<Timestamp>,
}

/// Which table a sealed value is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    Variable,
    Connection,
    /// An alert channel's secret part.
    Channel,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Variable => "variable",
            SecretKind::Connection => "connection",
            SecretKind::Channel => "channel",
        }
    }
}

/// One sealed value, for key rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRef {
    pub kind: SecretKind,
    pub name: String,
    pub sealed: Sealed,
}

/// Variables and connections.
#[async_trait]
pub trait Secrets: Send + Sync + 'static {
    /// Creates or replaces a variable.
    async fn put_variable(&self, row: &VariableRow) -> Result<()>;
    async fn variable(&self, name: &str) -> Result<Option<VariableRow>>;
    /// Every variable (at most [`SECRETS_LISTED`]), by name.
    async fn list_variables(&self) -> Result<Vec<VariableRow>>;
    /// Returns false when there was no such variable.
    async fn delete_variable(&self, name: &str) -> Result<bool>;

    /// Creates or replaces a connection.
    async fn put_connection(&self, row: &ConnectionRow) -> Result<()>;
    async fn connection(&self, name: &str) -> Result<Option<ConnectionRow>>;
    /// Every connection (at most [`SECRETS_LISTED`]), by name.
    async fn list_connections(&self) -> Result<Vec<ConnectionRow>>;
    /// Returns false when there was no such connection.
    async fn delete_connection(&self, name: &str) -> Result<bool>;

    /// Up to `limit` sealed values under any key but `key_id`, by kind and name.
    async fn sealed_under_other_keys(&self, key_id: &str, limit: u32) -> Result<Vec<SealedRef>>;
    /// Replaces one sealed value with `new` if it is still `old` (a value
    /// set meanwhile is left as it is). Returns whether it did.
    async fn reseal(
        &self,
        kind: SecretKind,
        name: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool>;
    /// How many values are sealed under each key id, by id.
    async fn sealed_counts(&self) -> Result<Vec<(String, u64)>>;
}
