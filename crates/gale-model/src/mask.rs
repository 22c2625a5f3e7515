//! The one masker: which values are secret in a run, and text with each of them
//! replaced by `***`.
//!
//! Secret are: the values of params declared `secret: true`; the values under
//! keys that look secret ([`is_secret_key`]) in a run's conf or a DAG's params,
//! at any depth; the values of a task's `env` entries whose names look secret;
//! and the rendered values of an HTTP task's headers whose names look secret
//! (`Authorization`, `X-Api-Key`, `Cookie`, ...). The worker masks with it
//! before a log line, an output, a message or a rendered command is stored;
//! the views mask conf and DAG sources with the same rules.
//!
//! A value shorter than [`MIN_SECRET_CHARS`] characters is not masked: it
//! would blank ordinary text everywhere (`***` for every `1` or `yes`) while
//! hiding next to nothing. Each value is also masked in the forms a template
//! writes it in (shell-quoted, percent-encoded, JSON-escaped).

use serde_json::{Map, Value};

use crate::dag::{Dag, Task, TaskKind};
use crate::template::{self, Context, Escape};

/// Values shorter than this are never masked (see the module comment).
pub const MIN_SECRET_CHARS: usize = 4;

/// Names (of conf keys, params, env entries, HTTP headers) whose values are
/// never shown.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "api-key",
        "private_key",
        "credential",
        "auth",
        "cookie",
        // Airflow's other sensitive names, and Azure's.
        "passphrase",
        "keyfile",
        "service_account",
        "connection_string",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The secret values of one run (or one attempt), longest first.
#[derive(Clone, Debug, Default)]
pub struct Masker(Vec<String>);

impl Masker {
    /// Secrets of a run's conf alone (what the views know of any run).
    pub fn of_conf(conf: &Map<String, Value>) -> Masker {
        let mut m = Masker::default();
        m.add_secret_keys(conf);
        m.finish()
    }

    /// Secrets of a run of `dag`: its conf's, its params' (declared secret or
    /// secret-looking, with the conf's values over the defaults), and every
    /// task's secret-looking `env` values.
    pub fn of_run(dag: &Dag, conf: &Map<String, Value>) -> Masker {
        let mut m = Masker::default();
        m.add_run(dag, conf);
        for task in &dag.tasks {
            m.add_env(task);
        }
        m.finish()
    }

    /// Secrets of one attempt of `task`: the run's, and the rendered values of
    /// its secret-looking HTTP headers.
    pub fn of_attempt(dag: &Dag, task: &Task, ctx: &Context) -> Masker {
        let mut m = Masker::default();
        m.add_run(dag, &ctx.conf);
        m.add_env(task);
        if let TaskKind::Http(h) = &task.kind {
            for (name, value) in &h.headers {
                if is_secret_key(name) {
                    let rendered =
                        template::render(value, ctx, Escape::None).unwrap_or(value.clone());
                    // `Bearer abc...`: the credential alone as well.
                    if let Some((_, credential)) = rendered.split_once(' ') {
                        m.push(credential.trim());
                    }
                    m.push(&rendered);
                }
            }
        }
        m.finish()
    }

    fn add_run(&mut self, dag: &Dag, conf: &Map<String, Value>) {
        self.add_secret_keys(conf);
        self.add_secret_keys(&dag.params);
        for (key, spec) in &dag.param_specs {
            if (spec.secret || is_secret_key(key))
                && let Some(v) = conf.get(key).or_else(|| dag.params.get(key))
            {
                self.add_value(v);
            }
        }
    }

    fn add_env(&mut self, task: &Task) {
        for (name, value) in &task.env {
            if is_secret_key(name) {
                self.push(value);
            }
        }
    }

    fn add_secret_keys(&mut self, map: &Map<String, Value>) {
        for (k, v) in map {
            match v {
                Value::Object(inner) if !is_secret_key(k) => self.add_secret_keys(inner),
                _ if is_secret_key(k) => self.add_value(v),
                _ => {}
            }
        }
    }

    /// Every scalar in `v`, at any depth.
    fn add_value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.push(s),
            Value::Number(n) => self.push(&n.to_string()),
            Value::Array(list) => list.iter().for_each(|v| self.add_value(v)),
            Value::Object(map) => map.values().for_each(|v| self.add_value(v)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// This masker with `secrets` added (the variables and connections an
    /// attempt was handed).
    pub fn with(mut self, secrets: &[String]) -> Masker {
        if secrets.is_empty() {
            return self;
        }
        for s in secrets {
            self.push(s);
        }
        self.finish()
    }

    fn push(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        // A value of several lines (a key, a certificate) is printed a line
        // at a time: each line is masked on its own as well.
        if secret.contains('\n') {
            for line in secret
                .lines()
                .map(str::trim)
                .filter(|l| l.chars().count() >= 8)
            {
                self.0.push(line.to_owned());
            }
        }
        self.0.push(secret.to_owned());
        // The forms a template writes it in.
        let json = serde_json::to_string(secret).unwrap_or_default();
        let json = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or(secret);
        for form in [
            template::shell_quote(secret),
            template::percent_encode(secret),
            json.to_owned(),
        ] {
            if form != secret {
                self.0.push(form);
            }
        }
    }

    fn finish(mut self) -> Masker {
        // Longest first, so a secret that contains another is masked whole.
        self.0
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.0.dedup();
        self
    }

    /// Nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret value replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = None::<String>;
        for secret in &self.0 {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(secret.as_str()) {
                out = Some(current.replace(secret.as_str(), "***"));
            }
        }
        out.unwrap_or_else(|| text.to_owned())
    }

    /// A DAG file's text with the literal secrets of `dag` masked: secret
    /// params' defaults and secret-looking `env` values (for viewers of the
    /// source who may not see them).
    pub fn of_source(dag: &Dag) -> Masker {
        Masker::of_run(dag, &Map::new())
    }
}

/// `conf` with values under secret-looking keys replaced by `***`.
pub fn mask_conf(conf: &Map<String, Value>) -> Map<String, Value> {
    conf.iter()
        .map(|(k, v)| {
            let v = match v {
                _ if is_secret_key(k) => Value::String("***".into()),
                Value::Object(inner) => Value::Object(mask_conf(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A DAG's params (or a run's conf) as shown: secret-looking keys and params
/// declared secret as `***`.
pub fn mask_params(dag: &Dag, values: &Map<String, Value>) -> Map<String, Value> {
    let mut out = mask_conf(values);
    for (key, spec) in &dag.param_specs {
        if spec.secret
            && let Some(v) = out.get_mut(key)
        {
            *v = Value::String("***".into());
        }
    }
    out
}

#[cfg(test)]
mod tests;
