//! `gale pools`: list, set, delete.

use anyhow::bail;
use clap::Subcommand;

use super::output::{print_json, table};
use super::{NotFound, open_store};
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
