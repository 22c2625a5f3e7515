//! An in-memory world for the step harness: DAGs, runs, task instances, the slot
//! ledger and pools, with the conditional-write rules the stores keep (the
//! conformance suite holds the real stores to them), a fake clock, and a worker
//! that claims, succeeds, fails and goes silent on command. `step` is one
//! scheduler pass: the same calls into the core as the shell makes, in the same
//! order (the shell's own loop is only the reading and writing around
//! `core::Rounds`), with every write rendered as a line (`(not applied)` when
//! its conditional write changed nothing).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use gale_model::time::rfc3339;
use gale_model::{Dag, DagId, RunId, RunState, TaskId, TaskState};
use gale_store::{DagRow, Reap, RunRow, RunType, SlotStatus, TaskRow, TiId};
use jiff::{SignedDuration, Timestamp};

use crate::core::{self, DueDag, Rounds, RunAction, Tracker, topo_order, track};

struct WorldDag {
    row: DagRow,
    dag: Dag,
    order: Vec<usize>,
}

pub struct World {
    pub now: Timestamp,
    pub lease: Duration,
    dags: Vec<WorldDag>,
    runs: Vec<RunRow>,
    tasks: Vec<TaskRow>,
    /// The slot ledger: (DAG, slot start) -> (end, status).
    slots: BTreeMap<(DagId, Timestamp), (Timestamp, SlotStatus)>,
    pools: BTreeMap<String, u32>,
    tracker: Tracker,
    agenda: core::Agenda,
}

