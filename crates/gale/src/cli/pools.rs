//! `gale pools`: list, set, delete (each change an action of
//! `gale_actions::admin`, recorded in the audit log).

use clap::Subcommand;
use serde_json::json;

use super::open_store;
use super::output::{print_json, table};
use crate::{Output, Paths, exit};

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
                            p.waiting.to_string(),
                            p.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "POOL",
                            "SLOTS",
                            "RUNNING",
                            "QUEUED",
                            "WAITING",
                            "DESCRIPTION"
                        ],
                        rows
                    )
                );
            }
            Ok(exit::OK)
        }
        PoolsCmd::Set {
            name,
            slots,
            description,
        } => {
            let created = gale_actions::admin::set_pool(
                &*store,
                &super::cli_actor(),
                &name,
                slots,
                description.as_deref(),
                gale_actions::admin::PoolWrite::Either,
            )
            .await
            .map_err(super::dags::not_found_hint)?;
            if output == Output::Json {
                print_json(
                    &json!({"name": name, "slots": slots, "description": description, "created": created}),
                )?;
            } else {
                println!("pool {name}: {slots} slots");
            }
            Ok(exit::OK)
        }
        PoolsCmd::Delete { name } => {
            gale_actions::admin::delete_pool(&*store, &super::cli_actor(), &name)
                .await
                .map_err(super::dags::not_found_hint)?;
            println!("pool {name} deleted");
            Ok(exit::OK)
        }
    }
}
