//! Variables and connections as the API and the UI show and change them.
//!
//! Views never hold a secret unless it is revealed: a secret variable's value
//! and a connection's password are `***`, and a connection's extra values
//! under secret-looking keys too (`Connection::masked`). Edits keep what is
//! not given again: a secret variable's value or a connection's password left
//! out (an empty password field of a form) or sent back as `***`, and extra
//! values sent back as `***`, so a form that never shows a secret still
//! changes everything else. Every change and every reveal goes through
//! `gale_actions`, which records it in the audit log.
//!
//! Bodies are read field by field, so a refusal names the field and never
//! quotes what was sent (it may be a password).

use gale_actions::{Actor, Error};
use gale_model::mask::is_secret_key;
use gale_model::secrets::{Connection, MAX_VALUE_BYTES, Variable, check_name};
use gale_store::{ConnectionRow, VariableRow};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::AppState;

/// What a secret shows as.
pub const MASK: &str = "***";
/// The longest text field (type, host, login, password, schema, description).
pub const MAX_FIELD_BYTES: usize = 4096;
/// The longest connection URI.
pub const MAX_URI_BYTES: usize = 2 * MAX_VALUE_BYTES;

/// A variable as shown.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct VariableView {
    pub name: String,
    /// The value; `***` for a secret variable unless it was revealed.
    pub value: String,
    /// The value is JSON (templates read it whole as `var.json.NAME`).
    pub json: bool,
    /// Sealed at rest and shown as `***`.
    pub secret: bool,
    pub description: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
}

impl VariableView {
    fn of_row(row: VariableRow) -> VariableView {
        VariableView {
            value: if row.secret {
                MASK.to_owned()
            } else {
                row.value.unwrap_or_default()
            },
            name: row.name,
            json: row.json,
            secret: row.secret,
            description: row.description,
            updated_at: row.updated_at,
        }
    }
}

/// A connection as shown.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    /// `postgres`, `http`, `aws`, ...
    pub conn_type: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub login: Option<String>,
    /// `***` when it has one, unless it was revealed.
    pub password: Option<String>,
    /// The database (Airflow's schema).
    pub schema: Option<String>,
    /// Values under secret-looking keys as `***`, unless it was revealed.
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
    pub description: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
    /// The whole connection as an Airflow URI: only when revealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

impl ConnectionView {
    fn of(name: String, c: Connection, updated_at: Option<Timestamp>, uri: bool) -> Self {
        ConnectionView {
            uri: uri.then(|| c.uri()),
            name,
            conn_type: c.conn_type,
            host: c.host,
            port: c.port,
            login: c.login,
            password: c.password,
            schema: c.schema,
            extra: c.extra,
            description: c.description,
            updated_at,
        }
    }
}

// ------------------------------------------------------------------ reading

/// Every variable, secret values as `***`.
pub async fn variables(state: &AppState) -> Result<Vec<VariableView>, Error> {
    Ok(state
        .store
        .list_variables()
        .await?
        .into_iter()
        .map(VariableView::of_row)
        .collect())
}

/// One variable, its value `***` if it is secret; `NotFound` if there is none.
pub async fn variable(state: &AppState, name: &str) -> Result<VariableView, Error> {
    let missing = || Error::NotFound(format!("no variable {name:?}"));
    if check_name("variable", name).is_err() {
        return Err(missing());
    }
    let row = state.store.variable(name).await?.ok_or_else(missing)?;
    Ok(VariableView::of_row(row))
}

/// One variable in clear (admins only: the caller checks), recorded as a
/// reveal when it is secret.
pub async fn reveal_variable(
    state: &AppState,
    actor: &Actor,
    name: &str,
) -> Result<VariableView, Error> {
    let shown = variable(state, name).await?;
    let v = gale_actions::reveal_variable(&*state.store, &state.vault, actor, name).await?;
    Ok(VariableView {
        value: v.value,
        json: v.json,
        secret: v.secret,
        description: v.description,
        ..shown
    })
}

/// A connection's row as shown: its sealed part opened and masked. When this
/// server cannot open it (no key, or not the key it is sealed under), the
/// password shows as `***` and the extra as empty, and the log says why.
async fn masked_connection(state: &AppState, row: ConnectionRow) -> ConnectionView {
    let public = Connection {
        conn_type: row.conn_type.clone(),
        host: row.host.clone(),
        port: row.port,
        login: row.login.clone(),
        password: None,
        schema: row.schema.clone(),
        extra: Map::new(),
        description: row.description.clone(),
    };
    if row.sealed.is_none() {
        return ConnectionView::of(row.name, public, row.updated_at, false);
    }
    let shown = match state.vault.connection(&row.name).await {
        Ok(Some(c)) => c.masked(),
        Ok(None) => public,
        Err(e) => {
            tracing::warn!(connection = %row.name, error = %e, "cannot open a connection to show it masked");
            Connection {
                password: Some(MASK.to_owned()),
                ..public
            }
        }
    };
    ConnectionView::of(row.name, shown, row.updated_at, false)
}

