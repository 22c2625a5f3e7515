//! `gale backfill`: create the runs of a date range and follow them
//! (`gale backfill DAG_ID --from D --to D`, or `gale backfill create ...`),
//! list backfills with their progress, cancel one.

use std::time::Duration;

use clap::{Args, Subcommand};
use gale_model::{DagId, RunState};
use gale_server::api::backfills::Backfill;
use gale_store::Store;

use super::dags::{current_dag, not_found_hint, warn_if_not_running};
use super::open_store;
use super::output::{print_json, table, when};
use crate::{Output, Paths, exit};

/// `gale backfill DAG_ID --from D --to D` (the form before subcommands, still
/// accepted) or one of the subcommands.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackfillArgs {
    #[command(subcommand)]
    cmd: Option<BackfillCmd>,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Subcommand, Debug)]
pub enum BackfillCmd {
    /// Create one run per schedule slot between two dates and follow them
    /// (as `gale backfill DAG_ID --from D --to D`).
    Create(CreateArgs),
    /// Backfills, newest first: range, runs created, queued, running and done, state.
    List {
        /// Only this DAG's.
        dag_id: Option<String>,
        /// At most this many (1..1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Stop a backfill: no more of its runs are created, and its queued and
    /// running runs are cancelled (as `gale runs cancel` does).
    Cancel { backfill_id: i64 },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(required = true)]
    dag_id: Option<String>,
    /// First logical date (inclusive), in the DAG's time zone unless an offset is given.
    #[arg(long, required = true)]
    from: Option<String>,
    /// Last logical date (inclusive).
    #[arg(long, required = true)]
    to: Option<String>,
    /// Create the runs and return without following them.
    #[arg(long)]
    no_wait: bool,
}

pub async fn backfill(paths: &Paths, output: Output, args: BackfillArgs) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    match args.cmd {
        Some(BackfillCmd::List { dag_id, limit }) => list(&*store, dag_id, limit, output).await,
        Some(BackfillCmd::Cancel { backfill_id }) => cancel(&*store, backfill_id, output).await,
        Some(BackfillCmd::Create(create_args)) => create(&*store, create_args, output).await,
        None => create(&*store, args.create, output).await,
    }
}

async fn list(
    store: &dyn Store,
    dag_id: Option<String>,
    limit: u32,
    output: Output,
) -> anyhow::Result<u8> {
    let dag_id = dag_id.map(DagId);
    if let Some(d) = &dag_id {
        current_dag(store, d).await?;
    }
    let rows: Vec<Backfill> = store
        .list_backfills(dag_id.as_ref(), limit)
        .await?
        .iter()
        .map(Backfill::from)
        .collect();
    if output == Output::Json {
        print_json(&rows)?;
        return Ok(exit::OK);
    }
    let lines = rows
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.dag_id.clone(),
                when(Some(b.from_date)),
                when(Some(b.to_date)),
                b.total.to_string(),
                b.queued.to_string(),
                b.running.to_string(),
                b.done.to_string(),
                b.state.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "ID", "DAG", "FROM", "TO", "CREATED", "QUEUED", "RUNNING", "DONE", "STATE"
            ],
            lines
        )
    );
    Ok(exit::OK)
}

async fn cancel(store: &dyn Store, id: i64, output: Output) -> anyhow::Result<u8> {
    let c = gale_actions::cancel_backfill(store, &super::cli_actor(), id)
        .await
        .map_err(not_found_hint)?;
    let row = store
        .get_backfill(id)
        .await?
        .ok_or_else(|| super::NotFound(format!("no backfill {id}")))?;
    if output == Output::Json {
        let mut v = serde_json::to_value(Backfill::from(&row))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("cancelled_runs".into(), serde_json::json!(c.cancelled_runs));
        }
        print_json(&v)?;
    } else {
        println!(
            "cancelled backfill {id} of {}: {} run(s) cancelled",
            c.dag_id,
            c.cancelled_runs.len()
        );
    }
    Ok(exit::OK)
}

async fn create(store: &dyn Store, args: CreateArgs, output: Output) -> anyhow::Result<u8> {
    let (Some(dag_id), Some(from), Some(to)) = (args.dag_id, args.from, args.to) else {
        return Err(super::Usage(
            "give DAG_ID, --from and --to (or a subcommand: create, list, cancel)".into(),
        )
        .into());
    };
    let dag_id = DagId(dag_id);
    let (_, version) = current_dag(store, &dag_id).await?;
    let made = gale_actions::backfill(store, &super::cli_actor(), &dag_id, &from, &to)
        .await
        .map_err(not_found_hint)?;
    let (run_ids, existing) = (made.created, made.existing);
    eprintln!(
        "backfill {} of {dag_id}: {} run(s) created, {existing} slot(s) already had a run; max_active_runs = {}",
        made.id,
        run_ids.len(),
        version.spec.max_active_runs
    );
    warn_if_not_running(store, &dag_id).await?;
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
                // A cancelled run did not do its slot's work either.
                if matches!(r.state, RunState::Failed | RunState::Cancelled) {
                    failed += 1;
                }
            }
        }
        if let Some(b) = &bar {
            b.set_position(done);
            b.set_message(if failed > 0 {
                format!("({failed} failed or cancelled)")
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
                    "backfill finished: {} run(s), {failed} failed or cancelled",
                    run_ids.len()
                );
            }
            return Ok(if failed > 0 { exit::FAILED } else { exit::OK });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
