//! `gale tasks`: list a run's task instances, print an attempt's log, test a
//! task in the foreground.

use std::time::Duration;

use clap::Subcommand;
use gale_model::schedule;
use gale_model::{DagId, RunId, RunState, TaskState};
use gale_store::{RunRow, RunType};
use jiff::Timestamp;
use serde::Serialize;

use super::dags::{current_dag, parse_conf};
use super::output::{print_json, task_table};
use super::runs::run_with_tasks;
use super::{NotFound, open_store};
use crate::{Output, Paths, exit};

#[derive(Subcommand, Debug)]
pub enum TasksCmd {
    /// List a run's task instances.
    List { run_id: i64 },
    /// Print an attempt's log (default: the latest attempt).
    Logs {
        run_id: i64,
        task_id: String,
        /// The try to show (1, 2, ...; default: the latest).
        #[arg(long)]
        attempt: Option<u32>,
        /// Keep printing new lines until the attempt ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Mark a task instance success or failed (a running one is killed).
    Mark {
        run_id: i64,
        task_id: String,
        #[arg(long, value_parser = ["success", "failed"])]
        state: String,
    },
    /// Run one task in the foreground with templating, recording nothing.
    Test {
        dag_id: String,
        task_id: String,
        /// The logical date the task is templated with (default: now), e.g.
        /// 2026-01-01 or 2026-01-01T02:00:00Z.
        #[arg(long)]
        logical_date: Option<String>,
        /// A JSON object merged over the DAG's params, e.g. '{"region": "us"}'.
        #[arg(long)]
        conf: Option<String>,
    },
}

pub async fn tasks(paths: &Paths, output: Output, cmd: TasksCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    match cmd {
        TasksCmd::List { run_id } => {
            let (run, tasks) = run_with_tasks(&*store, RunId(run_id)).await?;
            let waiting = match store.get_version(&run.dag_id, &run.version_hash).await? {
                Some(v) => gale_actions::waiting_reasons(&*store, &run, &v.spec, &tasks).await?,
                None => Default::default(),
            };
            if output == Output::Json {
                // Each task instance with its attempts (state `lost`, `timed_out`, ...)
                // and, while it waits, why.
                // The API's task instance, with its attempts.
                #[derive(Serialize)]
                struct TaskWithAttempts {
                    #[serde(flatten)]
                    task: gale_server::api::tasks::TaskInstance,
                    attempts: Vec<gale_store::AttemptRow>,
                }
                let mut items = Vec::with_capacity(tasks.len());
                for row in &tasks {
                    let attempts = store.attempts(row.id).await?;
                    let mut task = gale_server::api::tasks::TaskInstance::from(row);
                    task.waiting_for = waiting.get(row.task_id.as_str()).cloned();
                    items.push(TaskWithAttempts { task, attempts });
                }
                print_json(&items)?;
            } else {
                println!("{}", task_table(&tasks));
                for (task, why) in &waiting {
                    println!("{task} waits: {why}");
                }
            }
            Ok(exit::OK)
        }
        TasksCmd::Mark {
            run_id,
            task_id,
            state,
        } => {
            let mark = gale_actions::Mark::parse(&state).map_err(super::dags::not_found_hint)?;
            gale_actions::mark_task(&*store, &super::cli_actor(), RunId(run_id), &task_id, mark)
                .await
                .map_err(super::dags::not_found_hint)?;
            if output == Output::Json {
                print_json(
                    &serde_json::json!({"run_id": run_id, "task_id": task_id, "state": state}),
                )?;
            } else {
                println!("{task_id} in run {run_id} marked {state}");
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
                if ti.state.is_terminal() {
                    eprintln!("{task_id} did not run (state {}): it has no log", ti.state);
                } else {
                    eprintln!("{task_id} has not started yet (state {})", ti.state);
                }
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
            let vault = crate::secrets::vault(paths, store.clone())?;
            let resolver = crate::secrets::resolver(paths, vault);
            let outcome =
                gale_worker::run_task_once(&dag, &task, &run, &paths.home, Some(&resolver)).await;
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

pub(super) fn print_log_line(l: &gale_store::LogRow, output: Output) -> anyhow::Result<()> {
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
