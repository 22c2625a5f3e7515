//! `gale backfill`: create the runs of a date range and follow them.

use std::time::Duration;

use clap::Args;
use gale_model::{DagId, RunState};

use super::dags::{current_dag, warn_if_not_running};
use super::open_store;
use super::output::print_json;
use crate::{Output, Paths, exit};

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
    let made = gale_actions::backfill(&*store, &super::cli_actor(), &dag_id, &args.from, &args.to)
        .await
        .map_err(super::dags::not_found_hint)?;
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
