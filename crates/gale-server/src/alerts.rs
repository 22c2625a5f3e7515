//! Alert channels and deliveries as the API, the UI and `gale alerts` show
//! them, and channels changed from the API and the UI.
//!
//! A channel is shown masked (`gale_alerts::Channel::masked`: every secret
//! setting `***`, a URL as its scheme, host and port); one this server cannot open
//! (no key, another key) shows what is in clear, its secret part as `***`.
//! An edit keeps the secret settings it leaves out, or sends back as shown,
//! so a masked view sent back changes nothing secret. Command channels run a
//! program on the server: they are read, tested and deleted here, but made
//! only with `gale alerts channels add --command`, by someone who may run
//! programs there.

use std::collections::BTreeMap;

use gale_actions::{Actor, Error};
use gale_alerts::{ChannelSpec, MaskedChannel};
use gale_store::{ChannelKind, DeliveryRow};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::AppState;

/// What a secret setting shows as.
pub const MASK: &str = "***";

/// An alert channel as shown.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ChannelView {
    pub name: String,
    /// `email`, `webhook`, `slack` or `command`.
    pub kind: String,
    pub description: Option<String>,
    /// The settings kept in clear (`to`, `headers`, `argv`, `defaults`, ...).
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// The secret settings, masked: `***`, a URL as `scheme://host/***`.
    pub secret: BTreeMap<String, String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
}

impl ChannelView {
    fn of(m: MaskedChannel, updated_at: Option<Timestamp>) -> ChannelView {
        ChannelView {
            name: m.name,
            kind: m.kind.as_str().to_owned(),
            description: m.description,
            config: m.config,
            secret: m.secret,
            updated_at,
        }
    }

    /// Where it sends, as a person reads it: the addresses, the masked URL,
    /// the program.
    pub fn target(&self) -> String {
        target_of(
            &self.kind,
            &self.config,
            self.secret.get("url").map(String::as_str),
        )
    }

    /// The events it is a default for.
    pub fn defaults(&self) -> Vec<String> {
        match self.config.get("defaults") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Where a channel of `kind` sends, as a person reads it, from its clear
/// settings and its masked URL: the addresses, the URL, the program and
/// its arguments. What the UI and `gale alerts channels list` show.
pub fn target_of(kind: &str, config: &Map<String, Value>, masked_url: Option<&str>) -> String {
    let list = |key: &str, sep: &str| match config.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join(sep),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    match kind {
        "email" => list("to", ", "),
        "command" => list("argv", " "),
        _ => masked_url.unwrap_or_default().to_owned(),
    }
}

/// A delivery: one event (or one of a digest's) for one channel. The same
/// shape in the API and in `gale alerts deliveries -o json`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub channel: String,
    /// The event, e.g. `task.failed`, `run.deadline`, `cluster.no_scheduler`.
    pub kind: String,
    /// The event's idempotency key.
    pub event_key: String,
    pub dag_id: Option<String>,
    pub run_id: Option<i64>,
    pub ti_id: Option<i64>,
    /// `pending`, `sending`, `sent` or `failed`.
    pub state: String,
    /// How many times it was claimed to be sent.
    pub attempts: u32,
    /// When it may be tried (again).
    #[schema(value_type = String, format = DateTime)]
    pub next_at: Timestamp,
    /// Why the last try failed (a failed delivery: why it was given up).
    pub last_error: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<Timestamp>,
    /// The event's message, masked as the worker stored it.
    #[schema(value_type = Option<Object>)]
    pub message: Option<Value>,
}

impl From<&DeliveryRow> for DeliveryView {
    fn from(d: &DeliveryRow) -> DeliveryView {
        DeliveryView {
            id: d.id,
            created_at: d.created_at,
            channel: d.channel.clone(),
            kind: d.kind.clone(),
            event_key: d.event_key.clone(),
            dag_id: d.dag_id.as_ref().map(|x| x.0.clone()),
            run_id: d.run_id.map(|x| x.0),
            ti_id: d.ti_id.map(|x| x.0),
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            next_at: d.next_at,
            last_error: d.last_error.clone(),
            sent_at: d.sent_at,
            message: d.payload.get("message").cloned(),
        }
    }
}

// ------------------------------------------------------------------ reading

/// A stored channel as shown, opened and masked, or (when this server cannot
/// open it) its clear part with every secret setting `***`.
async fn view_of(state: &AppState, row: gale_store::AlertChannelRow) -> ChannelView {
    let updated_at = row.updated_at;
    match gale_actions::alerts::channel(&state.vault, &row.name).await {
        Ok(c) => ChannelView::of(c.masked(), updated_at),
        Err(e) => {
            tracing::warn!(channel = %row.name, error = %e, "cannot open an alert channel to show it masked");
            let secret = match row.sealed {
                Some(_) => BTreeMap::from([("sealed".to_owned(), MASK.to_owned())]),
                None => BTreeMap::new(),
            };
            ChannelView {
                name: row.name,
                kind: row.kind.as_str().to_owned(),
                description: row.description,
                config: row.config,
                secret,
                updated_at,
            }
        }
    }
}

/// Every channel (at most `gale_store::CHANNELS_LISTED`), by name, masked.
pub async fn channels(state: &AppState) -> Result<Vec<ChannelView>, Error> {
    let mut out = Vec::new();
    for row in state.store.list_channels().await? {
        out.push(view_of(state, row).await);
    }
    Ok(out)
}

fn missing(name: &str) -> Error {
    Error::NotFound(format!("no alert channel {name:?}"))
}

async fn row_of(state: &AppState, name: &str) -> Result<gale_store::AlertChannelRow, Error> {
    if name.is_empty() || name.len() > gale_alerts::NAME_MAX {
        return Err(missing(name));
    }
    state
        .store
        .channel(name)
        .await?
        .ok_or_else(|| missing(name))
}

/// One channel, masked; `NotFound` if there is none.
pub async fn channel(state: &AppState, name: &str) -> Result<ChannelView, Error> {
    let row = row_of(state, name).await?;
    Ok(view_of(state, row).await)
}

// ------------------------------------------------------------------ changing

/// Whether a save made a new channel or replaced one.
pub use crate::vault::Saved;

/// A channel document from a JSON body: `name` (or `path_name`, which a
/// body's `name` must then equal), `kind`, `description` and the settings.
/// Secret settings sent as `***` are left out (so kept).
pub fn spec_of_json(
    mut body: Map<String, Value>,
    path_name: Option<&str>,
) -> Result<ChannelSpec, String> {
    if let Some(path_name) = path_name {
        match body.get("name") {
            None | Some(Value::Null) => {}
            Some(Value::String(n)) if n == path_name => {}
            Some(_) => {
                return Err(format!(
                    "`name`: leave it out, or give the path's {path_name:?}"
                ));
            }
        }
        body.insert("name".into(), Value::String(path_name.to_owned()));
    }
    match body.get("name") {
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => return Err("`name` is missing: the channel's name".into()),
        Some(_) => return Err("`name` must be a string".into()),
    }
    match body.get("kind") {
        Some(Value::String(k)) if k == ChannelKind::Command.as_str() => {
            return Err(
                "`kind`: command channels run a program on the server: add them there, with \
                 `gale alerts channels add NAME --command -- PROGRAM ARGS`"
                    .into(),
            );
        }
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => {
            return Err("`kind` is missing: email, webhook or slack".into());
        }
        Some(_) => return Err("`kind` must be a string: email, webhook or slack".into()),
    }
    match body.get("description") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err("`description` must be a string".into()),
    }
    // Only the document's own fields are quoted: a setting may be secret.
    serde_json::from_value(Value::Object(body))
        .map_err(|_| "the body is not a channel document (`name`, `kind`, settings)".to_owned())
}

