//! What changed between two versions of a DAG.

use axum::extract::State;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dags::{OriginOut, owner_of_file};
use super::{Caller, Shared, dag_id_of};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The older version: a hash (or its first 6+ digits), `previous` (the
    /// one stored before `to`; the default, or `to` itself when it is the
    /// first), `last_success` (what the newest successful run ran) or
    /// `current`.
    pub from: Option<String>,
    /// The newer version, named as `from` is (default `current`).
    pub to: Option<String>,
    /// Unchanged lines shown around each change of the file (0–20, default 3).
    #[param(minimum = 0, maximum = 20)]
    pub context: Option<u32>,
}

/// One side of a comparison.
#[derive(Serialize, ToSchema)]
pub struct VersionRef {
    pub version_hash: String,
    pub file: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub source: OriginOut,
}

impl From<&gale_store::DagVersion> for VersionRef {
    fn from(v: &gale_store::DagVersion) -> VersionRef {
        VersionRef {
            version_hash: v.version_hash.clone(),
            file: v.file.clone(),
            created_at: v.created_at,
            source: OriginOut::of(v.origin.as_ref(), owner_of_file(&v.file)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct VersionDiff {
    pub dag_id: String,
    pub from: VersionRef,
    pub to: VersionRef,
    /// DAG settings changed: `{field, before, after}` (a field absent on one
    /// side has no `before` or `after`).
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<gale_model::dag::diff::Change>,
    pub tasks_added: Vec<String>,
    pub tasks_removed: Vec<String>,
    /// Each changed task: `{task_id, changes: [{field, before, after}]}`.
    #[schema(value_type = Vec<Object>)]
    pub tasks_changed: Vec<gale_model::dag::diff::TaskChange>,
    /// The file's changed lines with their context, as hunks of
    /// `{kind: same|added|removed, old_line, new_line, text}`.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub hunks: Vec<Vec<gale_model::dag::diff::Line>>,
}

/// What changed between two versions of a DAG: its settings, its tasks
/// (added, removed, and each changed field), and the file's lines. By
/// default the current version against the one before it;
/// `from=last_success` is what changed since the newest successful run.
/// Secret values are `***` for all but admins.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/diff", tag = "dags",
    params(("dag_id" = String, Path), DiffQuery),
    responses((status = 200, body = VersionDiff), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
pub(super) async fn dag_diff(
    State(s): Shared,
    caller: Caller,
    Path(dag_id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<VersionDiff>> {
    let dag_id = dag_id_of(dag_id)?;
    let context = q.context.unwrap_or(3);
    if context > 20 {
        return Err(ApiError::bad_request("context must be 0 to 20"));
    }
    let to = q.to.as_deref().unwrap_or(crate::versions::CURRENT);
    let c = match q.from.as_deref() {
        Some(from) => crate::versions::compare(&*s.store, &dag_id, from, to, caller.role).await?,
        // By default the version before; a first version is compared with
        // itself (nothing changed), not refused.
        None => match crate::versions::compare(
            &*s.store,
            &dag_id,
            crate::versions::PREVIOUS,
            to,
            caller.role,
        )
        .await
        {
            Err(gale_actions::Error::NotFound(m)) if m.contains("no version before") => {
                crate::versions::compare(&*s.store, &dag_id, to, to, caller.role).await?
            }
            other => other?,
        },
    };
    Ok(Json(VersionDiff {
        dag_id: dag_id.0,
        from: (&c.from).into(),
        to: (&c.to).into(),
        fields: c.diff.fields,
        tasks_added: c.diff.tasks_added,
        tasks_removed: c.diff.tasks_removed,
        tasks_changed: c.diff.tasks_changed,
        hunks: gale_model::dag::diff::hunks(&c.lines, context as usize),
    }))
}
