//! Where a variable or connection comes from, in this order (the first that
//! has the name wins):
//!
//! 1. the environment of the process that renders the task (the worker):
//!    `GALE_VAR_<NAME>` for a variable, `GALE_CONN_<NAME>` for a connection
//!    (an Airflow URI or JSON), `<NAME>` upper-cased with every character but
//!    letters and digits as `_`, as Airflow's environment backend does;
//! 2. a secrets directory: `<dir>/variables/<name>` and
//!    `<dir>/connections/<name>` (a URI or JSON), one file per name, as
//!    Docker secrets, Kubernetes secret volumes and systemd credentials lay
//!    them out (one trailing newline is dropped);
//! 3. the store (`gale variables set`, `gale connections add`).
//!
//! Values from the environment and a secrets directory are secret: masked in
//! everything the task prints. Another source (Vault, a cloud secret manager)
//! is one more [`Provider`].

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use gale_model::secrets::{Connection, Lookup, References, Variable, check_name};

use crate::{Error, Result, Vault};

/// The most bytes a secrets-directory file may hold.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// One source of variables and connections.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Where it looks, for messages and `gale variables get`.
    fn describe(&self) -> String;
    async fn variable(&self, name: &str) -> Result<Option<Variable>>;
    async fn connection(&self, name: &str) -> Result<Option<Connection>>;
}

fn env_name(prefix: &str, name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{tail}")
}

/// A connection written as an Airflow URI or as JSON fields.
fn connection_text(name: &str, text: &str, from: &str) -> Result<Connection> {
    let text = text.trim();
    let parsed = if text.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| Connection::from_export(name, &v))
    } else {
        Connection::from_uri(text)
    };
    parsed.map_err(|e| Error::Provider(format!("connection {name} from {from}: {e}")))
}

/// `GALE_VAR_<NAME>` and `GALE_CONN_<NAME>` in this process's environment.
pub struct EnvProvider;

#[async_trait]
impl Provider for EnvProvider {
    fn describe(&self) -> String {
        "the environment (GALE_VAR_<NAME>, GALE_CONN_<NAME>)".into()
    }

    async fn variable(&self, name: &str) -> Result<Option<Variable>> {
        Ok(std::env::var(env_name("GALE_VAR_", name))
            .ok()
            .map(|value| Variable {
                value,
                json: false,
                secret: true,
                description: None,
            }))
    }

    async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        let var = env_name("GALE_CONN_", name);
        match std::env::var(&var) {
            Ok(text) => connection_text(name, &text, &var).map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// `<dir>/variables/<name>` and `<dir>/connections/<name>`.
pub struct DirProvider {
    pub dir: PathBuf,
}

impl DirProvider {
    async fn read(&self, sub: &str, name: &str) -> Result<Option<String>> {
        // A name never holds `/` or starts with `.`, so it stays in the folder.
        check_name("variable or connection", name).map_err(Error::Invalid)?;
        let path = self.dir.join(sub).join(name);
        let shown = path.display().to_string();
        // Off the async threads: a slow or network file system must not
        // hold them.
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<String>> {
            use std::io::Read as _;
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            // A FIFO would block, a device never end: regular files only.
            if !meta.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            let mut text = String::new();
            std::fs::File::open(&path)?
                .take(MAX_FILE_BYTES + 1)
                .read_to_string(&mut text)?;
            if text.len() as u64 > MAX_FILE_BYTES {
                return Err(std::io::Error::other(format!(
                    "larger than {MAX_FILE_BYTES} bytes"
                )));
            }
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            Ok(Some(text))
        })
        .await
        .unwrap_or_else(|e| {
            Err(std::io::Error::other(format!(
                "the reading thread failed: {e}"
            )))
        });
        read.map_err(|e| Error::Provider(format!("reading {shown}: {e}")))
    }
}

#[async_trait]
impl Provider for DirProvider {
    fn describe(&self) -> String {
        format!("the secrets directory {}", self.dir.display())
    }

    async fn variable(&self, name: &str) -> Result<Option<Variable>> {
        Ok(self.read("variables", name).await?.map(|value| Variable {
            value,
            json: false,
            secret: true,
            description: None,
        }))
    }

