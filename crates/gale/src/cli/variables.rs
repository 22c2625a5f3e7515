//! `gale variables`: set, get, list, delete, import and export variables.
//! Every change, reveal and export goes through `gale_actions`, so the audit
//! log records it; a secret value is printed only with `--reveal` or in an
//! export, and never taken from the command line unless given there.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::bail;
use clap::Subcommand;
use gale_model::secrets::{Variable, check_name, variable_from_export, variable_to_export};
use gale_secrets::Resolver;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

use super::output::{print_json, table};
use super::secret_io::{
    FileFormat, OnExisting, action_error, cell, label, not_anywhere, parse_entries, read_input,
    read_stdin_value, to_yaml, warn_command_line, write_secret_output,
};
use super::{cli_actor, open_store};
use crate::{Output, Paths, exit};

#[derive(Subcommand, Debug)]
pub enum VariablesCmd {
    /// Create or replace a variable. Without VALUE (or with `-`) the value is
    /// read from standard input, one trailing newline dropped, so a secret
    /// need not be on the command line. A secret variable stays secret when
    /// set again (delete it to make it plain); the description is kept
    /// unless given.
    Set {
        name: String,
        value: Option<String>,
        /// The value is JSON (checked); templates read it as `var.json.NAME`.
        #[arg(long)]
        json: bool,
        /// Seal it at rest (needs the secret key) and mask it everywhere. A
        /// name that looks secret (`..._password`, `api_token`) is secret too.
        #[arg(long)]
        secret: bool,
        #[arg(long)]
        description: Option<String>,
    },
    /// Print a variable's value as a task would get it: from the
    /// environment (`GALE_VAR_<NAME>`), else the secrets directory, else the
    /// store. A secret one prints `***` unless --reveal.
    Get {
        name: String,
        /// Print a secret value (a store one is recorded in the audit log as
        /// variable.reveal).
        #[arg(long)]
        reveal: bool,
    },
    /// List the store's variables (secret values as `***`).
    List,
    /// Delete a variable from the store.
    Delete { name: String },
    /// Import variables from a JSON or YAML file (`-`: standard input):
    /// Airflow's `{"name": "value" | {...}}` or Gale's
    /// `{"name": {"value": ..., "description": ..., "secret": true}}`. Every
    /// entry is checked first; nothing is imported if any is bad.
    Import {
        file: String,
        /// What to do with a name already stored.
        #[arg(long, value_enum, default_value_t = OnExisting::Overwrite, alias = "action-on-existing-key")]
        on_existing: OnExisting,
    },
    /// Export every variable in Gale's format, secret values in clear
    /// (recorded in the audit log), to FILE (created readable by its owner
    /// only) or standard output.
    Export {
        file: Option<String>,
        /// json or yaml (default: by FILE's extension, else json).
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
    },
}

/// A variable as `get` and `list` print it.
#[derive(Serialize)]
struct Shown {
    name: String,
    value: String,
    json: bool,
    secret: bool,
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    updated_at: Option<Timestamp>,
}

const MASK: &str = "***";

