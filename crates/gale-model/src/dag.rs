//! DAG files: the YAML schema, its validation, and the validated [`Dag`] the rest
//! of Gale works with.
//!
//! Parsing never stops at the first semantic error: every problem in a file is
//! reported with its file, line and column and what to do about it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use crate::alerts::{Alerts, Deadline};
use crate::duration::Span;
use crate::ids::{DagId, TaskId, is_valid_id};
use crate::params::{self, ParamSpec};
use crate::schedule::{self, Schedule};
use crate::secrets::{EnvFrom, References, check_name};
use crate::state::TriggerRule;

/// The largest DAG file Gale reads.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// The most tasks one DAG may have.
pub const MAX_TASKS: usize = 10_000;

/// A validated DAG, as stored (serialized to JSON) in a DAG version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Dag {
    pub id: DagId,
    #[serde(default)]
    pub description: Option<String>,
    pub schedule: Option<String>,
    pub timezone: String,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub catchup: bool,
    /// Whether the DAG starts paused when first stored (default: the
    /// processor's setting); Airflow's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_paused_upon_creation: Option<bool>,
    pub max_active_runs: u32,
    pub max_active_tasks: Option<u32>,
    /// Each param's default (conf overrides them in a run's templates).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// What the DAG declares about its params beyond a default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub param_specs: BTreeMap<String, ParamSpec>,
    /// A trigger's conf may carry keys no param declares.
    #[serde(default)]
    pub allow_undeclared_conf: bool,
    pub tags: Vec<String>,
    /// Who hears about this DAG's runs, and every task's retries.
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
    /// A run not finished this long after its anchor alerts once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Deadline>,
    /// In file order.
    pub tasks: Vec<Task>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub kind: TaskKind,
    pub needs: Vec<TaskId>,
    pub trigger_rule: TriggerRule,
    pub retries: u32,
    pub retry_delay: Span,
    pub retry_backoff: bool,
    pub max_retry_delay: Option<Span>,
    pub timeout: Option<Span>,
    pub env: BTreeMap<String, String>,
    /// Environment variables from connections and variables (`env_from`),
    /// looked up when the attempt starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFrom>,
    pub cwd: Option<String>,
    pub queue: String,
    pub priority: i32,
    /// The pool whose slots this task's attempts take (`gale pools`), if any.
    #[serde(default)]
    pub pool: Option<String>,
    /// Who hears about this task's tries (its own, else the DAG's `defaults`).
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
}

impl Task {
    /// The variables and connections this task names: in its command (or
    /// its HTTP request), its `env` values and its `env_from`.
    pub fn references(&self) -> References {
        let mut refs = References::default();
        let mut scan = |t: &str| refs.extend(crate::template::references(t));
        match &self.kind {
            TaskKind::Shell { run } => scan(run),
            TaskKind::Http(h) => {
                scan(&h.url);
                h.headers.values().for_each(|v| scan(v));
                if let Some(b) = &h.body {
                    scan(b);
                }
            }
        }
        self.env.values().for_each(|v| scan(v));
        for e in &self.env_from {
            match e {
                EnvFrom::Connection { connection, .. } => {
                    refs.connections.insert(connection.clone());
                }
                EnvFrom::Variable { variable, .. } => {
                    refs.variables.insert(variable.clone());
                }
            }
        }
        refs
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A shell command run by `/bin/sh -c` in its own process group.
    Shell {
        run: String,
    },
    Http(HttpSpec),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// Accepted status codes; any 2xx when empty.
    #[serde(default)]
    pub expect_status: Vec<u16>,
}

/// The ancestors of task `id` in `index` (tasks by id), once each: the
/// tasks it needs, directly or through others.
pub(crate) fn ancestors<'a>(index: &HashMap<&'a str, &'a Task>, id: &str) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut todo: Vec<&Task> = index.get(id).copied().into_iter().collect();
    while let Some(t) = todo.pop() {
        for n in &t.needs {
            if seen.insert(n.as_str())
                && let Some(up) = index.get(n.as_str())
            {
                todo.push(up);
            }
        }
    }
    seen
}

fn default_method() -> String {
    "GET".into()
}

