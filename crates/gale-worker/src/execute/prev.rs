//! Airflow's `prev_*` template names for one attempt: the previous schedule
//! slot's date (`prev_ds`, `prev_ds_nodash`, from the DAG's schedule) and the
//! DAG's previous successful run (`prev_data_interval_start_success`,
//! `prev_data_interval_end_success`, `prev_start_date_success`), read from
//! the store only for a task whose fields name one of them.

use gale_model::RunState;
use gale_model::schedule::Schedule;
use gale_model::template::PREV_NAMES;
use gale_model::time::rfc3339;
use gale_store::{RunFilter, RunRow};
use serde_json::{Map, Value};

use super::Shared;
use crate::WorkerStore;

/// The names every attempt has: the schedule's, and `null` for the rest.
pub(super) fn names(schedule: Option<&Schedule>, run: &RunRow) -> Map<String, Value> {
    let mut out: Map<String, Value> = PREV_NAMES
        .iter()
        .map(|n| ((*n).to_owned(), Value::Null))
        .collect();
    if let Some(prev) = schedule.and_then(|s| s.prev_before(run.logical_date)) {
        out.insert(
            "prev_ds".into(),
            prev.strftime("%Y-%m-%d").to_string().into(),
        );
        out.insert(
            "prev_ds_nodash".into(),
            prev.strftime("%Y%m%d").to_string().into(),
        );
    }
    out
}

/// Fills in the previous successful run's names (for a task that uses
/// them). A store that cannot answer leaves them `null`.
pub(super) async fn success<S: WorkerStore + ?Sized>(
    shared: &Shared<S>,
    run: &RunRow,
    names: &mut Map<String, Value>,
) {
    let filter = RunFilter {
        dag_id: Some(run.dag_id.clone()),
        state: Some(RunState::Success),
        before: Some(run.id),
        limit: 1,
        ..RunFilter::default()
    };
    let Ok(runs) = shared.store.list_runs(&filter).await else {
        return;
    };
    if let Some(prev) = runs.first() {
        names.insert(
            "prev_data_interval_start_success".into(),
            rfc3339(prev.interval_start).into(),
        );
        names.insert(
            "prev_data_interval_end_success".into(),
            rfc3339(prev.interval_end).into(),
        );
        if let Some(at) = prev.started_at {
            names.insert("prev_start_date_success".into(), rfc3339(at).into());
        }
    }
}
