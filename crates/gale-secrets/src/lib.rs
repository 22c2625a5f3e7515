//! Variables and connections where tasks need them: looked up, in a
//! documented order, from the environment of the rendering process, a secrets
//! directory and the store ([`Resolver`]); kept in the store with their
//! secrets sealed by AES-256-GCM under a key the database never sees
//! ([`Vault`], [`Keyring`]), as are alert channels' secret settings
//! ([`OpenedChannel`]); and re-sealed under a new key while everything
//! runs ([`Vault::rotate`]).

mod channels;
mod keys;
mod resolve;
mod vault;

pub use channels::{ChannelInfo, OpenedChannel};
pub use keys::{KeySource, Keyring, generate_key, write_key_file};
pub use resolve::{DirProvider, EnvProvider, Provider, Resolver};
pub use vault::{ConnectionInfo, KeyStatus, Rotation, VariableInfo, Vault};

/// What went wrong finding, sealing or opening a value.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] gale_store::Error),
    /// No key is configured, so nothing secret can be stored or read.
    #[error(
        "no secret key is configured, so {0}: make one with `gale secrets new-key --file /etc/gale/secret.key` \
         (created mode 0600) and give it to every node as --secret-key-file (GALE_SECRET_KEY_FILE) or GALE_SECRET_KEY"
    )]
    NoKey(String),
    /// The key a value is sealed under is not among the configured ones, or
    /// the value does not open under it (tampered with, or moved).
    #[error("{0}")]
    Sealed(String),
    /// A bad value or request.
    #[error("{0}")]
    Invalid(String),
    /// A provider (environment, directory) could not be read.
    #[error("{0}")]
    Provider(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_retryable())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
