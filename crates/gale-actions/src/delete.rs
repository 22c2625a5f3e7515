//! Deleting a DAG: its row and, unless its history is kept, its versions,
//! runs, task instances, attempts, log lines, schedule slots and backfills.
//! Refused while it has a queued or running run, so no running task loses
//! the rows its worker reports to. A DAG whose file is still in a folder a
//! DAG processor scans is stored again within ten seconds (the processor tells
//! the store of its files every ten seconds), as in Airflow: the caller says so.

use gale_model::DagId;
use gale_store::{AuditAction, DagDeleted, DagDeletion, DeleteDag};
use serde_json::json;

use crate::audit::{Actor, audited, detail};
use crate::{ActionStore, Error, Result};

/// Deletes a DAG (with its history unless `what` keeps it); one that does
/// not exist is `NotFound`, one with unfinished runs a `Conflict` naming them.
pub async fn delete_dag(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    dag_id: &DagId,
    what: DagDeletion,
) -> Result<DagDeleted> {
    let result = match store.delete_dag(dag_id, what).await {
        Ok(DeleteDag::Deleted(d)) => Ok(d),
        Ok(DeleteDag::NotFound) => Err(Error::NotFound(format!("no DAG {dag_id}"))),
        Ok(DeleteDag::Unfinished(runs)) => {
            let ids: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
            Err(Error::Conflict(format!(
                "{dag_id} has unfinished runs ({}): cancel them first (`gale runs cancel RUN_ID`), \
                 and pause the DAG so that no new one starts",
                ids.join(", ")
            )))
        }
        Err(e) => Err(e.into()),
    };
    let keep = what == DagDeletion::KeepHistory;
    audited(
        store,
        actor,
        AuditAction::DagDelete,
        &format!("dag/{dag_id}"),
        detail([("keep_history", json!(keep))]),
        result,
        |d, out| {
            out.insert("runs".into(), json!(d.runs));
            out.insert("task_instances".into(), json!(d.task_instances));
            out.insert("log_lines".into(), json!(d.log_lines));
            out.insert("backfills".into(), json!(d.backfills));
            out.insert("file_present".into(), json!(d.file_present));
        },
    )
    .await
}

/// What to tell the person who deleted a DAG whose file is still scanned.
pub fn comes_back_note(dag_id: &DagId, deleted: &DagDeleted) -> Option<String> {
    if !deleted.file_present {
        return None;
    }
    Some(match deleted.file.strip_prefix("git:") {
        Some(path) => format!(
            "{dag_id}'s file {path} is still in its git source: it is stored again (with no \
             history) with the source's next commit unless the file is removed there"
        ),
        None => format!(
            "{dag_id}'s file {} is still in a DAG folder: it is stored again (with no history) \
             within ten seconds unless the file is removed",
            deleted.file
        ),
    })
}
