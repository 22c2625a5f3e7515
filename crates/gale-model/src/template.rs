//! Renders task commands (and HTTP fields) with minijinja in strict mode: an
//! undefined variable is an error, not an empty string, and rendering is bounded
//! by fuel so a template cannot loop forever.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

/// Everything a template can see.
#[derive(Clone, Debug, Serialize)]
pub struct Context {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    pub run_type: String,
    pub try_number: u32,
    /// `YYYY-MM-DD` of the logical date.
    pub ds: String,
    pub ds_nodash: String,
    /// The logical date as RFC 3339.
    pub ts: String,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    /// The DAG's params, overridden by the run's conf.
    pub params: serde_json::Map<String, serde_json::Value>,
    pub conf: serde_json::Map<String, serde_json::Value>,
    /// `tasks.<id>.outputs.<key>` for finished upstream tasks.
    pub tasks: BTreeMap<String, TaskOutputs>,
}

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

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(100_000));
    env.add_filter("shell_quote", |v: Value| {
        let s = match v.as_str() {
            Some(s) => s.to_owned(),
            None => v.to_string(),
        };
        shell_quote(&s)
    });
    env
}

/// Renders `template` in `ctx`. The error names the problem and where in the
/// template it is.
pub fn render(template: &str, ctx: &Context) -> Result<String, String> {
    // Plain text needs no engine: skip the cost for the common `run: ./script` case.
    if !template.contains("{{") && !template.contains("{%") && !template.contains("{#") {
        return Ok(template.to_owned());
    }
    let env = environment();
    let tmpl = env.template_from_str(template).map_err(|e| describe(&e))?;
    tmpl.render(minijinja::value::Serde(ctx))
        .map_err(|e| describe(&e))
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
