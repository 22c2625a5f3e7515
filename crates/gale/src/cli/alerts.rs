//! `gale alerts`: alert channels (add, list, get, delete), a test message
//! through one (`test`), and the deliveries the outbox holds. Every change
//! and test goes through `gale_actions`, so the audit log records it; a
//! channel's secret settings (an SMTP password, a webhook or Slack URL, a
//! signing secret) are read from files or standard input, never taken from
//! the command line, and never printed.

use std::io::IsTerminal as _;

use anyhow::{Context, bail};
use clap::Subcommand;
use gale_alerts::ChannelSpec;
use gale_store::{DeliveryFilter, DeliveryRow, DeliveryState};
use serde_json::{Map, Value, json};

use super::output::{print_json, table, when};
use super::secret_io::{action_error, cell, cell_of, read_input, read_stdin_value};
use super::{cli_actor, open_store};
use crate::{Output, Paths, exit};

#[derive(Subcommand, Debug)]
pub enum AlertsCmd {
    /// Alert channels: where alerts go.
    #[command(subcommand)]
    Channels(ChannelsCmd),
    /// Send a test message through a channel now, from this process, and
    /// print what the server answered (exit 1 when it refused).
    Test { channel: String },
    /// The outbox's deliveries, newest first.
    Deliveries {
        /// Only this run's.
        #[arg(long)]
        run: Option<i64>,
        #[arg(long)]
        channel: Option<String>,
        /// pending, sending, sent or failed.
        #[arg(long)]
        state: Option<String>,
        /// At most this many (up to 1,000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum ChannelsCmd {
    /// Add (or with --replace, change) a channel: --email TO[,TO...],
    /// --webhook, --slack or --command -- PROGRAM ARGS..., or a whole
    /// channel document with --from-json FILE. A webhook's or Slack's URL
    /// is read from --url-file, else standard input; an SMTP password from
    /// --password-file or --password-stdin. Replacing a channel keeps the
    /// secret settings not given again (with --replace and standard input a
    /// terminal, the URL is not read: the stored one is kept).
    Add(Box<AddArgs>),
    /// List the channels: kind, target (URLs as scheme, host and port), the
    /// events each is a default for.
    List,
    /// Show one channel, masked.
    Get { name: String },
    /// Delete a channel; its pending deliveries are given up.
    Delete { name: String },
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The channel's name (letters, digits, `_`, `.`, `-`).
    name: Option<String>,
    /// A channel document (`{"name": ..., "kind": ..., settings...}`), `-`
    /// for standard input.
    #[arg(long, conflicts_with_all = ["email", "webhook", "slack", "command"])]
    from_json: Option<String>,
    /// E-mail to these addresses.
    #[arg(long, value_delimiter = ',')]
    email: Vec<String>,
    /// POST a signed JSON document to a URL.
    #[arg(long)]
    webhook: bool,
    /// Post to a Slack (or compatible) incoming webhook.
    #[arg(long)]
    slack: bool,
    /// Run a program with the event as JSON on its standard input; its
    /// arguments follow `--`.
    #[arg(long)]
    command: bool,
    /// The sender (default: GALE_SMTP_FROM).
    #[arg(long)]
    from: Option<String>,
    /// The SMTP server, without a password: smtp://user@host:587?tls=required
    /// (STARTTLS), smtps://user@host (TLS), smtp://host (plain); default:
    /// GALE_SMTP_URL.
    #[arg(long)]
    smtp: Option<String>,
    /// An extra root certificate (PEM) for the SMTP server's TLS.
    #[arg(long)]
    ca_file: Option<String>,
    /// A file holding the SMTP server's password (for --smtp's user, or
    /// GALE_SMTP_URL's).
    #[arg(long, value_name = "FILE")]
    password_file: Option<String>,
    /// Read the SMTP server's password from standard input (one line).
    #[arg(long, conflicts_with = "password_file")]
    password_stdin: bool,
    /// A file holding the webhook's or Slack's URL (default: standard input).
    #[arg(long)]
    url_file: Option<String>,
    /// A file holding the secret webhook bodies are signed with (HMAC-SHA256).
    #[arg(long)]
    signing_secret_file: Option<String>,
    /// An extra request header, NAME=VALUE (repeatable; not secret).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Events this channel gets from every DAG that names none for them:
    /// on_failure, on_retry, on_success, on_recovery, on_deadline, cluster.
    #[arg(long = "default", value_delimiter = ',')]
    defaults: Vec<String>,
    /// What the channel is for, shown in listings (not secret).
    #[arg(long)]
    description: Option<String>,
    /// Replace a channel of that name.
    #[arg(long)]
    replace: bool,
    /// The program and its arguments, for --command.
    #[arg(last = true)]
    argv: Vec<String>,
}

fn read_secret_file(what: &str, file: &str) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {what} from {file}"))?;
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.is_empty() {
        bail!("{file} holds no {what}");
    }
    Ok(text)
}

