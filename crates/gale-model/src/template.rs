//! Renders task commands (and HTTP fields) with minijinja in strict mode: an
//! undefined variable is an error, not an empty string, and rendering is bounded
//! by fuel so a template cannot loop forever.
//!
//! Every value a template inserts is escaped for where it goes ([`Escape`]):
//! shell-quoted in a `run` command, percent-encoded in a URL, JSON-escaped in
//! a JSON body. A value cannot end the word, string or component it was put
//! in, whatever a trigger's conf carries. `| raw` (or `| safe`) inserts a
//! value as it is, for the rare fragment that must be code; `| shell_quote`
//! quotes explicitly and is never quoted twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::secrets::Lookup;

mod airflow;
mod check;
mod date;
mod lookup;

pub use check::{Known, NAMES, check};
pub use date::isoformat;
pub use lookup::references;

/// Everything a template can see.
#[derive(Clone, Debug, Serialize)]
pub struct Context {
    pub dag_id: String,
    pub task_id: String,
    /// Airflow's run id, `<run_type>__<logical date>`
    /// (`scheduled__2026-01-01T00:00:00+00:00`): unique per DAG.
    pub run_id: String,
    /// Gale's number of the run (`dag_run.id`, `$GALE_RUN_ID`).
    #[serde(skip)]
    pub run_number: i64,
    pub run_type: String,
    pub try_number: u32,
    /// `YYYY-MM-DD` of the logical date.
    pub ds: String,
    pub ds_nodash: String,
    /// The logical date as Airflow writes it ([`isoformat`]); the template's
    /// `logical_date` and data-interval names are dates made from these.
    pub ts: String,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    /// The DAG's params, overridden by the run's conf.
    pub params: serde_json::Map<String, serde_json::Value>,
    pub conf: serde_json::Map<String, serde_json::Value>,
    /// `tasks.<id>.outputs.<key>` for finished upstream tasks.
    pub tasks: BTreeMap<String, TaskOutputs>,
    /// The variables and connections looked up for this attempt (`var`,
    /// `conn`); none when it names none.
    #[serde(skip)]
    pub lookup: Option<Arc<Lookup>>,
    /// Airflow's `prev_*` names (see [`PREV_NAMES`]), `null` where there is
    /// no such run or slot.
    #[serde(flatten)]
    pub prev: serde_json::Map<String, serde_json::Value>,
}

/// The names of the previous schedule slot (`prev_ds`, `prev_ds_nodash`)
/// and of the DAG's previous successful run (`prev_*_success`).
pub const PREV_NAMES: [&str; 5] = [
    "prev_ds",
    "prev_ds_nodash",
    "prev_data_interval_start_success",
    "prev_data_interval_end_success",
    "prev_start_date_success",
];

#[derive(Clone, Debug, Serialize, Default)]
pub struct TaskOutputs {
    pub outputs: BTreeMap<String, String>,
}

/// Quotes a value for POSIX `sh` so it is passed as one word.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a value
/// is one URL component (a path segment, a query key or value).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How inserted values are escaped: by where the rendered text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// A `/bin/sh -c` command: each value is one shell word.
    Shell,
    /// A URL or a form body: each value is one percent-encoded component.
    Url,
    /// A JSON body: a string value is escaped for inside a JSON string
    /// (`"{{ x }}"`), any other value is written as JSON.
    Json,
    /// Text whose consumer checks it itself (an HTTP header value, which may
    /// hold no line break).
    None,
}

fn as_text(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.to_owned(),
        None => v.to_string(),
    }
}

/// A value written as text where it goes: a string, or a date (which a JSON
/// body gets as its ISO text in a string, as Airflow's would).
fn text_of(v: &Value) -> Option<String> {
    match v.as_str() {
        Some(s) => Some(s.to_owned()),
        None => v
            .downcast_object_ref::<date::DateTime>()
            .map(|_| v.to_string()),
    }
}

fn escaped(escape: Escape, v: &Value) -> Result<String, minijinja::Error> {
    Ok(match escape {
        Escape::Shell => shell_quote(&as_text(v)),
        Escape::Url => percent_encode(&as_text(v)),
        Escape::Json => match text_of(v) {
            Some(s) => {
                let quoted = serde_json::to_string(&s).unwrap_or_default();
                quoted[1..quoted.len() - 1].to_owned()
            }
            None => serde_json::to_string(&v).map_err(|e| {
                minijinja::Error::new(
                    minijinja::ErrorKind::BadSerialization,
                    format!("value cannot be written as JSON: {e}"),
                )
            })?,
        },
        Escape::None => as_text(v),
    })
}

fn environment(escape: Escape) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(100_000));
    // Quoted here, and marked safe so the formatter does not quote it again.
    env.add_filter("shell_quote", |v: Value| {
        Value::from_safe_string(shell_quote(&as_text(&v)))
    });
    env.add_filter("urlencode", |v: Value| {
        Value::from_safe_string(percent_encode(&as_text(&v)))
    });
    env.add_filter("raw", |v: Value| Value::from_safe_string(as_text(&v)));
    env.set_formatter(move |out, _state, value| {
        let text = if value.is_safe() {
            as_text(value)
        } else {
            escaped(escape, value)?
        };
        out.write_str(&text).map_err(minijinja::Error::from)
    });
    env
}

/// Renders `template` in `ctx`, escaping every inserted value by `escape`.
/// The error names the problem and where in the template it is.
pub fn render(template: &str, ctx: &Context, escape: Escape) -> Result<String, String> {
    // Plain text needs no engine: skip the cost for the common `run: ./script` case.
    if !template.contains("{{") && !template.contains("{%") && !template.contains("{#") {
        return Ok(template.to_owned());
    }
    let env = environment(escape);
    let tmpl = env.template_from_str(template).map_err(|e| describe(&e))?;
    let lookup = ctx.lookup.clone().unwrap_or_default();
    let names = airflow::Names::of(ctx);
    // The last map that has a name gives it: the computed names (dates as
    // dates) hide the context's plain text of them.
    let values = minijinja::value::merge_maps([
        Value::from(minijinja::value::Serde(ctx)),
        names.values,
        minijinja::context! {
            var => Value::from_object(lookup::Vars(lookup.clone())),
            conn => Value::from_object(lookup::Conns(lookup.clone())),
        },
    ]);
    tmpl.render(values).map_err(|e| match lookup.missed() {
        // The engine says only "undefined value": say which, and where.
        Some(missed) => match e.line() {
            Some(line) => format!("template error: {missed} (template line {line})"),
            None => format!("template error: {missed}"),
        },
        None => describe(&e),
    })
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = format!("template error: {}", e.kind());
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

#[cfg(test)]
mod tests;
