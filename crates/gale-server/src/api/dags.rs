//! DAGs: list, detail, pause, source, versions, import errors and the
//! schedule-slot ledger.

use axum::extract::State;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, Shared, dag_id_of, limit_of};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::secrets::{mask_params, source_for};

#[derive(Serialize, ToSchema)]
pub struct Dag {
    pub dag_id: String,
    pub file: String,
    pub version_hash: String,
    pub paused: bool,
    /// False once its file left the DAG folder.
    pub active: bool,
    pub schedule: Option<String>,
    /// The schedule in words.
    pub schedule_words: Option<String>,
    pub timezone: String,
    pub max_active_runs: u32,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// When the next scheduled run is due (its interval's end).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Where its current version came from.
    pub source: OriginOut,
}

/// Where a DAG version came from.
#[derive(Clone, Serialize, ToSchema)]
pub struct OriginOut {
    /// `folder`, `push` or `git`.
    pub kind: String,
    /// The folder's processor (`host:folder`) or the git source's name.
    pub name: Option<String>,
    /// Who pushed it.
    pub by: Option<String>,
    /// The git commit it was stored from.
    pub commit: Option<String>,
}

impl OriginOut {
    /// The origin recorded, else (a version stored before origins were) the
    /// kind its owner says.
    pub fn of(origin: Option<&gale_store::Origin>, owner: gale_store::OwnerKind) -> OriginOut {
        use gale_store::Origin;
        let none = |kind: &str| OriginOut {
            kind: kind.into(),
            name: None,
            by: None,
            commit: None,
        };
        match origin {
            Some(Origin::Folder { processor }) => OriginOut {
                name: Some(processor.clone()),
                ..none("folder")
            },
            Some(Origin::Push { by }) => OriginOut {
                by: Some(by.clone()),
                ..none("push")
            },
            Some(Origin::Git { source, commit }) => OriginOut {
                name: Some(source.clone()),
                commit: Some(commit.clone()),
                ..none("git")
            },
            None => none(match owner {
                gale_store::OwnerKind::Folder => "folder",
                gale_store::OwnerKind::Push => "push",
                gale_store::OwnerKind::Git => "git",
            }),
        }
    }

    /// In words: `folder`, `push by alice`, `git pipelines@1a2b3c4d5e6f`.
    pub fn words(&self) -> String {
        match (self.kind.as_str(), &self.by, &self.name, &self.commit) {
            ("push", Some(by), _, _) => format!("push by {by}"),
            ("git", _, Some(name), Some(commit)) => {
                format!("git {name}@{}", &commit[..commit.len().min(12)])
            }
            (kind, _, _, _) => kind.to_owned(),
        }
    }
}

pub(super) fn dag_out(
    row: &gale_store::DagRow,
    spec: Option<&gale_model::Dag>,
    now: Timestamp,
) -> Dag {
    let sched = spec.and_then(crate::next_run::schedule_of);
    Dag {
        dag_id: row.dag_id.0.clone(),
        file: row.file.clone(),
        version_hash: row.version_hash.clone(),
        paused: row.paused,
        active: row.active,
        schedule: row.schedule.clone(),
        schedule_words: sched.map(|s| s.words.clone()),
        timezone: row.timezone.clone(),
        max_active_runs: row.max_active_runs,
        description: row.description.clone(),
        tags: row.tags.clone(),
        next_run: spec
            .filter(|_| row.active && !row.paused)
            .and_then(|s| crate::next_run::next_run(row, s, now)),
        updated_at: row.updated_at,
        source: OriginOut::of(row.origin.as_ref(), row.owner_kind()),
    }
}