/// The channel document the flags describe.
fn spec_of(a: AddArgs) -> anyhow::Result<(ChannelSpec, bool)> {
    if let Some(file) = &a.from_json {
        let text = read_input(file)?;
        let mut doc: Map<String, Value> =
            serde_json::from_str(&text).with_context(|| format!("{file} is not a JSON object"))?;
        if let Some(name) = &a.name {
            doc.insert("name".into(), Value::String(name.clone()));
        }
        let spec: ChannelSpec = serde_json::from_value(Value::Object(doc))
            .with_context(|| format!("{file}: a channel needs a name and a kind"))?;
        return Ok((spec, a.replace));
    }
    let Some(name) = a.name.clone() else {
        bail!("give the channel's NAME (or --from-json FILE)");
    };
    let kinds = [!a.email.is_empty(), a.webhook, a.slack, a.command];
    if kinds.iter().filter(|k| **k).count() != 1 {
        bail!("give one of --email TO[,TO...], --webhook, --slack or --command -- PROGRAM ARGS");
    }
    let mut s = Map::new();
    let kind = if !a.email.is_empty() {
        s.insert("to".into(), json!(a.email));
        if let Some(v) = &a.from {
            s.insert("from".into(), json!(v));
        }
        if let Some(v) = &a.smtp {
            s.insert("smtp".into(), json!(v));
        }
        if let Some(v) = &a.ca_file {
            s.insert("ca_file".into(), json!(v));
        }
        let password = match (&a.password_file, a.password_stdin) {
            (Some(f), false) => Some(read_secret_file("the SMTP password", f)?),
            (None, true) => Some(read_stdin_value("the SMTP password")?),
            (None, false) => None,
            (Some(_), true) => bail!("give --password-file or --password-stdin, not both"),
        };
        if let Some(p) = password {
            s.insert("password".into(), json!(p));
        }
        "email"
    } else if a.webhook || a.slack {
        // A replaced channel keeps its URL unless one is given, from a
        // file or piped in (empty input gives none); a terminal is not
        // asked for one.
        let url = match &a.url_file {
            Some(f) => read_secret_file("the URL", f)?,
            None if a.replace && std::io::stdin().is_terminal() => String::new(),
            None => read_stdin_value("the URL")?,
        };
        if !url.is_empty() {
            s.insert("url".into(), json!(url.trim()));
        }
        if a.webhook {
            if let Some(f) = &a.signing_secret_file {
                s.insert(
                    "signing_secret".into(),
                    json!(read_secret_file("the signing secret", f)?),
                );
            }
            if !a.headers.is_empty() {
                let mut h = Map::new();
                for kv in &a.headers {
                    let Some((k, v)) = kv.split_once('=') else {
                        bail!("--header {kv:?}: give NAME=VALUE");
                    };
                    h.insert(k.trim().to_owned(), json!(v));
                }
                s.insert("headers".into(), Value::Object(h));
            }
            "webhook"
        } else {
            "slack"
        }
    } else {
        if a.argv.is_empty() {
            bail!("--command needs the program after `--`: --command -- /usr/bin/pager --urgent");
        }
        s.insert("argv".into(), json!(a.argv));
        "command"
    };
    if !a.defaults.is_empty() {
        s.insert("defaults".into(), json!(a.defaults));
    }
    Ok((
        ChannelSpec {
            name,
            kind: kind.to_owned(),
            description: a.description,
            settings: s,
        },
        a.replace,
    ))
}

/// How much of a delivery's last error its table shows: enough for the
/// server, the cause and what it happened in.
const ERROR_CELL_MAX: usize = 80;

/// A delivery as `-o json` shows it: as the API does.
fn delivery_json(d: &DeliveryRow) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(
        gale_server::alerts::DeliveryView::from(d),
    )?)
}

