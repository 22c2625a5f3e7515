//! The command-line commands other than `bench`. Each reads or writes the store
//! directly, so they work whether or not `gale standalone` is running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use gale_model::schedule;
use gale_model::time::rfc3339;
use gale_model::{DagId, RunId, RunState, TaskState};
use gale_scheduler::processor::{dag_files, load_file};
use gale_server::actions;
use gale_store::postgres::PgStore;
use gale_store::sqlite::SqliteStore;
use gale_store::{RunFilter, RunRow, RunType, Store, TaskRow};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Output, Paths, exit};

/// An error for a DAG, run or task that does not exist (exit code 4).
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for NotFound {}

/// Opens the metadata store the command line names: PostgreSQL when a database
/// URL is given, else the SQLite file. Waits up to `wait` for PostgreSQL to come up.
pub async fn open_store_waiting(paths: &Paths, wait: Duration) -> anyhow::Result<Opened> {
    match &paths.database_url {
        Some(url) => {
            let store = PgStore::connect(url, wait)
                .await
                .context("opening the PostgreSQL metadata database")?;
            let pg = Arc::new(store);
            Ok(Opened {
                store: pg.clone(),
                pg: Some(pg),
            })
        }
        None => {
            let store = SqliteStore::open(&paths.database).with_context(|| {
                format!("opening the metadata database {}", paths.database.display())
            })?;
            Ok(Opened {
                store: Arc::new(store),
                pg: None,
            })
        }
    }
}

/// The store of a one-shot command.
pub async fn open_store(paths: &Paths) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_store_waiting(paths, Duration::from_secs(5))
        .await?
        .store)
}

/// An open store, and its PostgreSQL handle when it is one (for notifications).
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub pg: Option<Arc<PgStore>>,
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(headers.iter().map(|h| h.to_string()));
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
        .lines()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn when(ts: Option<Timestamp>) -> String {
    ts.map(rfc3339).unwrap_or_else(|| "-".into())
}

fn took(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => {
            let ms = (e.as_millisecond() - s.as_millisecond()).max(0);
            if ms < 10_000 {
                format!("{:.2}s", ms as f64 / 1000.0)
            } else {
                format!("{}s", ms / 1000)
            }
        }
        _ => "-".into(),
    }
}

pub(crate) fn parse_span(s: &str) -> Result<Duration, String> {
    gale_model::duration::parse(s).map(|d| d.0)
}

// ---------------------------------------------------------------- dags

