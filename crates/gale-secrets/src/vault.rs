//! The store's variables and connections, sealed and opened: what the CLI,
//! the API and the worker read and write through. A secret variable's value,
//! and a connection's password and extra, reach the store only sealed; a
//! cluster without a key refuses to store them.

use std::sync::Arc;

use gale_model::secrets::{Connection, Variable};
use gale_store::{ConnectionRow, Sealed, SecretKind, Store, VariableRow};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Error, KeySource, Keyring, Result};

/// How many sealed values rotation reads at a time.
const ROTATE_BATCH: u32 = 200;

/// A variable as listed: its value only when it is not secret.
#[derive(Clone, Debug, Serialize)]
pub struct VariableInfo {
    pub name: String,
    pub value: Option<String>,
    pub json: bool,
    pub secret: bool,
    pub description: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// A connection as listed: its public fields, and whether it has a password
/// and an extra (which are sealed).
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionInfo {
    pub name: String,
    pub conn_type: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub sealed: bool,
    pub description: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// What a rotation did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rotation {
    pub key_id: String,
    /// Values re-sealed under the current key.
    pub resealed: u64,
    /// Values changed by someone else while they were re-sealed (set anew,
    /// under whatever key that writer had): read again.
    pub raced: u64,
    /// Values that did not open under any of this process's keys, left as
    /// they are, and why (the first 20).
    pub not_opened: u64,
    pub unopened: Vec<String>,
}

/// Which keys seal what.
#[derive(Clone, Debug, Serialize)]
pub struct KeyStatus {
    /// Where this process's keys come from, and their ids (the sealing one
    /// first); none when no key is configured.
    pub source: Option<String>,
    pub keys: Vec<String>,
    /// Values sealed under each key id, and whether this process has it.
    pub sealed: Vec<(String, u64, bool)>,
}

#[derive(Serialize, serde::Deserialize, Default)]
struct ConnSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    extra: serde_json::Map<String, serde_json::Value>,
}

pub(crate) fn aad(kind: SecretKind, name: &str) -> String {
    format!("{} {name:?}", kind.as_str())
}

/// Variables and connections in the store, sealed under this process's keys.
#[derive(Clone)]
pub struct Vault {
    pub(crate) store: Arc<dyn Store>,
    keys: Option<Arc<KeySource>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("keys", &self.keys).finish()
    }
}

impl Vault {
    pub fn new(store: Arc<dyn Store>, keys: Option<Arc<KeySource>>) -> Vault {
        Vault { store, keys }
    }

    pub fn has_key(&self) -> bool {
        self.keys.is_some()
    }

    pub(crate) fn keyring(&self, doing: &str) -> Result<Arc<Keyring>> {
        match &self.keys {
            Some(k) => Ok(k.keyring()),
            None => Err(Error::NoKey(doing.to_owned())),
        }
    }

    /// Opens `sealed`; a value under a key this process does not know yet
    /// has the key file read again at once (another node may have sealed
    /// it under a new first key a moment ago).
    pub(crate) fn open(&self, doing: &str, what: &str, sealed: &Sealed) -> Result<Vec<u8>> {
        let keys = self.keyring(doing)?;
        if !keys.ids().contains(&sealed.key_id)
            && let Some(source) = &self.keys
            && let Ok(fresh) = source.reload()
        {
            return fresh.open(what, sealed);
        }
        keys.open(what, sealed)
    }

    pub async fn set_variable(&self, name: &str, v: &Variable) -> Result<()> {
        let checked = Variable::new(
            name,
            v.value.clone(),
            v.json,
            v.secret,
            v.description.clone(),
        )
        .map_err(Error::Invalid)?;
        let (value, sealed) = if checked.secret {
            let keys = self.keyring(&format!("the secret variable {name} cannot be stored"))?;
            (
                None,
                Some(keys.seal(&aad(SecretKind::Variable, name), checked.value.as_bytes())?),
            )
        } else {
            (Some(checked.value.clone()), None)
        };
        self.store
            .put_variable(&VariableRow {
                name: name.to_owned(),
                value,
                sealed,
                json: checked.json,
                secret: checked.secret,
                description: checked.description,
                updated_at: None,
            })
            .await?;
        Ok(())
    }

