//! `gale audit list`: the audit log, newest first; and the actor every
//! command-line change is recorded as (`cli:<OS user>`, from `cli`).

use anyhow::Context as _;
use clap::Subcommand;
use gale_actions::Actor;
use gale_store::{AuditAction, AuditFilter, AuditOutcome, Store};
use jiff::Timestamp;

use super::output::{print_json, table, when};
use super::{open_store, parse_span};
use crate::{Output, Paths, exit};

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// List audit entries, newest first: who changed what, when, from where,
    /// and whether it worked.
    List {
        /// Only this actor's entries (a user name, or `cli:<OS user>`).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, e.g. run.trigger, dag.pause, user.create, login.
        #[arg(long)]
        action: Option<String>,
        /// Only entries at or after this time (RFC 3339) or this long ago (e.g. 2h).
        #[arg(long)]
        since: Option<String>,
        /// Only entries with a smaller id (the next page).
        #[arg(long)]
        before: Option<i64>,
        /// 1–1000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print JSON (as `--output json`).
        #[arg(long)]
        json: bool,
    },
}

/// Who a command-line change is recorded as: the OS user (`$USER`).
pub(crate) fn cli_actor() -> Actor {
    Actor::cli(std::env::var("USER").ok().as_deref())
}

/// Records a command-line change that is not a `gale_actions` action (pools,
/// users, tokens): `Ok` as a success, `Err` (what was refused) as a failure.
pub(crate) async fn record(
    store: &dyn Store,
    action: AuditAction,
    target: &str,
    mut detail: serde_json::Map<String, serde_json::Value>,
    result: Result<(), &str>,
) {
    let outcome = match result {
        Ok(()) => AuditOutcome::Success,
        Err(why) => {
            detail.insert("error".into(), serde_json::json!(why));
            AuditOutcome::Failure
        }
    };
    gale_actions::audit::record(store, &cli_actor(), action, target, detail, outcome).await;
}

pub async fn audit(paths: &Paths, output: Output, cmd: AuditCmd) -> anyhow::Result<u8> {
    let AuditCmd::List {
        actor,
        action,
        since,
        before,
        limit,
        json,
    } = cmd;
    let action = match action.as_deref() {
        None => None,
        Some(a) => Some(AuditAction::parse(a).ok_or_else(|| {
            super::Usage(format!(
                "--action must be one of {}, not {a:?}",
                AuditAction::names()
            ))
        })?),
    };
    let store = open_store(paths).await?;
    let since = match since.as_deref() {
        None => None,
        Some(text) => Some(match text.parse::<Timestamp>() {
            Ok(t) => t,
            Err(_) => {
                let span = parse_span(text).map_err(|e| {
                    super::Usage(format!(
                        "--since must be an RFC 3339 time (2026-01-01T00:00:00Z) or a span (2h), not {text:?}: {e}"
                    ))
                })?;
                store
                    .now()
                    .await?
                    .checked_sub(jiff::SignedDuration::try_from(span)?)
                    .context("--since is too far back")?
            }
        }),
    };
    let rows = store
        .list_audit(&AuditFilter {
            actor,
            action,
            since,
            before,
            limit,
        })
        .await?;
    if json || output == Output::Json {
        print_json(&rows)?;
        return Ok(exit::OK);
    }
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                when(Some(r.at)),
                r.actor.clone(),
                r.origin.clone(),
                r.action.as_str().to_owned(),
                r.target.clone(),
                r.outcome.as_str().to_owned(),
                if r.detail.is_empty() {
                    String::new()
                } else {
                    serde_json::Value::Object(r.detail.clone()).to_string()
                },
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "ID", "AT", "ACTOR", "ORIGIN", "ACTION", "TARGET", "OUTCOME", "DETAIL"
            ],
            rows
        )
    );
    Ok(exit::OK)
}