pub async fn alerts(paths: &Paths, output: Output, cmd: AlertsCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    let vault = crate::secrets::vault(paths, store.clone())?;
    let actor = cli_actor();
    match cmd {
        AlertsCmd::Channels(ChannelsCmd::Add(args)) => {
            let (spec, replace) = spec_of(*args)?;
            let c = gale_alerts_set(&*store, &vault, &actor, &spec, replace).await?;
            println!(
                "alert channel {} ({}) {}",
                c.name,
                c.kind,
                if replace { "set" } else { "added" }
            );
            Ok(exit::OK)
        }
        AlertsCmd::Channels(ChannelsCmd::List) => {
            let mut shown = Vec::new();
            for info in vault.channels().await? {
                match gale_actions::alerts::channel(&vault, &info.name).await {
                    Ok(c) => shown.push(serde_json::to_value(c.masked())?),
                    // Unopenable here (no key, another key): what is in clear.
                    Err(_) => shown.push(json!({
                        "name": info.name, "kind": info.kind, "config": info.config,
                        "description": info.description, "sealed": info.sealed,
                    })),
                }
            }
            if output == Output::Json {
                print_json(&shown)?;
            } else if shown.is_empty() {
                println!(
                    "no alert channels: add one with `gale alerts channels add NAME --email TO`"
                );
            } else {
                let rows = shown
                    .iter()
                    .map(|c| {
                        let defaults = c["config"]["defaults"]
                            .as_array()
                            .map(|l| {
                                l.iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default();
                        let target = gale_server::alerts::target_of(
                            c["kind"].as_str().unwrap_or(""),
                            c["config"].as_object().unwrap_or(&Map::new()),
                            c["secret"]["url"].as_str(),
                        );
                        vec![
                            c["name"].as_str().unwrap_or("").to_owned(),
                            c["kind"].as_str().unwrap_or("").to_owned(),
                            if target.is_empty() {
                                "-".into()
                            } else {
                                cell(&target)
                            },
                            if defaults.is_empty() {
                                "-".into()
                            } else {
                                defaults
                            },
                            cell(c["description"].as_str().unwrap_or("")),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["NAME", "KIND", "TARGET", "DEFAULT FOR", "DESCRIPTION"],
                        rows
                    )
                );
            }
            Ok(exit::OK)
        }
        AlertsCmd::Channels(ChannelsCmd::Get { name }) => {
            let c = gale_actions::alerts::channel(&vault, &name)
                .await
                .map_err(action_error)?;
            let masked = serde_json::to_value(c.masked())?;
            if output == Output::Json {
                print_json(&masked)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&masked)?);
            }
            Ok(exit::OK)
        }
        AlertsCmd::Channels(ChannelsCmd::Delete { name }) => {
            gale_actions::alerts::delete_channel(&*store, &vault, &actor, &name)
                .await
                .map_err(action_error)?;
            println!("alert channel {name} deleted");
            Ok(exit::OK)
        }
        AlertsCmd::Test { channel } => {
            let settings = crate::serve::alert_settings();
            let sent =
                gale_actions::alerts::test_channel(&*store, &vault, &actor, &channel, &settings)
                    .await
                    .map_err(action_error)?;
            match sent {
                Ok(answer) => {
                    if output == Output::Json {
                        print_json(&json!({"sent": true, "answer": answer.text}))?;
                    } else {
                        println!("sent: {}", answer.text);
                    }
                    Ok(exit::OK)
                }
                Err(refusal) => {
                    let how = if refusal.is_permanent() {
                        "permanent"
                    } else {
                        "temporary"
                    };
                    if output == Output::Json {
                        print_json(
                            &json!({"sent": false, "permanent": refusal.is_permanent(), "answer": refusal.text()}),
                        )?;
                    }
                    eprintln!("refused ({how}): {}", refusal.text());
                    Ok(exit::FAILED)
                }
            }
        }
        AlertsCmd::Deliveries {
            run,
            channel,
            state,
            limit,
        } => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
                    anyhow::anyhow!("--state {s:?}: give pending, sending, sent or failed")
                })?),
            };
            if limit == 0 || limit > gale_store::DELIVERIES_LISTED {
                bail!(
                    "--limit must be from 1 to {}",
                    gale_store::DELIVERIES_LISTED
                );
            }
            let rows = store
                .list_deliveries(&DeliveryFilter {
                    run_id: run.map(gale_model::RunId),
                    channel,
                    state,
                    before: None,
                    limit,
                })
                .await?;
            if output == Output::Json {
                print_json(
                    &rows
                        .iter()
                        .map(delivery_json)
                        .collect::<anyhow::Result<Vec<_>>>()?,
                )?;
            } else if rows.is_empty() {
                println!("no deliveries");
            } else {
                let rows = rows
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.to_string(),
                            when(Some(d.created_at)),
                            d.channel.clone(),
                            d.kind.clone(),
                            d.run_id.map_or("-".into(), |r| r.0.to_string()),
                            d.state.to_string(),
                            d.attempts.to_string(),
                            d.last_error
                                .as_deref()
                                .map_or("-".into(), |e| cell_of(e, ERROR_CELL_MAX)),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "ID",
                            "CREATED",
                            "CHANNEL",
                            "EVENT",
                            "RUN",
                            "STATE",
                            "TRIES",
                            "LAST ERROR"
                        ],
                        rows
                    )
                );
            }
            Ok(exit::OK)
        }
    }
}

async fn gale_alerts_set(
    store: &dyn gale_store::Store,
    vault: &gale_secrets::Vault,
    actor: &gale_actions::Actor,
    spec: &ChannelSpec,
    replace: bool,
) -> anyhow::Result<gale_alerts::Channel> {
    gale_actions::alerts::set_channel(store, vault, actor, spec, replace)
        .await
        .map_err(action_error)
}
