//! Declared params: what a DAG's `params` may say about each key (a default, a
//! type, allowed values, required, a description, secret), and the check a
//! trigger's conf passes before a run is made.
//!
//! A param is written either as its default (`region: eu`) or as a mapping of
//! the spec keys below (`region: {type: string, enum: [eu, us], default: eu}`).
//! A mapping whose keys are not all spec keys is a default that happens to be
//! an object. Nothing here does I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most params a DAG may declare, and the longest conf a trigger may carry.
pub const MAX_PARAMS: usize = 500;

/// The keys that make a param's mapping a spec rather than a default.
const SPEC_KEYS: &[&str] = &[
    "default",
    "type",
    "enum",
    "required",
    "description",
    "secret",
    "minimum",
    "maximum",
    "min_length",
    "max_length",
];

/// A JSON type a param's value may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
    Null,
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "string" => ParamType::String,
            "integer" => ParamType::Integer,
            "number" => ParamType::Number,
            "boolean" => ParamType::Boolean,
            "array" => ParamType::Array,
            "object" => ParamType::Object,
            "null" => ParamType::Null,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
            ParamType::Null => "null",
        }
    }

    fn admits(self, v: &Value) -> bool {
        match self {
            ParamType::String => v.is_string(),
            ParamType::Integer => v.is_i64() || v.is_u64(),
            ParamType::Number => v.is_number(),
            ParamType::Boolean => v.is_boolean(),
            ParamType::Array => v.is_array(),
            ParamType::Object => v.is_object(),
            ParamType::Null => v.is_null(),
        }
    }
}

/// What a DAG declares about one param. The default itself lives in
/// `Dag::params`, beside the defaults of params written without a spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Empty: any type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<ParamType>,
    /// Allowed values; empty: any.
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
    /// A trigger must give it (when it has no default).
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// Its value is masked in every log line, output and view.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub minimum: Option<f64>,
    #[serde(default)]
    pub maximum: Option<f64>,
    #[serde(default)]
    pub min_length: Option<u64>,
    #[serde(default)]
    pub max_length: Option<u64>,
}

/// A DAG's `params` split into defaults and specs, with what is wrong in them
/// (each message names its key).
pub struct Declared {
    pub defaults: Map<String, Value>,
    pub specs: BTreeMap<String, ParamSpec>,
    pub errors: Vec<String>,
}

/// Reads a DAG's `params` as written.
pub fn declare(raw: Map<String, Value>) -> Declared {
    let mut out = Declared {
        defaults: Map::new(),
        specs: BTreeMap::new(),
        errors: Vec::new(),
    };
    if raw.len() > MAX_PARAMS {
        out.errors.push(format!(
            "{} params, more than the {MAX_PARAMS} a DAG may declare",
            raw.len()
        ));
        return out;
    }
    for (key, value) in raw {
        let spec_map = match &value {
            Value::Object(m)
                if !m.is_empty() && m.keys().all(|k| SPEC_KEYS.contains(&k.as_str())) =>
            {
                Some(m.clone())
            }
            _ => None,
        };
        let Some(m) = spec_map else {
            out.defaults.insert(key, value);
            continue;
        };
        match spec_of(&m) {
            Ok(spec) => {
                if let Some(default) = m.get("default") {
                    if let Err(e) = check_value(&spec, default) {
                        let shown = shown(&spec, default);
                        out.errors
                            .push(format!("param {key}: its default {shown} {e}"));
                    }
                    out.defaults.insert(key.clone(), default.clone());
                }
                out.specs.insert(key, spec);
            }
            Err(e) => out.errors.push(format!("param {key}: {e}")),
        }
    }
    out
}

