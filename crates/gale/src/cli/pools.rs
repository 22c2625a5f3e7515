//! `gale pools`: list, set, delete (each change recorded in the audit log).

use anyhow::bail;
use clap::Subcommand;
use gale_actions::audit::detail;
use gale_store::AuditAction;
use serde_json::{Map, json};

use super::output::{print_json, table};
use super::{NotFound, open_store, record};
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
            if !gale_model::ids::is_valid_id(&name) {
                bail!("invalid pool name {name:?}: use letters, digits, '_', '.' and '-' only");
            }
            let before = store
                .list_pools()
                .await?
                .into_iter()
                .find(|p| p.name == name);
            store.set_pool(&name, slots, description.as_deref()).await?;
            let mut about = detail([("slots", json!(slots))]);
            if let Some(d) = &description {
                about.insert("description".into(), json!(d));
            }
            let action = match &before {
                Some(old) => {
                    about.insert("was_slots".into(), json!(old.slots));
                    AuditAction::PoolUpdate
                }
                None => AuditAction::PoolCreate,
            };
            record(&*store, action, &format!("pool/{name}"), about, Ok(())).await;
            if output == Output::Json {
                print_json(
                    &json!({"name": name, "slots": slots, "description": description, "created": before.is_none()}),
                )?;
            } else {
                println!("pool {name}: {slots} slots");
            }
            Ok(exit::OK)
        }
        PoolsCmd::Delete { name } => {
            let deleted = store.delete_pool(&name).await?;
            let missing = format!("no pool {name}");
            let result = if deleted {
                Ok(())
            } else {
                Err(missing.as_str())
            };
            let target = format!("pool/{name}");
            record(
                &*store,
                AuditAction::PoolDelete,
                &target,
                Map::new(),
                result,
            )
            .await;
            if deleted {
                println!("pool {name} deleted");
                Ok(exit::OK)
            } else {
                Err(NotFound(missing).into())
            }
        }
    }
}
