//! `gale connections`: add, get, list, delete, import and export connections,
//! taking Airflow's spellings (`--conn-uri`, `--conn-host`, ...) and reading
//! and writing Airflow's export files. Every change, reveal and export goes
//! through `gale_actions`, so the audit log records it; a password or secret
//! extra is printed only with `--reveal` or in an export.

use std::collections::BTreeSet;

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use gale_model::secrets::{Connection, check_name};
use gale_secrets::Resolver;
use serde_json::{Map, Value, json};

use super::output::{print_json, table};
use super::secret_io::{
    FileFormat, OnExisting, action_error, label, not_anywhere, parse_entries, read_input,
    read_stdin_value, to_yaml, warn_command_line, write_secret_output,
};
use super::{cli_actor, open_store};
use crate::{Output, Paths, exit};

#[derive(Subcommand, Debug)]
pub enum ConnectionsCmd {
    /// Add a connection, from an Airflow URI
    /// (`type://login:password@host:port/schema?key=value`) or from its
    /// fields. Its password and extra are sealed at rest (needs the secret
    /// key).
    Add(AddArgs),
    /// Show a connection as a task would get it: from the environment
    /// (`GALE_CONN_<NAME>`), else the secrets directory, else the store; the
    /// password and secret-looking extra values as `***` unless --reveal.
    Get {
        name: String,
        /// Show the password and extra in clear (a store one is recorded in
        /// the audit log as connection.reveal).
        #[arg(long)]
        reveal: bool,
    },
    /// List the store's connections (never their passwords or extras).
    List,
    /// Delete a connection from the store.
    Delete { name: String },
    /// Import connections from what `airflow connections export` writes
    /// (`-`: standard input): JSON or YAML (`{name: {conn_type, host, ...,
    /// extra}}`, or `{name: URI}`), or `.env` lines `name=URI`. Every entry
    /// is checked first; nothing is imported if any is bad.
    Import {
        file: String,
        /// What to do with a name already stored (default: skip, as Airflow does).
        #[arg(long, value_enum, conflicts_with = "overwrite")]
        on_existing: Option<OnExisting>,
        /// The same as --on-existing overwrite (Airflow's spelling).
        #[arg(long)]
        overwrite: bool,
    },
    /// Export every connection in Airflow's shape (so `airflow connections
    /// import` reads it too), passwords in clear (recorded in the audit log),
    /// to FILE (created readable by its owner only) or standard output. The
    /// env format (`name=URI`) leaves descriptions out.
    Export {
        file: Option<String>,
        /// json, yaml or env (default: by FILE's extension, else json).
        #[arg(long, value_enum, alias = "file-format")]
        format: Option<FileFormat>,
    },
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("kind").required(true).args(["uri", "conn_type"])))]
pub struct AddArgs {
    name: String,
    /// The whole connection as an Airflow URI (`-`: read from standard input).
    #[arg(long, visible_alias = "conn-uri")]
    uri: Option<String>,
    /// The type: postgres, mysql, http, ... (with the fields below).
    #[arg(long, visible_alias = "type")]
    conn_type: Option<String>,
    #[arg(long, visible_alias = "conn-host", conflicts_with = "uri")]
    host: Option<String>,
    #[arg(long, visible_alias = "conn-port", conflicts_with = "uri")]
    port: Option<u16>,
    #[arg(long, visible_alias = "conn-login", conflicts_with = "uri")]
    login: Option<String>,
    /// The password (`-`: read from standard input, so it is not on the
    /// command line).
    #[arg(long, visible_alias = "conn-password", conflicts_with = "uri")]
    password: Option<String>,
    /// The database.
    #[arg(long, visible_alias = "conn-schema", conflicts_with = "uri")]
    schema: Option<String>,
    /// A JSON object of extra settings (merged into a URI's).
    #[arg(long, visible_alias = "conn-extra")]
    extra: Option<String>,
    #[arg(long, visible_alias = "conn-description")]
    description: Option<String>,
    /// Replace a connection of that name instead of refusing.
    #[arg(long)]
    replace: bool,
}

