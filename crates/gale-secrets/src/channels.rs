//! The store's alert channels, sealed and opened: a channel's settings are
//! kept in clear, its secret part (SMTP password, webhook URL, signing
//! secret) only sealed, under the name it is stored as. What a channel's
//! settings mean is the alert crate's business, not this one's.

use std::collections::BTreeMap;

use gale_store::{AlertChannelRow, ChannelKind, SecretKind};
use jiff::Timestamp;
use serde::Serialize;

use crate::vault::aad;
use crate::{Error, Result, Vault};

/// An alert channel with its secret part in clear: what is put, and what
/// opening a stored one gives.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedChannel {
    pub name: String,
    pub kind: ChannelKind,
    /// The settings kept in clear.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The settings kept sealed.
    pub secret: BTreeMap<String, String>,
    pub description: Option<String>,
    /// Set by the store (ignored on put).
    pub updated_at: Option<Timestamp>,
}

impl std::fmt::Debug for OpenedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret values, only which there are.
        f.debug_struct("OpenedChannel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &self.config)
            .field("secret", &self.secret.keys().collect::<Vec<_>>())
            .field("description", &self.description)
            .finish()
    }
}

/// An alert channel as listed: its settings in clear, and whether it has a
/// sealed part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelInfo {
    pub name: String,
    pub kind: ChannelKind,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub sealed: bool,
    pub description: Option<String>,
    pub updated_at: Option<Timestamp>,
}

impl Vault {
    /// Creates or replaces a channel; its secret part is sealed (which needs
    /// a key) unless it is empty.
    pub async fn put_channel(&self, c: &OpenedChannel) -> Result<()> {
        if c.name.is_empty() {
            return Err(Error::Invalid("a channel needs a name".into()));
        }
        let sealed = if c.secret.is_empty() {
            None
        } else {
            let keys = self.keyring(&format!(
                "the secret settings of alert channel {} cannot be stored",
                c.name
            ))?;
            let plain = serde_json::to_vec(&c.secret)
                .map_err(|e| Error::Invalid(format!("alert channel {}: {e}", c.name)))?;
            Some(keys.seal(&aad(SecretKind::Channel, &c.name), &plain)?)
        };
        self.store
            .put_channel(&AlertChannelRow {
                name: c.name.clone(),
                kind: c.kind,
                config: c.config.clone(),
                sealed,
                description: c.description.clone(),
                updated_at: None,
            })
            .await?;
        Ok(())
    }

    /// A channel, opened (one with a sealed part needs the key it is sealed
    /// under).
    pub async fn channel(&self, name: &str) -> Result<Option<OpenedChannel>> {
        let Some(row) = self.store.channel(name).await? else {
            return Ok(None);
        };
        let secret = match &row.sealed {
            Some(sealed) => {
                let doing = format!(
                    "the secret settings of alert channel {} cannot be read",
                    row.name
                );
                let plain = self.open(&doing, &aad(SecretKind::Channel, &row.name), sealed)?;
                serde_json::from_slice::<BTreeMap<String, String>>(&plain).map_err(|e| {
                    Error::Sealed(format!(
                        "alert channel {}'s sealed part is not valid: {e}",
                        row.name
                    ))
                })?
            }
            None => BTreeMap::new(),
        };
        Ok(Some(OpenedChannel {
            name: row.name,
            kind: row.kind,
            config: row.config,
            secret,
            description: row.description,
            updated_at: row.updated_at,
        }))
    }

    /// Every channel, by name, its secret part left sealed.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>> {
        Ok(self
            .store
            .list_channels()
            .await?
            .into_iter()
            .map(|r| ChannelInfo {
                name: r.name,
                kind: r.kind,
                config: r.config,
                sealed: r.sealed.is_some(),
                description: r.description,
                updated_at: r.updated_at,
            })
            .collect())
    }

    /// Returns false when there was no such channel; its pending deliveries
    /// are given up either way.
    pub async fn delete_channel(&self, name: &str) -> Result<bool> {
        Ok(self.store.delete_channel(name).await?)
    }
}
