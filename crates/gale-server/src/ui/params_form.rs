//! The trigger form built from a DAG's params: one field per param, its
//! control chosen by the param's type (a number, a checkbox, a select of its
//! allowed values, a line of text, JSON for objects and arrays), and the
//! conversion of the submitted fields back into a conf object with the right
//! JSON types, each error naming its param.
//!
//! Pure: the DAG and the submitted pairs in, fields or a conf out. Secret
//! params (declared `secret` or with a secret-looking name) get no field: they
//! keep their values, since a trigger's conf is merged over the params.

use gale_model::Dag;
use gale_model::params::{Accepts, ParamSpec, ParamType, check_conf};
use serde_json::{Map, Value};

use crate::secrets::is_secret_key;

/// The prefix of a param's form field: `param.region` for param `region`.
pub const FIELD_PREFIX: &str = "param.";

/// The longest text a field may carry (a JSON param's included).
const FIELD_MAX: usize = 64 * 1024;

/// How a param is edited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Text,
    /// `step` is `1` for an integer, `any` for a number.
    Number {
        step: &'static str,
        min: String,
        max: String,
    },
    Checkbox,
    /// The allowed values, each as (JSON text, what the option shows).
    Select(Vec<(String, String)>),
    /// A JSON value (an object, an array, or a param of several or no types).
    Json,
}

/// One param's field, as the template draws it.
#[derive(Clone, Debug)]
pub struct Field {
    pub key: String,
    /// The form field's name.
    pub name: String,
    pub control: Control,
    /// What the field holds: the default, or what was typed.
    pub value: String,
    pub checked: bool,
    pub required: bool,
    pub help: String,
    pub error: String,
}