#[derive(Serialize, ToSchema)]
pub struct DagList {
    pub dags: Vec<Dag>,
    /// How many DAGs match the filters (before paging).
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

impl From<gale_store::ImportError> for ImportErrorOut {
    fn from(e: gale_store::ImportError) -> ImportErrorOut {
        ImportErrorOut {
            file: e.file,
            dag_id: e.dag_id,
            errors: e.errors.iter().map(ToString::to_string).collect(),
            updated_at: e.updated_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagQuery {
    /// Substring of the DAG id or description (case-insensitive).
    pub q: Option<String>,
    /// Only DAGs with this tag.
    pub tag: Option<String>,
    pub paused: Option<bool>,
    /// Include DAGs whose file is gone (default false).
    pub include_inactive: Option<bool>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskSpec {
    pub task_id: String,
    /// `shell` or `http`.
    pub kind: String,
    pub needs: Vec<String>,
    pub trigger_rule: String,
    pub retries: u32,
    pub queue: String,
    pub pool: Option<String>,
    pub priority: i32,
}

#[derive(Serialize, ToSchema)]
pub struct DagDetail {
    #[serde(flatten)]
    pub dag: Dag,
    pub tasks: Vec<TaskSpec>,
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    pub max_active_tasks: Option<u32>,
    pub catchup: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagPatch {
    /// Pause (stop creating runs) or unpause.
    pub paused: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DagSource {
    pub dag_id: String,
    pub version_hash: String,
    pub file: String,
    pub source: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceQuery {
    /// A version hash (default: the current version).
    pub version: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DagVersionInfo {
    pub version_hash: String,
    pub file: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub source: OriginOut,
}

#[derive(Serialize, ToSchema)]
pub struct ImportErrorOut {
    pub file: String,
    pub dag_id: Option<String>,
    /// `file:line:column: message`, one per error.
    pub errors: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Slot {
    #[schema(value_type = String, format = DateTime)]
    pub logical_date: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub interval_end: Timestamp,
    /// `run`, `skipped` or `missed`.
    pub status: String,
    pub run_id: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
}

/// DAGs, filtered and paged, in id order.
#[utoipa::path(get, path = "/api/v1/dags", tag = "dags", params(DagQuery),
    responses((status = 200, body = DagList), (status = 400, body = Problem)))]
pub(super) async fn list_dags(
    State(s): Shared,
    Query(q): Query<DagQuery>,
) -> ApiResult<Json<DagList>> {
    let limit = limit_of(
        q.limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
        100,
        1000,
    )? as usize;
    let offset = q.offset.unwrap_or(0);
    let now = s.store.now().await?;
    let found = s
        .store
        .dag_page(&gale_store::DagQuery {
            search: q.q.clone(),
            tag: q.tag.clone(),
            paused: q.paused,
            include_inactive: q.include_inactive.unwrap_or(false),
            offset: offset as u64,
            limit: u32::try_from(limit).unwrap_or(gale_store::DAG_PAGE_MAX),
        })
        .await?;
    let total = usize::try_from(found.matched).unwrap_or(usize::MAX);
    let page = found.dags;
    let mut dags = Vec::with_capacity(page.len());
    for row in &page {
        let spec = s.store.get_version(&row.dag_id, &row.version_hash).await?;
        dags.push(dag_out(row, spec.as_ref().map(|v| &v.spec), now));
    }
    Ok(Json(DagList {
        dags,
        total,
        limit,
        offset,
    }))
}

/// One DAG with its tasks (current version).
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = DagDetail), (status = 404, body = Problem)))]
pub(super) async fn get_dag(
    State(s): Shared,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<DagDetail>> {
    let dag_id = dag_id_of(dag_id)?;
    let (row, version) = gale_actions::current_dag(&*s.store, &dag_id).await?;
    let now = s.store.now().await?;
    let spec = &version.spec;
    Ok(Json(DagDetail {
        dag: dag_out(&row, Some(spec), now),
        tasks: spec
            .tasks
            .iter()
            .map(|t| TaskSpec {
                task_id: t.id.0.clone(),
                kind: match t.kind {
                    gale_model::dag::TaskKind::Shell { .. } => "shell".into(),
                    gale_model::dag::TaskKind::Http(_) => "http".into(),
                },
                needs: t.needs.iter().map(|n| n.0.clone()).collect(),
                trigger_rule: serde_json::to_value(t.trigger_rule)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                retries: t.retries,
                queue: t.queue.clone(),
                pool: t.pool.clone(),
                priority: t.priority,
            })
            .collect(),
        params: mask_params(spec, &spec.params),
        max_active_tasks: spec.max_active_tasks,
        catchup: spec.catchup,
    }))
}

/// Pause or unpause a DAG.
#[utoipa::path(patch, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path)), request_body = DagPatch,
    responses((status = 200, body = Dag), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn patch_dag(
    State(s): Shared,
    caller: Caller,
    Path(dag_id): Path<String>,
    Json(patch): Json<DagPatch>,
) -> ApiResult<Json<Dag>> {
    let dag_id = dag_id_of(dag_id)?;
    gale_actions::set_paused(&*s.store, &caller.actor(), &dag_id, patch.paused).await?;
    let (row, version) = gale_actions::current_dag(&*s.store, &dag_id).await?;
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok(Json(dag_out(
        &row,
        Some(&version.spec),
        s.store.now().await?,
    )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteDagQuery {
    /// Keep its runs, task instances, logs and backfills (default false).
    pub keep_history: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct DagDeletedOut {
    pub dag_id: String,
    /// The file it was loaded from.
    pub file: String,
    /// Whether a DAG processor saw the file at its last scan: then the DAG
    /// is stored again at its next one, unless the file is removed.
    pub file_present: bool,
    /// What went with it (all 0 with `keep_history`).
    pub runs: u64,
    pub task_instances: u64,
    pub attempts: u64,
    pub log_lines: u64,
    pub backfills: u64,
    /// Said when the DAG comes back (within ten seconds, or at its git source's next commit).
    pub note: Option<String>,
}

/// Delete a DAG and, unless `keep_history`, its runs, task instances, logs
/// and backfills (operators and admins; refused while it has a queued or
/// running run).
#[utoipa::path(delete, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path), DeleteDagQuery),
    responses((status = 200, body = DagDeletedOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn delete_dag(
    State(s): Shared,
    caller: Caller,
    Path(dag_id): Path<String>,
    Query(q): Query<DeleteDagQuery>,
) -> ApiResult<Json<DagDeletedOut>> {
    let dag_id = dag_id_of(dag_id)?;
    let what = if q.keep_history.unwrap_or(false) {
        gale_store::DagDeletion::KeepHistory
    } else {
        gale_store::DagDeletion::Everything
    };
    let d = gale_actions::delete_dag(&*s.store, &caller.actor(), &dag_id, what).await?;
    Ok(Json(DagDeletedOut {
        note: gale_actions::comes_back_note(&dag_id, &d),
        dag_id: dag_id.0,
        file: d.file,
        file_present: d.file_present,
        runs: d.runs,
        task_instances: d.task_instances,
        attempts: d.attempts,
        log_lines: d.log_lines,
        backfills: d.backfills,
    }))
}

/// The DAG file's text, of the current or a given version.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/source", tag = "dags",
    params(("dag_id" = String, Path), SourceQuery),
    responses((status = 200, body = DagSource), (status = 404, body = Problem)))]
pub(super) async fn dag_source(
    State(s): Shared,
    caller: super::Caller,
    Path(dag_id): Path<String>,
    Query(q): Query<SourceQuery>,
) -> ApiResult<Json<DagSource>> {
    let dag_id = dag_id_of(dag_id)?;
    let hash = match q.version {
        Some(h) => h,
        None => {
            s.store
                .get_dag(&dag_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no DAG {dag_id}")))?
                .version_hash
        }
    };
    let v = s
        .store
        .get_version(&dag_id, &hash)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{dag_id} has no version {hash:?}")))?;
    Ok(Json(DagSource {
        dag_id: dag_id.0,
        version_hash: v.version_hash,
        source: source_for(&v.source, &v.spec, caller.role),
        file: v.file,
    }))
}

/// Every stored version of a DAG, newest first.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/versions", tag = "dags",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = Vec<DagVersionInfo>), (status = 404, body = Problem)))]
pub(super) async fn dag_versions(
    State(s): Shared,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<Vec<DagVersionInfo>>> {
    let dag_id = dag_id_of(dag_id)?;
    let versions = s.store.list_versions(&dag_id).await?;
    if versions.is_empty() && s.store.get_dag(&dag_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no DAG {dag_id}")));
    }
    Ok(Json(
        versions
            .into_iter()
            .map(|v| DagVersionInfo {
                source: OriginOut::of(v.origin.as_ref(), owner_of_file(&v.file)),
                version_hash: v.version_hash,
                file: v.file,
                created_at: v.created_at,
            })
            .collect(),
    ))
}

/// What kind of source stored a version of `file` (for versions stored
/// before origins were recorded: pushed and git files' names say so).
pub fn owner_of_file(file: &str) -> gale_store::OwnerKind {
    if file.starts_with("push:") {
        gale_store::OwnerKind::Push
    } else if file.starts_with("git:") {
        gale_store::OwnerKind::Git
    } else {
        gale_store::OwnerKind::Folder
    }
}

/// DAG files that failed to load, with `file:line:column` errors.
#[utoipa::path(get, path = "/api/v1/import-errors", tag = "dags",
    responses((status = 200, body = Vec<ImportErrorOut>)))]
pub(super) async fn import_errors(State(s): Shared) -> ApiResult<Json<Vec<ImportErrorOut>>> {
    Ok(Json(
        s.store
            .list_import_errors()
            .await?
            .into_iter()
            .map(ImportErrorOut::from)
            .collect(),
    ))
}

/// The schedule-slot ledger of a DAG, newest first: each slot once, as `run`,
/// `skipped` or `missed`.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/slots", tag = "dags",
    params(("dag_id" = String, Path), LimitQuery),
    responses((status = 200, body = Vec<Slot>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn dag_slots(
    State(s): Shared,
    Path(dag_id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Json<Vec<Slot>>> {
    let limit = limit_of(q.limit, 100, 1000)?;
    let dag_id = dag_id_of(dag_id)?;
    if s.store.get_dag(&dag_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no DAG {dag_id}")));
    }
    Ok(Json(
        s.store
            .list_slots(&dag_id, limit)
            .await?
            .into_iter()
            .map(|x| Slot {
                logical_date: x.logical_date,
                interval_end: x.interval_end,
                status: x.status.as_str().into(),
                run_id: x.run_id.map(|r| r.0),
                recorded_at: x.recorded_at,
            })
            .collect(),
    ))
}
