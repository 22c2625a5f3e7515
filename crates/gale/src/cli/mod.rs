//! The command-line commands other than `bench`. Each reads or writes the store
//! directly, so they work whether or not `gale standalone` is running. One
//! module per command group; `output` prints, `open` opens the store,
//! `secret_io` reads and writes what variables and connections import and export.

use std::time::Duration;

mod alerts;
mod audit;
mod backfill;
mod connections;
mod dags;
mod db;
mod keys;
mod open;
mod output;
mod pools;
mod push;
mod runs;
mod secret_io;
mod tasks;
mod variables;

pub use alerts::{AlertsCmd, alerts};
pub use audit::{AuditCmd, audit};
pub(crate) use audit::{cli_actor, record};
pub use backfill::{BackfillArgs, backfill};
pub use connections::{ConnectionsCmd, connections};
pub(crate) use dags::not_found_hint;
pub use dags::{DagsCmd, dags, trigger};
pub use db::{DbCmd, db};
pub use keys::{SecretsCmd, secrets};
pub use open::{open_store, open_store_waiting};
pub(crate) use output::{print_json, table, when};
pub use pools::{PoolsCmd, pools};
pub use runs::{RunsCmd, runs};
pub use tasks::{TasksCmd, tasks};
pub use variables::{VariablesCmd, variables};

/// An error for a DAG, run, task, variable or connection that does not exist
/// (exit code 4).
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for NotFound {}

/// An error that means the command was asked wrongly (a bad option value):
/// exit code 2, as clap's own usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

pub(crate) fn parse_span(s: &str) -> Result<Duration, String> {
    gale_model::duration::parse(s).map(|d| d.0)
}
