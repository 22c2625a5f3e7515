//! `gale dags`: list, show, validate, push, sources, errors, trigger, pause,
//! unpause, delete.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;
use gale_model::{DagId, RunId, RunState};
use gale_scheduler::processor::{dag_files, load_file};
use gale_store::{RunRow, Store};
use serde::Serialize;

use super::output::{print_json, table};
use super::runs::follow_run;
use super::{NotFound, open_store};
use crate::{Output, Paths, exit};
use gale_server::api::dags::ImportErrorOut;

#[derive(Subcommand, Debug)]
pub enum DagsCmd {
    /// List DAGs (a page of them, in id order), and DAG files that failed to load.
    List {
        /// Only DAGs whose id or description holds this text (any case).
        #[arg(long)]
        search: Option<String>,
        /// Only DAGs with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// At most this many DAGs, 1 to 10000.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Skip this many (the next page).
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show one DAG and its tasks.
    Show { dag_id: String },
    /// Check DAG files (or folders of them) without a database; exit 1 on any error.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Store DAG files (or folders of them) without a DAG folder: each is
    /// checked as `validate` does and any error refuses the whole push. A
    /// pushed DAG stays until `gale dags delete`; pushing the same content
    /// again changes nothing.
    Push {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Push through this node's API (e.g. https://gale.example.com)
        /// instead of the store this command names.
        #[arg(long)]
        url: Option<String>,
        /// The API token for --url (`gale tokens create`).
        #[arg(long, env = "GALE_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// List the git repositories schedulers follow (--dags-git), and the
    /// commit whose DAGs are stored.
    Sources,
    /// List DAG files that failed to load, with file:line:column errors;
    /// exit 1 when there is one (so it can gate a deployment).
    Errors,
    /// Create a manual run.
    Trigger {
        dag_id: String,
        /// JSON object merged over the DAG's params, e.g. '{"region": "us"}'.
        #[arg(long)]
        conf: Option<String>,
        /// The run's logical date (default: now), e.g. 2026-01-01 or 2026-01-01T02:00:00Z.
        #[arg(long)]
        logical_date: Option<String>,
        /// Follow the run, print each task's result, exit 0 only if it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// Stop creating new runs (running ones finish).
    Pause { dag_id: String },
    /// Resume creating runs.
    Unpause { dag_id: String },
    /// Delete a DAG and its runs, task instances, logs and backfills (refused
    /// while it has a queued or running run). Its file, if still in a DAG
    /// folder, brings it back (with no history) within ten seconds.
    Delete {
        dag_id: String,
        /// Delete only the DAG: keep its runs and what hangs off them.
        #[arg(long)]
        keep_history: bool,
        /// Do not ask for confirmation (needed when standard input is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Serialize)]
struct DagListItem {
    dag_id: String,
    schedule: Option<String>,
    timezone: String,
    paused: bool,
    active: bool,
    file: String,
    /// Where its version came from: `folder`, `push by USER`, `git NAME@COMMIT`.
    source: String,
    last_run_state: Option<RunState>,
    last_run_id: Option<RunId>,
    tags: Vec<String>,
}

pub async fn dags(paths: &Paths, output: Output, cmd: DagsCmd) -> anyhow::Result<u8> {
    match &cmd {
        DagsCmd::Validate { paths: files } => return validate(paths, files, output).await,
        DagsCmd::Push {
            paths: files,
            url,
            token,
        } => {
            return super::push::push(paths, files, url.as_deref(), token.as_deref(), output).await;
        }
        DagsCmd::Sources => return super::push::sources(paths, output).await,
        _ => {}
    }
    let store = open_store(paths).await?;
    match cmd {
        DagsCmd::List {
            search,
            tag,
            limit,
            offset,
        } => {
            let mut items = Vec::new();
            // Pages of the store's at most: as many as asked for.
            let mut found = Vec::new();
            let mut matched = 0;
            while found.len() < limit as usize {
                let want = (limit as usize - found.len()).min(gale_store::DAG_PAGE_MAX as usize);
                let page = store
                    .dag_page(&gale_store::DagQuery {
                        search: search.clone(),
                        tag: tag.clone(),
                        paused: None,
                        include_inactive: true,
                        offset: offset + found.len() as u64,
                        limit: want as u32,
                    })
                    .await?;
                matched = page.matched;
                let n = page.dags.len();
                found.extend(page.dags);
                if n < want {
                    break;
                }
            }
            let ids: Vec<_> = found.iter().map(|d| d.dag_id.clone()).collect();
            let mut last_of: std::collections::HashMap<_, _> = store
                .recent_runs(&ids, 1)
                .await?
                .into_iter()
                .map(|r| (r.dag_id.clone(), r))
                .collect();
            for d in found {
                let last = last_of.remove(&d.dag_id);
                let source =
                    gale_server::api::dags::OriginOut::of(d.origin.as_ref(), d.owner_kind())
                        .words();
                items.push(DagListItem {
                    dag_id: d.dag_id.0,
                    schedule: d.schedule,
                    timezone: d.timezone,
                    paused: d.paused,
                    active: d.active,
                    source,
                    file: d.file,
                    last_run_state: last.as_ref().map(|r| r.state),
                    last_run_id: last.map(|r| r.id),
                    tags: d.tags,
                });
            }
            let errors = store.list_import_errors().await?;
            if output == Output::Json {
                let errors: Vec<_> = errors.into_iter().map(ImportErrorOut::from).collect();
                print_json(&serde_json::json!({
                    "dags": items,
                    "total": matched,
                    "offset": offset,
                    "import_errors": errors,
                }))?;
                return Ok(exit::OK);
            }
            let shown_to = offset + items.len() as u64;
            if shown_to < matched {
                eprintln!(
                    "showing DAGs {}-{shown_to} of {matched}: --offset {shown_to} for the next ones",
                    offset + 1
                );
            }
            let rows = items
                .iter()
                .map(|d| {
                    vec![
                        d.dag_id.clone(),
                        d.schedule.clone().unwrap_or_else(|| "manual".into()),
                        if !d.active {
                            "removed".into()
                        } else if d.paused {
                            "paused".into()
                        } else {
                            "active".into()
                        },
                        match (d.last_run_id, d.last_run_state) {
                            (Some(id), Some(s)) => format!("{s} (run {id})"),
                            _ => "-".into(),
                        },
                        d.source.clone(),
                        d.file.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &["DAG_ID", "SCHEDULE", "STATE", "LAST RUN", "SOURCE", "FILE"],
                    rows
                )
            );
            if !errors.is_empty() {
                println!("\n{} DAG file(s) failed to load:", errors.len());
                for e in &errors {
                    for d in &e.errors {
                        println!("  {d}");
                    }
                }
            }
            Ok(exit::OK)
        }
        DagsCmd::Show { dag_id } => {
            let dag_id = DagId(dag_id);
            let (row, version) = current_dag(&*store, &dag_id).await?;
            let dag = &version.spec;
            if output == Output::Json {
                print_json(
                    &serde_json::json!({ "dag": row, "spec": dag, "source": version.source }),
                )?;
                return Ok(exit::OK);
            }
            println!("dag_id       {}", dag.id);
            if let Some(d) = &dag.description {
                println!("description  {d}");
            }
            match dag.parsed_schedule() {
                Some(s) => println!(
                    "schedule     {} ({}, {})",
                    s.expr(),
                    s.describe(),
                    dag.timezone
                ),
                None => println!("schedule     manual only"),
            }
            println!(
                "state        {}",
                if !row.active {
                    "removed"
                } else if row.paused {
                    "paused"
                } else {
                    "active"
                }
            );
            println!("file         {}", row.file);
            println!(
                "source       {}",
                gale_server::api::dags::OriginOut::of(row.origin.as_ref(), row.owner_kind())
                    .words()
            );
            println!("version      {}", row.version_hash);
            println!(
                "catchup      {}   max_active_runs {}   max_active_tasks {}",
                dag.catchup,
                dag.max_active_runs,
                dag.max_active_tasks.map_or("-".into(), |m| m.to_string())
            );
            println!();
            let rows = dag
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.0.clone(),
                        match &t.kind {
                            gale_model::TaskKind::Shell { .. } => "shell".into(),
                            gale_model::TaskKind::Http(_) => "http".into(),
                        },
                        t.needs
                            .iter()
                            .map(|n| n.0.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        t.trigger_rule.as_str().into(),
                        t.retries.to_string(),
                        t.timeout.map_or("-".into(), |d| d.to_string()),
                        t.queue.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "TASK",
                        "KIND",
                        "NEEDS",
                        "TRIGGER_RULE",
                        "RETRIES",
                        "TIMEOUT",
                        "QUEUE"
                    ],
                    rows
                )
            );
            Ok(exit::OK)
        }
        DagsCmd::Errors => {
            let errors = store.list_import_errors().await?;
            if output == Output::Json {
                let out: Vec<_> = errors.iter().cloned().map(ImportErrorOut::from).collect();
                print_json(&out)?;
            } else if errors.is_empty() {
                println!("no DAG file errors");
            } else {
                for e in &errors {
                    for d in &e.errors {
                        println!("{d}");
                    }
                }
            }
            Ok(if errors.is_empty() {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        DagsCmd::Trigger {
            dag_id,
            conf,
            logical_date,
            wait,
        } => {
            let run = trigger(
                &*store,
                &DagId(dag_id),
                conf.as_deref(),
                logical_date.as_deref(),
            )
            .await?;
            if output == Output::Json && !wait {
                print_json(&super::output::api_run(&run))?;
                return Ok(exit::OK);
            }
            eprintln!("created run {} of {} ({})", run.id, run.dag_id, run.run_key);
            warn_if_not_running(&*store, &run.dag_id).await?;
            if wait {
                return follow_run(&*store, run.id, output).await;
            }
            println!("{}", run.id);
            Ok(exit::OK)
        }
        DagsCmd::Pause { dag_id } => set_paused(&*store, dag_id, true, output).await,
        DagsCmd::Unpause { dag_id } => set_paused(&*store, dag_id, false, output).await,
        DagsCmd::Delete {
            dag_id,
            keep_history,
            yes,
        } => delete(&*store, DagId(dag_id), keep_history, yes, output).await,
        DagsCmd::Validate { .. } | DagsCmd::Push { .. } | DagsCmd::Sources => {
            unreachable!("handled above")
        }
    }
}

/// A DAG's row and its current version; `NotFound` when there is no such DAG.
pub(super) async fn current_dag(
    store: &dyn Store,
    dag_id: &DagId,
) -> anyhow::Result<(gale_store::DagRow, gale_store::DagVersion)> {
    gale_actions::current_dag(store, dag_id)
        .await
        .map_err(not_found_hint)
}

/// `gale_actions::Error::NotFound` as the CLI's `NotFound` (exit code 4), with
/// a hint.
pub(crate) fn not_found_hint(e: gale_actions::Error) -> anyhow::Error {
    match e {
        gale_actions::Error::NotFound(n) if n.starts_with("no DAG") => {
            NotFound(format!("{n}: see `gale dags list`")).into()
        }
        gale_actions::Error::NotFound(n) => NotFound(n).into(),
        // Refused input (a conf the DAG's params do not allow, a bad date).
        gale_actions::Error::Invalid(m) => super::Usage(m).into(),
        e => e.into(),
    }
}

pub(super) async fn set_paused(
    store: &dyn Store,
    dag_id: String,
    paused: bool,
    output: Output,
) -> anyhow::Result<u8> {
    let dag_id = DagId(dag_id);
    gale_actions::set_paused(store, &super::cli_actor(), &dag_id, paused)
        .await
        .map_err(not_found_hint)?;
    if output == Output::Json {
        print_json(&serde_json::json!({"dag_id": dag_id, "paused": paused}))?;
    } else {
        println!("{dag_id} {}", if paused { "paused" } else { "unpaused" });
    }
    Ok(exit::OK)
}

/// `gale dags delete`: asks on a terminal (unless `yes`), then deletes
/// through the action and says what went, and whether the DAG comes back.
async fn delete(
    store: &dyn Store,
    dag_id: DagId,
    keep_history: bool,
    yes: bool,
    output: Output,
) -> anyhow::Result<u8> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if store.get_dag(&dag_id).await?.is_none() {
        return Err(NotFound(format!("no DAG {dag_id}: see `gale dags list`")).into());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(super::Usage(format!(
                "deleting {dag_id} needs confirmation: pass --yes when standard input is not a terminal"
            ))
            .into());
        }
        let what = if keep_history {
            "(its runs, task instances and logs are kept)"
        } else {
            "and all its runs, task instances, logs and backfills"
        };
        eprint!("Delete DAG {dag_id} {what}? This cannot be undone. [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            eprintln!("not deleted");
            return Ok(exit::FAILED);
        }
    }
    let what = if keep_history {
        gale_store::DagDeletion::KeepHistory
    } else {
        gale_store::DagDeletion::Everything
    };
    let d = gale_actions::delete_dag(store, &super::cli_actor(), &dag_id, what)
        .await
        .map_err(not_found_hint)?;
    let note = gale_actions::comes_back_note(&dag_id, &d);
    if output == Output::Json {
        let mut v = serde_json::to_value(&d)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("dag_id".into(), serde_json::json!(dag_id));
            o.insert("note".into(), serde_json::json!(note));
        }
        print_json(&v)?;
    } else {
        if keep_history {
            println!("deleted DAG {dag_id} (its history is kept)");
        } else {
            println!(
                "deleted DAG {dag_id}: {} run(s), {} task instance(s), {} log line(s), {} backfill(s)",
                d.runs, d.task_instances, d.log_lines, d.backfills
            );
        }
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
    }
    Ok(exit::OK)
}

/// Where `gale dags validate` looks for the variables and connections DAGs
/// name: the environment and secrets directory always, `store` too when
/// there is one.
fn validation_resolver(paths: &Paths, store: Option<Arc<dyn Store>>) -> gale_secrets::Resolver {
    let without = |e: &dyn std::fmt::Display| {
        eprintln!("warning: variables and connections are checked without the store: {e:#}");
        gale_secrets::Resolver::new(paths.secrets_dir.clone(), None)
    };
    match store.map(|s| crate::secrets::vault(paths, s)) {
        None => gale_secrets::Resolver::new(paths.secrets_dir.clone(), None),
        Some(Ok(vault)) => crate::secrets::resolver(paths, vault),
        Some(Err(e)) => without(&e),
    }
}

pub(super) async fn validate(
    paths: &Paths,
    inputs: &[PathBuf],
    output: Output,
) -> anyhow::Result<u8> {
    // The store, when one is configured (a database URL, or a SQLite file
    // that exists): variables, connections and alert channels are checked
    // against it.
    let channels_store = if paths.database_url.is_none() && !paths.database.exists() {
        None
    } else {
        match open_store(paths).await {
            Ok(store) => Some(store),
            Err(e) => {
                eprintln!(
                    "warning: checked without the store (variables, connections, alert channels): {e:#}"
                );
                None
            }
        }
    };
    let resolver = validation_resolver(paths, channels_store.clone());
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            files.extend(dag_files(p));
        } else {
            files.push(p.clone());
        }
    }
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::new();
    let mut failed = 0;
    for f in &files {
        let name = f.display().to_string();
        match load_file(f) {
            Ok((dag, _)) => {
                if let Some(other) = ids.insert(dag.id.0.clone(), name.clone()) {
                    failed += 1;
                    let msg = format!(
                        "{name}:1:1: duplicate DAG id {:?}: {other} defines it too",
                        dag.id.0
                    );
                    results.push(serde_json::json!({ "file": name, "ok": false, "errors": [msg] }));
                } else {
                    // A missing variable or connection is a warning: it may be
                    // created before the DAG runs.
                    let mut warnings = match resolver.missing_in(&dag).await {
                        Ok(w) => w,
                        Err(e) => vec![format!("cannot check variables and connections: {e}")],
                    };
                    if let Some(store) = &channels_store {
                        match gale_store::alert_events::missing_channels(&**store, &dag).await {
                            Ok(w) => warnings.extend(w),
                            Err(e) => warnings.push(format!("cannot check alert channels: {e}")),
                        }
                    }
                    results.push(serde_json::json!({ "file": name, "ok": true, "dag_id": dag.id, "tasks": dag.tasks.len(), "warnings": warnings }));
                }
            }
            Err(errors) => {
                failed += 1;
                let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
                results.push(serde_json::json!({ "file": name, "ok": false, "errors": msgs }));
            }
        }
    }
    if output == Output::Json {
        print_json(&results)?;
    } else {
        for r in &results {
            if r["ok"] == true {
                println!(
                    "ok    {} ({}, {} tasks)",
                    r["file"].as_str().unwrap_or(""),
                    r["dag_id"].as_str().unwrap_or(""),
                    r["tasks"]
                );
                for w in r["warnings"].as_array().into_iter().flatten() {
                    println!(
                        "warn  {}: {}",
                        r["file"].as_str().unwrap_or(""),
                        w.as_str().unwrap_or("")
                    );
                }
            } else {
                for e in r["errors"].as_array().into_iter().flatten() {
                    println!("error {}", e.as_str().unwrap_or(""));
                }
            }
        }
        println!("{} file(s) checked, {} with errors", files.len(), failed);
    }
    if files.is_empty() {
        bail!(
            "no DAG files (*.yaml, *.yml) found in {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(if failed > 0 { exit::FAILED } else { exit::OK })
}

pub(super) fn parse_conf(
    conf: Option<&str>,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match conf {
        None => Ok(serde_json::Map::new()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => Err(super::Usage(
                "--conf must be a JSON object, e.g. '{\"key\": \"value\"}'".into(),
            )
            .into()),
            Err(e) => Err(super::Usage(format!("--conf is not valid JSON: {e}")).into()),
        },
    }
}

/// Creates a manual run (see `gale_actions::trigger`); a missing DAG is
/// `NotFound`.
pub async fn trigger(
    store: &dyn Store,
    dag_id: &DagId,
    conf: Option<&str>,
    logical_date: Option<&str>,
) -> anyhow::Result<RunRow> {
    let conf = parse_conf(conf)?;
    gale_actions::trigger(store, &super::cli_actor(), dag_id, conf, logical_date)
        .await
        .map_err(not_found_hint)
}

pub(super) async fn warn_if_not_running<S: Store + ?Sized>(
    store: &S,
    dag_id: &DagId,
) -> anyhow::Result<()> {
    if let Some(d) = store.get_dag(dag_id).await?
        && d.paused
    {
        eprintln!(
            "note: {dag_id} is paused; the run starts when it is unpaused (`gale dags unpause {dag_id}`)"
        );
    }
    let now = store.now().await?;
    let live = store.list_nodes().await?.into_iter().any(|n| {
        n.state == "running"
            && n.roles.iter().any(|r| r == "scheduler")
            && now.as_second() - n.heartbeat_at.as_second() < 30
    });
    if !live {
        eprintln!("note: no scheduler is running; the run starts once `gale standalone` runs");
    }
    Ok(())
}