impl Dag {
    /// Every task `id` depends on, directly or through others (its
    /// ancestors), once each.
    pub fn upstream_of(&self, id: &str) -> HashSet<&str> {
        let index: HashMap<&str, &Task> = self.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
        ancestors(&index, id)
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id.as_str() == id)
    }

    /// What a trigger's conf may carry.
    pub fn accepts(&self) -> params::Accepts<'_> {
        params::Accepts {
            defaults: &self.params,
            specs: &self.param_specs,
            undeclared: self.allow_undeclared_conf,
        }
    }

    /// The parsed schedule, if the DAG has one. Validation guarantees it parses.
    pub fn parsed_schedule(&self) -> Option<Schedule> {
        self.schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s, &self.timezone).ok())
    }

    /// Task ids that no other task depends on.
    pub fn leaves(&self) -> HashSet<&str> {
        let upstream: HashSet<&str> = self
            .tasks
            .iter()
            .flat_map(|t| t.needs.iter().map(|n| n.as_str()))
            .collect();
        self.tasks
            .iter()
            .map(|t| t.id.as_str())
            .filter(|id| !upstream.contains(id))
            .collect()
    }
}

/// One problem in a DAG file, with its position (1-based; 0 when unknown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for DagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// The content hash of a DAG file's text; identifies a DAG version.
pub fn content_hash(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    hex::encode(&digest[..16])
}

struct Errors<'a> {
    file: &'a str,
    source: &'a str,
    list: Vec<DagError>,
}

impl Errors<'_> {
    fn at(&mut self, loc: serde_saphyr::Location, message: impl Into<String>) {
        self.list.push(DagError {
            file: self.file.to_owned(),
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        });
    }
}

/// A DAG file's bytes, from wherever they came (a folder, a push, a git
/// commit), checked for size and UTF-8 and parsed; `file` names it in errors
/// and its last path segment, without extension, is the default DAG id.
/// Returns the DAG and its text.
pub fn parse_bytes(file: &str, bytes: Vec<u8>) -> Result<(Dag, String), Vec<DagError>> {
    let one = |message: String| {
        vec![DagError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message,
        }]
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(one(format!(
            "file is {} bytes, more than the {MAX_FILE_BYTES} a DAG file may have",
            bytes.len()
        )));
    }
    let source = String::from_utf8(bytes).map_err(|_| one("file is not valid UTF-8".to_owned()))?;
    let name = file.rsplit(['/', ':']).next().unwrap_or(file);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let dag = parse(file, stem, &source)?;
    Ok((dag, source))
}

/// Parses and validates one DAG file. `file` names it in errors; `stem` is the
/// default DAG id (the file name without extension).
pub fn parse(file: &str, stem: &str, source: &str) -> Result<Dag, Vec<DagError>> {
    let mut errors = Errors {
        file,
        source,
        list: Vec::new(),
    };
    if source.len() > MAX_FILE_BYTES {
        errors.list.push(DagError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: format!(
                "file is {} bytes, more than the {MAX_FILE_BYTES} a DAG file may have",
                source.len()
            ),
        });
        return Err(errors.list);
    }
    let root = match node::read(source) {
        Ok(root) => root,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            errors.list.push(DagError {
                file: file.to_owned(),
                line,
                column,
                message: checks::yaml_message(&e),
            });
            return Err(errors.list);
        }
    };
    let Some(raw) = raw::lower(&root, &mut errors) else {
        return Err(errors.list);
    };
    let dag = validate(raw, stem, &mut errors);
    if errors.list.is_empty() {
        Ok(dag)
    } else {
        errors.list.sort_by_key(|e| (e.line, e.column));
        Err(errors.list)
    }
}

/// The longest `retry_delay`, `max_retry_delay` or `timeout` a task may
/// have: a year. Longer is a typo (a unit left out, digits too many), and
/// times that far ahead leave the range every store can hold.
pub const MAX_TASK_SPAN: Span = Span(std::time::Duration::from_secs(366 * 86_400));

