//! The DAG file processor: scans the DAG folder, parses changed files, and stores
//! each as a DAG version or as an import error. A broken file never affects the
//! others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gale_model::dag::{self, DagError};
use gale_store::Dags;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How deep below the DAG folder files are looked for.
const MAX_DEPTH: usize = 8;
/// The most DAG files one folder may hold.
const MAX_FILES: usize = 10_000;

pub struct DagProcessor<S: ?Sized> {
    store: Arc<S>,
    /// `host:folder`: whose DAGs these are (see `Store::sync_files`).
    owner: String,
    folder: PathBuf,
    interval: Duration,
    /// (mtime, size) of each file as last stored, so unchanged files are not re-parsed.
    seen: HashMap<PathBuf, (SystemTime, u64)>,
    /// Where tasks' variables and connections are looked up: a new version
    /// naming one that does not exist is warned about.
    resolver: Option<Arc<gale_secrets::Resolver>>,
    /// Files whose DAG id another file holds, with the refusal last
    /// reported: reported again only when it changes.
    conflicts: HashMap<PathBuf, String>,
    /// Whether a DAG that does not say (`is_paused_upon_creation`) starts paused.
    paused_at_creation: bool,
    /// The file list last told to the store (its digest), and when.
    synced: Option<(u64, std::time::Instant)>,
    /// The folder's directories as last walked.
    dirs: DirStamps,
}

/// A digest of a sorted file list, to tell whether it changed.
fn listing_hash(files: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut h);
    h.finish()
}

/// Lists `*.yaml` / `*.yml` files below `folder`, sorted, skipping hidden entries.
pub fn dag_files(folder: &Path) -> Vec<PathBuf> {
    walk(folder).0
}

/// How often every file of the folder is looked at (a stat each) even when
/// no directory changed (a file rewritten in place changes no directory),
/// and the store told of the files when their list did not change (it is
/// told at once when it does).
const FULL_SCAN_EVERY: Duration = Duration::from_secs(10);

/// The folder's directories with their modification times: a file added,
/// removed or renamed changes its directory's.
type DirStamps = Vec<(PathBuf, Option<SystemTime>)>;

fn dir_mtime(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|m| m.modified()).ok()
}

/// Whether every directory still has the modification time it had.
fn dirs_unchanged(dirs: &DirStamps) -> bool {
    !dirs.is_empty() && dirs.iter().all(|(d, at)| dir_mtime(d) == *at)
}

/// The DAG files below `folder` (sorted) and its directories' stamps.
fn walk(folder: &Path) -> (Vec<PathBuf>, DirStamps) {
    let mut out = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![(folder.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        // Stamped before it is read: a change while reading shows next time.
        let stamp = dir_mtime(&dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        dirs.push((dir.clone(), stamp));
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) && out.len() < MAX_FILES
            {
                out.push(path);
            }
        }
    }
    // By bytes: comparing paths component by component costs more.
    out.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    (out, dirs)
}

/// Warns of what a new version names that does not exist: alert channels
/// the store lacks, variables and connections `resolver` does not have.
pub(crate) async fn warn_missing<S: gale_store::Alerts + ?Sized>(
    store: &S,
    resolver: Option<&gale_secrets::Resolver>,
    dag: &gale_model::Dag,
    file: &str,
) {
    match gale_store::alert_events::missing_channels(store, dag).await {
        Ok(missing) => {
            for m in missing {
                warn!(dag_id = %dag.id, file = %file, "{m}");
            }
        }
        Err(e) => {
            warn!(dag_id = %dag.id, file = %file, error = %e, "cannot check the DAG's alert channels")
        }
    }
    let Some(resolver) = resolver else {
        return;
    };
    match resolver.missing_in(dag).await {
        Ok(missing) => {
            for m in missing {
                warn!(dag_id = %dag.id, file = %file, "{m}: the task will fail until it exists");
            }
        }
        Err(e) => {
            warn!(dag_id = %dag.id, file = %file, error = %e, "cannot check the DAG's variables and connections")
        }
    }
}

