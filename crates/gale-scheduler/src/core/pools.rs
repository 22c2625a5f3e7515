//! Pools that tasks name but nobody created: their task instances wait in
//! `scheduled` until `gale pools set` creates them, so the scheduler says so.

use std::collections::HashSet;

use gale_model::{Dag, DagId};

/// One task that names a pool that does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingPool {
    pub dag_id: DagId,
    pub task_id: String,
    pub pool: String,
}

/// Each (DAG, pool) pair of `dags` naming a pool not in `pools` and not in
/// `warned` yet, added to `warned` (so each is reported once per process).
pub fn missing_pools<'a>(
    dags: impl IntoIterator<Item = (&'a DagId, &'a Dag)>,
    pools: &HashSet<String>,
    warned: &mut HashSet<(DagId, String)>,
) -> Vec<MissingPool> {
    let mut missing = Vec::new();
    for (dag_id, dag) in dags {
        for task in &dag.tasks {
            if let Some(pool) = &task.pool
                && !pools.contains(pool)
                && warned.insert((dag_id.clone(), pool.clone()))
            {
                missing.push(MissingPool {
                    dag_id: dag_id.clone(),
                    task_id: task.id.to_string(),
                    pool: pool.clone(),
                });
            }
        }
    }
    missing
}
