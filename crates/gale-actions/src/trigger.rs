//! Triggering a manual run of a DAG's current version.

use gale_model::{DagId, schedule};
use gale_store::{AuditAction, NewRun, RunRow};
use serde_json::{Value, json};

use crate::audit::{Actor, audited, conf_keys, detail};
use crate::{ActionStore, Error, Result, current_dag};

/// Creates a manual run of the DAG's current version with `conf` (checked
/// against the DAG's declared params, and merged over their defaults when
/// tasks render) at `logical_date` (default: now, in the DAG's time zone
/// unless the text has an offset). The audit entry names the conf's keys,
/// never its values.
pub async fn trigger(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    dag_id: &DagId,
    conf: serde_json::Map<String, Value>,
    logical_date: Option<&str>,
) -> Result<RunRow> {
    let mut about = detail([("conf_keys", conf_keys(&conf))]);
    if let Some(d) = logical_date {
        about.insert("logical_date".into(), json!(d));
    }
    let result = create(store, dag_id, conf, logical_date).await;
    audited(
        store,
        actor,
        AuditAction::RunTrigger,
        &format!("dag/{dag_id}"),
        about,
        result,
        |run, d| {
            d.insert("run_id".into(), json!(run.id.0));
            d.insert("run_key".into(), json!(run.run_key));
        },
    )
    .await
}

async fn create(
    store: &(impl ActionStore + ?Sized),
    dag_id: &DagId,
    conf: serde_json::Map<String, Value>,
    logical_date: Option<&str>,
) -> Result<RunRow> {
    let (row, version) = current_dag(store, dag_id).await?;
    if !row.active {
        return Err(Error::Conflict(format!(
            "DAG {dag_id} was removed (its file {} is gone): put the file back to run it",
            row.file
        )));
    }
    // Declared params only, each as its spec allows: a conf value reaches a
    // task's command only through a param its DAG names.
    gale_model::params::check_conf(version.spec.accepts(), &conf)
        .map_err(|errors| Error::Invalid(format!("conf: {}", errors.join("; "))))?;
    let now = store.now().await?;
    let logical = match logical_date {
        Some(text) => {
            let tz = schedule::time_zone(&version.spec.timezone).map_err(Error::Invalid)?;
            schedule::parse_date(text, &tz)
                .map_err(|e| Error::Invalid(format!("logical date: {e}")))?
        }
        None => now,
    };
    let run = NewRun::manual(dag_id, &row.version_hash, &version.spec, logical, conf);
    let Some(run_id) = store.create_run(&run).await.map_err(gone)? else {
        return Err(Error::Conflict(format!(
            "{dag_id} already has a manual run at {logical}: pick another logical date"
        )));
    };
    store
        .get_run(run_id)
        .await?
        .ok_or_else(|| Error::Inconsistent(format!("run {run_id} vanished")))
}

/// `create_run`'s refusal of a DAG deleted since it was read: not found.
pub(crate) fn gone(e: gale_store::Error) -> Error {
    match e {
        gale_store::Error::Invalid(m) => Error::NotFound(m),
        e => e.into(),
    }
}