/// Every connection, masked.
pub async fn connections(state: &AppState) -> Result<Vec<ConnectionView>, Error> {
    let mut out = Vec::new();
    for row in state.store.list_connections().await? {
        out.push(masked_connection(state, row).await);
    }
    Ok(out)
}

async fn connection_row(state: &AppState, name: &str) -> Result<ConnectionRow, Error> {
    let missing = || Error::NotFound(format!("no connection {name:?}"));
    if check_name("connection", name).is_err() {
        return Err(missing());
    }
    state.store.connection(name).await?.ok_or_else(missing)
}

/// One connection, masked; `NotFound` if there is none.
pub async fn connection(state: &AppState, name: &str) -> Result<ConnectionView, Error> {
    let row = connection_row(state, name).await?;
    Ok(masked_connection(state, row).await)
}

/// One connection in clear, with its URI (admins only: the caller checks),
/// recorded as a reveal.
pub async fn reveal_connection(
    state: &AppState,
    actor: &Actor,
    name: &str,
) -> Result<ConnectionView, Error> {
    let row = connection_row(state, name).await?;
    let c = gale_actions::reveal_connection(&*state.store, &state.vault, actor, name).await?;
    Ok(ConnectionView::of(row.name, c, row.updated_at, true))
}

// ------------------------------------------------------------------ changing

/// Whether a save made a new entry or replaced one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    Created,
    Replaced,
}

/// A change to a variable: what is `None` keeps its current value (a new
/// variable needs `value`).
#[derive(Clone, Debug, Default)]
pub struct VariableEdit {
    /// For a secret variable, `***` also keeps the current value.
    pub value: Option<String>,
    pub json: Option<bool>,
    pub secret: Option<bool>,
    /// Empty clears it.
    pub description: Option<String>,
}

impl VariableEdit {
    /// Whether the current value is kept (and so must be read, opened if
    /// secret) when the current variable is `secret`.
    fn keeps_value(&self, secret: bool) -> bool {
        match self.value.as_deref() {
            None => true,
            Some(v) => secret && v == MASK,
        }
    }

    /// The variable this edit makes of `current`.
    pub fn apply(self, name: &str, current: Option<Variable>) -> Result<Variable, String> {
        let was_secret = current.as_ref().is_some_and(|c| c.secret);
        let keep = self.keeps_value(was_secret);
        let secret = self.secret.or(current.as_ref().map(|c| c.secret));
        let secret = secret.unwrap_or(false) || is_secret_key(name);
        let value = match (keep, &current) {
            (false, _) => self.value.unwrap_or_default(),
            (true, Some(c)) => {
                if c.secret && !secret {
                    return Err(format!(
                        "`value`: give the value to make the secret variable {name} non-secret \
                         (its value is never shown, so it is not made readable unseen)"
                    ));
                }
                c.value.clone()
            }
            (true, None) => {
                return Err(format!(
                    "`value` is missing: the new variable {name} needs one"
                ));
            }
        };
        let json = self
            .json
            .or(current.as_ref().map(|c| c.json))
            .unwrap_or(false);
        let description = match self.description {
            Some(d) => Some(d.trim().to_owned()).filter(|d| !d.is_empty()),
            None => current.and_then(|c| c.description),
        };
        Variable::new(name, value, json, secret, description)
    }

    /// An edit from a JSON body (`name` too when `with_name`).
    pub fn from_json(
        body: &Map<String, Value>,
        with_name: bool,
    ) -> Result<(Option<String>, VariableEdit), String> {
        let mut allowed = vec!["value", "json", "secret", "description"];
        if with_name {
            allowed.insert(0, "name");
        }
        known_fields(body, &allowed)?;
        let name = name_field(body, "variable", with_name)?;
        let value = match body.get("value") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(
                    "`value` must be a string (a JSON value as text, with `\"json\": true`)".into(),
                );
            }
        };
        let edit = VariableEdit {
            value,
            json: flag(body, "json")?,
            secret: flag(body, "secret")?,
            description: text(body, "description")?,
        };
        Ok((name, edit))
    }
}