    fn open_variable(&self, row: VariableRow) -> Result<Variable> {
        let value = match (&row.value, &row.sealed) {
            (Some(v), _) => v.clone(),
            (None, Some(sealed)) => {
                let doing = format!("the secret variable {} cannot be read", row.name);
                let plain = self.open(&doing, &aad(SecretKind::Variable, &row.name), sealed)?;
                String::from_utf8(plain)
                    .map_err(|_| Error::Sealed(format!("variable {} is not text", row.name)))?
            }
            (None, None) => String::new(),
        };
        Ok(Variable {
            value,
            json: row.json,
            secret: row.secret,
            description: row.description,
        })
    }

    /// A variable, opened (a secret one needs the key it is sealed under).
    pub async fn variable(&self, name: &str) -> Result<Option<Variable>> {
        match self.store.variable(name).await? {
            Some(row) => Ok(Some(self.open_variable(row)?)),
            None => Ok(None),
        }
    }

    /// Every variable, secret values left sealed.
    pub async fn variables(&self) -> Result<Vec<VariableInfo>> {
        Ok(self
            .store
            .list_variables()
            .await?
            .into_iter()
            .map(|r| VariableInfo {
                name: r.name,
                value: r.value,
                json: r.json,
                secret: r.secret,
                description: r.description,
                updated_at: r.updated_at,
            })
            .collect())
    }

    /// Every variable opened, for an export.
    pub async fn variables_opened(&self) -> Result<Vec<(String, Variable)>> {
        let mut out = Vec::new();
        for row in self.store.list_variables().await? {
            let name = row.name.clone();
            out.push((name, self.open_variable(row)?));
        }
        Ok(out)
    }

    pub async fn delete_variable(&self, name: &str) -> Result<bool> {
        Ok(self.store.delete_variable(name).await?)
    }

    pub async fn set_connection(&self, name: &str, c: &Connection) -> Result<()> {
        c.check(name).map_err(Error::Invalid)?;
        let secret = ConnSecret {
            password: c.password.clone(),
            extra: c.extra.clone(),
        };
        let sealed = if secret.password.is_some() || !secret.extra.is_empty() {
            let keys = self.keyring(&format!(
                "the password and extra of connection {name} cannot be stored"
            ))?;
            let plain = serde_json::to_vec(&secret)
                .map_err(|e| Error::Invalid(format!("connection {name}: {e}")))?;
            Some(keys.seal(&aad(SecretKind::Connection, name), &plain)?)
        } else {
            None
        };
        self.store
            .put_connection(&ConnectionRow {
                name: name.to_owned(),
                conn_type: c.conn_type.clone(),
                host: c.host.clone(),
                port: c.port,
                login: c.login.clone(),
                schema: c.schema.clone(),
                sealed,
                description: c.description.clone(),
                updated_at: None,
            })
            .await?;
        Ok(())
    }

    fn open_connection(&self, row: ConnectionRow) -> Result<Connection> {
        let secret = match &row.sealed {
            Some(sealed) => {
                let doing = format!(
                    "the password and extra of connection {} cannot be read",
                    row.name
                );
                let plain = self.open(&doing, &aad(SecretKind::Connection, &row.name), sealed)?;
                serde_json::from_slice::<ConnSecret>(&plain).map_err(|e| {
                    Error::Sealed(format!(
                        "connection {}'s sealed part is not valid: {e}",
                        row.name
                    ))
                })?
            }
            None => ConnSecret::default(),
        };
        Ok(Connection {
            conn_type: row.conn_type,
            host: row.host,
            port: row.port,
            login: row.login,
            password: secret.password,
            schema: row.schema,
            extra: secret.extra,
            description: row.description,
        })
    }