fn validate(raw: raw::RawDag, stem: &str, errors: &mut Errors) -> Dag {
    let id = match &raw.id {
        Some(id) => {
            if !is_valid_id(&id.value) {
                errors.at(
                    id.referenced,
                    format!(
                        "invalid DAG id {:?}: use letters, digits, '_', '.' and '-' only",
                        id.value
                    ),
                );
            }
            id.value.clone()
        }
        None => {
            if !is_valid_id(stem) {
                errors.list.push(DagError {
                    file: errors.file.to_owned(),
                    line: 1,
                    column: 1,
                    message: format!(
                        "the file name {stem:?} is not a valid DAG id: add an `id:` field using letters, digits, '_', '.' and '-'"
                    ),
                });
            }
            stem.to_owned()
        }
    };

    let timezone = raw
        .timezone
        .as_ref()
        .map(|t| t.value.clone())
        .unwrap_or_else(|| "UTC".into());
    let tz = match schedule::time_zone(&timezone) {
        Ok(tz) => Some(tz),
        Err(e) => {
            if let Some(t) = &raw.timezone {
                errors.at(t.referenced, e);
            }
            None
        }
    };

    if let (Some(s), Some(_)) = (&raw.schedule, &tz) {
        match Schedule::parse(&s.value, &timezone) {
            Err(e) => errors.at(s.referenced, e),
            Ok(sched) => {
                if let Some(e) = checks::fires(&s.value, &sched) {
                    errors.at(s.referenced, e);
                }
            }
        }
    }

    let (param_defaults, param_specs) = match raw.params {
        Some(p) => {
            let declared = params::declare(p.value);
            for e in declared.errors {
                errors.at(p.referenced, e);
            }
            (declared.defaults, declared.specs)
        }
        None => Default::default(),
    };
    // A scheduled run has no conf: a param it must be given needs a default.
    if let Some(s) = &raw.schedule {
        for (key, spec) in &param_specs {
            if spec.required && !param_defaults.contains_key(key) {
                errors.at(
                    s.referenced,
                    format!(
                        "param {key} is required and has no default, so a scheduled run could not be made: give it a default, or drop the schedule"
                    ),
                );
            }
        }
    }

    let mut date = |field: &Option<Spanned<String>>| -> Option<Timestamp> {
        let f = field.as_ref()?;
        let tz = tz.as_ref()?;
        match schedule::parse_date(&f.value, tz) {
            Ok(ts) => Some(ts),
            Err(e) => {
                errors.at(f.referenced, e);
                None
            }
        }
    };
    let start_date = date(&raw.start_date);
    let end_date = date(&raw.end_date);
    if let (Some(s), Some(e), Some(end)) = (start_date, end_date, &raw.end_date)
        && e < s
    {
        errors.at(end.referenced, "end_date is before start_date");
    }

    let max_active_runs = raw.max_active_runs.as_ref().map_or(1, |m| m.value);
    if let Some(m) = &raw.max_active_runs
        && m.value == 0
    {
        errors.at(m.referenced, "max_active_runs must be at least 1");
    }
    if let Some(m) = &raw.max_active_tasks
        && m.value == 0
    {
        errors.at(m.referenced, "max_active_tasks must be at least 1");
    }

    if let Some(a) = &raw.alerts {
        for e in a.value.check(false) {
            errors.at(a.referenced, e);
        }
    }
    if let Some(d) = &raw.deadline
        && (d.value.after.0.is_zero() || d.value.after > MAX_TASK_SPAN)
    {
        errors.at(
            d.referenced,
            "deadline must be more than zero and at most a year (e.g. `deadline: 2h`)",
        );
    }
    let defaults = &raw.defaults;
    if let Some(a) = &defaults.alerts {
        for e in a.check(true) {
            errors.at(raw.tasks.referenced, format!("defaults: {e}"));
        }
    }
    let task_map = &raw.tasks.value;
    if task_map.is_empty() {
        errors.at(
            raw.tasks.referenced,
            "a DAG needs at least one task under `tasks:`",
        );
    }
    if task_map.len() > MAX_TASKS {
        errors.at(
            raw.tasks.referenced,
            format!(
                "{} tasks is more than the {MAX_TASKS} a DAG may have",
                task_map.len()
            ),
        );
    }

    let mut tasks = Vec::with_capacity(task_map.len());
    for (task_id, spanned) in task_map {
        if let Some(a) = &spanned.value.own.alerts {
            for e in a.check(true) {
                errors.at(spanned.referenced, format!("task {task_id}: {e}"));
            }
        }
        let loc = spanned.referenced;
        let t = &spanned.value;
        if !is_valid_id(task_id) {
            errors.at(
                loc,
                format!("invalid task id {task_id:?}: use letters, digits, '_', '.' and '-' only"),
            );
        }
        let pool = t.own.pool.clone().or_else(|| defaults.pool.clone());
        if let Some(p) = &pool
            && !is_valid_id(p)
        {
            errors.at(
                loc,
                format!("task {task_id:?}: invalid pool name {p:?}: use letters, digits, '_', '.' and '-' only"),
            );
        }
        let kind = match (&t.run, &t.http) {
            (Some(run), None) => {
                if run.trim().is_empty() {
                    errors.at(loc, format!("task {task_id:?}: `run` is empty"));
                }
                TaskKind::Shell { run: run.clone() }
            }
            (None, Some(http)) => {
                if http.url.trim().is_empty() {
                    errors.at(loc, format!("task {task_id:?}: `http.url` is empty"));
                }
                for e in checks::http(task_id, http) {
                    errors.at(loc, e);
                }
                TaskKind::Http(http.clone())
            }
            (Some(_), Some(_)) => {
                errors.at(
                    loc,
                    format!("task {task_id:?} has both `run` and `http`: keep one of them"),
                );
                TaskKind::Shell { run: String::new() }
            }
            (None, None) => {
                if !t.broken {
                    errors.at(
                    loc,
                    format!(
                        "task {task_id:?} has nothing to do: add `run: <shell command>` or `http: {{ url: ... }}`"
                    ),
                );
                }
                TaskKind::Shell { run: String::new() }
            }
        };
        for (field, span) in [
            ("retry_delay", t.own.retry_delay.or(defaults.retry_delay)),
            (
                "max_retry_delay",
                t.own.max_retry_delay.or(defaults.max_retry_delay),
            ),
            ("timeout", t.own.timeout.or(defaults.timeout)),
        ] {
            if let Some(span) = span
                && span > MAX_TASK_SPAN
            {
                errors.at(
                    loc,
                    format!(
                        "task {task_id:?}: `{field}: {span}` is longer than {MAX_TASK_SPAN}, the \
                         longest a task's delay or timeout may be"
                    ),
                );
            }
        }
        if let Some(e) = checks::retries(task_id, t.own.retries.or(defaults.retries)) {
            errors.at(loc, e);
        }
        let mut env = defaults.env.clone().unwrap_or_default();
        env.extend(t.own.env.clone().unwrap_or_default());
        for (name, value) in &env {
            if !is_env_name(name) {
                errors.at(
                    loc,
                    format!("task {task_id:?}: {name:?} is not an environment variable name: use letters, digits and '_', not starting with a digit"),
                );
            } else if value.contains('\0') {
                errors.at(
                    loc,
                    format!("task {task_id:?}: the value of {name} contains a NUL character, which an environment variable cannot hold"),
                );
            }
        }
        let env_from = t.env_from.clone().unwrap_or_default();
        for e in &env_from {
            let problem = match e {
                EnvFrom::Connection { connection, prefix } => {
                    check_name("connection", connection).err().or_else(|| {
                        (!prefix.is_empty() && !is_env_name(prefix)).then(|| format!("{prefix:?} is not an environment variable prefix: use letters, digits and '_'"))
                    })
                }
                EnvFrom::Variable { variable, name } => {
                    check_name("variable", variable).err().or_else(|| {
                        (!is_env_name(name)).then(|| format!("{name:?} is not an environment variable name"))
                    })
                }
            };
            if let Some(p) = problem {
                errors.at(loc, format!("task {task_id:?}: env_from: {p}"));
            }
        }
        let mut needs = Vec::new();
        let mut seen = HashSet::new();
        for need in &t.needs {
            if !task_map.contains_key(&need.value) {
                errors.at(
                    need.referenced,
                    format!(
                        "task {task_id:?} needs unknown task {:?}: known tasks are {}",
                        need.value,
                        task_map
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            } else if need.value == *task_id {
                errors.at(need.referenced, format!("task {task_id:?} needs itself"));
            } else if seen.insert(need.value.clone()) {
                needs.push(TaskId(need.value.clone()));
            } else {
                errors.at(
                    need.referenced,
                    format!(
                        "task {task_id:?} needs {:?} twice: name it once",
                        need.value
                    ),
                );
            }
        }
        tasks.push(Task {
            id: TaskId(task_id.clone()),
            kind,
            needs,
            trigger_rule: t
                .own
                .trigger_rule
                .or(defaults.trigger_rule)
                .unwrap_or_default(),
            retries: t.own.retries.or(defaults.retries).unwrap_or(0),
            retry_delay: t
                .own
                .retry_delay
                .or(defaults.retry_delay)
                .unwrap_or(Span::from_secs(30)),
            retry_backoff: t
                .own
                .retry_backoff
                .or(defaults.retry_backoff)
                .unwrap_or(false),
            max_retry_delay: t.own.max_retry_delay.or(defaults.max_retry_delay),
            timeout: t.own.timeout.or(defaults.timeout),
            env,
            env_from,
            cwd: t.own.cwd.clone().or_else(|| defaults.cwd.clone()),
            queue: t
                .own
                .queue
                .clone()
                .or_else(|| defaults.queue.clone())
                .unwrap_or_else(|| "default".into()),
            priority: t.own.priority.or(defaults.priority).unwrap_or(0),
            pool,
            alerts: match (&t.own.alerts, &defaults.alerts) {
                (Some(own), Some(d)) => own.or(d),
                (own, d) => own.clone().or_else(|| d.clone()).unwrap_or_default(),
            },
        });
    }

    if let Some(cycle) = find_cycle(&tasks) {
        let first = &cycle[0];
        let loc = task_map
            .get(first.as_str())
            .map(|s| s.referenced)
            .unwrap_or(raw.tasks.referenced);
        let path: Vec<&str> = cycle.iter().map(TaskId::as_str).collect();
        errors.at(
            loc,
            format!(
                "dependency cycle: {} -> {}: remove one of these `needs`",
                path.join(" -> "),
                path[0]
            ),
        );
    }

    let dag = Dag {
        id: DagId(id),
        description: raw.description,
        schedule: raw.schedule.map(|s| s.value.trim().to_owned()),
        timezone,
        start_date,
        end_date,
        catchup: raw.catchup.unwrap_or(false),
        is_paused_upon_creation: raw.is_paused_upon_creation,
        max_active_runs,
        max_active_tasks: raw.max_active_tasks.map(|m| m.value),
        params: param_defaults,
        param_specs,
        allow_undeclared_conf: raw.allow_undeclared_conf.unwrap_or(false),
        tags: raw.tags.unwrap_or_default(),
        alerts: raw.alerts.map(|a| a.value).unwrap_or_default(),
        deadline: raw.deadline.map(|d| d.value),
        tasks,
    };
    for (task, field, e) in checks::templates(&dag) {
        let raw = &task_map[task.as_str()];
        let at = raw
            .value
            .places
            .iter()
            .find(|(k, _)| *k == field)
            .map_or(raw.referenced, |(_, loc)| *loc);
        errors.at(at, e);
    }
    dag
}

/// A cycle among the tasks' `needs`, as the list of task ids along it.
fn find_cycle(tasks: &[Task]) -> Option<Vec<TaskId>> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut mark = vec![0u8; tasks.len()];
    for root in 0..tasks.len() {
        if mark[root] != 0 {
            continue;
        }
        // Iterative DFS: (node, next child index), so deep DAGs cannot overflow the stack.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = 1;
        while let Some(&mut (node, ref mut child)) = stack.last_mut() {
            let needs = &tasks[node].needs;
            if *child < needs.len() {
                let next = index[needs[*child].as_str()];
                *child += 1;
                match mark[next] {
                    0 => {
                        mark[next] = 1;
                        stack.push((next, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<TaskId> = stack[pos..]
                            .iter()
                            .map(|(n, _)| tasks[*n].id.clone())
                            .collect();
                        // Report it in the direction work flows: upstream first.
                        cycle.reverse();
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                mark[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

/// A name the shell passes on to the programs it starts.
fn is_env_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

mod checks;
pub mod diff;
mod node;
mod raw;
pub use checks::MAX_RETRIES;

#[cfg(test)]
mod tests;