/// Creates (`create_only`: refuses a name in use) or changes a variable.
pub async fn save_variable(
    state: &AppState,
    actor: &Actor,
    name: &str,
    edit: VariableEdit,
    create_only: bool,
) -> Result<Saved, Error> {
    check_name("variable", name).map_err(Error::Invalid)?;
    let row = state.store.variable(name).await?;
    if create_only && row.is_some() {
        return Err(Error::Conflict(format!(
            "a variable named {name} exists already"
        )));
    }
    let saved = if row.is_some() {
        Saved::Replaced
    } else {
        Saved::Created
    };
    let current = match row {
        None => None,
        Some(r) if r.secret && edit.keeps_value(true) => state.vault.variable(name).await?,
        Some(r) => Some(Variable {
            value: r.value.unwrap_or_default(),
            json: r.json,
            secret: r.secret,
            description: r.description,
        }),
    };
    let v = edit.apply(name, current).map_err(Error::Invalid)?;
    gale_actions::set_variable(&*state.store, &state.vault, actor, name, &v).await?;
    Ok(saved)
}

/// A change to a connection: a whole URI, or the fields. What is left out is
/// cleared, but for the secret parts: `password` left out (or `***`) keeps
/// the current one (empty clears it), `extra` left out keeps the current
/// one, and extra values given as `***` keep theirs.
#[derive(Clone, Debug, Default)]
pub struct ConnectionEdit {
    pub uri: Option<String>,
    pub conn_type: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub schema: Option<String>,
    pub extra: Option<Map<String, Value>>,
    pub description: Option<String>,
}

/// The fields a connection is given by, besides `uri` and `description`.
const CONNECTION_FIELDS: [&str; 7] = [
    "conn_type",
    "host",
    "port",
    "login",
    "password",
    "schema",
    "extra",
];

fn has_mask(map: &Map<String, Value>) -> bool {
    map.values().any(|v| match v {
        Value::String(s) => s == MASK,
        Value::Object(inner) => has_mask(inner),
        _ => false,
    })
}

/// `extra` with each `***` that stands where `current` has a value put back
/// to that value.
fn unmask_extra(extra: &mut Map<String, Value>, current: &Map<String, Value>) {
    for (k, v) in extra.iter_mut() {
        let Some(old) = current.get(k) else { continue };
        if v.as_str() == Some(MASK) {
            *v = old.clone();
        } else if let (Value::Object(inner), Value::Object(old)) = (v, old) {
            unmask_extra(inner, old);
        }
    }
}

impl ConnectionEdit {
    /// Whether applying it reads the current connection's sealed part.
    fn needs_current(&self) -> bool {
        match &self.uri {
            Some(_) => true,
            None => {
                self.password.as_deref().is_none_or(|p| p == MASK)
                    || self.extra.as_ref().is_none_or(has_mask)
            }
        }
    }

    /// The connection this edit makes of `current`.
    pub fn apply(self, name: &str, current: Option<Connection>) -> Result<Connection, String> {
        let given = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let description = given(self.description);
        let mut conn = match self.uri {
            Some(uri) => {
                let c = Connection::from_uri(&uri).map_err(|e| format!("`uri`: {e}"))?;
                let password = match (c.password, &current) {
                    (Some(p), Some(cur)) if p == MASK => cur.password.clone(),
                    (p, _) => p,
                };
                Connection {
                    password,
                    description,
                    ..c
                }
            }
            None => {
                let conn_type = given(self.conn_type).ok_or_else(|| {
                    "`conn_type` is missing (postgres, http, aws, ...), or give `uri`".to_owned()
                })?;
                let password = match self.password {
                    None => current.as_ref().and_then(|c| c.password.clone()),
                    Some(p) if p == MASK && current.is_some() => {
                        current.as_ref().and_then(|c| c.password.clone())
                    }
                    Some(p) => Some(p).filter(|p| !p.is_empty()),
                };
                let extra = match self.extra {
                    Some(extra) => extra,
                    None => current
                        .as_ref()
                        .map(|c| c.extra.clone())
                        .unwrap_or_default(),
                };
                Connection {
                    conn_type,
                    host: given(self.host),
                    port: self.port,
                    login: given(self.login),
                    password,
                    schema: given(self.schema),
                    extra,
                    description,
                }
            }
        };
        if let Some(cur) = &current {
            unmask_extra(&mut conn.extra, &cur.extra);
        }
        conn.check(name)?;
        Ok(conn)
    }