/// Reads and parses one DAG file; errors carry the file's path.
pub fn load_file(path: &Path) -> Result<(gale_model::Dag, String), Vec<DagError>> {
    let file = path.display().to_string();
    let one = |message: String| {
        vec![DagError {
            file: file.clone(),
            line: 0,
            column: 0,
            message,
        }]
    };
    let meta = std::fs::metadata(path).map_err(|e| one(format!("cannot read file: {e}")))?;
    if meta.len() > dag::MAX_FILE_BYTES as u64 {
        return Err(one(format!(
            "file is {} bytes, more than the {} a DAG file may have",
            meta.len(),
            dag::MAX_FILE_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| one(format!("cannot read file: {e}")))?;
    dag::parse_bytes(&file, bytes)
}

impl<S: Dags + gale_store::Alerts + ?Sized> DagProcessor<S> {
    /// A processor of `folder` on `host`.
    pub fn new(store: Arc<S>, folder: PathBuf, interval: Duration, host: &str) -> Self {
        // This processor's name in the store: the DAGs and import errors it
        // records are its own to retire when their files leave its folder.
        let path = std::fs::canonicalize(&folder).unwrap_or_else(|_| folder.clone());
        DagProcessor {
            store,
            owner: format!("{host}:{}", path.display()),
            folder,
            interval,
            seen: HashMap::new(),
            resolver: None,
            conflicts: HashMap::new(),
            paused_at_creation: false,
            synced: None,
            dirs: Vec::new(),
        }
    }

    /// New DAGs that do not say otherwise start paused.
    pub fn with_paused_at_creation(mut self, paused: bool) -> Self {
        self.paused_at_creation = paused;
        self
    }

    /// Warns of new versions that name a variable or connection `resolver`
    /// does not have.
    pub fn with_resolver(mut self, resolver: Option<Arc<gale_secrets::Resolver>>) -> Self {
        self.resolver = resolver;
        self
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            if let Err(e) = self.scan().await {
                warn!(error = %e, folder = %self.folder.display(), "scanning the DAG folder failed");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
        // Nobody would clear what this processor reported once it is gone;
        // another processor of the same files reports them again itself.
        if let Err(e) = self.store.drop_import_errors(&self.owner).await {
            warn!(error = %e, folder = %self.folder.display(), "could not drop this processor's import errors");
        }
    }

    /// One pass over the folder. Returns how many files were (re)parsed.
    /// Between full scans (every [`FULL_SCAN_EVERY`]) a pass whose
    /// directories all kept their modification time stops there: nothing
    /// was added, removed or renamed.
    pub async fn scan(&mut self) -> gale_store::Result<usize> {
        let recent = self
            .synced
            .is_some_and(|(_, at)| at.elapsed() < FULL_SCAN_EVERY);
        if recent {
            let dirs = std::mem::take(&mut self.dirs);
            let (dirs, unchanged) = tokio::task::spawn_blocking(move || {
                let unchanged = dirs_unchanged(&dirs);
                (dirs, unchanged)
            })
            .await
            .unwrap_or_default();
            self.dirs = dirs;
            if unchanged {
                return Ok(0);
            }
        }
        let folder = self.folder.clone();
        let (files, dirs) = tokio::task::spawn_blocking(move || walk(&folder))
            .await
            .unwrap_or_default();
        self.dirs = dirs;
        // The store is told of the folder's files when the list changed, and
        // every FULL_SCAN_EVERY besides: a file the store knows nothing of (its
        // DAG was deleted while the file stayed, or another processor of it
        // dropped its import errors on stopping) is parsed, and its errors
        // reported, again.
        let listed = listing_hash(&files);
        if self
            .synced
            .is_none_or(|(hash, at)| hash != listed || at.elapsed() >= FULL_SCAN_EVERY)
        {
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            let unknown = self.store.sync_files(&self.owner, &names).await?;
            self.synced = Some((listed, std::time::Instant::now()));
            for file in &unknown {
                self.seen.remove(std::path::Path::new(file));
                self.conflicts.remove(std::path::Path::new(file));
            }
            let present: std::collections::HashSet<&PathBuf> = files.iter().collect();
            self.seen.retain(|p, _| present.contains(p));
            self.conflicts.retain(|p, _| present.contains(p));
        }
        // Changed files, a batch at a time: parsed on the blocking threads
        // (one share per core), then stored, the batch's DAGs concurrently
        // when their ids differ (a first start over thousands of files).
        let mut pending = Vec::new();
        for path in files {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            if self.seen.get(&path) != Some(&stamp) {
                pending.push((path, stamp));
            }
        }
        let parsed = pending.len();
        for batch in pending.chunks(LOAD_BATCH) {
            let mut loaded = load_files(batch.iter().map(|(p, _)| p.clone()).collect()).await;
            for (dag, _) in loaded.iter_mut().filter_map(|l| l.result.as_mut().ok()) {
                dag.is_paused_upon_creation = Some(
                    dag.is_paused_upon_creation
                        .unwrap_or(self.paused_at_creation),
                );
            }
            let stored = self.store_all(&loaded).await;
            // Every file of the batch is settled (its version logged and
            // checked) even after one fails; the first failure is returned.
            let mut failed = None;
            for (((path, stamp), loaded), stored) in batch.iter().zip(loaded).zip(stored) {
                if let Err(e) = self.settle(path, *stamp, loaded, stored).await {
                    failed.get_or_insert(e);
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(parsed)
    }

    /// Stores the parsed DAGs of a batch: concurrently when their ids differ, else one by one in order
    /// (the first file of an id wins, as one by one). `None` for a file that
    /// did not parse.
    async fn store_all(&self, loaded: &[Loaded]) -> Vec<Option<gale_store::Result<bool>>> {
        let mut ids = std::collections::HashSet::new();
        let distinct = loaded
            .iter()
            .filter_map(|l| l.result.as_ref().ok())
            .all(|(dag, _)| ids.insert(dag.id.clone()));
        let mut out: Vec<Option<gale_store::Result<bool>>> = Vec::with_capacity(loaded.len());
        if !distinct {
            for l in loaded {
                out.push(match &l.result {
                    Ok((dag, source)) => Some(
                        self.store
                            .upsert_dag(dag, &l.name, source, &l.hash, &self.owner)
                            .await,
                    ),
                    Err(_) => None,
                });
            }
            return out;
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, l) in loaded.iter().enumerate() {
            out.push(None);
            if let Ok((dag, source)) = &l.result {
                let (store, owner) = (self.store.clone(), self.owner.clone());
                let (dag, source, name, hash) =
                    (dag.clone(), source.clone(), l.name.clone(), l.hash.clone());
                set.spawn(async move {
                    (
                        i,
                        store.upsert_dag(&dag, &name, &source, &hash, &owner).await,
                    )
                });
            }
        }
        while let Some(done) = set.join_next().await {
            match done {
                Ok((i, res)) => out[i] = Some(res),
                Err(e) => {
                    // A panicked store call: reported as the store's error.
                    warn!(error = %e, "storing a DAG file failed");
                }
            }
        }
        for (i, l) in loaded.iter().enumerate() {
            if l.result.is_ok() && out[i].is_none() {
                out[i] = Some(Err(gale_store::Error::Database(
                    "storing the DAG file did not finish".into(),
                )));
            }
        }
        out
    }

    /// What follows one file's parse and store: its version logged, a
    /// conflict or its errors recorded, the file remembered as seen.
    async fn settle(
        &mut self,
        path: &Path,
        stamp: (SystemTime, u64),
        loaded: Loaded,
        stored: Option<gale_store::Result<bool>>,
    ) -> gale_store::Result<()> {
        let Loaded { name, hash, result } = loaded;
        match (result, stored) {
            (Ok((dag, _)), Some(Ok(new))) => {
                if new {
                    info!(dag_id = %dag.id, file = %name, version = %hash, "stored DAG version");
                    warn_missing(&*self.store, self.resolver.as_deref(), &dag, &name).await;
                }
            }
            (Ok((dag, _)), Some(Err(gale_store::Error::Invalid(message)))) => {
                // Tried again every scan, reported once; not remembered as
                // seen: once the other file goes away, the next scan stores
                // this one.
                if self.conflicts.get(path) == Some(&message) {
                    return Ok(());
                }
                self.conflicts.insert(path.to_owned(), message.clone());
                let err = DagError {
                    file: name.clone(),
                    line: 1,
                    column: 1,
                    message,
                };
                warn!(file = %name, "{err}");
                self.store
                    .record_import_errors(&name, Some(dag.id.as_str()), &[err], &self.owner)
                    .await?;
                return Ok(());
            }
            (Ok(_), Some(Err(e))) => return Err(e),
            (Ok(_), None) => {
                return Err(gale_store::Error::Database(format!(
                    "{name} was parsed but not stored"
                )));
            }
            (Err(errors), _) => {
                for e in &errors {
                    warn!("DAG file error: {e}");
                }
                self.store
                    .record_import_errors(&name, None, &errors, &self.owner)
                    .await?;
            }
        }
        debug!(file = %name, "processed DAG file");
        self.conflicts.remove(path);
        self.seen.insert(path.to_owned(), stamp);
        Ok(())
    }
}

/// Files parsed in one batch.
const LOAD_BATCH: usize = 64;

/// One file as read and parsed: its name, its content's hash and its DAG
/// and source, or its errors.
struct Loaded {
    name: String,
    hash: String,
    result: Result<(gale_model::Dag, String), Vec<DagError>>,
}

/// Reads and parses files on the blocking threads, in two halves (one per
/// core); in the order given.
async fn load_files(paths: Vec<PathBuf>) -> Vec<Loaded> {
    let load = |paths: Vec<PathBuf>| {
        paths
            .into_iter()
            .map(|path| {
                let name = path.display().to_string();
                let result = load_file(&path);
                let hash = match &result {
                    Ok((_, source)) => dag::content_hash(source),
                    Err(_) => String::new(),
                };
                Loaded { name, hash, result }
            })
            .collect::<Vec<Loaded>>()
    };
    let mut first = paths;
    let second = first.split_off(first.len() / 2);
    let (a, b) = (first.clone(), second.clone());
    let (got_a, got_b) = tokio::join!(
        tokio::task::spawn_blocking(move || load(a)),
        tokio::task::spawn_blocking(move || load(b)),
    );
    let mut out = Vec::new();
    for (got, paths) in [(got_a, first), (got_b, second)] {
        match got {
            Ok(loaded) => out.extend(loaded),
            // The parser panicked on a file of this half: each of its files
            // is parsed again on its own, so only that one fails.
            Err(_) => {
                for path in paths {
                    let name = path.display().to_string();
                    let one = tokio::task::spawn_blocking(move || load(vec![path])).await;
                    out.extend(one.unwrap_or_else(|e| {
                        vec![Loaded {
                            result: Err(vec![DagError {
                                file: name.clone(),
                                line: 0,
                                column: 0,
                                message: format!("parser failed: {e}"),
                            }]),
                            name,
                            hash: String::new(),
                        }]
                    }));
                }
            }
        }
    }
    out
}
