//! Following a git repository: every scheduler given the same source fetches
//! it into a clone of its own, parses the DAG files of the followed branch's
//! head, and stores them as one commit ([`gale_store::Dags::apply_git_commit`]),
//! only over an older commit ([`order`]). No follower coordinates with
//! another: each stores a commit at most once, conditionally on the commit
//! it read, so a follower that fetched late never brings back an older
//! version.

pub mod order;
pub mod repo;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gale_model::dag::{self, DagError};
use gale_store::{Dags, GitApplied, GitCommit, GitSourceSpec, NewVersion};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use order::{Decision, decide};
pub use repo::Credentials;
use repo::{GitError, Repo};

/// How deep below the followed folder files are looked for (as in a DAG folder).
const MAX_DEPTH: usize = 8;
/// The most DAG files one commit may hold.
const MAX_FILES: usize = 10_000;
/// How often the store is asked whether a refresh was requested.
const REFRESH_CHECK: Duration = Duration::from_secs(1);

/// A commit's DAG files, parsed: the versions, and the files' errors.
type Parsed = (Vec<NewVersion>, Vec<(String, Vec<DagError>)>);

/// How a follower gets its credentials for each fetch.
#[derive(Clone, Debug)]
pub enum CredentialSource {
    /// The user name (from the URL, else `git`) and the password or token in
    /// this file, read at each fetch.
    File { username: String, path: PathBuf },
    /// The login and password of a Gale connection, looked up at each fetch.
    Connection(String),
}

/// A git source to follow.
#[derive(Clone, Debug)]
pub struct GitOptions {
    pub spec: GitSourceSpec,
    /// How often the remote is fetched.
    pub interval: Duration,
    /// The folder the clone is kept in (a bare repository, `NAME.git`).
    pub cache: PathBuf,
    pub credentials: Option<CredentialSource>,
    /// A private key for an SSH remote.
    pub ssh_key: Option<PathBuf>,
}

/// Checks a source's name: 1 to 64 letters, digits, `-` or `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "the git source name {name:?} must be 1 to 64 letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

/// The name a repository's URL suggests: its last path segment without `.git`.
pub fn default_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default();
    let last = last.strip_suffix(".git").unwrap_or(last);
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() { "dags".into() } else { name }
}

/// One follower of one git source.
pub struct GitFollower<S: ?Sized> {
    store: Arc<S>,
    opts: GitOptions,
    /// Who stores commits (this scheduler's node id).
    host: String,
    repo: Repo,
    resolver: Option<Arc<gale_secrets::Resolver>>,
    paused_at_creation: bool,
    /// The commit this follower last stored or found stored, and whether
    /// some of its files were refused (then it is stored again, so a DAG id
    /// another source gave up is taken).
    settled: Option<(String, bool)>,
    /// The refresh request last acted on.
    refresh_seen: Option<Timestamp>,
    /// The last failure reported, so one that repeats is logged once.
    last_error: Option<String>,
}

impl<S: Dags + gale_store::Alerts + ?Sized> GitFollower<S> {
    pub fn new(store: Arc<S>, opts: GitOptions, host: &str) -> Self {
        let repo = Repo {
            dir: repo::clone_dir(&opts.cache, &opts.spec.name),
            url: opts.spec.url.clone(),
            ssh_key: opts.ssh_key.clone(),
        };
        GitFollower {
            store,
            opts,
            host: host.to_owned(),
            repo,
            resolver: None,
            paused_at_creation: false,
            settled: None,
            refresh_seen: None,
            last_error: None,
        }
    }

    /// Warns of new versions naming variables or connections `resolver`
    /// lacks; looks up a connection's credentials.
    pub fn with_resolver(mut self, resolver: Option<Arc<gale_secrets::Resolver>>) -> Self {
        self.resolver = resolver;
        self
    }