#[derive(Subcommand, Debug)]
pub enum DagsCmd {
    /// List DAGs, and DAG files that failed to load.
    List,
    /// Show one DAG and its tasks.
    Show { dag_id: String },
    /// Check DAG files (or folders of them) without a database; exit 1 on any error.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List DAG files that failed to load, with file:line:column errors.
    Errors,
    /// Create a manual run.
    Trigger {
        dag_id: String,
        /// JSON object merged over the DAG's params, e.g. '{"region": "us"}'.
        #[arg(long)]
        conf: Option<String>,
        /// The run's logical date (default: now), e.g. 2026-01-01 or 2026-01-01T02:00:00Z.
        #[arg(long)]
        logical_date: Option<String>,
        /// Follow the run, print each task's result, exit 0 only if it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// Stop creating new runs (running ones finish).
    Pause { dag_id: String },
    /// Resume creating runs.
    Unpause { dag_id: String },
}

#[derive(Serialize)]
struct DagListItem {
    dag_id: String,
    schedule: Option<String>,
    timezone: String,
    paused: bool,
    active: bool,
    file: String,
    last_run_state: Option<RunState>,
    last_run_id: Option<RunId>,
    tags: Vec<String>,
}

pub async fn dags(paths: &Paths, output: Output, cmd: DagsCmd) -> anyhow::Result<u8> {
    if let DagsCmd::Validate { paths: files } = &cmd {
        return validate(files, output);
    }
    let store = open_store(paths).await?;
    match cmd {
        DagsCmd::List => {
            let mut items = Vec::new();
            for d in store.list_dags().await? {
                let last = store
                    .list_runs(&RunFilter {
                        dag_id: Some(d.dag_id.clone()),
                        limit: 1,
                        ..RunFilter::default()
                    })
                    .await?
                    .into_iter()
                    .next();
                items.push(DagListItem {
                    dag_id: d.dag_id.0,
                    schedule: d.schedule,
                    timezone: d.timezone,
                    paused: d.paused,
                    active: d.active,
                    file: d.file,
                    last_run_state: last.as_ref().map(|r| r.state),
                    last_run_id: last.map(|r| r.id),
                    tags: d.tags,
                });
            }
            let errors = store.list_import_errors().await?;
            if output == Output::Json {
                print_json(&serde_json::json!({ "dags": items, "import_errors": errors }))?;
                return Ok(exit::OK);
            }
            let rows = items
                .iter()
                .map(|d| {
                    vec![
                        d.dag_id.clone(),
                        d.schedule.clone().unwrap_or_else(|| "manual".into()),
                        if !d.active {
                            "removed".into()
                        } else if d.paused {
                            "paused".into()
                        } else {
                            "active".into()
                        },
                        match (d.last_run_id, d.last_run_state) {
                            (Some(id), Some(s)) => format!("{s} (run {id})"),
                            _ => "-".into(),
                        },
                        d.file.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["DAG_ID", "SCHEDULE", "STATE", "LAST RUN", "FILE"], rows)
            );
            if !errors.is_empty() {
                println!("\n{} DAG file(s) failed to load:", errors.len());
                for e in &errors {
                    for d in &e.errors {
                        println!("  {d}");
                    }
                }
            }
            Ok(exit::OK)
        }
        DagsCmd::Show { dag_id } => {
            let dag_id = DagId(dag_id);
            let (row, version) = current_dag(&*store, &dag_id).await?;
            let dag = &version.spec;
            if output == Output::Json {
                print_json(
                    &serde_json::json!({ "dag": row, "spec": dag, "source": version.source }),
                )?;
                return Ok(exit::OK);
            }
            println!("dag_id       {}", dag.id);
            if let Some(d) = &dag.description {
                println!("description  {d}");
            }
            match dag.parsed_schedule() {
                Some(s) => println!(
                    "schedule     {} ({}, {})",
                    s.expr(),
                    s.describe(),
                    dag.timezone
                ),
                None => println!("schedule     manual only"),
            }
            println!(
                "state        {}",
                if !row.active {
                    "removed"
                } else if row.paused {
                    "paused"
                } else {
                    "active"
                }
            );
            println!("file         {}", row.file);
            println!("version      {}", row.version_hash);
            println!(
                "catchup      {}   max_active_runs {}   max_active_tasks {}",
                dag.catchup,
                dag.max_active_runs,
                dag.max_active_tasks.map_or("-".into(), |m| m.to_string())
            );
            println!();
            let rows = dag
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.0.clone(),
                        match &t.kind {
                            gale_model::TaskKind::Shell { .. } => "shell".into(),
                            gale_model::TaskKind::Http(_) => "http".into(),
                        },
                        t.needs
                            .iter()
                            .map(|n| n.0.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        t.trigger_rule.as_str().into(),
                        t.retries.to_string(),
                        t.timeout.map_or("-".into(), |d| d.to_string()),
                        t.queue.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "TASK",
                        "KIND",
                        "NEEDS",
                        "TRIGGER_RULE",
                        "RETRIES",
                        "TIMEOUT",
                        "QUEUE"
                    ],
                    rows
                )
            );
            Ok(exit::OK)
        }
        DagsCmd::Errors => {
            let errors = store.list_import_errors().await?;
            if output == Output::Json {
                print_json(&errors)?;
            } else if errors.is_empty() {
                println!("no DAG file errors");
            } else {
                for e in &errors {
                    for d in &e.errors {
                        println!("{d}");
                    }
                }
            }
            Ok(exit::OK)
        }
        DagsCmd::Trigger {
            dag_id,
            conf,
            logical_date,
            wait,
        } => {
            let run = trigger(
                &*store,
                &DagId(dag_id),
                conf.as_deref(),
                logical_date.as_deref(),
            )
            .await?;
            if output == Output::Json && !wait {
                print_json(&run)?;
                return Ok(exit::OK);
            }
            eprintln!("created run {} of {} ({})", run.id, run.dag_id, run.run_key);
            warn_if_not_running(&*store, &run.dag_id).await?;
            if wait {
                return follow_run(&*store, run.id, output).await;
            }
            println!("{}", run.id);
            Ok(exit::OK)
        }
        DagsCmd::Pause { dag_id } => set_paused(&*store, dag_id, true).await,
        DagsCmd::Unpause { dag_id } => set_paused(&*store, dag_id, false).await,
        DagsCmd::Validate { .. } => unreachable!("handled above"),
    }
}

