//! The DAG file's fields as written, read from its [`Node`] tree: each field
//! by its type, each wrong one reported at its place and left out, so that
//! validation goes on and reports the rest of the file too.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_saphyr::{Location, Spanned};

use super::node::{Fields, Node, Value};
use super::{Errors, HttpSpec};
use crate::alerts::{Alerts, Deadline};
use crate::duration::Span;
use crate::secrets::EnvFrom;
use crate::state::TriggerRule;

pub(super) struct RawDag {
    pub id: Option<Spanned<String>>,
    pub description: Option<String>,
    pub schedule: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub start_date: Option<Spanned<String>>,
    pub end_date: Option<Spanned<String>>,
    pub catchup: Option<bool>,
    pub is_paused_upon_creation: Option<bool>,
    pub max_active_runs: Option<Spanned<u32>>,
    pub max_active_tasks: Option<Spanned<u32>>,
    pub params: Option<Spanned<serde_json::Map<String, serde_json::Value>>>,
    pub allow_undeclared_conf: Option<bool>,
    pub defaults: RawDefaults,
    pub tags: Option<Vec<String>>,
    pub alerts: Option<Spanned<Alerts>>,
    pub deadline: Option<Spanned<Deadline>>,
    pub tasks: Spanned<IndexMap<String, Spanned<RawTask>>>,
}

/// What `defaults:` may set for every task.
#[derive(Default)]
pub(super) struct RawDefaults {
    pub trigger_rule: Option<TriggerRule>,
    pub retries: Option<u32>,
    pub retry_delay: Option<Span>,
    pub retry_backoff: Option<bool>,
    pub max_retry_delay: Option<Span>,
    pub timeout: Option<Span>,
    pub env: Option<BTreeMap<String, String>>,
    pub cwd: Option<String>,
    pub queue: Option<String>,
    pub priority: Option<i32>,
    pub pool: Option<String>,
    pub alerts: Option<Alerts>,
}

