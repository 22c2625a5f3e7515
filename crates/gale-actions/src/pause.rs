//! Pausing a DAG (no new runs are created; running ones finish) and
//! unpausing it.

use gale_model::DagId;
use gale_store::AuditAction;

use crate::audit::{Actor, audited};
use crate::{ActionStore, Error, Result};

/// Pauses or unpauses a DAG; one that does not exist is `NotFound`.
pub async fn set_paused(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    dag_id: &DagId,
    paused: bool,
) -> Result<()> {
    let result = match store.set_paused(dag_id, paused).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotFound(format!("no DAG {dag_id}"))),
        Err(e) => Err(e.into()),
    };
    let action = if paused {
        AuditAction::DagPause
    } else {
        AuditAction::DagUnpause
    };
    let target = format!("dag/{dag_id}");
    audited(
        store,
        actor,
        action,
        &target,
        serde_json::Map::new(),
        result,
        |_, _| {},
    )
    .await
}