/// A DAG's row and its current version; `NotFound` when there is no such DAG.
async fn current_dag(
    store: &dyn Store,
    dag_id: &DagId,
) -> anyhow::Result<(gale_store::DagRow, gale_store::DagVersion)> {
    actions::current_dag(store, dag_id)
        .await
        .map_err(not_found_hint)
}

/// `actions::NotFound` as the CLI's `NotFound` (exit code 4), with a hint.
fn not_found_hint(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<actions::NotFound>() {
        Ok(n) => NotFound(format!("{}: see `gale dags list`", n.0)).into(),
        Err(e) => e,
    }
}

async fn set_paused(store: &dyn Store, dag_id: String, paused: bool) -> anyhow::Result<u8> {
    let dag_id = DagId(dag_id);
    if !store.set_paused(&dag_id, paused).await? {
        return Err(NotFound(format!("no DAG {dag_id}")).into());
    }
    println!("{dag_id} {}", if paused { "paused" } else { "unpaused" });
    Ok(exit::OK)
}

fn validate(inputs: &[PathBuf], output: Output) -> anyhow::Result<u8> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            files.extend(dag_files(p));
        } else {
            files.push(p.clone());
        }
    }
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::new();
    let mut failed = 0;
    for f in &files {
        let name = f.display().to_string();
        match load_file(f) {
            Ok((dag, _)) => {
                if let Some(other) = ids.insert(dag.id.0.clone(), name.clone()) {
                    failed += 1;
                    let msg = format!(
                        "{name}:1:1: duplicate DAG id {:?}: {other} defines it too",
                        dag.id.0
                    );
                    results.push(serde_json::json!({ "file": name, "ok": false, "errors": [msg] }));
                } else {
                    results.push(serde_json::json!({ "file": name, "ok": true, "dag_id": dag.id, "tasks": dag.tasks.len() }));
                }
            }
            Err(errors) => {
                failed += 1;
                let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
                results.push(serde_json::json!({ "file": name, "ok": false, "errors": msgs }));
            }
        }
    }
    if output == Output::Json {
        print_json(&results)?;
    } else {
        for r in &results {
            if r["ok"] == true {
                println!(
                    "ok    {} ({}, {} tasks)",
                    r["file"].as_str().unwrap_or(""),
                    r["dag_id"].as_str().unwrap_or(""),
                    r["tasks"]
                );
            } else {
                for e in r["errors"].as_array().into_iter().flatten() {
                    println!("error {}", e.as_str().unwrap_or(""));
                }
            }
        }
        println!("{} file(s) checked, {} with errors", files.len(), failed);
    }
    if files.is_empty() {
        bail!(
            "no DAG files (*.yaml, *.yml) found in {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(if failed > 0 { exit::FAILED } else { exit::OK })
}

fn parse_conf(conf: Option<&str>) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match conf {
        None => Ok(serde_json::Map::new()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => bail!("--conf must be a JSON object, e.g. '{{\"key\": \"value\"}}'"),
            Err(e) => bail!("--conf is not valid JSON: {e}"),
        },
    }
}

/// Creates a manual run (see `gale_server::actions::trigger`); a missing DAG is
/// `NotFound`.
pub async fn trigger(
    store: &dyn Store,
    dag_id: &DagId,
    conf: Option<&str>,
    logical_date: Option<&str>,
) -> anyhow::Result<RunRow> {
    let conf = parse_conf(conf)?;
    actions::trigger(store, dag_id, conf, logical_date)
        .await
        .map_err(not_found_hint)
}