/// Creates (`create_only`: refuses a name in use) or replaces a channel,
/// through `gale_actions` (audited as `alert_channel.set`). A secret setting
/// left out, or sent back as shown (`***`, the masked URL), keeps its value
/// when the kind stays the same. A stored command channel is replaced only
/// by another kind.
pub async fn save_channel(
    state: &AppState,
    actor: &Actor,
    mut spec: ChannelSpec,
    create_only: bool,
) -> Result<Saved, Error> {
    let current = match state.store.channel(&spec.name).await? {
        Some(_) if create_only => {
            return Err(Error::Conflict(format!(
                "alert channel {} exists: PUT /api/v1/alerts/channels/{} to change it",
                spec.name, spec.name
            )));
        }
        Some(_) => Some(gale_actions::alerts::channel(&state.vault, &spec.name).await),
        None => None,
    };
    if let Some(Ok(current)) = &current
        && current.kind.as_str() == spec.kind
    {
        let shown = current.masked().secret;
        spec.settings.retain(|k, v| match (shown.get(k), v) {
            (Some(masked), Value::String(given)) => given != masked && given != MASK,
            _ => true,
        });
    }
    gale_actions::alerts::set_channel(&*state.store, &state.vault, actor, &spec, true).await?;
    Ok(if current.is_some() {
        Saved::Replaced
    } else {
        Saved::Created
    })
}

/// Deletes a channel (`NotFound` if there is none); its pending deliveries
/// are given up.
pub async fn delete_channel(state: &AppState, actor: &Actor, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > gale_alerts::NAME_MAX {
        return Err(missing(name));
    }
    gale_actions::alerts::delete_channel(&*state.store, &state.vault, actor, name).await
}

/// What a test message through a channel got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TestResult {
    /// The server took the message.
    pub ok: bool,
    /// A refusal that trying again will not change (a 4xx, a bad address);
    /// false when it was taken.
    pub permanent: bool,
    /// What the server answered (`HTTP 200: ok`, `250 2.0.0 Ok`), or why it
    /// was not sent; never a secret setting.
    pub answer: String,
}

/// Sends a test message through a channel from this server (audited as
/// `alert_channel.test`).
pub async fn test_channel(
    state: &AppState,
    actor: &Actor,
    name: &str,
) -> Result<TestResult, Error> {
    if name.is_empty() || name.len() > gale_alerts::NAME_MAX {
        return Err(missing(name));
    }
    let sent = gale_actions::alerts::test_channel(
        &*state.store,
        &state.vault,
        actor,
        name,
        &state.alert_settings,
    )
    .await?;
    Ok(match sent {
        Ok(answer) => TestResult {
            ok: true,
            permanent: false,
            answer: answer.text,
        },
        Err(refusal) => TestResult {
            ok: false,
            permanent: refusal.is_permanent(),
            answer: refusal.text().to_owned(),
        },
    })
}

#[cfg(test)]
mod tests;
