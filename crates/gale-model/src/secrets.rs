//! Variables and connections: named values and Airflow-style connection
//! records that DAGs use without holding them (`{{ var.NAME }}`,
//! `{{ conn.NAME.password }}`, a task's `env_from`).
//!
//! What is here is the data and its text forms: names, Airflow's connection
//! URI (`postgres://user:pass@host:5432/db?sslmode=require`), Airflow's
//! export files, the environment variables a connection gives a task, and
//! which of its values are secret. Where values are kept (the store, the
//! environment, a secrets directory) and how they are sealed is the
//! `gale-secrets` crate's.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mask::is_secret_key;

/// The longest name of a variable or connection (Airflow's limit).
pub const MAX_NAME_CHARS: usize = 250;
/// The longest value of a variable, and of a connection's extra as JSON.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Whether `name` may name a variable or a connection: 1 to 250 of letters,
/// digits, `_`, `.` and `-`, starting with a letter, digit or `_`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: use 1 to {MAX_NAME_CHARS} letters, digits, '_', '.' \
             and '-', starting with a letter, digit or '_'"
        ))
    }
}

/// A variable: a string (or JSON text) with a description, secret or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub value: String,
    /// The value is JSON (checked when set); templates read it whole as
    /// `var.json.NAME`.
    #[serde(default)]
    pub json: bool,
    /// Sealed at rest and masked wherever shown. A name that looks secret
    /// (`..._password`, `api_token`) makes it secret too.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

impl Variable {
    /// A variable named `name` with `value`, checked: a JSON one must parse.
    pub fn new(
        name: &str,
        value: String,
        json: bool,
        secret: bool,
        description: Option<String>,
    ) -> Result<Variable, String> {
        check_name("variable", name)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "variable {name}: the value is {} bytes, more than the {MAX_VALUE_BYTES} a variable may hold",
                value.len()
            ));
        }
        if json && let Err(e) = serde_json::from_str::<Value>(&value) {
            return Err(format!("variable {name}: the value is not JSON: {e}"));
        }
        Ok(Variable {
            value,
            json,
            secret: secret || is_secret_key(name),
            description,
        })
    }
}

/// A connection in Airflow's model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub conn_type: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The database (Airflow calls it the schema).
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `s` with its percent escapes decoded; `+` is a space only in a query
/// (`plus_is_space`), as Airflow reads a URI.
fn decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    // Never echo the text: it may be a password.
                    .ok_or_else(|| {
                        "not a connection URI (a `%` not followed by two hex digits: \
                         write a literal `%` as %25)"
                            .to_owned()
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| "not a connection URI (a percent escape is not UTF-8)".to_owned())
}

