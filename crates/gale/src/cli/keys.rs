//! `gale secrets`: make a key, re-seal every secret under a new one, and show
//! which keys seal what. The keys themselves are never printed, only their
//! ids (a digest); `new-key` prints the fresh key it makes, nothing else.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::output::{print_json, table};
use super::secret_io::action_error;
use super::{cli_actor, open_store};
use crate::{Output, Paths, exit};

const ROTATE_HELP: &str = "\
Re-seal every secret variable and connection under the key file's first key.

To change the key while everything runs:

  1. Make a new key: `gale secrets new-key`.
  2. On every node, put it as the first line of the key file and keep the old
     key on the line below. The first line seals, every line opens; a running
     process reads the file again within a second of its change.
  3. Run `gale secrets rotate-key` once, on any machine with that key file:
     every value sealed under another key is re-sealed under the new one.
  4. Check with `gale secrets status` that every value is under the new key,
     then remove the old key's line from every node's key file.

With GALE_SECRET_KEY instead of a file, do the same with its value (keys
separated by commas or spaces) and restart the processes.";

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Print a fresh key (64 hex digits), or write it to a new file readable
    /// by its owner only.
    NewKey {
        /// Create this file (it must not exist) holding the key, mode 0600.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Re-seal every secret under the key file's first key.
    #[command(long_about = ROTATE_HELP)]
    RotateKey,
    /// Where this process's keys come from, their ids, and how many values
    /// are sealed under each; exit 1 when a value is sealed under a key
    /// this process lacks.
    Status,
}

pub async fn secrets(paths: &Paths, output: Output, cmd: SecretsCmd) -> anyhow::Result<u8> {
    match cmd {
        SecretsCmd::NewKey { file: None } => {
            println!("{}", gale_secrets::generate_key()?);
            Ok(exit::OK)
        }
        SecretsCmd::NewKey { file: Some(file) } => {
            gale_secrets::write_key_file(&file)?;
            println!(
                "wrote a new key to {} (mode 0600): give it to every node as --secret-key-file \
                 (GALE_SECRET_KEY_FILE), and keep a copy somewhere safe",
                file.display()
            );
            Ok(exit::OK)
        }
        SecretsCmd::RotateKey => {
            let store = open_store(paths).await?;
            let vault = crate::secrets::vault(paths, store.clone())?;
            let done = gale_actions::rotate_key(&*store, &vault, &cli_actor())
                .await
                .map_err(action_error)?;
            let status = vault.key_status().await?;
            let elsewhere: u64 = status
                .sealed
                .iter()
                .filter(|(id, _, _)| *id != done.key_id)
                .map(|(_, n, _)| n)
                .sum();
            if output == Output::Json {
                print_json(&json!({
                    "key_id": done.key_id,
                    "resealed": done.resealed,
                    "raced": done.raced,
                    "not_opened": done.not_opened,
                    "why_not_opened": done.unopened,
                    "under_other_keys": elsewhere,
                }))?;
            } else {
                println!(
                    "re-sealed {} values under key {}",
                    done.resealed, done.key_id
                );
                if done.raced > 0 {
                    println!(
                        "{} values were set anew meanwhile and read again",
                        done.raced
                    );
                }
                if done.not_opened > 0 {
                    eprintln!(
                        "{} values did not open under this process's keys and were left as they are:",
                        done.not_opened
                    );
                    for why in &done.unopened {
                        eprintln!("  {why}");
                    }
                }
                if elsewhere == 0 {
                    println!(
                        "every value is sealed under key {}: the older keys' lines may now be \
                         removed from every node's key file",
                        done.key_id
                    );
                } else {
                    println!(
                        "{elsewhere} values are still sealed under other keys (set meanwhile by a \
                         process without the new key?): run rotate-key again once every node has it"
                    );
                }
            }
            Ok(if elsewhere == 0 {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        SecretsCmd::Status => {
            let store = open_store(paths).await?;
            let vault = crate::secrets::vault(paths, store)?;
            let status = vault.key_status().await?;
            let count = |id: &str| {
                status
                    .sealed
                    .iter()
                    .find(|(k, _, _)| k == id)
                    .map_or(0, |(_, n, _)| *n)
            };
            let missing: Vec<(String, u64)> = status
                .sealed
                .iter()
                .filter(|(_, _, known)| !known)
                .map(|(id, n, _)| (id.clone(), *n))
                .collect();
            if output == Output::Json {
                let keys: Vec<_> = status
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, id)| json!({"key_id": id, "seals": i == 0, "values": count(id)}))
                    .collect();
                let missing: Vec<_> = missing
                    .iter()
                    .map(|(id, n)| json!({"key_id": id, "values": n}))
                    .collect();
                print_json(&json!({
                    "source": status.source,
                    "keys": keys,
                    "missing": missing,
                }))?;
            } else {
                match &status.source {
                    Some(s) => println!("keys from {s}"),
                    None => println!(
                        "{}",
                        gale_secrets::Error::NoKey("nothing secret can be stored or read".into())
                    ),
                }
                let mut rows: Vec<Vec<String>> = status
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        vec![
                            id.clone(),
                            if i == 0 { "seals and opens" } else { "opens" }.to_owned(),
                            count(id).to_string(),
                            "yes".to_owned(),
                        ]
                    })
                    .collect();
                rows.extend(
                    missing
                        .iter()
                        .map(|(id, n)| vec![id.clone(), "-".into(), n.to_string(), "no".into()]),
                );
                if !rows.is_empty() {
                    println!("{}", table(&["KEY ID", "USE", "VALUES", "HERE"], rows));
                }
            }
            if missing.is_empty() {
                return Ok(exit::OK);
            }
            let n: u64 = missing.iter().map(|(_, n)| n).sum();
            let ids: Vec<&str> = missing.iter().map(|(id, _)| id.as_str()).collect();
            let _ = writeln!(
                std::io::stderr(),
                "error: {n} values are sealed under keys this process does not have ({}): add \
                 those keys to the key file, below the first line",
                ids.join(", ")
            );
            Ok(exit::FAILED)
        }
    }
}