#[derive(Default)]
pub(super) struct RawTask {
    pub run: Option<String>,
    pub http: Option<HttpSpec>,
    pub needs: Vec<Spanned<String>>,
    pub env_from: Option<Vec<EnvFrom>>,
    pub own: RawDefaults,
    /// Where its templated fields (`run`, `http`, `env`, `cwd`) start.
    pub places: Vec<(&'static str, Location)>,
    /// Something under it could not be read (and was reported): say nothing
    /// more about what it lacks.
    pub broken: bool,
}

const DAG_FIELDS: &[&str] = &[
    "id",
    "description",
    "schedule",
    "timezone",
    "start_date",
    "end_date",
    "catchup",
    "is_paused_upon_creation",
    "max_active_runs",
    "max_active_tasks",
    "params",
    "allow_undeclared_conf",
    "defaults",
    "tags",
    "alerts",
    "deadline",
    "tasks",
];

const DEFAULT_FIELDS: &[&str] = &[
    "trigger_rule",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "env",
    "cwd",
    "queue",
    "priority",
    "pool",
    "alerts",
];

const TASK_FIELDS: &[&str] = &[
    "run",
    "http",
    "needs",
    "trigger_rule",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "env",
    "env_from",
    "cwd",
    "queue",
    "priority",
    "pool",
    "alerts",
];

const HTTP_FIELDS: &[&str] = &["url", "method", "headers", "body", "expect_status"];

/// The file's fields; `None` when it is not a mapping at all.
pub(super) fn lower(root: &Node, errors: &mut Errors) -> Option<RawDag> {
    let mut f = Fields::of(
        root,
        "a DAG file ",
        "a mapping with `tasks:` (and `id:`, `schedule:`, ...)",
        errors,
    )?;
    let dag = RawDag {
        id: f.text("id", errors),
        description: f.text("description", errors).map(|s| s.value),
        schedule: f.text("schedule", errors),
        timezone: f.text("timezone", errors),
        start_date: f.text("start_date", errors),
        end_date: f.text("end_date", errors),
        catchup: f.flag("catchup", errors),
        is_paused_upon_creation: f.flag("is_paused_upon_creation", errors),
        max_active_runs: f.whole("max_active_runs", errors),
        max_active_tasks: f.whole("max_active_tasks", errors),
        params: f.typed("params", errors),
        allow_undeclared_conf: f.flag("allow_undeclared_conf", errors),
        defaults: match f.take("defaults") {
            Some(node) => match Fields::of(
                node,
                "defaults: ",
                "a mapping of task fields, e.g. `defaults: {retries: 2}`",
                errors,
            ) {
                Some(mut d) => {
                    let defaults = task_fields(&mut d, errors);
                    d.finish(DEFAULT_FIELDS, errors);
                    defaults
                }
                None => RawDefaults::default(),
            },
            None => RawDefaults::default(),
        },
        tags: f
            .texts("tags", errors)
            .map(|tags| tags.into_iter().map(|t| t.value).collect()),
        alerts: f.typed("alerts", errors),
        deadline: f.typed("deadline", errors),
        tasks: tasks(&mut f, errors),
    };
    f.finish(DAG_FIELDS, errors);
    Some(dag)
}

/// `tasks:`, each task by its id; a task that is not a mapping is kept
/// (marked broken) so that the tasks needing it do not read as wrong too.
fn tasks(f: &mut Fields, errors: &mut Errors) -> Spanned<IndexMap<String, Spanned<RawTask>>> {
    let Some(node) = f.take("tasks") else {
        errors.at(
            f.loc,
            "a DAG needs its tasks under `tasks:`, e.g. `tasks: {hello: {run: echo hello}}`",
        );
        return Spanned::new(IndexMap::new(), f.loc, f.loc);
    };
    let mut out = IndexMap::new();
    if let Some(mut list) = Fields::of(
        node,
        "`tasks`: ",
        "a mapping of task ids to tasks, e.g. `tasks: {hello: {run: echo hello}}`",
        errors,
    ) {
        for (id, _, value) in list.all() {
            let what = format!("task {id:?}: ");
            let task = match Fields::of(
                value,
                &what,
                "a mapping of its fields, e.g. `{run: echo hello}`",
                errors,
            ) {
                Some(mut t) => {
                    let before = errors.list.len();
                    let task = task(&mut t, errors);
                    let places = ["run", "http", "env", "cwd"]
                        .into_iter()
                        .filter_map(|k| Some((k, t.place(k)?)))
                        .collect();
                    t.finish(TASK_FIELDS, errors);
                    RawTask {
                        broken: errors.list.len() > before,
                        places,
                        ..task
                    }
                }
                None => RawTask {
                    broken: true,
                    ..RawTask::default()
                },
            };
            out.insert(id, Spanned::new(task, value.loc, value.loc));
        }
    }
    Spanned::new(out, node.loc, node.loc)
}

fn task(t: &mut Fields, errors: &mut Errors) -> RawTask {
    RawTask {
        run: t.command("run", "echo hello", errors),
        http: t.take("http").and_then(|node| http(node, &t.what, errors)),
        needs: t.texts("needs", errors).unwrap_or_default(),
        env_from: t
            .take("env_from")
            .map(|node| env_from(node, &t.what, errors)),
        own: task_fields(t, errors),
        places: Vec::new(),
        broken: false,
    }
}

/// The fields a task and `defaults:` share.
fn task_fields(f: &mut Fields, errors: &mut Errors) -> RawDefaults {
    RawDefaults {
        trigger_rule: f.typed("trigger_rule", errors).map(|s| s.value),
        retries: f.whole("retries", errors).map(|s| s.value),
        retry_delay: f.typed("retry_delay", errors).map(|s| s.value),
        retry_backoff: f.flag("retry_backoff", errors),
        max_retry_delay: f.typed("max_retry_delay", errors).map(|s| s.value),
        timeout: f.typed("timeout", errors).map(|s| s.value),
        env: f.text_map("env", errors),
        cwd: f.text("cwd", errors).map(|s| s.value),
        queue: f.text("queue", errors).map(|s| s.value),
        priority: f.whole("priority", errors).map(|s| s.value),
        pool: f.text("pool", errors).map(|s| s.value),
        alerts: f.typed("alerts", errors).map(|s| s.value),
    }
}

fn http(node: &Node, task: &str, errors: &mut Errors) -> Option<HttpSpec> {
    let what = format!("{task}http: ");
    let mut h = Fields::of(
        node,
        &what,
        "a mapping, e.g. `http: {url: https://example.com/hook, method: POST}`",
        errors,
    )?;
    let url = h.text("url", errors);
    if url.is_none() {
        errors.at(
            node.loc,
            format!("{what}`url` is missing, e.g. `http: {{url: https://example.com/hook}}`"),
        );
    }
    let spec = HttpSpec {
        url: url.map(|u| u.value).unwrap_or_default(),
        method: h
            .text("method", errors)
            .map_or_else(super::default_method, |m| m.value),
        headers: h.text_map("headers", errors).unwrap_or_default(),
        body: h.text("body", errors).map(|b| b.value),
        expect_status: h
            .take("expect_status")
            .map(|node| statuses(node, &what, errors))
            .unwrap_or_default(),
    };
    h.finish(HTTP_FIELDS, errors);
    Some(spec)
}

/// `expect_status: 204` or `[200, 202]`.
fn statuses(node: &Node, what: &str, errors: &mut Errors) -> Vec<u16> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut out = Vec::new();
    for item in items {
        match item.value {
            Value::Int(i) if (100..=599).contains(&i) => out.push(i as u16),
            _ => errors.at(
                item.loc,
                format!(
                    "{what}`expect_status` must list HTTP status codes from 100 to 599, e.g. \
                     `expect_status: [200, 202]`; not {}",
                    item.describe(errors.source)
                ),
            ),
        }
    }
    out
}

/// `env_from: {connection: wh, prefix: PG}`, `{variable: v, name: NAME}`, or
/// a list of them.
fn env_from(node: &Node, task: &str, errors: &mut Errors) -> Vec<EnvFrom> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let what = format!("{task}env_from: ");
    let forms = "`{connection: NAME, prefix: PG}` or `{variable: NAME, name: ENV_NAME}`";
    let mut out = Vec::new();
    for item in items {
        let Some(mut f) = Fields::of(item, &what, &format!("{forms} (or a list of them)"), errors)
        else {
            continue;
        };
        let connection = f.text("connection", errors);
        let variable = f.text("variable", errors);
        match (connection, variable) {
            (Some(c), None) => {
                let prefix = f
                    .text("prefix", errors)
                    .map(|p| p.value)
                    .unwrap_or_default();
                f.finish(&["connection", "prefix"], errors);
                out.push(EnvFrom::Connection {
                    connection: c.value,
                    prefix,
                });
            }
            (None, Some(v)) => match f.text("name", errors) {
                Some(name) => {
                    f.finish(&["variable", "name"], errors);
                    out.push(EnvFrom::Variable {
                        variable: v.value,
                        name: name.value,
                    });
                }
                None => errors.at(
                    item.loc,
                    format!("{what}`name` is missing: the environment variable the value goes in"),
                ),
            },
            _ => errors.at(item.loc, format!("{what}write {forms}")),
        }
    }
    out
}
