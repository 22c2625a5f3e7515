//! `gale runs`: list, show, the slot ledger; following a run to its end.

use std::collections::HashMap;
use std::time::Duration;

use clap::Subcommand;
use gale_model::time::rfc3339;
use gale_model::{DagId, RunId, RunState, TaskState};
use gale_store::{RunFilter, RunRow, Store, TaskRow};

use super::output::{api_run, api_run_with_tasks, print_json, table, task_table, took, when};
use super::{NotFound, open_store};
use crate::{Output, Paths, exit};

#[derive(Subcommand, Debug)]
pub enum RunsCmd {
    /// List runs, newest first.
    List {
        #[arg(long)]
        dag: Option<String>,
        /// queued, running, success, failed or cancelled.
        #[arg(long, value_parser = ["queued", "running", "success", "failed", "cancelled"])]
        state: Option<String>,
        /// At most this many (1 to 10,000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Show a run and its task instances.
    Show { run_id: i64 },
    /// Cancel a running or queued run: its running tasks are killed, the
    /// waiting ones skipped.
    Cancel { run_id: i64 },
    /// Mark a run success or failed (its unfinished tasks take that state).
    Mark {
        run_id: i64,
        #[arg(long, value_parser = ["success", "failed"])]
        state: String,
    },
    /// Clear tasks of a finished run so they run again: the failed ones
    /// (default), or the tasks named with --task (and with --downstream
    /// every task that depends on them).
    Clear {
        run_id: i64,
        /// A task to clear (repeatable); default: every failed one.
        #[arg(long = "task")]
        tasks: Vec<String>,
        /// With --task: their downstream tasks too.
        #[arg(long, requires = "tasks")]
        downstream: bool,
    },
    /// The schedule-slot ledger of a DAG, newest first: each cron slot once, as
    /// `run` (with its run id), `skipped` (no catchup, or paused) or `missed`
    /// (passed while no scheduler ran, and catchup is off).
    Slots {
        dag_id: String,
        /// At most this many (1 to 10,000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
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
                .map_err(super::Usage)?;
            if let Some(d) = &dag
                && store.get_dag(&DagId(d.clone())).await?.is_none()
            {
                return Err(NotFound(format!("no DAG {d}: see `gale dags list`")).into());
            }
            let runs = store
                .list_runs(&RunFilter {
                    dag_id: dag.map(DagId),
                    state,
                    limit,
                    ..RunFilter::default()
                })
                .await?;
            if output == Output::Json {
                let runs: Vec<_> = runs.iter().map(api_run).collect();
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
        RunsCmd::Cancel { run_id } => {
            let run = gale_actions::cancel_run(&*store, &super::cli_actor(), RunId(run_id))
                .await
                .map_err(super::dags::not_found_hint)?;
            changed(&*store, output, &run, "cancelled").await
        }
        RunsCmd::Mark { run_id, state } => {
            let mark = gale_actions::Mark::parse(&state).map_err(super::dags::not_found_hint)?;
            let run = gale_actions::mark_run(&*store, &super::cli_actor(), RunId(run_id), mark)
                .await
                .map_err(super::dags::not_found_hint)?;
            changed(&*store, output, &run, &format!("marked {state}")).await
        }
        RunsCmd::Clear {
            run_id,
            tasks,
            downstream,
        } => {
            let what = if tasks.is_empty() {
                gale_actions::ClearWhat::Failed
            } else {
                gale_actions::ClearWhat::Tasks {
                    task_ids: tasks,
                    downstream,
                }
            };
            let cleared = gale_actions::clear(&*store, &super::cli_actor(), RunId(run_id), &what)
                .await
                .map_err(super::dags::not_found_hint)?;
            if output == Output::Json {
                print_json(&serde_json::json!({"run_id": run_id, "cleared": cleared}))?;
            } else {
                println!("run {run_id}: cleared {}", cleared.join(", "));
            }
            Ok(exit::OK)
        }
        RunsCmd::Show { run_id } => {
            let (mut run, tasks) = run_with_tasks(&*store, RunId(run_id)).await?;
            if output == Output::Json {
                print_json(&api_run_with_tasks(&run, &tasks))?;
                return Ok(exit::OK);
            }
            // Shown as the API and the pages show it: secret-looking values masked.
            run.conf = gale_model::mask::mask_conf(&run.conf);
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
pub(super) async fn run_with_tasks<S: Store + ?Sized>(
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

/// Follows a run until it ends, printing each task as it finishes.
pub(super) async fn follow_run<S: Store + ?Sized>(
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
                print_json(&api_run_with_tasks(&run, &tasks))?;
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

/// Reports a run an operator changed, as it is now.
async fn changed(
    store: &dyn Store,
    output: Output,
    run: &RunRow,
    what: &str,
) -> anyhow::Result<u8> {
    if output == Output::Json {
        let run = store.get_run(run.id).await?.unwrap_or_else(|| run.clone());
        print_json(&api_run(&run))?;
    } else {
        println!("run {} of {} {what}", run.id, run.dag_id);
    }
    Ok(exit::OK)
}