async fn warn_if_not_running<S: Store + ?Sized>(store: &S, dag_id: &DagId) -> anyhow::Result<()> {
    if let Some(d) = store.get_dag(dag_id).await?
        && d.paused
    {
        eprintln!(
            "note: {dag_id} is paused; the run starts when it is unpaused (`gale dags unpause {dag_id}`)"
        );
    }
    let now = store.now().await?;
    let live = store.list_nodes().await?.into_iter().any(|n| {
        n.state == "running"
            && n.roles.iter().any(|r| r == "scheduler")
            && now.as_second() - n.heartbeat_at.as_second() < 30
    });
    if !live {
        eprintln!("note: no scheduler is running; the run starts once `gale standalone` runs");
    }
    Ok(())
}

/// Follows a run until it ends, printing each task as it finishes.
async fn follow_run<S: Store + ?Sized>(
    store: &S,
    run_id: RunId,
    output: Output,
) -> anyhow::Result<u8> {
    let mut printed: HashMap<(String, u32), TaskState> = HashMap::new();
    loop {
        let (run, tasks) = run_with_tasks(store, run_id).await?;
        if output == Output::Table {
            for t in &tasks {
                let shown = matches!(
                    t.state,
                    TaskState::Success
                        | TaskState::Failed
                        | TaskState::Skipped
                        | TaskState::UpstreamFailed
                        | TaskState::UpForRetry
                        | TaskState::Removed
                );
                if shown && printed.get(&(t.task_id.0.clone(), t.try_number)) != Some(&t.state) {
                    printed.insert((t.task_id.0.clone(), t.try_number), t.state);
                    let what = match t.state {
                        TaskState::UpForRetry => format!(
                            "up_for_retry (try {} of {} failed)",
                            t.try_number, t.max_tries
                        ),
                        s => s.to_string(),
                    };
                    println!(
                        "{:<24} {:<40} {}",
                        t.task_id.0,
                        what,
                        took(t.started_at, t.ended_at)
                    );
                }
            }
        }
        if run.state.is_terminal() {
            if output == Output::Json {
                print_json(&serde_json::json!({ "run": run, "tasks": tasks }))?;
            } else {
                println!(
                    "run {} of {}: {} in {}",
                    run.id,
                    run.dag_id,
                    run.state,
                    took(run.started_at, run.ended_at)
                );
            }
            return Ok(if run.state == RunState::Success {
                exit::OK
            } else {
                exit::FAILED
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------- runs

#[derive(Subcommand, Debug)]
pub enum RunsCmd {
    /// List runs, newest first.
    List {
        #[arg(long)]
        dag: Option<String>,
        /// queued, running, success or failed.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a run and its task instances.
    Show { run_id: i64 },
    /// The schedule-slot ledger of a DAG, newest first: each cron slot once, as
    /// `run` (with its run id), `skipped` (no catchup, or paused) or `missed`
    /// (passed while no scheduler ran, and catchup is off).
    Slots {
        dag_id: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub async fn runs(paths: &Paths, output: Output, cmd: RunsCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    match cmd {
        RunsCmd::Slots { dag_id, limit } => {
            let dag_id = DagId(dag_id);
            if store.get_dag(&dag_id).await?.is_none() {
                return Err(NotFound(format!("no DAG {dag_id}")).into());
            }
            let slots = store.list_slots(&dag_id, limit).await?;
            if output == Output::Json {
                print_json(&slots)?;
            } else {
                let rows = slots
                    .iter()
                    .map(|s| {
                        vec![
                            rfc3339(s.logical_date),
                            rfc3339(s.interval_end),
                            s.status.as_str().to_owned(),
                            s.run_id
                                .map(|r| r.to_string())
                                .unwrap_or_else(|| "-".into()),
                            rfc3339(s.recorded_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["LOGICAL DATE", "INTERVAL END", "STATUS", "RUN", "RECORDED"],
                        rows
                    )
                );
            }
            Ok(exit::OK)
        }
        RunsCmd::List { dag, state, limit } => {
            let state = state
                .map(|s| s.parse::<RunState>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let runs = store
                .list_runs(&RunFilter {
                    dag_id: dag.map(DagId),
                    state,
                    limit,
                    ..RunFilter::default()
                })
                .await?;
            if output == Output::Json {
                print_json(&runs)?;
            } else {
                let rows = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.dag_id.0.clone(),
                            r.run_type.as_str().into(),
                            r.state.to_string(),
                            rfc3339(r.logical_date),
                            when(r.started_at),
                            took(r.started_at, r.ended_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "RUN_ID",
                            "DAG_ID",
                            "TYPE",
                            "STATE",
                            "LOGICAL_DATE",
                            "STARTED",
                            "DURATION"
                        ],
                        rows
                    )
                );
            }
            Ok(exit::OK)
        }
        RunsCmd::Show { run_id } => {
            let (run, tasks) = run_with_tasks(&*store, RunId(run_id)).await?;
            if output == Output::Json {
                print_json(&serde_json::json!({ "run": run, "tasks": tasks }))?;
                return Ok(exit::OK);
            }
            println!("run          {} ({})", run.id, run.run_key);
            println!("dag_id       {}", run.dag_id);
            println!("state        {}", run.state);
            println!("logical date {}", rfc3339(run.logical_date));
            println!(
                "interval     {} .. {}",
                rfc3339(run.interval_start),
                rfc3339(run.interval_end)
            );
            println!(
                "conf         {}",
                serde_json::Value::Object(run.conf.clone())
            );
            println!(
                "started      {}   duration {}",
                when(run.started_at),
                took(run.started_at, run.ended_at)
            );
            println!();
            println!("{}", task_table(&tasks));
            Ok(exit::OK)
        }
    }
}

/// A run and its task instances; `NotFound` when there is no such run.
async fn run_with_tasks<S: Store + ?Sized>(
    store: &S,
    run_id: RunId,
) -> anyhow::Result<(RunRow, Vec<TaskRow>)> {
    let run = store
        .get_run(run_id)
        .await?
        .ok_or_else(|| NotFound(format!("no run {run_id}")))?;
    let tasks = store.run_tasks(run_id).await?;
    Ok((run, tasks))
}

fn task_table(tasks: &[TaskRow]) -> String {
    let rows = tasks
        .iter()
        .map(|t| {
            vec![
                t.task_id.0.clone(),
                t.state.to_string(),
                format!("{}/{}", t.try_number, t.max_tries),
                when(t.started_at),
                took(t.started_at, t.ended_at),
                t.worker_id
                    .clone()
                    .map(|w| w.0)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &["TASK", "STATE", "TRY", "STARTED", "DURATION", "WORKER"],
        rows,
    )
}

// ---------------------------------------------------------------- tasks

#[derive(Subcommand, Debug)]
pub enum TasksCmd {
    /// List a run's task instances.
    List { run_id: i64 },
    /// Print an attempt's log (default: the latest attempt).
    Logs {
        run_id: i64,
        task_id: String,
        #[arg(long)]
        attempt: Option<u32>,
        /// Keep printing new lines until the attempt ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Run one task in the foreground with templating, recording nothing.
    Test {
        dag_id: String,
        task_id: String,
        #[arg(long)]
        logical_date: Option<String>,
        #[arg(long)]
        conf: Option<String>,
    },
}

pub async fn tasks(paths: &Paths, output: Output, cmd: TasksCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    match cmd {
        TasksCmd::List { run_id } => {
            let (_run, tasks) = run_with_tasks(&*store, RunId(run_id)).await?;
            if output == Output::Json {
                // Each task instance with its attempts (state `lost`, `timed_out`, ...).
                #[derive(Serialize)]
                struct TaskWithAttempts {
                    #[serde(flatten)]
                    task: TaskRow,
                    attempts: Vec<gale_store::AttemptRow>,
                }
                let mut items = Vec::with_capacity(tasks.len());
                for task in tasks {
                    let attempts = store.attempts(task.id).await?;
                    items.push(TaskWithAttempts { task, attempts });
                }
                print_json(&items)?;
            } else {
                println!("{}", task_table(&tasks));
            }
            Ok(exit::OK)
        }
        TasksCmd::Logs {
            run_id,
            task_id,
            attempt,
            follow,
        } => {
            let ti = store
                .run_tasks(RunId(run_id))
                .await?
                .into_iter()
                .find(|t| t.task_id.0 == task_id)
                .ok_or_else(|| NotFound(format!("no task {task_id} in run {run_id}")))?;
            let try_number = attempt.unwrap_or(ti.try_number);
            if try_number == 0 {
                eprintln!("{task_id} has not started yet (state {})", ti.state);
                if !follow {
                    return Ok(exit::OK);
                }
            }
            let attempts = store.attempts(ti.id).await?;
            if attempt.is_some() && !attempts.iter().any(|a| a.try_number == try_number) {
                return Err(NotFound(format!(
                    "{task_id} in run {run_id} has no attempt {try_number} (it has {})",
                    attempts.len()
                ))
                .into());
            }
            let mut after = 0;
            loop {
                let current = store
                    .run_tasks(RunId(run_id))
                    .await?
                    .into_iter()
                    .find(|t| t.id == ti.id);
                let try_number = if try_number == 0 {
                    current.as_ref().map_or(0, |t| t.try_number)
                } else {
                    try_number
                };
                let lines = store.read_logs(ti.id, try_number, after, 1000).await?;
                for l in &lines {
                    after = l.seq;
                    print_log_line(l, output)?;
                }
                if lines.len() == 1000 {
                    continue;
                }
                let running = current.is_some_and(|t| {
                    t.try_number == try_number && matches!(t.state, TaskState::Running)
                        || t.try_number == 0
                        || t.try_number < try_number
                });
                if !follow || (!running && try_number > 0) {
                    if !follow {
                        break;
                    }
                    // One last read after the attempt ended, for lines flushed at the end.
                    let rest = store.read_logs(ti.id, try_number, after, 100_000).await?;
                    for l in &rest {
                        print_log_line(l, output)?;
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(exit::OK)
        }
        TasksCmd::Test {
            dag_id,
            task_id,
            logical_date,
            conf,
        } => {
            let dag_id = DagId(dag_id);
            let (row, version) = current_dag(&*store, &dag_id).await?;
            let dag = version.spec;
            let task = dag
                .task(&task_id)
                .cloned()
                .ok_or_else(|| NotFound(format!("no task {task_id} in {dag_id}")))?;
            let now = Timestamp::now();
            let logical = match logical_date {
                Some(t) => schedule::parse_date(
                    &t,
                    &schedule::time_zone(&dag.timezone).map_err(anyhow::Error::msg)?,
                )
                .map_err(anyhow::Error::msg)?,
                None => now,
            };
            let run = RunRow {
                id: RunId(0),
                dag_id: dag_id.clone(),
                run_key: "test".into(),
                run_type: RunType::Manual,
                version_hash: row.version_hash.clone(),
                logical_date: logical,
                interval_start: logical,
                interval_end: logical,
                conf: parse_conf(conf.as_deref())?,
                state: RunState::Running,
                created_at: now,
                started_at: Some(now),
                ended_at: None,
            };
            let outcome = gale_worker::run_task_once(&dag, &task, &run, &paths.home).await;
            eprintln!(
                "[gale] {task_id}: {:?}{}",
                outcome.kind,
                outcome
                    .message
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
            for (k, v) in &outcome.outputs {
                eprintln!("[gale] output {k}={v}");
            }
            Ok(match outcome.kind {
                gale_worker::OutcomeKind::Success | gale_worker::OutcomeKind::Skipped => exit::OK,
                _ => exit::FAILED,
            })
        }
    }
}

fn print_log_line(l: &gale_store::LogRow, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string(l)?);
    } else {
        let ts = l.ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        match l.stream {
            gale_store::Stream::Stderr => println!("{ts} ERR {}", l.text),
            _ => println!("{ts}     {}", l.text),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- backfill

#[derive(Args, Debug)]
pub struct BackfillArgs {
    dag_id: String,
    /// First logical date (inclusive), in the DAG's time zone unless an offset is given.
    #[arg(long)]
    from: String,
    /// Last logical date (inclusive).
    #[arg(long)]
    to: String,
    /// Create the runs and return without following them.
    #[arg(long)]
    no_wait: bool,
}

pub async fn backfill(paths: &Paths, output: Output, args: BackfillArgs) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    let dag_id = DagId(args.dag_id);
    let (_, version) = current_dag(&*store, &dag_id).await?;
    let by = std::env::var("USER").ok();
    let made = actions::backfill(&*store, &dag_id, &args.from, &args.to, by.as_deref()).await?;
    let (run_ids, existing) = (made.created, made.existing);
    eprintln!(
        "backfill {} of {dag_id}: {} run(s) created, {existing} slot(s) already had a run; max_active_runs = {}",
        made.id,
        run_ids.len(),
        version.spec.max_active_runs
    );
    warn_if_not_running(&*store, &dag_id).await?;
    if args.no_wait || run_ids.is_empty() {
        if output == Output::Json {
            print_json(&run_ids)?;
        }
        return Ok(exit::OK);
    }
    let bar = if output == Output::Table {
        let b = indicatif::ProgressBar::new(run_ids.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs done {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    loop {
        let mut done = 0;
        let mut failed = 0;
        for id in &run_ids {
            if let Some(r) = store.get_run(*id).await? {
                if r.state.is_terminal() {
                    done += 1;
                }
                if r.state == RunState::Failed {
                    failed += 1;
                }
            }
        }
        if let Some(b) = &bar {
            b.set_position(done);
            b.set_message(if failed > 0 {
                format!("({failed} failed)")
            } else {
                String::new()
            });
        }
        if done as usize == run_ids.len() {
            if let Some(b) = bar {
                b.finish();
            }
            if output == Output::Json {
                print_json(&serde_json::json!({ "runs": run_ids, "failed": failed }))?;
            } else {
                println!(
                    "backfill finished: {} run(s), {failed} failed",
                    run_ids.len()
                );
            }
            return Ok(if failed > 0 { exit::FAILED } else { exit::OK });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------- db

#[derive(Subcommand, Debug)]
pub enum DbCmd {
    /// Create the database or bring its schema up to date.
    Migrate,
}

pub async fn db(paths: &Paths, cmd: DbCmd) -> anyhow::Result<u8> {
    match cmd {
        DbCmd::Migrate => {
            let store = open_store(paths).await?;
            println!(
                "{}: schema version {}",
                store.endpoint(),
                store.schema_version().await?
            );
            Ok(exit::OK)
        }
    }
}

// ---------------------------------------------------------------- pools

#[derive(Subcommand, Debug)]
pub enum PoolsCmd {
    /// List pools with their slots and how many are queued and running.
    List,
    /// Create a pool or change its slots.
    Set {
        name: String,
        slots: u32,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a pool (tasks naming it then wait until it exists again).
    Delete { name: String },
}

pub async fn pools(paths: &Paths, output: Output, cmd: PoolsCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    match cmd {
        PoolsCmd::List => {
            let pools = store.list_pools().await?;
            if output == Output::Json {
                print_json(&pools)?;
            } else {
                let rows = pools
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.slots.to_string(),
                            p.running.to_string(),
                            p.queued.to_string(),
                            p.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["POOL", "SLOTS", "RUNNING", "QUEUED", "DESCRIPTION"], rows)
                );
            }
            Ok(exit::OK)
        }
        PoolsCmd::Set {
            name,
            slots,
            description,
        } => {
            if !gale_model::ids::is_valid_id(&name) {
                bail!("invalid pool name {name:?}: use letters, digits, '_', '.' and '-' only");
            }
            store.set_pool(&name, slots, description.as_deref()).await?;
            println!("pool {name}: {slots} slots");
            Ok(exit::OK)
        }
        PoolsCmd::Delete { name } => {
            if store.delete_pool(&name).await? {
                println!("pool {name} deleted");
                Ok(exit::OK)
            } else {
                Err(NotFound(format!("no pool {name}")).into())
            }
        }
    }
}