    /// New DAGs that do not say otherwise start paused.
    pub fn with_paused_at_creation(mut self, paused: bool) -> Self {
        self.paused_at_creation = paused;
        self
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let name = self.opts.spec.name.clone();
        // Registered first: a second configuration under this name is refused.
        loop {
            match self.store.register_git_source(&self.opts.spec).await {
                Ok(row) => {
                    self.refresh_seen = row.refresh_requested_at;
                    break;
                }
                Err(gale_store::Error::Invalid(message)) => {
                    error!(source = %name, "not following the git source: {message}");
                    return;
                }
                Err(e) => {
                    self.report(format!("cannot register the git source: {e}"));
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(REFRESH_CHECK) => continue,
                    }
                }
            }
        }
        info!(source = %name, url = %self.opts.spec.url, reference = %self.opts.spec.reference,
            path = %self.opts.spec.path, interval_s = self.opts.interval.as_secs(), "following git source");
        let mut next_fetch = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_fetch || self.refresh_requested().await {
                next_fetch = tokio::time::Instant::now() + self.opts.interval;
                match self.follow_once().await {
                    Ok(()) => self.last_error = None,
                    Err(message) => self.report(message),
                }
            }
            let rest = next_fetch
                .saturating_duration_since(tokio::time::Instant::now())
                .min(REFRESH_CHECK);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(rest) => {}
            }
        }
    }

    fn report(&mut self, message: String) {
        if self.last_error.as_deref() != Some(message.as_str()) {
            warn!(source = %self.opts.spec.name, "{message}");
            self.last_error = Some(message);
        }
    }

    /// Whether someone asked for a fetch since the last one acted on.
    async fn refresh_requested(&mut self) -> bool {
        let Ok(Some(row)) = self.store.get_source(&self.opts.spec.name).await else {
            return false;
        };
        if row.refresh_requested_at.is_some() && row.refresh_requested_at != self.refresh_seen {
            self.refresh_seen = row.refresh_requested_at;
            debug!(source = %self.opts.spec.name, "refresh requested");
            return true;
        }
        false
    }

    async fn credentials(&self) -> Result<Option<Credentials>, String> {
        match &self.opts.credentials {
            None => Ok(None),
            Some(CredentialSource::File { username, path }) => {
                let password = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the git password file {}: {e}", path.display())
                })?;
                Ok(Some(Credentials {
                    username: username.clone(),
                    password: password.trim_end_matches(['\r', '\n']).to_owned(),
                }))
            }
            Some(CredentialSource::Connection(name)) => {
                let resolver = self.resolver.as_ref().ok_or_else(|| {
                    format!("the git credentials are the connection {name}, but this node has no secrets key")
                })?;
                let (conn, _) = resolver
                    .connection(name)
                    .await
                    .map_err(|e| format!("cannot look up the connection {name}: {e}"))?
                    .ok_or_else(|| {
                        format!("the git credentials' connection {name} does not exist")
                    })?;
                Ok(Some(Credentials {
                    username: conn.login.clone().unwrap_or_else(|| "git".into()),
                    password: conn.password.clone().unwrap_or_default(),
                }))
            }
        }
    }

    /// One fetch, and the commit stored if it is newer than the store's.
    /// Returns what went wrong, in words.
    pub async fn follow_once(&mut self) -> Result<(), String> {
        let name = self.opts.spec.name.clone();
        self.repo.init().await.map_err(|e| e.to_string())?;
        let credentials = self.credentials().await?;
        let (commit, committed_at) = self
            .repo
            .fetch(&self.opts.spec.reference, credentials.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        if self.settled.as_ref() == Some(&(commit.clone(), false)) {
            return Ok(());
        }
        // Parsed once per commit, however many times it is stored.
        let mut parsed: Option<Parsed> = None;
        for _ in 0..5 {
            let row = self
                .store
                .get_source(&name)
                .await
                .map_err(|e| format!("cannot read the git source: {e}"))?
                .ok_or_else(|| format!("the git source {name} is no longer registered"))?;
            let again = self
                .settled
                .as_ref()
                .is_some_and(|(c, refused)| *c == commit && *refused);
            if row.commit.as_deref() == Some(commit.as_str()) && !again {
                self.settled = Some((commit, false));
                return Ok(());
            }
            if let Some(stored) = row.commit.as_deref()
                && stored != commit
            {
                let relation = self
                    .repo
                    .relation(stored, &commit)
                    .await
                    .map_err(|e| e.to_string())?;
                if decide(row.committed_at, committed_at, relation) == Decision::Leave {
                    debug!(source = %name, stored, fetched = %commit, "the store has a newer commit");
                    return Ok(());
                }
            }
            if parsed.is_none() {
                parsed = Some(
                    self.parse_commit(&commit)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let (versions, errors) = parsed.clone().unwrap_or_default();
            let apply = GitCommit {
                source: name.clone(),
                expected: row.commit.clone(),
                commit: commit.clone(),
                committed_at,
                by: self.host.clone(),
                versions: versions.clone(),
                errors: errors.clone(),
            };
            match self
                .store
                .apply_git_commit(&apply)
                .await
                .map_err(|e| format!("cannot store commit {commit}: {e}"))?
            {
                GitApplied::Stale(_) => continue,
                GitApplied::Applied {
                    stored,
                    refused,
                    retired,
                } => {
                    let short = &commit[..commit.len().min(12)];
                    info!(source = %name, commit = %short, dags = stored.len(),
                        errors = errors.len() + refused.len(), "stored git commit");
                    for s in stored.iter().filter(|s| s.changed) {
                        let v = versions.iter().find(|v| v.dag.id == s.dag_id);
                        info!(dag_id = %s.dag_id, version = %s.version_hash, commit = %short,
                            file = %v.map(|v| v.file.as_str()).unwrap_or(""), "stored DAG version");
                        if let Some(v) = v.filter(|_| s.new_version) {
                            crate::processor::warn_missing(
                                &*self.store,
                                self.resolver.as_deref(),
                                &v.dag,
                                &v.file,
                            )
                            .await;
                        }
                    }
                    for (file, errs) in &errors {
                        for e in errs {
                            warn!(file = %file, commit = %short, "DAG file error: {e}");
                        }
                    }
                    for (file, _, message) in &refused {
                        warn!(file = %file, commit = %short, "{message}");
                    }
                    for dag_id in &retired {
                        info!(dag_id = %dag_id, commit = %short, "DAG no longer in the git source");
                    }
                    self.settled = Some((commit, !refused.is_empty()));
                    return Ok(());
                }
            }
        }
        Err(format!(
            "commit {commit}: other followers kept storing commits meanwhile; trying again at the next fetch"
        ))
    }

    /// The DAG files of `commit` below the followed folder, parsed.
    async fn parse_commit(&self, commit: &str) -> Result<Parsed, GitError> {
        let base = self.opts.spec.path.trim_matches('/');
        let files: Vec<_> = self
            .repo
            .files(commit, base)
            .await?
            .into_iter()
            .filter(|f| is_dag_file(&f.path, base))
            .take(MAX_FILES)
            .collect();
        let name = &self.opts.spec.name;
        let mut errors = Vec::new();
        let mut wanted = Vec::new();
        for f in files {
            let file = format!("git:{name}/{}", f.path);
            if f.size > dag::MAX_FILE_BYTES as u64 {
                errors.push((
                    file.clone(),
                    vec![DagError {
                        file,
                        line: 0,
                        column: 0,
                        message: format!(
                            "file is {} bytes, more than the {} a DAG file may have",
                            f.size,
                            dag::MAX_FILE_BYTES
                        ),
                    }],
                ));
            } else {
                wanted.push((file, f.object));
            }
        }
        let objects: Vec<String> = wanted.iter().map(|(_, o)| o.clone()).collect();
        let blobs = self.repo.read_blobs(&objects).await?;
        let paused = self.paused_at_creation;
        let files: Vec<(String, Vec<u8>)> = wanted
            .into_iter()
            .map(|(file, _)| file)
            .zip(blobs)
            .collect();
        let parsed = tokio::task::spawn_blocking(move || {
            let mut versions: Vec<NewVersion> = Vec::new();
            let mut errors = Vec::new();
            let mut ids = std::collections::HashMap::new();
            for (file, bytes) in files {
                match dag::parse_bytes(&file, bytes) {
                    Ok((mut dag, source)) => {
                        if let Some(other) = ids.insert(dag.id.0.clone(), file.clone()) {
                            let message = format!(
                                "duplicate DAG id {:?}: {other} already defines it; give one of them another `id:`",
                                dag.id.0
                            );
                            errors.push((file.clone(), vec![DagError { file, line: 1, column: 1, message }]));
                            continue;
                        }
                        dag.is_paused_upon_creation =
                            Some(dag.is_paused_upon_creation.unwrap_or(paused));
                        versions.push(NewVersion {
                            hash: dag::content_hash(&source),
                            dag,
                            file,
                            source,
                        });
                    }
                    Err(errs) => errors.push((file, errs)),
                }
            }
            (versions, errors)
        })
        .await
        .map_err(|e| GitError(format!("the parser failed: {e}")))?;
        errors.extend(parsed.1);
        Ok((parsed.0, errors))
    }
}

/// Whether `path` (in the repository) is a DAG file below `base`: a `.yaml`
/// or `.yml` file, no part hidden, at most [`MAX_DEPTH`] folders down.
fn is_dag_file(path: &str, base: &str) -> bool {
    let rel = if base.is_empty() {
        path
    } else {
        match path.strip_prefix(base).and_then(|r| r.strip_prefix('/')) {
            Some(rel) => rel,
            None => return false,
        }
    };
    let parts: Vec<&str> = rel.split('/').collect();
    parts.len() <= MAX_DEPTH + 1
        && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.'))
        && matches!(
            Path::new(rel).extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dag_files_below_the_followed_folder() {
        assert!(is_dag_file("dags/etl.yaml", "dags"));
        assert!(is_dag_file("dags/team/etl.yml", "dags"));
        assert!(is_dag_file("etl.yaml", ""));
        assert!(!is_dag_file("dagsx/etl.yaml", "dags"));
        assert!(!is_dag_file("dags/.hidden/etl.yaml", "dags"));
        assert!(!is_dag_file("dags/README.md", "dags"));
        assert!(!is_dag_file("other/etl.yaml", "dags"));
    }

    #[test]
    fn names_from_urls() {
        assert_eq!(
            default_name("https://github.com/acme/pipelines.git"),
            "pipelines"
        );
        assert_eq!(
            default_name("git@github.com:acme/pipelines.git"),
            "pipelines"
        );
        assert_eq!(default_name("/srv/git/my dags/"), "my-dags");
        assert!(check_name("pipelines").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
    }
}
