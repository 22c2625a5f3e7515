//! Alert channels set, deleted and tested: each one audit entry, with no
//! secret in it. Who may is the face's to check: all three are for admins.

use gale_alerts::{Answer, Channel, ChannelSpec, Refusal, Settings};
use gale_secrets::Vault;
use gale_store::{Audit, AuditAction};
use serde_json::Value;

use crate::audit::{Actor, audited, detail};
use crate::{Error, Result};

fn target(name: &str) -> String {
    format!("alert_channel/{name}")
}

/// Creates or replaces a channel. Replacing one, a secret setting the spec
/// leaves out keeps its stored value (an edit need not give the password
/// again); `replace: false` refuses a name that exists.
pub async fn set_channel(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    spec: &ChannelSpec,
    replace: bool,
) -> Result<Channel> {
    let result = async {
        let mut spec = spec.clone();
        match vault.channel(&spec.name).await? {
            Some(_) if !replace => {
                return Err(Error::Conflict(format!(
                    "alert channel {} exists: give --replace (PUT in the API) to change it",
                    spec.name
                )));
            }
            Some(old) if old.kind.as_str() == spec.kind => {
                // Before the check, which needs them (a webhook's URL).
                let inline_password = match spec.settings.get("smtp") {
                    Some(Value::String(smtp)) => {
                        matches!(gale_alerts::split_smtp_password(smtp), Ok((_, Some(_))))
                    }
                    _ => false,
                };
                for (k, v) in old.secret {
                    if k == "password" && inline_password {
                        continue;
                    }
                    spec.settings.entry(k).or_insert(Value::String(v));
                }
            }
            _ => {}
        }
        let channel = spec.check().map_err(|e| Error::Invalid(e.to_string()))?;
        vault.put_channel(&channel.to_opened()).await?;
        Ok(channel)
    }
    .await;
    let d = detail([("kind", Value::String(spec.kind.clone()))]);
    audited(
        store,
        actor,
        AuditAction::AlertChannelSet,
        &target(&spec.name),
        d,
        result,
        |_, _| {},
    )
    .await
}

/// Deletes a channel (its pending deliveries are given up); one that does
/// not exist is `NotFound`.
pub async fn delete_channel(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
) -> Result<()> {
    let result = match vault.delete_channel(name).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotFound(format!("no alert channel {name:?}"))),
        Err(e) => Err(e.into()),
    };
    audited(
        store,
        actor,
        AuditAction::AlertChannelDelete,
        &target(name),
        Default::default(),
        result,
        |_, _| {},
    )
    .await
}

/// The stored channel `name`, opened and checked.
pub async fn channel(vault: &Vault, name: &str) -> Result<Channel> {
    let opened = vault
        .channel(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no alert channel {name:?}")))?;
    Channel::from_opened(opened).map_err(|e| Error::Inconsistent(e.to_string()))
}

/// Sends a test message through the stored channel `name`, from this
/// process: `Ok` with what the server answered, or its refusal. Audited
/// either way, with the answer.
pub async fn test_channel(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
    settings: &Settings,
) -> Result<std::result::Result<Answer, Refusal>> {
    let result = match channel(vault, name).await {
        Ok(c) => Ok(gale_alerts::test_channel(&c, settings).await),
        Err(e) => Err(e),
    };
    audited(
        store,
        actor,
        AuditAction::AlertChannelTest,
        &target(name),
        Default::default(),
        result,
        |sent, d| {
            let (ok, text) = match sent {
                Ok(a) => (true, a.text.clone()),
                Err(r) => (false, r.text().to_owned()),
            };
            d.insert("sent".into(), Value::Bool(ok));
            d.insert("answer".into(), Value::String(text));
        },
    )
    .await
}