    /// An edit from a JSON body (`name` too when `with_name`): `uri`, or the
    /// fields (`port` a number or digits, `extra` an object or its JSON text).
    pub fn from_json(
        body: &Map<String, Value>,
        with_name: bool,
    ) -> Result<(Option<String>, ConnectionEdit), String> {
        let mut allowed = vec!["uri", "description"];
        allowed.extend(CONNECTION_FIELDS);
        if with_name {
            allowed.insert(0, "name");
        }
        known_fields(body, &allowed)?;
        let name = name_field(body, "connection", with_name)?;
        let description = text(body, "description")?;
        let uri = match body.get("uri") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() > MAX_URI_BYTES => {
                return Err(format!("`uri` is longer than {MAX_URI_BYTES} bytes"));
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`uri` must be a string".into()),
        };
        if uri.is_some() {
            if let Some(f) = CONNECTION_FIELDS.iter().find(|f| body.contains_key(**f)) {
                return Err(format!(
                    "give either `uri` or the fields, not both (`uri` and `{f}` were given)"
                ));
            }
            let edit = ConnectionEdit {
                uri,
                description,
                ..ConnectionEdit::default()
            };
            return Ok((name, edit));
        }
        let port = match body.get("port") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or("`port` must be a number from 0 to 65535")?,
            ),
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(port_of(s)?),
            Some(_) => return Err("`port` must be a number from 0 to 65535".into()),
        };
        let extra = match body.get("extra") {
            None => None,
            Some(Value::Null) => Some(Map::new()),
            Some(Value::Object(m)) => Some(m.clone()),
            Some(Value::String(s)) => Some(extra_of(s)?),
            Some(_) => return Err("`extra` must be a JSON object (or its text)".into()),
        };
        let edit = ConnectionEdit {
            uri: None,
            conn_type: text(body, "conn_type")?,
            host: text(body, "host")?,
            port,
            login: text(body, "login")?,
            password: text(body, "password")?,
            schema: text(body, "schema")?,
            extra,
            description,
        };
        Ok((name, edit))
    }
}

/// A port typed as text.
pub fn port_of(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| "`port` must be a number from 0 to 65535".to_owned())
}

/// An extra typed as JSON text: empty is none.
pub fn extra_of(s: &str) -> Result<Map<String, Value>, String> {
    if s.trim().is_empty() {
        return Ok(Map::new());
    }
    if s.len() > MAX_VALUE_BYTES {
        return Err(format!("`extra` is longer than {MAX_VALUE_BYTES} bytes"));
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        // Never the parser's message: it may quote the text.
        _ => Err("`extra` must be a JSON object, like {\"sslmode\": \"require\"}".into()),
    }
}

/// Creates (`create_only`: refuses a name in use) or changes a connection.
pub async fn save_connection(
    state: &AppState,
    actor: &Actor,
    name: &str,
    edit: ConnectionEdit,
    create_only: bool,
) -> Result<Saved, Error> {
    check_name("connection", name).map_err(Error::Invalid)?;
    let row = state.store.connection(name).await?;
    if create_only && row.is_some() {
        return Err(Error::Conflict(format!(
            "a connection named {name} exists already"
        )));
    }
    let saved = if row.is_some() {
        Saved::Replaced
    } else {
        Saved::Created
    };
    let current = match row {
        Some(r) if r.sealed.is_some() && edit.needs_current() => {
            state.vault.connection(name).await?
        }
        Some(r) => Some(Connection {
            conn_type: r.conn_type,
            ..Connection::default()
        }),
        None => None,
    };
    let c = edit.apply(name, current).map_err(Error::Invalid)?;
    gale_actions::set_connection(&*state.store, &state.vault, actor, name, &c).await?;
    Ok(saved)
}

/// Deletes a variable (`NotFound` if there is none).
pub async fn delete_variable(state: &AppState, actor: &Actor, name: &str) -> Result<(), Error> {
    if check_name("variable", name).is_err() {
        return Err(Error::NotFound(format!("no variable {name:?}")));
    }
    gale_actions::delete_variable(&*state.store, &state.vault, actor, name).await
}

/// Deletes a connection (`NotFound` if there is none).
pub async fn delete_connection(state: &AppState, actor: &Actor, name: &str) -> Result<(), Error> {
    if check_name("connection", name).is_err() {
        return Err(Error::NotFound(format!("no connection {name:?}")));
    }
    gale_actions::delete_connection(&*state.store, &state.vault, actor, name).await
}

// ------------------------------------------------------------------ bodies

fn known_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown field `{}`: expected {}",
            k.chars().take(100).collect::<String>(),
            allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => Ok(()),
    }
}

fn name_field(
    body: &Map<String, Value>,
    what: &str,
    required: bool,
) -> Result<Option<String>, String> {
    if !required {
        return Ok(None);
    }
    match body.get("name") {
        Some(Value::String(n)) => {
            check_name(what, n).map_err(|e| format!("`name`: {e}"))?;
            Ok(Some(n.clone()))
        }
        None | Some(Value::Null) => Err(format!("`name` is missing: the {what}'s name")),
        Some(_) => Err("`name` must be a string".into()),
    }
}

fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_FIELD_BYTES => {
            Err(format!("`{key}` is longer than {MAX_FIELD_BYTES} bytes"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn flag(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("`{key}` must be true or false")),
    }
}

#[cfg(test)]
mod tests;