pub fn ts(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

impl World {
    pub fn at(now: &str) -> World {
        World {
            now: ts(now),
            lease: Duration::from_secs(10),
            dags: Vec::new(),
            runs: Vec::new(),
            tasks: Vec::new(),
            slots: BTreeMap::new(),
            pools: BTreeMap::new(),
            tracker: Tracker::default(),
            agenda: core::Agenda::default(),
        }
    }

    /// Adds (or replaces) the DAG `id` from YAML, unpaused.
    pub fn dag(&mut self, id: &str, yaml: &str) -> &mut World {
        let dag = gale_model::dag::parse(&format!("{id}.yaml"), id, yaml)
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let row = DagRow {
            dag_id: DagId(id.into()),
            file: format!("{id}.yaml"),
            version_hash: "v1".into(),
            paused: false,
            active: true,
            schedule: dag.schedule.clone(),
            timezone: dag.timezone.clone(),
            max_active_runs: dag.max_active_runs,
            description: None,
            tags: Vec::new(),
            last_interval_end: None,
            updated_at: self.now,
            owner: "test".into(),
            origin: None,
        };
        let order = topo_order(&dag);
        self.dags.retain(|d| d.row.dag_id.as_str() != id);
        self.dags.push(WorldDag { row, dag, order });
        self
    }

    pub fn pool(&mut self, name: &str, slots: u32) {
        self.pools.insert(name.into(), slots);
    }

    pub fn pause(&mut self, id: &str, paused: bool) {
        self.dag_mut(id).row.paused = paused;
    }

    pub fn advance(&mut self, secs: i64) {
        self.now += SignedDuration::from_secs(secs);
    }

    pub fn set_now(&mut self, now: &str) {
        self.now = ts(now);
    }

    fn dag_mut(&mut self, id: &str) -> &mut WorldDag {
        self.dags
            .iter_mut()
            .find(|d| d.row.dag_id.as_str() == id)
            .unwrap_or_else(|| panic!("no DAG {id}"))
    }

    /// A manual trigger of `id` now (it starts `queued`).
    pub fn trigger(&mut self, id: &str) -> RunId {
        let d = self
            .dags
            .iter()
            .find(|d| d.row.dag_id.as_str() == id)
            .unwrap();
        let run = gale_model::NewRun::manual(
            &d.row.dag_id,
            &d.row.version_hash,
            &d.dag,
            self.now,
            serde_json::Map::new(),
        );
        self.create_run(&run).expect("a new manual run")
    }

    /// A backfill's run of the slot `[start, end)` (it starts `queued`).
    pub fn backfill(&mut self, id: &str, start: &str, end: &str) -> RunId {
        let d = self
            .dags
            .iter()
            .find(|d| d.row.dag_id.as_str() == id)
            .unwrap();
        let interval = gale_model::Interval {
            start: ts(start),
            end: ts(end),
        };
        let run =
            gale_model::NewRun::backfill(&d.row.dag_id, &d.row.version_hash, &d.dag, interval);
        self.create_run(&run).expect("a new backfill run")
    }

    /// Every run ends in success at once, its task instances too (as an
    /// operator's mark would leave them).
    pub fn finish_all_runs(&mut self) {
        for run in &mut self.runs {
            run.state = RunState::Success;
        }
        for t in &mut self.tasks {
            t.state = TaskState::Success;
        }
    }

    /// The operator cancels a run: unfinished task instances fail (queued and
    /// running ones) or are skipped (the rest), as `RunMark::Cancel` does.
    pub fn cancel(&mut self, run_id: RunId) {
        let run = self.runs.iter_mut().find(|r| r.id == run_id).unwrap();
        assert!(matches!(run.state, RunState::Queued | RunState::Running));
        run.state = RunState::Failed;
        run.ended_at = Some(self.now);
        for t in self.tasks.iter_mut().filter(|t| t.run_id == run_id) {
            if !t.state.is_terminal() {
                t.retry_at = None;
            }
            t.state = match t.state {
                TaskState::Queued | TaskState::Running => TaskState::Failed,
                s if s.is_terminal() => s,
                _ => TaskState::Skipped,
            };
        }
    }

    fn ti_mut(&mut self, run_id: RunId, task: &str) -> &mut TaskRow {
        self.tasks
            .iter_mut()
            .find(|t| t.run_id == run_id && t.task_id.as_str() == task)
            .unwrap_or_else(|| panic!("no task {task} in run {run_id}"))
    }

    /// A worker claims every queued task instance (priority order), as `w1`.
    pub fn claim_all(&mut self) -> Vec<String> {
        let now = self.now;
        let mut queued: Vec<&mut TaskRow> = self
            .tasks
            .iter_mut()
            .filter(|t| t.state == TaskState::Queued)
            .collect();
        queued.sort_by_key(|t| (std::cmp::Reverse(t.priority), t.id));
        queued
            .into_iter()
            .map(|t| {
                t.state = TaskState::Running;
                t.try_number += 1;
                t.worker_id = Some("w1".into());
                t.heartbeat_at = Some(now);
                t.started_at = Some(now);
                format!("{}#{} {}", t.dag_id, t.run_id, t.task_id)
            })
            .collect()
    }

    /// The worker renews the leases of everything it runs.
    pub fn heartbeat(&mut self) {
        let now = self.now;
        for t in self
            .tasks
            .iter_mut()
            .filter(|t| t.state == TaskState::Running)
        {
            t.heartbeat_at = Some(now);
        }
    }

    /// The running try of `task` ends in success.
    pub fn succeed(&mut self, run_id: RunId, task: &str) {
        let now = self.now;
        let t = self.ti_mut(run_id, task);
        assert_eq!(t.state, TaskState::Running, "{task} is not running");
        t.state = TaskState::Success;
        t.ended_at = Some(now);
    }

    /// The running try of `task` fails; the worker applies the retry policy as
    /// the real one does.
    pub fn fail(&mut self, run_id: RunId, task: &str) {
        let now = self.now;
        let dag_id = self.ti_mut(run_id, task).dag_id.clone();
        let spec = self
            .dags
            .iter()
            .find(|d| d.row.dag_id == dag_id)
            .and_then(|d| d.dag.task(task).cloned())
            .unwrap();
        let t = self.ti_mut(run_id, task);
        assert_eq!(t.state, TaskState::Running, "{task} is not running");
        let next =
            gale_model::state::RetryPolicy::of(&spec, t.max_tries).after_failure(t.try_number);
        t.state = next.state();
        t.retry_at = next.retry_at(now);
        t.ended_at = Some(now);
    }

    fn create_run(&mut self, run: &gale_model::NewRun) -> Option<RunId> {
        // A scheduled run's cursor moves even when the insert loses.
        let d = self.dag_mut(run.dag_id.as_str());
        if run.run_type == RunType::Scheduled {
            d.row.last_interval_end = d.row.last_interval_end.max(Some(run.interval_end));
        }
        let taken = self.runs.iter().any(|r| {
            r.dag_id == run.dag_id
                && (r.run_key == run.run_key
                    || (run.run_type != RunType::Manual
                        && r.run_type != RunType::Manual
                        && r.logical_date == run.logical_date))
        });
        if taken {
            return None;
        }
        let id = RunId(self.runs.len() as i64 + 1);
        if run.run_type != RunType::Manual {
            self.slots.insert(
                (run.dag_id.clone(), run.interval_start),
                (run.interval_end, SlotStatus::Run),
            );
        }
        self.runs.push(RunRow {
            id,
            dag_id: run.dag_id.clone(),
            run_key: run.run_key.clone(),
            run_type: run.run_type,
            version_hash: run.version_hash.clone(),
            logical_date: run.logical_date,
            interval_start: run.interval_start,
            interval_end: run.interval_end,
            conf: run.conf.clone(),
            state: RunState::Queued,
            created_at: self.now,
            started_at: None,
            ended_at: None,
        });
        for t in &run.tasks {
            let ti = TiId(self.tasks.len() as i64 + 1);
            self.tasks.push(TaskRow {
                id: ti,
                run_id: id,
                dag_id: run.dag_id.clone(),
                task_id: TaskId(t.task_id.as_str().into()),
                state: TaskState::None,
                try_number: 0,
                max_tries: t.max_tries,
                queue: t.queue.clone(),
                priority: t.priority,
                worker_id: None,
                heartbeat_at: None,
                queued_at: None,
                started_at: None,
                ended_at: None,
                retry_at: None,
                outputs: Default::default(),
                pool: t.pool.clone(),
            });
        }
        Some(id)
    }

    fn active_runs(&self, dag_id: &DagId) -> u32 {
        self.runs
            .iter()
            .filter(|r| {
                &r.dag_id == dag_id && matches!(r.state, RunState::Queued | RunState::Running)
            })
            .count() as u32
    }

    /// The store's promotion: queued runs of unpaused DAGs start, oldest
    /// logical date first, within `max_active_runs`.
    fn promote(&mut self) -> Vec<RunId> {
        let mut started = Vec::new();
        let mut order: Vec<usize> = (0..self.runs.len()).collect();
        order.sort_by_key(|&i| (self.runs[i].logical_date, self.runs[i].id));
        for i in order {
            let run = &self.runs[i];
            if run.state != RunState::Queued {
                continue;
            }
            let d = self
                .dags
                .iter()
                .find(|d| d.row.dag_id == run.dag_id)
                .unwrap();
            let running = self
                .runs
                .iter()
                .filter(|r| r.dag_id == run.dag_id && r.state == RunState::Running)
                .count() as u32;
            if d.row.paused || running >= d.row.max_active_runs {
                continue;
            }
            let run = &mut self.runs[i];
            run.state = RunState::Running;
            run.started_at = Some(self.now);
            started.push(run.id);
        }
        started
    }

    fn label(&self, ti: TiId) -> String {
        let t = &self.tasks[(ti.0 - 1) as usize];
        format!("{}#{} {}", t.dag_id, t.run_id, t.task_id)
    }

    fn active_in(&self, f: impl Fn(&TaskRow) -> bool) -> i64 {
        self.tasks
            .iter()
            .filter(|t| matches!(t.state, TaskState::Queued | TaskState::Running) && f(t))
            .count() as i64
    }

    /// Records passed-over slots as the stores do (insert or ignore, then the
    /// cursor moves past them).
    fn record_slots(
        &mut self,
        dag_id: &DagId,
        status: SlotStatus,
        slots: &[(Timestamp, Timestamp)],
    ) -> String {
        for &(start, end) in slots {
            self.slots
                .entry((dag_id.clone(), start))
                .or_insert((end, status));
        }
        let d = self.dag_mut(dag_id.as_str());
        d.row.last_interval_end = d.row.last_interval_end.max(slots.last().map(|s| s.1));
        let first = slots.first().map_or(String::new(), |s| rfc3339(s.0));
        let last = slots.last().map_or(String::new(), |s| rfc3339(s.0));
        format!(
            "slots {} {dag_id}: {} from {first} to {last}",
            status.as_str(),
            slots.len()
        )
    }

    /// Ends a lost attempt as the stores do: only while it runs under that
    /// worker and try, with a heartbeat older than the lease.
    fn reap(&mut self, reap: &Reap) -> String {
        let now = self.now;
        let label = self.label(reap.ti);
        let lease = SignedDuration::try_from(reap.lease).unwrap();
        let t = &mut self.tasks[(reap.ti.0 - 1) as usize];
        let ok = t.state == TaskState::Running
            && t.try_number == reap.try_number
            && t.worker_id.as_ref() == Some(&reap.worker_id)
            && t.heartbeat_at.is_some_and(|h| h < now - lease);
        if ok {
            t.state = reap.to;
            t.retry_at = reap.retry_at;
            t.ended_at = Some(now);
        }
        let at = reap
            .retry_at
            .map_or(String::new(), |at| format!(" at {}", rfc3339(at)));
        format!(
            "reap {label} try {} ({}): {} -> {}{at}{}",
            reap.try_number,
            reap.outcome,
            TaskState::Running,
            reap.to,
            if ok { "" } else { " (not applied)" }
        )
    }

    /// Makes one write of a run's plan as the stores do; returns its line and
    /// how many rows it changed.
    fn apply(&mut self, action: &RunAction) -> (String, usize) {
        let now = self.now;
        match action {
            RunAction::Transitions(transitions) => {
                let mut lines = Vec::new();
                let mut n = 0;
                for tr in transitions {
                    let label = self.label(tr.ti);
                    let t = &mut self.tasks[(tr.ti.0 - 1) as usize];
                    let ok = t.state == tr.from;
                    if ok {
                        t.state = tr.to;
                        t.retry_at = tr.retry_at;
                        if tr.to == TaskState::Queued {
                            t.queued_at = Some(now);
                        }
                        n += 1;
                    }
                    lines.push(format!(
                        "{label}: {} -> {}{}",
                        tr.from,
                        tr.to,
                        if ok { "" } else { " (not applied)" }
                    ));
                }
                (lines.join("\n"), n)
            }
            RunAction::Enqueue {
                dag_id,
                tis,
                max_active_tasks,
            } => {
                let mut dag_room = max_active_tasks
                    .map(|max| i64::from(max) - self.active_in(|t| &t.dag_id == dag_id));
                let mut pool_room: BTreeMap<String, i64> = BTreeMap::new();
                let mut queued = Vec::new();
                for &ti in tis {
                    if dag_room.is_some_and(|r| r <= 0) {
                        break;
                    }
                    let t = &self.tasks[(ti.0 - 1) as usize];
                    if t.state != TaskState::Scheduled || &t.dag_id != dag_id {
                        continue;
                    }
                    if let Some(pool) = t.pool.clone() {
                        let Some(&slots) = self.pools.get(&pool) else {
                            continue;
                        };
                        let room = *pool_room.entry(pool.clone()).or_insert_with(|| {
                            i64::from(slots)
                                - self.active_in(|t| t.pool.as_deref() == Some(pool.as_str()))
                        });
                        if room <= 0 {
                            continue;
                        }
                        pool_room.insert(pool, room - 1);
                    }
                    let t = &mut self.tasks[(ti.0 - 1) as usize];
                    t.state = TaskState::Queued;
                    t.queued_at = Some(now);
                    dag_room = dag_room.map(|r| r - 1);
                    queued.push(t.task_id.to_string());
                }
                let asked: Vec<String> = tis
                    .iter()
                    .map(|&ti| self.tasks[(ti.0 - 1) as usize].task_id.to_string())
                    .collect();
                let limit =
                    max_active_tasks.map_or(String::new(), |m| format!(" max_active_tasks={m}"));
                (
                    format!(
                        "enqueue [{}]{limit} -> queued [{}]",
                        asked.join(", "),
                        queued.join(", ")
                    ),
                    queued.len(),
                )
            }
            RunAction::FinishRun {
                run_id,
                dag_id,
                state,
            } => {
                let run = self.runs.iter_mut().find(|r| r.id == *run_id).unwrap();
                let ok = run.state == RunState::Running;
                if ok {
                    run.state = *state;
                    run.ended_at = Some(now);
                }
                (
                    format!(
                        "finish {dag_id}#{run_id} {state}{}",
                        if ok { "" } else { " (not applied)" }
                    ),
                    usize::from(ok),
                )
            }
        }
    }

    /// One scheduler pass, as the shell makes it: due runs, promotion, a plan of
    /// each running run the tracker picks (a few rounds), then lost leases.
    /// Returns one line per action.
    pub fn step(&mut self) -> String {
        let now = self.now;
        let mut out = Vec::new();
        // The shell's housekeeping: every row as read, then only the DAGs
        // whose look is due.
        for d in &self.dags {
            self.agenda.observe(&d.row, now);
        }
        let looked: std::collections::HashSet<DagId> =
            self.agenda.take_due(now).into_iter().collect();
        for i in 0..self.dags.len() {
            let row = self.dags[i].row.clone();
            if !looked.contains(&row.dag_id) || !DueDag::is_candidate(&row) {
                continue;
            }
            let active_runs = if DueDag::needs_active_runs(&row) {
                self.active_runs(&row.dag_id)
            } else {
                0
            };
            let dag = self.dags[i].dag.clone();
            let Some(schedule) = dag.parsed_schedule() else {
                continue;
            };
            let due = core::due_runs(
                DueDag {
                    row: &row,
                    dag: &dag,
                    schedule: &schedule,
                    active_runs,
                },
                now,
            );
            if let Some((status, slots)) = &due.passed_over {
                out.push(self.record_slots(&row.dag_id, *status, slots));
            }
            let mut created = 0;
            for run in &due.runs {
                if created == due.room {
                    break;
                }
                let line = format!(
                    "create {} {} [{} .. {})",
                    run.dag_id,
                    run.run_key,
                    rfc3339(run.interval_start),
                    rfc3339(run.interval_end)
                );
                if self.create_run(run).is_some() {
                    created += 1;
                    out.push(line);
                } else {
                    out.push(format!("{line} (not applied)"));
                }
            }
            self.agenda.looked(&row, &schedule, &due, now);
        }
        for run_id in self.promote() {
            out.push(format!(
                "start {}#{run_id}",
                self.runs[(run_id.0 - 1) as usize].dag_id
            ));
        }
        let running: Vec<RunRow> = self
            .runs
            .iter()
            .filter(|r| r.state == RunState::Running)
            .cloned()
            .collect();
        self.tracker
            .keep_only(&running.iter().map(|r| r.id).collect());
        for run in running {
            let tasks = |w: &World| -> Vec<TaskRow> {
                w.tasks
                    .iter()
                    .filter(|t| t.run_id == run.id)
                    .cloned()
                    .collect()
            };
            let rows = tasks(self);
            // What the stores' counting queries answer, from the rows (as
            // the shell's batched planning works it out).
            if !self.tracker.should_count(run.id, track::activity_of(&rows))
                || !self.tracker.should_plan(run.id, track::counts_of(&rows))
            {
                continue;
            }
            let d = self
                .dags
                .iter()
                .find(|d| d.row.dag_id == run.dag_id)
                .unwrap();
            let (dag, order) = (d.dag.clone(), d.order.clone());
            let mut rounds = Rounds::new();
            while rounds.another() {
                for action in rounds.plan(&run, &dag, &order, &tasks(self), now) {
                    if rounds.may_write(&action) {
                        let (line, changed) = self.apply(&action);
                        out.push(line);
                        if let RunAction::FinishRun { run_id, .. } = &action
                            && changed > 0
                        {
                            self.tracker.finished(*run_id);
                        }
                        rounds.wrote(&action, changed);
                    }
                }
            }
        }
        let lease = SignedDuration::try_from(self.lease).unwrap();
        let expired: Vec<TaskRow> = self
            .tasks
            .iter()
            .filter(|t| {
                t.state == TaskState::Running && t.heartbeat_at.is_some_and(|h| h < now - lease)
            })
            .cloned()
            .collect();
        for ti in expired {
            let worker = ti.worker_id.clone().unwrap_or_default();
            let task = self
                .dags
                .iter()
                .find(|d| d.row.dag_id == ti.dag_id)
                .and_then(|d| d.dag.task(ti.task_id.as_str()).cloned());
            let message = core::lost_message(worker.as_str(), self.lease);
            let reap = core::lost_attempt(
                &ti,
                task.as_ref(),
                worker.as_str(),
                self.lease,
                &message,
                now,
            );
            out.push(self.reap(&reap));
        }
        out.join("\n")
    }

    /// How many runs the scheduler's tracker remembers.
    /// When the agenda next looks at `dag` (`None`: not held).
    pub fn next_look(&self, dag: &str) -> Option<String> {
        self.agenda.look_of(&DagId::from(dag)).map(rfc3339)
    }

    /// A housekeeping whose store failed after taking the due looks: they
    /// are put back, as the shell does.
    pub fn fail_looks(&mut self) -> usize {
        let due = self.agenda.take_due(self.now);
        let n = due.len();
        self.agenda.put_back(due, self.now);
        n
    }

    /// How many DAGs the agenda holds.
    pub fn agenda_len(&self) -> usize {
        self.agenda.len()
    }

    pub fn remembered(&self) -> usize {
        self.tracker.remembered()
    }

    /// The actions the core decides for one run now, not yet written.
    pub fn decide_run(&self, run_id: RunId) -> Vec<RunAction> {
        let run = self.runs.iter().find(|r| r.id == run_id).unwrap();
        let d = self
            .dags
            .iter()
            .find(|d| d.row.dag_id == run.dag_id)
            .unwrap();
        let tasks: Vec<TaskRow> = self
            .tasks
            .iter()
            .filter(|t| t.run_id == run_id)
            .cloned()
            .collect();
        core::run_actions(run, &d.dag, &d.order, &tasks, self.now)
    }

    /// Writes `actions` in order, every one of them (a stale writer does not
    /// know it is stale), one line each.
    pub fn apply_all(&mut self, actions: &[RunAction]) -> String {
        actions
            .iter()
            .map(|a| self.apply(a).0)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every run and task instance, one line each: `dag#run state` then its tasks.
    pub fn state(&self) -> String {
        let mut out = String::new();
        for run in &self.runs {
            let _ = writeln!(
                out,
                "{}#{} {} {}",
                run.dag_id, run.id, run.run_key, run.state
            );
            for t in self.tasks.iter().filter(|t| t.run_id == run.id) {
                let retry = t
                    .retry_at
                    .map_or(String::new(), |at| format!(" retry_at {}", rfc3339(at)));
                let _ = writeln!(
                    out,
                    "  {} {} try {}{retry}",
                    t.task_id, t.state, t.try_number
                );
            }
        }
        out
    }

    /// The slot ledger of `dag`, one line per slot.
    pub fn ledger(&self, dag: &str) -> String {
        self.slots
            .iter()
            .filter(|((d, _), _)| d.as_str() == dag)
            .map(|((_, start), (_, status))| format!("{} {}\n", rfc3339(*start), status.as_str()))
            .collect()
    }

    /// The run of `dag` at `logical_date` (its key's date).
    pub fn run_at(&self, dag: &str, logical_date: &str) -> RunId {
        let at = ts(logical_date);
        self.runs
            .iter()
            .find(|r| r.dag_id.as_str() == dag && r.logical_date == at)
            .map(|r| r.id)
            .unwrap_or_else(|| panic!("no run of {dag} at {logical_date}"))
    }
}
