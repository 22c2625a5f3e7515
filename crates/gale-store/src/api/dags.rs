//! DAGs: the versions DAG processors, pushes and git sources store, import
//! errors, which files are still present, the git sources followed, and
//! pausing.

use async_trait::async_trait;
use gale_model::{Dag, DagError, DagId, RunId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::*;

/// The owner a pushed DAG is recorded under: no folder scan retires it.
pub const PUSH_OWNER: &str = "push";

/// The owner of the DAGs a git source stores: `git:NAME`.
pub fn git_owner(source: &str) -> String {
    format!("git:{source}")
}

/// Where a DAG version came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// Parsed from a DAG folder by the processor `processor` (`host:folder`).
    Folder { processor: String },
    /// Pushed through the API or `gale dags push`, by this user.
    Push { by: String },
    /// From a commit of the git source `source`.
    Git { source: String, commit: String },
}

impl Origin {
    /// `folder`, `push` or `git`.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Folder { .. } => "folder",
            Origin::Push { .. } => "push",
            Origin::Git { .. } => "git",
        }
    }

    /// The stored form (JSON).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The stored form read back; `None` for a version stored before origins
    /// were recorded.
    pub fn from_text(text: &str) -> Option<Origin> {
        serde_json::from_str(text).ok()
    }
}

/// What kind of source an owner names (see `PUSH_OWNER`, `git_owner`; any
/// other owner is a folder's processor, `host:folder`, or '' from before
/// owners were recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    Folder,
    Push,
    Git,
}

impl OwnerKind {
    pub fn of(owner: &str) -> OwnerKind {
        if owner == PUSH_OWNER {
            OwnerKind::Push
        } else if owner.starts_with("git:") {
            OwnerKind::Git
        } else {
            OwnerKind::Folder
        }
    }
}

/// A DAG version to store, parsed and hashed.
#[derive(Clone, Debug)]
pub struct NewVersion {
    pub dag: Dag,
    /// Its file: the pushed name (`push:NAME`) or the path in a git source
    /// (`git:SOURCE/PATH`).
    pub file: String,
    pub source: String,
    pub hash: String,
}

/// What storing one DAG version did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub dag_id: DagId,
    pub version_hash: String,
    /// False when that content was stored before (nothing changed).
    pub new_version: bool,
    /// The DAG's version changed (a new one, or back to an earlier one).
    pub changed: bool,
}

/// A git repository some schedulers follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSourceSpec {
    pub name: String,
    pub url: String,
    /// The branch or tag followed ('' for the remote's default branch).
    pub reference: String,
    /// The folder of the repository the DAG files are in ('' for all of it).
    pub path: String,
}

/// A followed git source and the commit whose DAGs are stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    pub name: String,
    pub url: String,
    pub reference: String,
    pub path: String,
    pub commit: Option<String>,
    pub committed_at: Option<Timestamp>,
    pub applied_at: Option<Timestamp>,
    /// Which follower stored that commit (its node id).
    pub applied_by: Option<String>,
    /// When a refresh was last asked for (`request_refresh`).
    pub refresh_requested_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// One commit of a git source, to store over the one `expected`.
#[derive(Clone, Debug)]
pub struct GitCommit {
    pub source: String,
    /// The commit the follower read from the store and found older (`None`:
    /// none stored yet). The commit is stored only if it is still that one.
    pub expected: Option<String>,
    pub commit: String,
    pub committed_at: Timestamp,
    /// Who stores it (the follower's node id).
    pub by: String,
    /// Every DAG of the commit that parsed.
    pub versions: Vec<NewVersion>,
    /// The files of the commit that did not, with their errors.
    pub errors: Vec<(String, Vec<DagError>)>,
}

