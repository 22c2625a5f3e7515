//! `gale db`: create the database or migrate its schema.

use clap::Subcommand;

use super::open_store;
use crate::{Paths, exit};

#[derive(Subcommand, Debug)]
pub enum DbCmd {
    /// Create the database or bring its schema up to date.
    Migrate,
}

pub async fn db(paths: &Paths, cmd: DbCmd) -> anyhow::Result<u8> {
    match cmd {
        DbCmd::Migrate => {
            let store = open_store(paths).await?;
            println!(
                "{}: schema version {}",
                store.endpoint(),
                store.schema_version().await?
            );
            Ok(exit::OK)
        }
    }
}
