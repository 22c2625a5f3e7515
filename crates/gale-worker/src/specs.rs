//! The DAG versions a worker has read, by DAG id and version hash. A version
//! is read from the store once and serves every attempt of its runs; one
//! unused for [`KEPT_UNUSED`] is dropped (at a heartbeat), so a burst
//! over thousands of DAGs is served from memory while it lasts and the
//! memory is given back after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gale_model::schedule::Schedule;
use gale_model::template::PREV_NAMES;
use gale_model::{Dag, DagId, Task};

/// How long a version nobody used stays.
const KEPT_UNUSED: Duration = Duration::from_secs(30);
/// Most versions kept, whatever their use (a bound on memory, far above the
/// versions one burst uses).
const MOST: usize = 50_000;

/// A DAG version as its worker uses it: tasks found by id without a scan (a
/// fan-out of thousands of tasks would otherwise search its list per
/// attempt), its schedule parsed once (for `prev_ds`), and which of the
/// store's values each task's fields name.
pub(crate) struct Spec {
    pub dag: Dag,
    pub schedule: Option<Schedule>,
    by_id: HashMap<String, usize>,
    names: Vec<Names>,
}

/// Which values that cost a store read a task's fields name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Names {
    /// A `prev_*_success` value: the DAG's previous successful run.
    pub prev_success: bool,
    /// `tasks.<id>.outputs`: its upstream tasks' outputs.
    pub upstream_outputs: bool,
}

impl Names {
    fn of(task: &Task) -> Names {
        // Any template naming them spells them out; a field's own name (such
        // as `trigger_rule: all_success`) does not count.
        let Ok(fields) = serde_json::to_string(task) else {
            return Names {
                prev_success: true,
                upstream_outputs: true,
            };
        };
        Names {
            prev_success: PREV_NAMES
                .iter()
                .filter(|n| n.ends_with("_success"))
                .any(|n| fields.contains(n)),
            upstream_outputs: fields.contains("tasks"),
        }
    }
}

impl Spec {
    pub fn new(dag: Dag) -> Self {
        let by_id = dag
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str().to_owned(), i))
            .collect();
        let names = dag.tasks.iter().map(Names::of).collect();
        Spec {
            schedule: dag.parsed_schedule(),
            dag,
            by_id,
            names,
        }
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.by_id.get(id).map(|&i| &self.dag.tasks[i])
    }

    /// Which store-read values the task's fields name (all, for a task not
    /// in this version).
    pub fn names(&self, id: &str) -> Names {
        self.by_id
            .get(id)
            .and_then(|&i| self.names.get(i).copied())
            .unwrap_or(Names {
                prev_success: true,
                upstream_outputs: true,
            })
    }
}

type Key = (DagId, String);

#[derive(Default)]
pub(crate) struct Specs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    kept: HashMap<Key, (Arc<Spec>, Instant)>,
    swept: Option<Instant>,
}

impl Specs {
    pub fn get(&self, dag_id: &DagId, hash: &str) -> Option<Arc<Spec>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (dag_id.clone(), hash.to_owned());
        let (spec, used) = inner.kept.get_mut(&key)?;
        *used = Instant::now();
        Some(spec.clone())
    }

    pub fn insert(&self, dag_id: &DagId, hash: &str, spec: Arc<Spec>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.kept.len() >= MOST {
            inner.kept.clear();
        }
        inner
            .kept
            .insert((dag_id.clone(), hash.to_owned()), (spec, Instant::now()));
    }

    /// Drops the versions unused for [`KEPT_UNUSED`]; looks at most once per
    /// [`KEPT_UNUSED`] / 2.
    pub fn sweep(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if inner.swept.is_some_and(|at| now - at < KEPT_UNUSED / 2) {
            return;
        }
        inner.swept = Some(now);
        inner.kept.retain(|_, (_, used)| now - *used < KEPT_UNUSED);
        if inner.kept.is_empty() {
            inner.kept.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kept
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(id: &str) -> Dag {
        let source = format!(
            "id: {id}\nschedule: '*/5 * * * *'\ntasks:\n  a:\n    run: echo {{{{ prev_start_date_success }}}}\n  b:\n    run: 'true'\n  c:\n    needs: [b]\n    run: echo {{{{ tasks.b.outputs.x }}}}\n"
        );
        gale_model::dag::parse(&format!("{id}.yaml"), id, &source).expect("a DAG")
    }

    #[test]
    fn a_version_is_parsed_once_and_kept_while_used() {
        let specs = Specs::default();
        let spec = Arc::new(Spec::new(dag("d")));
        assert!(
            spec.schedule.is_some(),
            "the schedule is parsed with the version"
        );
        let a = spec.names("a");
        assert!(a.prev_success && !a.upstream_outputs, "{a:?}");
        assert_eq!(spec.names("b"), Names::default(), "`true` names nothing");
        assert!(spec.names("c").upstream_outputs);
        let id = DagId("d".into());
        assert!(specs.get(&id, "h1").is_none());
        specs.insert(&id, "h1", spec.clone());
        let got = specs.get(&id, "h1").expect("kept");
        assert!(Arc::ptr_eq(&got, &spec));
        assert!(
            specs.get(&id, "h2").is_none(),
            "another version is another entry"
        );
        // Used a moment ago: a sweep keeps it.
        specs.sweep();
        assert_eq!(specs.len(), 1);
    }

    #[test]
    fn a_sweep_drops_what_nobody_used() {
        let specs = Specs::default();
        let id = DagId("d".into());
        specs.insert(&id, "h1", Arc::new(Spec::new(dag("d"))));
        {
            let mut inner = specs.inner.lock().unwrap();
            for (_, used) in inner.kept.values_mut() {
                *used = used.checked_sub(KEPT_UNUSED).expect("up for over 30 s");
            }
        }
        specs.sweep();
        assert_eq!(specs.len(), 0, "unused for 30 s: dropped");
        assert!(specs.get(&id, "h1").is_none());
    }
}
