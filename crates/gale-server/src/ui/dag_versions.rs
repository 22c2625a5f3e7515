//! The source tab's comparison of two versions: what tasks and fields
//! changed, and the file's changed lines with their context.

use gale_model::DagId;
use gale_model::dag::diff::{self, LineKind};
use gale_store::Store;

use super::UiError;
use super::format;
use crate::auth::url_escape;

/// Unchanged lines shown around each change.
const CONTEXT: usize = 3;

pub(crate) struct ChangeLine {
    /// The field's path (`schedule`, `params.region`, `run`).
    pub field: String,
    pub before: String,
    pub after: String,
}

pub(crate) struct TaskChangeLines {
    pub task_id: String,
    pub changes: Vec<ChangeLine>,
}

pub(crate) struct DiffLine {
    /// `same`, `added` or `removed`.
    pub kind: &'static str,
    pub old_line: String,
    pub new_line: String,
    pub text: String,
}

pub(crate) struct DiffView {
    pub from_short: String,
    pub from_href: String,
    pub from_source: String,
    pub to_short: String,
    pub to_source: String,
    pub same: bool,
    pub fields: Vec<ChangeLine>,
    pub tasks_added: Vec<String>,
    pub tasks_removed: Vec<String>,
    pub tasks_changed: Vec<TaskChangeLines>,
    pub hunks: Vec<Vec<DiffLine>>,
}

fn value_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn change_lines(changes: &[diff::Change]) -> Vec<ChangeLine> {
    changes
        .iter()
        .map(|c| ChangeLine {
            field: c.field.clone(),
            before: value_text(c.before.as_ref()),
            after: value_text(c.after.as_ref()),
        })
        .collect()
}

/// The comparison of `against` (a hash, `previous` or `last_success`) with
/// the shown version `shown`.
pub(crate) async fn diff_view(
    store: &dyn Store,
    dag_id: &DagId,
    shown: &str,
    against: &str,
    role: gale_store::Role,
) -> Result<DiffView, UiError> {
    let c = crate::versions::compare(store, dag_id, against, shown, role)
        .await
        .map_err(|e| match e {
            gale_actions::Error::NotFound(m) => UiError::NotFound(m),
            gale_actions::Error::Store(e) => e.into(),
            other => UiError::BadRequest(other.to_string()),
        })?;
    let source = |v: &gale_store::DagVersion| {
        crate::api::dags::OriginOut::of(v.origin.as_ref(), crate::api::dags::owner_of_file(&v.file))
            .words()
    };
    let hunks = diff::hunks(&c.lines, CONTEXT)
        .into_iter()
        .map(|hunk| {
            hunk.into_iter()
                .map(|l| DiffLine {
                    kind: match l.kind {
                        LineKind::Same => "same",
                        LineKind::Added => "added",
                        LineKind::Removed => "removed",
                    },
                    old_line: l.old_line.map(|n| n.to_string()).unwrap_or_default(),
                    new_line: l.new_line.map(|n| n.to_string()).unwrap_or_default(),
                    text: l.text,
                })
                .collect()
        })
        .collect();
    Ok(DiffView {
        from_short: format::short_hash(&c.from.version_hash).to_owned(),
        from_href: format!(
            "/dags/{}?tab=source&version={}",
            url_escape(&dag_id.0),
            url_escape(&c.from.version_hash)
        ),
        from_source: source(&c.from),
        to_short: format::short_hash(&c.to.version_hash).to_owned(),
        to_source: source(&c.to),
        same: c.from.version_hash == c.to.version_hash,
        fields: change_lines(&c.diff.fields),
        tasks_added: c.diff.tasks_added,
        tasks_removed: c.diff.tasks_removed,
        tasks_changed: c
            .diff
            .tasks_changed
            .iter()
            .map(|t| TaskChangeLines {
                task_id: t.task_id.clone(),
                changes: change_lines(&t.changes),
            })
            .collect(),
        hunks,
    })
}