impl Field {
    pub fn is_text(&self) -> bool {
        self.control == Control::Text
    }
    pub fn is_number(&self) -> bool {
        matches!(self.control, Control::Number { .. })
    }
    pub fn is_checkbox(&self) -> bool {
        self.control == Control::Checkbox
    }
    pub fn is_json(&self) -> bool {
        self.control == Control::Json
    }
    pub fn step(&self) -> &str {
        match &self.control {
            Control::Number { step, .. } => step,
            _ => "",
        }
    }
    pub fn min(&self) -> &str {
        match &self.control {
            Control::Number { min, .. } => min,
            _ => "",
        }
    }
    pub fn max(&self) -> &str {
        match &self.control {
            Control::Number { max, .. } => max,
            _ => "",
        }
    }
    /// The select's options as (value, label, selected).
    pub fn options(&self) -> Vec<(String, String, bool)> {
        match &self.control {
            Control::Select(options) => options
                .iter()
                .map(|(v, label)| (v.clone(), label.clone(), *v == self.value))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The params that get a field, in key order: every declared param that is
/// not secret.
fn shown_params(dag: &Dag) -> Vec<(&str, Option<&ParamSpec>, Option<&Value>)> {
    let mut keys: Vec<&String> = dag.params.keys().chain(dag.param_specs.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !is_secret_key(k))
        .map(|k| (k.as_str(), dag.param_specs.get(k), dag.params.get(k)))
        .filter(|(_, spec, _)| !spec.is_some_and(|s| s.secret))
        .collect()
}

/// Whether the DAG has params the form leaves out (its secrets).
pub fn has_hidden(dag: &Dag) -> bool {
    let mut keys: Vec<&String> = dag.params.keys().chain(dag.param_specs.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.len() > shown_params(dag).len()
}

/// The JSON type a param's field edits: its one declared type (besides
/// null), or its default's; `None` when that is not one type.
fn edited_type(spec: Option<&ParamSpec>, default: Option<&Value>) -> Option<ParamType> {
    let declared: Vec<ParamType> = spec
        .map(|s| {
            s.types
                .iter()
                .copied()
                .filter(|t| *t != ParamType::Null)
                .collect()
        })
        .unwrap_or_default();
    match declared.as_slice() {
        [one] => Some(*one),
        [] => match default? {
            Value::String(_) => Some(ParamType::String),
            Value::Bool(_) => Some(ParamType::Boolean),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(ParamType::Integer),
            Value::Number(_) => Some(ParamType::Number),
            Value::Array(_) => Some(ParamType::Array),
            Value::Object(_) => Some(ParamType::Object),
            Value::Null => None,
        },
        _ => None,
    }
}

fn control_of(spec: Option<&ParamSpec>, default: Option<&Value>) -> Control {
    if let Some(spec) = spec.filter(|s| !s.allowed.is_empty()) {
        return Control::Select(
            spec.allowed
                .iter()
                .map(|v| {
                    let label = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (v.to_string(), label)
                })
                .collect(),
        );
    }
    let bound = |b: Option<f64>| b.map(|n| n.to_string()).unwrap_or_default();
    match edited_type(spec, default) {
        Some(ParamType::String) => Control::Text,
        Some(ParamType::Boolean) => Control::Checkbox,
        Some(t @ (ParamType::Integer | ParamType::Number)) => Control::Number {
            step: if t == ParamType::Integer { "1" } else { "any" },
            min: bound(spec.and_then(|s| s.minimum)),
            max: bound(spec.and_then(|s| s.maximum)),
        },
        _ => Control::Json,
    }
}

/// A value as its field holds it.
fn field_text(control: &Control, v: &Value) -> String {
    match (control, v) {
        (Control::Text, Value::String(s)) => s.clone(),
        (Control::Json, v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, v) => v.to_string(),
    }
}

/// The form's fields, filled with the params' defaults.
pub fn fields(dag: &Dag) -> Vec<Field> {
    shown_params(dag)
        .into_iter()
        .map(|(key, spec, default)| {
            let control = control_of(spec, default);
            let mut help = spec.and_then(|s| s.description.clone()).unwrap_or_default();
            if control == Control::Json {
                let sep = if help.is_empty() { "" } else { " · " };
                help.push_str(sep);
                help.push_str("JSON");
            }
            Field {
                key: key.to_owned(),
                name: format!("{FIELD_PREFIX}{key}"),
                value: default.map(|v| field_text(&control, v)).unwrap_or_default(),
                checked: default == Some(&Value::Bool(true)),
                required: spec.is_some_and(|s| s.required) && default.is_none(),
                control,
                help,
                error: String::new(),
            }
        })
        .collect()
}

/// The last value each name was given (a checkbox comes after the hidden
/// `false` before it, so the last one counts).
fn last_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One field's text as its param's JSON value; `Ok(None)` for an empty field
/// (the param keeps its default).
fn value_of(control: &Control, text: &str) -> Result<Option<Value>, String> {
    if text.len() > FIELD_MAX {
        return Err(format!("is longer than {FIELD_MAX} bytes"));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() && *control != Control::Checkbox {
        return Ok(None);
    }
    match control {
        Control::Text => Ok(Some(Value::String(text.to_owned()))),
        Control::Checkbox => match trimmed {
            "true" | "on" => Ok(Some(Value::Bool(true))),
            "false" | "" => Ok(Some(Value::Bool(false))),
            other => Err(format!("{other:?} is neither true nor false")),
        },
        Control::Number { step, .. } => {
            if *step == "1" {
                trimmed
                    .parse::<i64>()
                    .map(|n| Some(Value::from(n)))
                    .map_err(|_| format!("{trimmed:?} is not a whole number"))
            } else {
                trimmed
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(|n| Some(Value::Number(n)))
                    .ok_or_else(|| format!("{trimmed:?} is not a number"))
            }
        }
        Control::Select(options) => {
            if !options.iter().any(|(v, _)| v == trimmed) {
                return Err(format!("{trimmed:?} is not one of its choices"));
            }
            serde_json::from_str(trimmed)
                .map(Some)
                .map_err(|e| format!("is not valid JSON: {e}"))
        }
        Control::Json => serde_json::from_str(trimmed)
            .map(Some)
            .map_err(|e| format!("is not valid JSON: {e}")),
    }
}

/// The fields with what was typed in them (an absent field keeps its
/// default), for a form shown again.
pub fn typed(dag: &Dag, pairs: &[(String, String)]) -> Vec<Field> {
    let mut fields = fields(dag);
    for f in &mut fields {
        if let Some(text) = last_value(pairs, &f.name) {
            f.value = text.to_owned();
            f.checked = f.is_checkbox() && matches!(text.trim(), "true" | "on");
        }
    }
    fields
}

/// The submitted form as a conf: each field converted to its param's JSON
/// type, then the advanced JSON object's keys over them, then each value
/// checked against its param's spec. On any error, the fields as typed, each
/// with its own error, and the errors that belong to no field.
pub fn conf_of(
    dag: &Dag,
    pairs: &[(String, String)],
    advanced: Map<String, Value>,
) -> Result<Map<String, Value>, (Vec<Field>, Vec<String>)> {
    let mut conf = Map::new();
    let mut fields = typed(dag, pairs);
    let mut failed = false;
    for f in &mut fields {
        let Some(text) = last_value(pairs, &f.name) else {
            // Not in the form (a bare trigger button): the default stands.
            continue;
        };
        match value_of(&f.control, text) {
            Ok(Some(v)) => {
                conf.insert(f.key.clone(), v);
            }
            Ok(None) => {}
            Err(e) => {
                f.error = format!("param {}: {e}", f.key);
                failed = true;
            }
        }
    }
    conf.extend(advanced);
    let mut other = Vec::new();
    // Each value against its own spec, so each error lands on its field.
    for f in &mut fields {
        if !f.error.is_empty() {
            continue;
        }
        let one: std::collections::BTreeMap<String, ParamSpec> = dag
            .param_specs
            .get(&f.key)
            .map(|s| (f.key.clone(), s.clone()))
            .into_iter()
            .collect();
        let accepts = Accepts {
            defaults: &dag.params,
            specs: &one,
            undeclared: true,
        };
        let given: Map<String, Value> = conf
            .get(&f.key)
            .map(|v| (f.key.clone(), v.clone()))
            .into_iter()
            .collect();
        if let Err(errors) = check_conf(accepts, &given) {
            f.error = format!("param {}: {}", f.key, errors.join("; "));
            failed = true;
        }
    }
    // What no field shows: undeclared keys of the advanced box, secrets.
    if let Err(errors) = check_conf(dag.accepts(), &conf) {
        let shown: Vec<String> = fields
            .iter()
            .map(|f| format!("conf key {:?}", f.key))
            .collect();
        other.extend(
            errors
                .into_iter()
                .filter(|e| !shown.iter().any(|s| e.starts_with(s.as_str()))),
        );
    }
    if failed || !other.is_empty() {
        return Err((fields, other));
    }
    Ok(conf)
}