fn percent_decode(s: &str) -> Result<String, String> {
    decode(s, false)
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl Connection {
    /// Parses an Airflow connection URI:
    /// `type://[login[:password]@]host[:port][/schema][?key=value&...]`, every
    /// part percent-encoded; the query is the extra (or `__extra__=<JSON>`).
    /// `postgresql` is `postgres`, and `-` in the type is `_`, as in Airflow.
    pub fn from_uri(uri: &str) -> Result<Connection, String> {
        let fail = |what: &str| {
            // Never echo the URI: it holds the password.
            Err(format!(
                "not a connection URI ({what}): expected type://login:password@host:port/schema?extra=..."
            ))
        };
        let Some((scheme, rest)) = uri.trim().split_once("://") else {
            return fail("no `type://`");
        };
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-+.".contains(&b))
        {
            return fail("the type has characters other than letters, digits, '-', '_', '+', '.'");
        }
        let conn_type = match scheme.to_ascii_lowercase().replace('-', "_").as_str() {
            "postgresql" => "postgres".to_owned(),
            other => other.to_owned(),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (login, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((l, p)) => (Some(percent_decode(l)?), Some(percent_decode(p)?)),
                None => (Some(percent_decode(u)?), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return fail("an IPv6 host without its closing ']'");
            };
            // Kept without its brackets (what libpq's PGHOST wants); the URI
            // puts them back.
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        let port = match port.filter(|p| !p.is_empty()) {
            Some(p) => match p.parse::<u16>() {
                Ok(p) => Some(p),
                Err(_) => return fail("the port is not a number from 0 to 65535"),
            },
            None => None,
        };
        let mut extra = Map::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k, true)?, decode(v, true)?);
            if k == "__extra__" {
                match serde_json::from_str::<Value>(&v) {
                    Ok(Value::Object(map)) => extra.extend(map),
                    _ => return fail("`__extra__` is not a JSON object"),
                }
            } else {
                extra.insert(k, Value::String(v));
            }
        }
        Ok(Connection {
            conn_type,
            host: non_empty(percent_decode(&host)?),
            port,
            login: login.and_then(non_empty),
            password: password.and_then(non_empty),
            schema: path.map(percent_decode).transpose()?.and_then(non_empty),
            extra,
            description: None,
        })
    }

    /// The connection as an Airflow URI, every part percent-encoded (the
    /// extra as the query when all its values are strings, else as
    /// `__extra__=<JSON>`).
    pub fn uri(&self) -> String {
        use crate::template::percent_encode as enc;
        let mut uri = format!("{}://", self.conn_type.replace('_', "-"));
        if self.login.is_some() || self.password.is_some() {
            uri.push_str(&enc(self.login.as_deref().unwrap_or("")));
            if let Some(p) = &self.password {
                uri.push(':');
                uri.push_str(&enc(p));
            }
            uri.push('@');
        }
        if let Some(h) = &self.host {
            // An IPv6 address goes in brackets; any other host (even one
            // holding `:`, such as `https://hooks.example`) is encoded.
            let ipv6 = h.contains(':')
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if ipv6 {
                uri.push_str(&format!(
                    "[{}]",
                    h.trim_start_matches('[').trim_end_matches(']')
                ));
            } else {
                uri.push_str(&enc(h));
            }
        }
        if let Some(p) = self.port {
            uri.push_str(&format!(":{p}"));
        }
        if let Some(s) = &self.schema {
            uri.push('/');
            uri.push_str(&enc(s));
        }
        if !self.extra.is_empty() {
            if self.extra.values().all(Value::is_string) {
                let query: Vec<String> = self
                    .extra
                    .iter()
                    .map(|(k, v)| format!("{}={}", enc(k), enc(v.as_str().unwrap_or(""))))
                    .collect();
                uri.push('?');
                uri.push_str(&query.join("&"));
            } else {
                let json = Value::Object(self.extra.clone()).to_string();
                uri.push_str(&format!("?__extra__={}", enc(&json)));
            }
        }
        uri
    }

    /// Checks a connection about to be kept under `name`.
    pub fn check(&self, name: &str) -> Result<(), String> {
        check_name("connection", name)?;
        if self.conn_type.is_empty() {
            return Err(format!(
                "connection {name}: the type is empty (postgres, http, ...)"
            ));
        }
        if !self
            .conn_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-+.".contains(&b))
        {
            return Err(format!(
                "connection {name}: the type {:?} may hold only letters, digits, '_', '-', '+' and '.'",
                self.conn_type
            ));
        }
        let extra = Value::Object(self.extra.clone()).to_string();
        if extra.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "connection {name}: the extra is {} bytes, more than {MAX_VALUE_BYTES}",
                extra.len()
            ));
        }
        Ok(())
    }

    /// What a task's `env_from: {connection: NAME, prefix: P}` sets: `PHOST`,
    /// `PPORT`, `PUSER`, `PPASSWORD`, `PDATABASE` (the ones the connection
    /// has), so with `prefix: PG` a `psql` needs no arguments.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            ("HOST", self.host.clone()),
            ("PORT", self.port.map(|p| p.to_string())),
            ("USER", self.login.clone()),
            ("PASSWORD", self.password.clone()),
            ("DATABASE", self.schema.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (format!("{prefix}{k}"), v)))
        .collect()
    }

    /// The values a task given this connection must never show: the
    /// password, and every extra value under a secret-looking key.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.password.iter().cloned().collect();
        walk_secrets(&self.extra, false, &mut out);
        out
    }

    /// The connection as shown to someone who may not read its secrets: the
    /// password and secret-looking extra values as `***` (inside an extra
    /// value that is JSON text too, as Airflow's `keyfile_dict` is).
    pub fn masked(&self) -> Connection {
        Connection {
            password: self.password.as_ref().map(|_| "***".to_owned()),
            extra: mask_extra(&self.extra),
            ..self.clone()
        }
    }

    /// What templates see as `conn.NAME`: the fields, `extra` and `uri`.
    pub fn template_value(&self) -> Value {
        serde_json::json!({
            "conn_type": self.conn_type,
            "host": self.host.clone().unwrap_or_default(),
            "port": self.port.map(|p| p.to_string()).unwrap_or_default(),
            "login": self.login.clone().unwrap_or_default(),
            "password": self.password.clone().unwrap_or_default(),
            "schema": self.schema.clone().unwrap_or_default(),
            "extra": self.extra,
            "uri": self.uri(),
        })
    }

    /// One entry of an Airflow connections export (JSON or YAML): the fields,
    /// with `extra` as a JSON object or as JSON text, or the whole connection
    /// as a URI string.
    pub fn from_export(name: &str, entry: &Value) -> Result<Connection, String> {
        let conn = match entry {
            Value::String(uri) => Connection::from_uri(uri).map_err(|e| format!("{name}: {e}"))?,
            Value::Object(map) => {
                let text = |key: &str| -> Result<Option<String>, String> {
                    match map.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(non_empty(s.clone())),
                        Some(Value::Number(n)) => Ok(Some(n.to_string())),
                        Some(_) => Err(format!("{name}: `{key}` is not text")),
                    }
                };
                if let Some(uri) = text("uri")? {
                    Connection::from_uri(&uri).map_err(|e| format!("{name}: {e}"))?
                } else {
                    let port = match map.get("port") {
                        None | Some(Value::Null) => None,
                        Some(Value::Number(n)) => Some(
                            n.as_u64()
                                .and_then(|p| u16::try_from(p).ok())
                                .ok_or_else(|| format!("{name}: `port` is not a port number"))?,
                        ),
                        Some(Value::String(s)) if s.is_empty() => None,
                        Some(Value::String(s)) => Some(
                            s.parse()
                                .map_err(|_| format!("{name}: `port` is not a port number"))?,
                        ),
                        Some(_) => return Err(format!("{name}: `port` is not a port number")),
                    };
                    let extra = match map.get("extra") {
                        None | Some(Value::Null) => Map::new(),
                        Some(Value::Object(m)) => m.clone(),
                        Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
                        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                            Ok(Value::Object(m)) => m,
                            _ => return Err(format!("{name}: `extra` is not a JSON object")),
                        },
                        Some(_) => return Err(format!("{name}: `extra` is not a JSON object")),
                    };
                    Connection {
                        conn_type: text("conn_type")?
                            .ok_or_else(|| format!("{name}: `conn_type` is missing"))?,
                        host: text("host")?,
                        port,
                        login: text("login")?,
                        password: text("password")?,
                        schema: text("schema")?,
                        extra,
                        description: None,
                    }
                }
            }
            _ => return Err(format!("{name}: expected a URI or a mapping of fields")),
        };
        let description = match entry.get("description") {
            Some(Value::String(s)) => non_empty(s.clone()),
            _ => None,
        };
        let conn = Connection {
            description,
            ..conn
        };
        conn.check(name)?;
        Ok(conn)
    }

    /// The connection as one entry of an export, in Airflow's shape (`extra`
    /// as JSON text), so Airflow can import it too.
    pub fn to_export(&self) -> Value {
        serde_json::json!({
            "conn_type": self.conn_type,
            "description": self.description,
            "host": self.host,
            "login": self.login,
            "password": self.password,
            "port": self.port,
            "schema": self.schema,
            "extra": if self.extra.is_empty() { Value::Null } else { Value::String(Value::Object(self.extra.clone()).to_string()) },
        })
    }
}