/// What storing a git commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitApplied {
    /// Another follower stored another commit since `expected` was read:
    /// nothing was written.
    Stale(Option<String>),
    Applied {
        stored: Vec<Stored>,
        /// Files whose DAG id another source holds: `(file, dag id, refusal)`,
        /// recorded as import errors.
        refused: Vec<(String, DagId, String)>,
        /// DAGs of this source the commit no longer has, now inactive.
        retired: Vec<DagId>,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct DagRow {
    pub dag_id: DagId,
    pub file: String,
    pub version_hash: String,
    pub paused: bool,
    /// False once its file is gone from the DAG folder.
    pub active: bool,
    pub schedule: Option<String>,
    pub timezone: String,
    pub max_active_runs: u32,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub last_interval_end: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Who stored it: a folder's processor (`host:folder`), `push`, or
    /// `git:SOURCE`.
    pub owner: String,
    /// Where its current version came from (`None` for one stored before
    /// origins were recorded).
    pub origin: Option<Origin>,
}

impl DagRow {
    /// Whether a folder, a push or a git source stored it.
    pub fn owner_kind(&self) -> OwnerKind {
        OwnerKind::of(&self.owner)
    }
}

/// Which DAGs a page of the DAG list shows.
#[derive(Clone, Debug, Default)]
pub struct DagQuery {
    /// Part of the id or description, any case.
    pub search: Option<String>,
    /// DAGs with this tag.
    pub tag: Option<String>,
    pub paused: Option<bool>,
    /// Removed DAGs (their file gone) too.
    pub include_inactive: bool,
    /// DAGs after this many matches (in id order).
    pub offset: u64,
    /// At most this many (0: 100; never more than [`DAG_PAGE_MAX`]).
    pub limit: u32,
}

/// The most DAGs one page holds.
pub const DAG_PAGE_MAX: u32 = 1000;

/// A page of the DAG list.
#[derive(Clone, Debug, Default)]
pub struct DagPage {
    pub dags: Vec<DagRow>,
    /// How many DAGs the query matches (every page).
    pub matched: u64,
    /// Active DAGs, and how many of them are paused (whatever the filters).
    pub active: u64,
    pub paused: u64,
}

impl DagQuery {
    /// The page size asked for, within bounds.
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => 100,
            n => n.min(DAG_PAGE_MAX),
        }
    }

    /// The search text as a LIKE pattern matching it anywhere (`\` escapes
    /// the pattern characters it holds), lowercased.
    pub fn like_pattern(&self) -> Option<String> {
        let text = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())?;
        let mut out = String::from("%");
        for c in text.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('%');
        Some(out)
    }
}

#[derive(Clone, Debug)]
pub struct DagVersion {
    pub dag_id: DagId,
    pub version_hash: String,
    pub file: String,
    pub source: String,
    pub spec: Dag,
    pub created_at: Timestamp,
    pub origin: Option<Origin>,
}

/// One stored version of a DAG (its content hash), without the content.
#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    pub version_hash: String,
    pub file: String,
    pub created_at: Timestamp,
    pub origin: Option<Origin>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportError {
    pub file: String,
    pub dag_id: Option<String>,
    pub errors: Vec<DagError>,
    pub updated_at: Timestamp,
}

/// What deleting a DAG removes besides its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DagDeletion {
    /// Its versions, runs, task instances, attempts, log lines, schedule
    /// slots and backfills too.
    Everything,
    /// Only the DAG's row: its runs and all that hangs off them stay (and the
    /// versions they ran), readable by run id.
    KeepHistory,
}

/// What a deleted DAG was, and how much history went with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DagDeleted {
    /// The file it was loaded from.
    pub file: String,
    /// Whether a DAG processor saw that file at its last scan, or its git
    /// source's commit has it: then the DAG is stored again within ten seconds
    /// (or commit), unless the file is removed. Never for a pushed DAG.
    pub file_present: bool,
    pub runs: u64,
    pub task_instances: u64,
    pub attempts: u64,
    pub log_lines: u64,
    pub backfills: u64,
}

/// How a deletion went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteDag {
    Deleted(DagDeleted),
    /// No DAG of that id.
    NotFound,
    /// It has queued or running runs (these ids, oldest first, at most 20):
    /// nothing was deleted.
    Unfinished(Vec<RunId>),
}