pub async fn connections(paths: &Paths, output: Output, cmd: ConnectionsCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    let vault = crate::secrets::vault(paths, store.clone())?;
    let actor = cli_actor();
    match cmd {
        ConnectionsCmd::Add(args) => {
            check_name("connection", &args.name).map_err(anyhow::Error::msg)?;
            let name = args.name.clone();
            let conn = connection_of(&args)?;
            if store.connection(&name).await?.is_some() && !args.replace {
                bail!("connection {name} exists: pass --replace to replace it, or delete it first");
            }
            gale_actions::set_connection(&*store, &vault, &actor, &name, &conn)
                .await
                .map_err(action_error)?;
            println!("connection {name} added ({})", conn.conn_type);
            Ok(exit::OK)
        }
        ConnectionsCmd::Get { name, reveal } => {
            check_name("connection", &name).map_err(anyhow::Error::msg)?;
            let outside = Resolver::new(paths.secrets_dir.clone(), None);
            let (conn, source) = if let Some(found) = outside.connection(&name).await? {
                // The caller's own environment or secrets directory: nothing
                // of the store's is revealed, so nothing is recorded.
                found
            } else if reveal {
                let conn = gale_actions::reveal_connection(&*store, &vault, &actor, &name)
                    .await
                    .map_err(|e| {
                        not_anywhere(e, &crate::secrets::resolver(paths, vault.clone()))
                    })?;
                (conn, "the store".to_owned())
            } else {
                let opened = match vault.connection(&name).await {
                    // Without the key its public fields still show; the
                    // password and extra stay sealed.
                    Err(gale_secrets::Error::NoKey(_)) => {
                        eprintln!(
                            "note: this process has no secret key: the password and extra are shown as sealed"
                        );
                        vault
                            .connections()
                            .await?
                            .into_iter()
                            .find(|c| c.name == name)
                            .map(|c| gale_model::secrets::Connection {
                                conn_type: c.conn_type,
                                host: c.host,
                                port: c.port,
                                login: c.login,
                                password: c.sealed.then(|| "***".to_owned()),
                                schema: c.schema,
                                extra: Default::default(),
                                description: c.description,
                            })
                    }
                    other => other?,
                };
                let conn = opened.ok_or_else(|| {
                    not_anywhere(
                        gale_actions::Error::NotFound(format!("no connection {name}")),
                        &crate::secrets::resolver(paths, vault.clone()),
                    )
                })?;
                (conn, "the store".to_owned())
            };
            let uri = reveal.then(|| conn.uri());
            let conn = if reveal { conn } else { conn.masked() };
            if output == Output::Json {
                let mut shown = json!({"name": name});
                if let (Some(obj), Value::Object(fields)) =
                    (shown.as_object_mut(), serde_json::to_value(&conn)?)
                {
                    obj.extend(fields);
                    obj.insert("source".into(), json!(source));
                    if let Some(uri) = uri {
                        obj.insert("uri".into(), json!(uri));
                    }
                }
                print_json(&shown)?;
            } else {
                let text = |v: &Option<String>| v.clone().unwrap_or_default();
                let mut rows = vec![
                    vec!["name".into(), name.clone()],
                    vec!["conn_type".into(), conn.conn_type.clone()],
                    vec!["host".into(), text(&conn.host)],
                    vec![
                        "port".into(),
                        conn.port.map(|p| p.to_string()).unwrap_or_default(),
                    ],
                    vec!["login".into(), text(&conn.login)],
                    vec!["password".into(), text(&conn.password)],
                    vec!["schema".into(), text(&conn.schema)],
                    vec![
                        "extra".into(),
                        if conn.extra.is_empty() {
                            String::new()
                        } else {
                            Value::Object(conn.extra.clone()).to_string()
                        },
                    ],
                    vec!["description".into(), text(&conn.description)],
                    vec!["source".into(), source],
                ];
                if let Some(uri) = uri {
                    rows.push(vec!["uri".into(), uri]);
                }
                println!("{}", table(&["FIELD", "VALUE"], rows));
            }
            Ok(exit::OK)
        }
        ConnectionsCmd::List => {
            let all = vault.connections().await?;
            if output == Output::Json {
                print_json(&all)?;
            } else {
                let text = |v: &Option<String>| v.clone().unwrap_or_default();
                let rows = all
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.conn_type.clone(),
                            text(&c.host),
                            c.port.map(|p| p.to_string()).unwrap_or_default(),
                            text(&c.login),
                            text(&c.schema),
                            if c.sealed { "yes" } else { "no" }.to_owned(),
                            text(&c.description),
                        ]
                    })
                    .collect();
                let headers = [
                    "NAME",
                    "TYPE",
                    "HOST",
                    "PORT",
                    "LOGIN",
                    "SCHEMA",
                    "SEALED",
                    "DESCRIPTION",
                ];
                println!("{}", table(&headers, rows));
            }
            Ok(exit::OK)
        }
        ConnectionsCmd::Delete { name } => {
            gale_actions::delete_connection(&*store, &vault, &actor, &name)
                .await
                .map_err(action_error)?;
            println!("connection {name} deleted");
            Ok(exit::OK)
        }
        ConnectionsCmd::Import {
            file,
            on_existing,
            overwrite,
        } => {
            let on_existing = match (on_existing, overwrite) {
                (_, true) => OnExisting::Overwrite,
                (Some(o), false) => o,
                (None, false) => OnExisting::Skip,
            };
            let text = read_input(&file)?;
            let from = label(&file);
            let entries = parse_entries(&file, &text, true)?;
            let stored: BTreeSet<String> = vault
                .connections()
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect();
            let mut bad = Vec::new();
            let mut todo = Vec::new();
            let mut skipped = 0;
            for (name, entry) in &entries {
                match Connection::from_export(name, entry) {
                    Err(e) => bad.push(e),
                    Ok(_) if stored.contains(name) && on_existing == OnExisting::Skip => {
                        skipped += 1;
                    }
                    Ok(_) if stored.contains(name) && on_existing == OnExisting::Fail => {
                        bad.push(format!("connection {name} is already stored"));
                    }
                    Ok(conn) => todo.push((name.clone(), conn)),
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
            let sealed: Vec<&str> = todo
                .iter()
                .filter(|(_, c)| c.password.is_some() || !c.extra.is_empty())
                .map(|(n, _)| n.as_str())
                .collect();
            if !sealed.is_empty() && !vault.has_key() {
                bail!(gale_secrets::Error::NoKey(format!(
                    "nothing from {from} was imported: the password and extra of {} cannot be stored",
                    sealed.join(", ")
                )));
            }
            for (i, (name, conn)) in todo.iter().enumerate() {
                if let Err(e) =
                    gale_actions::set_connection(&*store, &vault, &actor, name, conn).await
                {
                    bail!(
                        "{from}: connection {name} failed, after {i} of {} were imported: {e}",
                        todo.len()
                    );
                }
            }
            let skipped = if skipped > 0 {
                format!(" ({skipped} already stored, kept: --overwrite replaces them)")
            } else {
                String::new()
            };
            println!("imported {} connections from {from}{skipped}", todo.len());
            Ok(exit::OK)
        }
        ConnectionsCmd::Export { file, format } => {
            let format = format
                .or_else(|| file.as_deref().and_then(FileFormat::of_path))
                .unwrap_or(FileFormat::Json);
            let all = gale_actions::export_connections(&*store, &vault, &actor)
                .await
                .map_err(action_error)?;
            let text = match format {
                FileFormat::Env => all
                    .iter()
                    .map(|(n, c)| format!("{n}={}\n", c.uri()))
                    .collect(),
                FileFormat::Json | FileFormat::Yaml => {
                    let map: Map<String, Value> = all
                        .iter()
                        .map(|(n, c)| (n.clone(), c.to_export()))
                        .collect();
                    if format == FileFormat::Yaml {
                        to_yaml(&Value::Object(map))
                    } else {
                        format!("{}\n", serde_json::to_string_pretty(&map)?)
                    }
                }
            };
            if write_secret_output(file.as_deref(), &text)? {
                let file = file.unwrap_or_default();
                println!("exported {} connections to {file}", all.len());
            }
            Ok(exit::OK)
        }
    }
}