fn spec_of(m: &Map<String, Value>) -> Result<ParamSpec, String> {
    let mut spec = ParamSpec::default();
    if let Some(t) = m.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        for name in names {
            let parsed = name.as_str().and_then(ParamType::parse).ok_or_else(|| {
                format!(
                    "type {name} is not one of string, integer, number, boolean, array, object, null"
                )
            })?;
            spec.types.push(parsed);
        }
    }
    if let Some(e) = m.get("enum") {
        let Value::Array(list) = e else {
            return Err("enum must be a list of the allowed values".into());
        };
        if list.is_empty() {
            return Err("enum is empty: no value would be allowed".into());
        }
        spec.allowed = list.clone();
    }
    let flag = |name: &str| -> Result<bool, String> {
        match m.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("{name} must be true or false, not {other}")),
        }
    };
    spec.required = flag("required")?;
    spec.secret = flag("secret")?;
    spec.description = match m.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("description must be text, not {other}")),
    };
    let number = |name: &str| -> Result<Option<f64>, String> {
        match m.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{name} must be a number, not {v}")),
        }
    };
    spec.minimum = number("minimum")?;
    spec.maximum = number("maximum")?;
    let length = |name: &str| -> Result<Option<u64>, String> {
        match m.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{name} must be a whole number, not {v}")),
        }
    };
    spec.min_length = length("min_length")?;
    spec.max_length = length("max_length")?;
    Ok(spec)
}

/// Why `v` does not satisfy `spec`, as the end of a sentence naming the value.
fn check_value(spec: &ParamSpec, v: &Value) -> Result<(), String> {
    if !spec.types.is_empty() && !spec.types.iter().any(|t| t.admits(v)) {
        let names: Vec<&str> = spec.types.iter().map(|t| t.as_str()).collect();
        return Err(format!("is not of type {}", names.join(" or ")));
    }
    if !spec.allowed.is_empty() && !spec.allowed.contains(v) {
        let names: Vec<String> = spec.allowed.iter().map(Value::to_string).collect();
        return Err(format!("is not one of {}", names.join(", ")));
    }
    if let Some(n) = v.as_f64() {
        if spec.minimum.is_some_and(|min| n < min) {
            return Err(format!(
                "is below the minimum {}",
                spec.minimum.unwrap_or(0.0)
            ));
        }
        if spec.maximum.is_some_and(|max| n > max) {
            return Err(format!(
                "is above the maximum {}",
                spec.maximum.unwrap_or(0.0)
            ));
        }
    }
    let len = match v {
        Value::String(s) => Some(s.chars().count() as u64),
        Value::Array(a) => Some(a.len() as u64),
        _ => None,
    };
    if let Some(len) = len {
        if let Some(min) = spec.min_length.filter(|min| len < *min) {
            return Err(format!("is shorter than {min}"));
        }
        if let Some(max) = spec.max_length.filter(|max| len > *max) {
            return Err(format!("is longer than {max}"));
        }
    }
    Ok(())
}

/// What a DAG accepts in a trigger's conf.
#[derive(Clone, Copy)]
pub struct Accepts<'a> {
    pub defaults: &'a Map<String, Value>,
    pub specs: &'a BTreeMap<String, ParamSpec>,
    /// Keys neither a default nor a spec names are taken too.
    pub undeclared: bool,
}

/// Checks a trigger's conf: every key declared (unless the DAG takes
/// undeclared keys), every value what its spec allows, every required param
/// given or defaulted. Each message names its key.
pub fn check_conf(accepts: Accepts<'_>, conf: &Map<String, Value>) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if conf.len() > MAX_PARAMS {
        return Err(vec![format!(
            "conf has {} keys, more than the {MAX_PARAMS} a run may carry",
            conf.len()
        )]);
    }
    for (key, value) in conf {
        let declared = accepts.defaults.contains_key(key) || accepts.specs.contains_key(key);
        if !declared {
            if !accepts.undeclared {
                errors.push(format!(
                    "conf key {key:?} is not a param of this DAG (declare it under `params`, or set `allow_undeclared_conf: true`)"
                ));
            }
            continue;
        }
        if let Some(spec) = accepts.specs.get(key)
            && let Err(e) = check_value(spec, value)
        {
            errors.push(format!(
                "conf key {key:?}: the value {} {e}",
                shown(spec, value)
            ));
        }
    }
    for (key, spec) in accepts.specs {
        if spec.required && !conf.contains_key(key) && !accepts.defaults.contains_key(key) {
            errors.push(format!("conf key {key:?} is required and was not given"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A value as an error message may quote it: never a secret's.
fn shown(spec: &ParamSpec, v: &Value) -> String {
    if spec.secret {
        "***".into()
    } else {
        let text = v.to_string();
        match text.char_indices().nth(60) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests;