/// DAG versions, import errors and the DAG rows.
#[async_trait]
pub trait Dags: Send + Sync + 'static {
    /// Records a successfully parsed DAG file: a new version if its content is new,
    /// the DAG row pointing at it, and no import error for the file. Returns whether
    /// the version was new. Refuses a DAG id that another active file already defines.
    /// A DAG stored for the first time is paused when its
    /// `is_paused_upon_creation` says so; an existing one keeps its pause.
    ///
    /// `owner` names the DAG processor (host and folder) recording it: see
    /// `sync_files`.
    async fn upsert_dag(
        &self,
        dag: &Dag,
        file: &str,
        source: &str,
        hash: &str,
        owner: &str,
    ) -> Result<bool>;

    /// Stores pushed DAG versions, all or none, as `by`'s: each a new
    /// version if its content is new, the DAG row pointing at it, owned by
    /// [`PUSH_OWNER`] (no folder scan retires it; only a deletion does).
    /// Refuses, storing none, a DAG id that a folder or a git source holds
    /// (an active row of another owner).
    async fn push_dags(&self, versions: &[NewVersion], by: &str) -> Result<Vec<Stored>>;

    /// Records the git source `spec` followed, or checks that the one of
    /// its name follows the same URL, reference and path (refused
    /// otherwise: two configurations under one name would undo each
    /// other's commits). Returns its row.
    async fn register_git_source(&self, spec: &GitSourceSpec) -> Result<SourceRow>;

    async fn get_source(&self, name: &str) -> Result<Option<SourceRow>>;

    async fn list_sources(&self) -> Result<Vec<SourceRow>>;

    /// Asks the followers of `name` to fetch at once (a git host's
    /// webhook). Returns false when no such source is followed.
    async fn request_refresh(&self, name: &str) -> Result<bool>;

    /// Stores a git commit's DAGs in one transaction, only if the source's
    /// stored commit is still `expected` (else [`GitApplied::Stale`], nothing
    /// written): its versions (a DAG id another source holds is refused and
    /// recorded as the file's import error), the source's DAGs it no longer
    /// has made inactive, the source's import errors replaced by the
    /// commit's, and the commit recorded.
    async fn apply_git_commit(&self, commit: &GitCommit) -> Result<GitApplied>;

    async fn record_import_errors(
        &self,
        file: &str,
        dag_id: Option<&str>,
        errors: &[DagError],
        owner: &str,
    ) -> Result<()>;

    /// For the DAG processor `owner`, whose folder now holds exactly `present`:
    /// marks the DAGs it recorded whose files are gone inactive, and drops its
    /// import errors of files that are gone. What other processors recorded is
    /// left alone (rows from before owners were recorded count as anyone's).
    ///
    /// Returns the files of `present` that no DAG row (active or not) and no
    /// import error names: a processor parses them again even if unchanged,
    /// so a DAG deleted while its file stays comes back.
    async fn sync_files(&self, owner: &str, present: &[String]) -> Result<Vec<String>>;

    /// Drops the import errors the DAG processor `owner` recorded, when it
    /// stops: a stopped processor's errors are nobody's to clear. Its DAGs
    /// stay (other schedulers and the workers keep running them).
    async fn drop_import_errors(&self, owner: &str) -> Result<()>;

    async fn list_dags(&self) -> Result<Vec<DagRow>>;

    /// One page of the DAGs a [`DagQuery`] matches, in id order, with how
    /// many it matches and the counts over every active DAG: what the DAG
    /// list shows, read through the store's indexes rather than every row.
    async fn dag_page(&self, q: &DagQuery) -> Result<DagPage>;

    /// Every tag an active DAG has, sorted, each once.
    async fn dag_tags(&self) -> Result<Vec<String>>;

    /// The DAGs whose row changed at or after `since` (a new version, a
    /// pause, a file gone: every change but the schedule's cursor moving),
    /// oldest change first, through an index on the change time: what a
    /// scheduler reads between its full looks. A deleted DAG is not listed.
    async fn dags_changed_since(&self, since: Timestamp) -> Result<Vec<DagRow>>;

    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>>;

    /// The rows of those of `dags` that exist, by DAG id.
    async fn get_dags(&self, dags: &[DagId]) -> Result<Vec<DagRow>>;

    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>>;

    /// A DAG's versions, newest first.
    async fn list_versions(&self, dag_id: &DagId) -> Result<Vec<VersionInfo>>;

    async fn list_import_errors(&self) -> Result<Vec<ImportError>>;

    /// Deletes a DAG, in one transaction, and with [`DagDeletion::Everything`]
    /// its history. Refused, deleting nothing, while it has a queued or
    /// running run.
    async fn delete_dag(&self, dag_id: &DagId, what: DagDeletion) -> Result<DeleteDag>;

    /// Returns false when the DAG does not exist.
    async fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<bool>;
}