/// The connection `add` was given: a URI, or fields; `-` read from stdin.
fn connection_of(f: &AddArgs) -> anyhow::Result<Connection> {
    let extra = match &f.extra {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => bail!("--extra must be a JSON object, like '{{\"sslmode\": \"require\"}}'"),
            Err(e) => bail!("--extra is not valid JSON: {e}"),
        },
    };
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let mut conn = if let Some(given) = &f.uri {
        let from_stdin = given == "-";
        let uri = if from_stdin {
            read_stdin_value("the URI")?
        } else {
            given.clone()
        };
        let conn = Connection::from_uri(&uri)
            .map_err(anyhow::Error::msg)
            .context("--uri")?;
        if conn.password.is_some() && !from_stdin {
            warn_command_line(
                "the URI's password",
                "`--uri -` reads the URI from standard input",
            );
        }
        conn
    } else {
        let password = match f.password.as_deref() {
            Some("-") => Some(read_stdin_value("the password")?),
            Some(p) => {
                warn_command_line(
                    "the password",
                    "`--password -` reads it from standard input",
                );
                Some(p.to_owned())
            }
            None => None,
        };
        Connection {
            conn_type: f.conn_type.clone().unwrap_or_default(),
            host: non_empty(f.host.clone()),
            port: f.port,
            login: non_empty(f.login.clone()),
            password: non_empty(password),
            schema: non_empty(f.schema.clone()),
            ..Connection::default()
        }
    };
    conn.extra.extend(extra);
    conn.description = non_empty(f.description.clone());
    Ok(conn)
}