    async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        match self.read("connections", name).await? {
            Some(text) => {
                let from = self.dir.join("connections").join(name);
                connection_text(name, &text, &from.display().to_string()).map(Some)
            }
            None => Ok(None),
        }
    }
}

#[async_trait]
impl Provider for Vault {
    fn describe(&self) -> String {
        "the store".into()
    }

    async fn variable(&self, name: &str) -> Result<Option<Variable>> {
        Vault::variable(self, name).await
    }

    async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        Vault::connection(self, name).await
    }
}

/// The providers, in order.
#[derive(Clone, Default)]
pub struct Resolver {
    providers: Vec<Arc<dyn Provider>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.order()).finish()
    }
}

impl Resolver {
    /// The environment, then `dir` (if any), then the store (if any).
    pub fn new(dir: Option<PathBuf>, vault: Option<Vault>) -> Resolver {
        let mut providers: Vec<Arc<dyn Provider>> = vec![Arc::new(EnvProvider)];
        if let Some(dir) = dir {
            providers.push(Arc::new(DirProvider { dir }));
        }
        if let Some(v) = vault {
            providers.push(Arc::new(v));
        }
        Resolver { providers }
    }

    /// Any providers, in the order given.
    pub fn with(providers: Vec<Arc<dyn Provider>>) -> Resolver {
        Resolver { providers }
    }

    /// Where it looks, in order.
    pub fn order(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.describe()).collect()
    }

    pub async fn variable(&self, name: &str) -> Result<Option<(Variable, String)>> {
        for p in &self.providers {
            if let Some(v) = p.variable(name).await? {
                return Ok(Some((v, p.describe())));
            }
        }
        Ok(None)
    }

    pub async fn connection(&self, name: &str) -> Result<Option<(Connection, String)>> {
        for p in &self.providers {
            if let Some(c) = p.connection(name).await? {
                return Ok(Some((c, p.describe())));
            }
        }
        Ok(None)
    }

    /// The values `refs` names; a name no provider has is left out (a
    /// template that uses it fails naming it).
    pub async fn lookup(&self, refs: &References) -> Result<Lookup> {
        let mut lookup = Lookup::default();
        for name in &refs.variables {
            if let Some((v, _)) = self.variable(name).await? {
                lookup.variables.insert(name.clone(), v);
            }
        }
        for name in &refs.connections {
            if let Some((c, _)) = self.connection(name).await? {
                lookup.connections.insert(name.clone(), c);
            }
        }
        Ok(lookup)
    }

    /// What `dag`'s tasks name that no provider has, one line per task and
    /// name: `task load: connection warehouse does not exist (looked in ...)`.
    pub async fn missing_in(&self, dag: &gale_model::Dag) -> Result<Vec<String>> {
        let mut all = References::default();
        for t in &dag.tasks {
            all.extend(t.references());
        }
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let lookup = self.lookup(&all).await?;
        let order = self.order().join(", then ");
        let mut out = Vec::new();
        for t in &dag.tasks {
            let refs = t.references();
            for name in refs
                .variables
                .iter()
                .filter(|n| !lookup.variables.contains_key(*n))
            {
                out.push(format!(
                    "task {}: variable {name} does not exist (looked in {order})",
                    t.id
                ));
            }
            for name in refs
                .connections
                .iter()
                .filter(|n| !lookup.connections.contains_key(*n))
            {
                out.push(format!(
                    "task {}: connection {name} does not exist (looked in {order})",
                    t.id
                ));
            }
        }
        Ok(out)
    }

    /// The names in `refs` that no provider has, as `variable x` /
    /// `connection y`.
    pub async fn missing(&self, refs: &References) -> Result<Vec<String>> {
        let lookup = self.lookup(refs).await?;
        let mut out = Vec::new();
        for name in &refs.variables {
            if !lookup.variables.contains_key(name) {
                out.push(format!("variable {name}"));
            }
        }
        for name in &refs.connections {
            if !lookup.connections.contains_key(name) {
                out.push(format!("connection {name}"));
            }
        }
        Ok(out)
    }
}
