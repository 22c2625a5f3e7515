//! Opening the metadata store a command names: PostgreSQL when a database
//! URL is given, else the SQLite file.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gale_store::Store;
use gale_store::postgres::{PgOptions, PgStore};
use gale_store::sqlite::SqliteStore;

use crate::Paths;

/// Opens the metadata store the command line names: PostgreSQL when a database
/// URL is given, else the SQLite file. Waits up to `wait` for PostgreSQL to come up.
pub async fn open_store_waiting(paths: &Paths, wait: Duration) -> anyhow::Result<Opened> {
    match &paths.database_url {
        Some(url) => {
            let opts = PgOptions {
                pool_size: paths.database_pool,
                ..PgOptions::default()
            };
            let store = PgStore::connect_with(url, wait, opts)
                .await
                .context("opening the PostgreSQL metadata database")?;
            let pg = Arc::new(store);
            Ok(Opened {
                store: pg.clone(),
                pg: Some(pg),
            })
        }
        None => {
            let store = SqliteStore::open(&paths.database).with_context(|| {
                format!("opening the metadata database {}", paths.database.display())
            })?;
            Ok(Opened {
                store: Arc::new(store),
                pg: None,
            })
        }
    }
}

/// The store of a one-shot command.
pub async fn open_store(paths: &Paths) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_store_waiting(paths, Duration::from_secs(5))
        .await?
        .store)
}

/// An open store, and its PostgreSQL handle when it is one (for notifications).
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub pg: Option<Arc<PgStore>>,
}
