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
                // A password is kept only for the server it was given for:
                // else whoever may edit channels could send it elsewhere.
                let server = |v: Option<&Value>| {
                    v.and_then(Value::as_str)
                        .map(|u| gale_alerts::split_smtp_password(u).map_or(u.to_owned(), |s| s.0))
                };
                let (was, now) = (server(old.config.get("smtp")), server(spec.settings.get("smtp")));
                if old.secret.contains_key("password")
                    && !inline_password
                    && !spec.settings.contains_key("password")
                    && was != now
                {
                    let name = |s: Option<String>| s.unwrap_or_else(|| "GALE_SMTP_URL's".into());
                    return Err(Error::Invalid(format!(
                        "alert channel {}: the SMTP server changes (from {} to {}), so give the password again (or the same smtp)",
                        spec.name,
                        name(was),
                        name(now)
                    )));
                }
                for (k, v) in old.secret {
                    if k == "password" && inline_password {
                        continue;
                    }
                    spec.settings.entry(k).or_insert(Value::String(v));
                }
                // Header values and arguments sent back masked keep theirs.
                keep_masked(&mut spec.settings, &old.config);
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

/// Puts back the values a masked view hid (`***`, see
/// `gale_alerts::mask_config`) where they were sent back unchanged.
fn keep_masked(
    settings: &mut serde_json::Map<String, Value>,
    old: &serde_json::Map<String, Value>,
) {
    let masked_old = gale_alerts::mask_config(old);
    if let (Some(Value::Object(new)), Some(Value::Object(was))) =
        (settings.get_mut("headers"), old.get("headers"))
    {
        for (name, v) in new.iter_mut() {
            if v.as_str() == Some("***")
                && let Some(kept) = was.get(name)
            {
                *v = kept.clone();
            }
        }
    }
    if let (Some(Value::Array(new)), Some(Value::Array(was)), Some(Value::Array(shown))) = (
        settings.get_mut("argv"),
        old.get("argv"),
        masked_old.get("argv"),
    ) && new.len() == was.len()
    {
        for ((v, kept), seen) in new.iter_mut().zip(was).zip(shown) {
            if v != kept && v == seen {
                *v = kept.clone();
            }
        }
    }
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
