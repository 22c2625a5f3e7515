//! DAGs: the versions the DAG processor stores, import errors, which files
//! are still present, and pausing.

use async_trait::async_trait;
use gale_model::{Dag, DagError, DagId, RunId};
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

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
}

#[derive(Clone, Debug)]
pub struct DagVersion {
    pub dag_id: DagId,
    pub version_hash: String,
    pub file: String,
    pub source: String,
    pub spec: Dag,
    pub created_at: Timestamp,
}

/// One stored version of a DAG (its content hash), without the content.
#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    pub version_hash: String,
    pub file: String,
    pub created_at: Timestamp,
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
    /// Whether a DAG processor saw that file at its last scan: then the DAG is
    /// stored again at its next one, unless the file is removed.
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

    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>>;

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