pub async fn variables(paths: &Paths, output: Output, cmd: VariablesCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    let vault = crate::secrets::vault(paths, store.clone())?;
    let actor = cli_actor();
    match cmd {
        VariablesCmd::Set {
            name,
            value,
            json,
            secret,
            description,
        } => {
            check_name("variable", &name).map_err(anyhow::Error::msg)?;
            let value = match value.as_deref() {
                None | Some("-") => read_stdin_value("the value")?,
                Some(v) => {
                    if secret || gale_model::mask::is_secret_key(&name) {
                        warn_command_line(
                            "a secret value",
                            "leave VALUE out (or give `-`) to read it from standard input",
                        );
                    }
                    v.to_owned()
                }
            };
            let before = store.variable(&name).await?;
            let secret = secret || before.as_ref().is_some_and(|b| b.secret);
            let description = description.or(before.and_then(|b| b.description));
            let v = Variable::new(&name, value, json, secret, description)
                .map_err(anyhow::Error::msg)?;
            gale_actions::set_variable(&*store, &vault, &actor, &name, &v)
                .await
                .map_err(action_error)?;
            let kind = match (v.secret, v.json) {
                (true, true) => " (secret, json)",
                (true, false) => " (secret)",
                (false, true) => " (json)",
                (false, false) => "",
            };
            println!("variable {name} set{kind}");
            Ok(exit::OK)
        }
        VariablesCmd::Get { name, reveal } => {
            check_name("variable", &name).map_err(anyhow::Error::msg)?;
            let outside = Resolver::new(paths.secrets_dir.clone(), None);
            let shown = if let Some((v, source)) = outside.variable(&name).await? {
                // The caller's own environment or secrets directory: nothing
                // of the store's is revealed, so nothing is recorded.
                shown(&name, v, reveal, Some(source), None)
            } else if reveal {
                let v = gale_actions::reveal_variable(&*store, &vault, &actor, &name)
                    .await
                    .map_err(|e| {
                        not_anywhere(e, &crate::secrets::resolver(paths, vault.clone()))
                    })?;
                let at = store.variable(&name).await?.and_then(|r| r.updated_at);
                shown(&name, v, true, None, at)
            } else {
                let Some(row) = store.variable(&name).await? else {
                    return Err(not_anywhere(
                        gale_actions::Error::NotFound(format!("no variable {name}")),
                        &crate::secrets::resolver(paths, vault.clone()),
                    ));
                };
                Shown {
                    name: name.clone(),
                    value: row.value.unwrap_or_else(|| MASK.into()),
                    json: row.json,
                    secret: row.secret,
                    description: row.description,
                    source: None,
                    updated_at: row.updated_at,
                }
            };
            if output == Output::Json {
                print_json(&shown)?;
            } else {
                println!("{}", shown.value);
                if let Some(source) = &shown.source {
                    let _ = writeln!(std::io::stderr(), "(from {source})");
                }
            }
            Ok(exit::OK)
        }
        VariablesCmd::List => {
            let all: Vec<Shown> = vault
                .variables()
                .await?
                .into_iter()
                .map(|v| Shown {
                    name: v.name,
                    value: v.value.unwrap_or_else(|| MASK.into()),
                    json: v.json,
                    secret: v.secret,
                    description: v.description,
                    source: None,
                    updated_at: v.updated_at,
                })
                .collect();
            if output == Output::Json {
                print_json(&all)?;
            } else {
                let rows = all
                    .iter()
                    .map(|v| {
                        vec![
                            v.name.clone(),
                            if v.json { "json" } else { "text" }.to_owned(),
                            if v.secret { "yes" } else { "no" }.to_owned(),
                            cell(&v.value),
                            v.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["NAME", "TYPE", "SECRET", "VALUE", "DESCRIPTION"], rows)
                );
            }
            Ok(exit::OK)
        }
        VariablesCmd::Delete { name } => {
            gale_actions::delete_variable(&*store, &vault, &actor, &name)
                .await
                .map_err(action_error)?;
            println!("variable {name} deleted");
            Ok(exit::OK)
        }
        VariablesCmd::Import { file, on_existing } => {
            let text = read_input(&file)?;
            let from = label(&file);
            let entries = parse_entries(&file, &text, false)?;
            let stored: BTreeMap<String, bool> = vault
                .variables()
                .await?
                .into_iter()
                .map(|v| (v.name, v.secret))
                .collect();
            let mut bad = Vec::new();
            let mut todo = Vec::new();
            let mut skipped = 0;
            for (name, entry) in &entries {
                match variable_from_export(name, entry) {
                    Err(e) => bad.push(e),
                    Ok(_) if stored.contains_key(name) && on_existing == OnExisting::Skip => {
                        skipped += 1;
                    }
                    Ok(_) if stored.contains_key(name) && on_existing == OnExisting::Fail => {
                        bad.push(format!("variable {name} is already stored"));
                    }
                    Ok(mut v) => {
                        // Never turned plain by an import that does not say secret.
                        v.secret |= stored.get(name).copied().unwrap_or(false);
                        todo.push((name.clone(), v));
                    }
                }
            }
            if !bad.is_empty() {
                bail!(
                    "{from}: nothing imported, {} of {} entries are bad:\n  {}",
                    bad.len(),
                    entries.len(),
                    bad.join("\n  ")
                );
            }
            let secret: Vec<&str> = todo
                .iter()
                .filter(|(_, v)| v.secret)
                .map(|(n, _)| n.as_str())
                .collect();
            if !secret.is_empty() && !vault.has_key() {
                bail!(gale_secrets::Error::NoKey(format!(
                    "nothing from {from} was imported: the secret variables {} cannot be stored",
                    secret.join(", ")
                )));
            }
            for (i, (name, v)) in todo.iter().enumerate() {
                if let Err(e) = gale_actions::set_variable(&*store, &vault, &actor, name, v).await {
                    bail!(
                        "{from}: variable {name} failed, after {i} of {} were imported: {e}",
                        todo.len()
                    );
                }
            }
            let skipped = if skipped > 0 {
                format!(" ({skipped} already stored, kept)")
            } else {
                String::new()
            };
            println!("imported {} variables from {from}{skipped}", todo.len());
            Ok(exit::OK)
        }
        VariablesCmd::Export { file, format } => {
            let format = format
                .or_else(|| file.as_deref().and_then(FileFormat::of_path))
                .unwrap_or(FileFormat::Json);
            if format == FileFormat::Env {
                bail!("variables are exported as json or yaml, not env");
            }
            let all = gale_actions::export_variables(&*store, &vault, &actor)
                .await
                .map_err(action_error)?;
            let map: Map<String, Value> = all
                .iter()
                .map(|(n, v)| (n.clone(), variable_to_export(v)))
                .collect();
            let text = match format {
                FileFormat::Yaml => to_yaml(&Value::Object(map)),
                _ => format!("{}\n", serde_json::to_string_pretty(&map)?),
            };
            if write_secret_output(file.as_deref(), &text)? {
                let file = file.unwrap_or_default();
                println!("exported {} variables to {file}", all.len());
            }
            Ok(exit::OK)
        }
    }
}

fn shown(
    name: &str,
    v: Variable,
    reveal: bool,
    source: Option<String>,
    updated_at: Option<Timestamp>,
) -> Shown {
    Shown {
        name: name.to_owned(),
        value: if v.secret && !reveal {
            MASK.into()
        } else {
            v.value
        },
        json: v.json,
        secret: v.secret,
        description: v.description,
        source,
        updated_at,
    }
}