    /// A connection, opened.
    pub async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        match self.store.connection(name).await? {
            Some(row) => Ok(Some(self.open_connection(row)?)),
            None => Ok(None),
        }
    }

    /// Every connection, its password and extra left sealed.
    pub async fn connections(&self) -> Result<Vec<ConnectionInfo>> {
        Ok(self
            .store
            .list_connections()
            .await?
            .into_iter()
            .map(|r| ConnectionInfo {
                name: r.name,
                conn_type: r.conn_type,
                host: r.host,
                port: r.port,
                login: r.login,
                schema: r.schema,
                sealed: r.sealed.is_some(),
                description: r.description,
                updated_at: r.updated_at,
            })
            .collect())
    }

    /// Every connection opened, for an export.
    pub async fn connections_opened(&self) -> Result<Vec<(String, Connection)>> {
        let mut out = Vec::new();
        for row in self.store.list_connections().await? {
            let name = row.name.clone();
            out.push((name, self.open_connection(row)?));
        }
        Ok(out)
    }

    pub async fn delete_connection(&self, name: &str) -> Result<bool> {
        Ok(self.store.delete_connection(name).await?)
    }

    /// Re-seals every value sealed under another key with the current one,
    /// until none is left but those that do not open (counted in
    /// [`Rotation::not_opened`]). A value someone sets meanwhile is not overwritten:
    /// it is read again on the next pass. Processes that still seal with an
    /// older key keep adding work, so every node must have the new key
    /// first (the key file is re-read within a second of changing).
    pub async fn rotate(&self) -> Result<Rotation> {
        // The file as it is now, not as last looked at.
        let keys = match &self.keys {
            Some(k) => k.reload()?,
            None => return Err(Error::NoKey("nothing can be re-sealed".into())),
        };
        let mut done = Rotation {
            key_id: keys.current_id().to_owned(),
            ..Rotation::default()
        };
        // Values that did not open: they come first in every batch again, so
        // each batch reads past them.
        let mut skipped = std::collections::HashSet::new();
        // Bounded: a writer that keeps sealing with an old key cannot keep
        // this going forever.
        for _ in 0..10_000 {
            let limit =
                ROTATE_BATCH.saturating_add(u32::try_from(skipped.len()).unwrap_or(u32::MAX));
            let todo = self
                .store
                .sealed_under_other_keys(keys.current_id(), limit)
                .await?;
            let mut progressed = false;
            for item in todo {
                if skipped.contains(&(item.kind, item.name.clone(), item.sealed.clone())) {
                    continue;
                }
                progressed = true;
                let what = aad(item.kind, &item.name);
                // One that does not open (its key is gone, or it was altered)
                // is left as it is and reported; the rest are re-sealed.
                let plain = match keys.open(&what, &item.sealed) {
                    Ok(p) => p,
                    Err(e) => {
                        if done.unopened.len() < 20 {
                            done.unopened.push(e.to_string());
                        }
                        done.not_opened += 1;
                        skipped.insert((item.kind, item.name, item.sealed));
                        continue;
                    }
                };
                let new: Sealed = keys.seal(&what, &plain)?;
                if self
                    .store
                    .reseal(item.kind, &item.name, &item.sealed, &new)
                    .await?
                {
                    done.resealed += 1;
                } else {
                    done.raced += 1;
                }
            }
            if !progressed {
                return Ok(done);
            }
        }
        Err(Error::Invalid(
            "values kept being sealed under an old key while rotating: give every node the new key first"
                .into(),
        ))
    }

    /// Which keys seal what, and which of them this process has.
    pub async fn key_status(&self) -> Result<KeyStatus> {
        let ids = self
            .keys
            .as_ref()
            .map(|k| k.keyring().ids())
            .unwrap_or_default();
        let sealed = self
            .store
            .sealed_counts()
            .await?
            .into_iter()
            .map(|(id, n)| {
                let known = ids.contains(&id);
                (id, n, known)
            })
            .collect();
        Ok(KeyStatus {
            source: self.keys.as_ref().map(|k| k.describe()),
            keys: ids,
            sealed,
        })
    }
}