/// A string that holds a JSON object (an extra's `keyfile_dict`), parsed.
fn json_object(s: &str) -> Option<Map<String, Value>> {
    if !s.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Every scalar at or under `v` (a secret key's whole value, at any depth).
fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => match json_object(s) {
            Some(inner) => inner.values().for_each(|v| leaves(v, out)),
            None => out.push(s.clone()),
        },
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(list) => list.iter().for_each(|v| leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// The values under secret-looking keys of `map`, at any depth, looking into
/// values that are JSON text.
fn walk_secrets(map: &Map<String, Value>, under_secret: bool, out: &mut Vec<String>) {
    for (k, v) in map {
        let secret = under_secret || is_secret_key(k);
        match v {
            _ if secret => leaves(v, out),
            Value::Object(inner) => walk_secrets(inner, false, out),
            Value::String(s) => {
                if let Some(inner) = json_object(s) {
                    walk_secrets(&inner, false, out);
                }
            }
            _ => {}
        }
    }
}

/// `mask_conf`, looking into values that are JSON text as well.
fn mask_extra(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                _ if is_secret_key(k) => Value::String("***".into()),
                Value::Object(inner) => Value::Object(mask_extra(inner)),
                Value::String(s) => match json_object(s) {
                    Some(inner) => Value::String(Value::Object(mask_extra(&inner)).to_string()),
                    None => v.clone(),
                },
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// One entry of a variables export: Airflow's plain `name: value` (a non-string
/// value is its JSON) or Gale's `name: {value, description, secret}`.
pub fn variable_from_export(name: &str, entry: &Value) -> Result<Variable, String> {
    let (value, description, secret, json) = match entry {
        Value::String(s) => (s.clone(), None, false, false),
        // Gale's shape only when it has nothing else: an Airflow JSON value
        // that happens to have a `value` key is a value.
        Value::Object(map)
            if map.contains_key("value")
                && map
                    .keys()
                    .all(|k| ["value", "json", "description", "secret"].contains(&k.as_str())) =>
        {
            let (value, json) = match &map["value"] {
                Value::String(s) => (s.clone(), map.get("json") == Some(&Value::Bool(true))),
                other => (other.to_string(), true),
            };
            let description = map
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let secret = map.get("secret") == Some(&Value::Bool(true));
            (value, description, secret, json)
        }
        other => (other.to_string(), None, false, true),
    };
    Variable::new(name, value, json, secret, description)
}

/// A variable as one entry of an export. A JSON value is written as JSON,
/// except a JSON string, which is written as its JSON text with `"json":
/// true` (as JSON it would read back as a plain text value).
pub fn variable_to_export(v: &Variable) -> Value {
    let parsed = v
        .json
        .then(|| serde_json::from_str::<Value>(&v.value).ok())
        .flatten();
    match parsed {
        Some(Value::String(_)) => serde_json::json!({
            "value": v.value, "json": true, "description": v.description, "secret": v.secret
        }),
        Some(value) => {
            serde_json::json!({"value": value, "description": v.description, "secret": v.secret})
        }
        None => {
            serde_json::json!({"value": v.value, "description": v.description, "secret": v.secret})
        }
    }
}

/// What a task takes into its environment from a connection or a variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum EnvFrom {
    /// `{connection: NAME, prefix: PG}`: `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`.
    Connection {
        connection: String,
        #[serde(default)]
        prefix: String,
    },
    /// `{variable: NAME, name: ENV_NAME}`.
    Variable { variable: String, name: String },
}

/// The variables and connections a task names (in its templates and its
/// `env_from`), so they can be looked up before it renders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    pub variables: BTreeSet<String>,
    pub connections: BTreeSet<String>,
}

impl References {
    pub fn is_empty(&self) -> bool {
        self.variables.is_empty() && self.connections.is_empty()
    }

    pub fn extend(&mut self, other: References) {
        self.variables.extend(other.variables);
        self.connections.extend(other.connections);
    }
}

/// The values an attempt looked up, for its templates and environment.
#[derive(Debug, Default)]
pub struct Lookup {
    pub variables: BTreeMap<String, Variable>,
    pub connections: BTreeMap<String, Connection>,
    /// What a template asked for and was not found (or was no JSON for
    /// `var.json`): why its render failed.
    pub missing: std::sync::Mutex<Vec<String>>,
}

impl Lookup {
    /// Every secret value looked up: the masker's additions.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in &self.variables {
            if v.secret || is_secret_key(name) {
                out.push(v.value.clone());
                // `var.json.NAME.field` hands out its parts: each is secret.
                if let Ok(json) = serde_json::from_str::<Value>(&v.value)
                    && (json.is_object() || json.is_array())
                {
                    leaves(&json, &mut out);
                }
            }
        }
        for c in self.connections.values() {
            out.extend(c.secrets());
        }
        out
    }

    pub(crate) fn miss(&self, what: String) {
        let mut m = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        if !m.contains(&what) {
            m.push(what);
        }
    }

    /// What was missed, as one sentence, if anything.
    pub fn missed(&self) -> Option<String> {
        let m = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        (!m.is_empty()).then(|| m.join("; "))
    }
}

#[cfg(test)]
mod tests;
