//! This process's secret keys and secret providers, from the command line and
//! the environment: the key in `GALE_SECRET_KEY`, else the key file given
//! (`--secret-key-file`), else systemd's `$CREDENTIALS_DIRECTORY/gale-secret-key`,
//! else `$GALE_HOME/secret.key` when it exists (`gale standalone` creates it).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use gale_secrets::{KeySource, Resolver, Vault};
use gale_store::Store;

use crate::Paths;

/// The name of the key file in `$GALE_HOME` and in systemd's credentials.
const HOME_KEY_FILE: &str = "secret.key";
const CREDENTIAL_NAME: &str = "gale-secret-key";

/// Where this process's keys come from, if anywhere.
pub fn key_source(paths: &Paths) -> anyhow::Result<Option<Arc<KeySource>>> {
    if let Ok(text) = std::env::var("GALE_SECRET_KEY")
        && !text.trim().is_empty()
    {
        return Ok(Some(Arc::new(KeySource::fixed(&text)?)));
    }
    let file = match &paths.secret_key_file {
        Some(f) => Some(f.clone()),
        None => default_key_file(paths),
    };
    match file {
        Some(f) => Ok(Some(Arc::new(
            KeySource::file(&f).with_context(|| "loading the secret key")?,
        ))),
        None => Ok(None),
    }
}

fn default_key_file(paths: &Paths) -> Option<PathBuf> {
    let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|d| PathBuf::from(d).join(CREDENTIAL_NAME))
        .filter(|p| p.exists());
    credential.or_else(|| Some(paths.home.join(HOME_KEY_FILE)).filter(|p| p.exists()))
}

/// For `gale standalone`: a key file in `$GALE_HOME`, created (owner-only)
/// when no key is configured. Returns the file it created.
pub fn ensure_key(paths: &Paths) -> anyhow::Result<Option<PathBuf>> {
    let configured = std::env::var("GALE_SECRET_KEY").is_ok_and(|k| !k.trim().is_empty())
        || paths.secret_key_file.is_some()
        || default_key_file(paths).is_some();
    if configured {
        return Ok(None);
    }
    let path = paths.home.join(HOME_KEY_FILE);
    gale_secrets::write_key_file(&path)?;
    Ok(Some(path))
}

/// The store's variables and connections under this process's keys.
pub fn vault(paths: &Paths, store: Arc<dyn Store>) -> anyhow::Result<Vault> {
    Ok(Vault::new(store, key_source(paths)?))
}

/// Where tasks' variables and connections are looked up: the environment,
/// the secrets directory (if given), the store.
pub fn resolver(paths: &Paths, vault: Vault) -> Resolver {
    Resolver::new(paths.secrets_dir.clone(), Some(vault))
}
