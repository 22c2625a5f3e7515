//! Keys: 32 random bytes written as 64 hex digits, one per line in a key file
//! (the first seals, every one opens) or in `GALE_SECRET_KEY`. A key's id is
//! a digest of it, stored beside each value so rotation knows what to
//! re-seal; the key itself never reaches the database. A key file is read
//! again when it changes, so a node picks up a new first key without a
//! restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use gale_store::Sealed;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// How often a key file is looked at for changes, at most.
const RECHECK: Duration = Duration::from_secs(1);

struct Key {
    id: String,
    aead: LessSafeKey,
}

impl Key {
    fn parse(text: &str, source: &str) -> Result<Key> {
        let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
            Error::Invalid(format!(
                "{source}: a key is 64 hex digits (32 bytes); make one with `gale secrets new-key`"
            ))
        })?;
        let digest = Sha256::new()
            .chain_update(b"gale secret key id\0")
            .chain_update(&bytes)
            .finalize();
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| Error::Invalid(format!("{source}: not an AES-256 key")))?;
        Ok(Key {
            id: hex::encode(&digest[..8]),
            aead: LessSafeKey::new(unbound),
        })
    }
}

/// The configured keys: the first seals, all open.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish()
    }
}

impl Keyring {
    /// Keys from text: one per line (or separated by commas or spaces), `#`
    /// comments and blank lines ignored.
    pub fn parse(text: &str, source: &str) -> Result<Keyring> {
        let keys = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split([',', ' ', '\t']))
            .filter(|k| !k.trim().is_empty())
            .map(|k| Key::parse(k, source))
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(Error::Invalid(format!("{source} holds no key")));
        }
        Ok(Keyring { keys })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key's id, the sealing one first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// `plain` sealed under the current key, bound to `aad` (what it is the
    /// value of, so a sealed value moved to another row does not open).
    pub fn seal(&self, aad: &str, plain: &[u8]) -> Result<Sealed> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::Invalid("the system's random source failed".into()))?;
        let mut data = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|_| Error::Invalid("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(Sealed {
            key_id: key.id.clone(),
            data: hex::encode(out),
        })
    }

    /// Opens a value sealed by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &Sealed) -> Result<Vec<u8>> {
        let key = self.keys.iter().find(|k| k.id == sealed.key_id).ok_or_else(|| {
            Error::Sealed(format!(
                "{aad} is sealed under key {}, which is not among this process's keys ({}): \
                 add that key to the key file (after the first line) until `gale secrets rotate-key` has run",
                sealed.key_id,
                self.ids().join(", ")
            ))
        })?;
        let bad = || {
            Error::Sealed(format!(
                "{aad} does not open under key {}: the stored value was altered",
                key.id
            ))
        };
        let bytes = hex::decode(&sealed.data).map_err(|_| bad())?;
        if bytes.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| bad())?;
        let mut buf = rest.to_vec();
        let plain = key
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| bad())?;
        Ok(plain.to_vec())
    }
}

/// A fresh key, as 64 hex digits.
pub fn generate_key() -> Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::Invalid("the system's random source failed".into()))?;
    Ok(hex::encode(bytes))
}

/// Creates `path` holding a fresh key, readable by its owner only; fails if
/// it exists.
pub fn write_key_file(path: &Path) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = generate_key()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Provider(format!("creating the key file {}: {e}", path.display())))?;
    writeln!(
        f,
        "# Gale's secret key: the first line seals, every line opens. Keep a copy\n\
         # somewhere safe: without it no secret in the database can be read.\n{key}"
    )
    .map_err(|e| Error::Provider(format!("writing the key file {}: {e}", path.display())))
}

/// Where a process's keys come from: fixed text (`GALE_SECRET_KEY`) or a file
/// read again when it changes.
pub struct KeySource {
    origin: Origin,
    state: Mutex<Loaded>,
}

enum Origin {
    Fixed,
    File(PathBuf),
}

struct Loaded {
    keys: Arc<Keyring>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn read_file(path: &Path) -> Result<(Keyring, Option<SystemTime>)> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Provider(format!("the key file {}: {e}", path.display())))?;
    check_mode(path, &meta)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Provider(format!("reading the key file {}: {e}", path.display())))?;
    Ok((
        Keyring::parse(&text, &path.display().to_string())?,
        meta.modified().ok(),
    ))
}

/// A key file others may read or write is refused.
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "the key file {} may be read by others (mode {:o}): `chmod 600` it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

impl KeySource {
    /// Keys given as text (`GALE_SECRET_KEY`).
    pub fn fixed(text: &str) -> Result<KeySource> {
        let keys = Keyring::parse(text, "GALE_SECRET_KEY")?;
        Ok(KeySource {
            origin: Origin::Fixed,
            state: Mutex::new(Loaded {
                keys: Arc::new(keys),
                modified: None,
                checked: Instant::now(),
            }),
        })
    }

    /// Keys from a file, which must exist and hold at least one key. A file
    /// others may read is refused, when first read and when read again.
    pub fn file(path: &Path) -> Result<KeySource> {
        let (keys, modified) = read_file(path)?;
        Ok(KeySource {
            origin: Origin::File(path.to_owned()),
            state: Mutex::new(Loaded {
                keys: Arc::new(keys),
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// Where the keys come from, for messages.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Fixed => "GALE_SECRET_KEY".into(),
            Origin::File(p) => format!("the key file {}", p.display()),
        }
    }

    /// The keys now: a key file is looked at again (at most once a second)
    /// and re-read when it changed. A file that became unreadable, readable
    /// by others, or holds no valid key keeps the keys last read (and
    /// [`KeySource::reload`] says why).
    pub fn keyring(&self) -> Arc<Keyring> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Origin::File(path) = &self.origin
            && state.checked.elapsed() >= RECHECK
        {
            state.checked = Instant::now();
            let modified = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
            if modified != state.modified
                && let Ok((keys, modified)) = read_file(path)
            {
                state.keys = Arc::new(keys);
                state.modified = modified;
            }
        }
        state.keys.clone()
    }

    /// Looks at the key file now, whatever the last check.
    pub fn reload(&self) -> Result<Arc<Keyring>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Origin::File(path) = &self.origin {
            let (keys, modified) = read_file(path)?;
            state.keys = Arc::new(keys);
            state.modified = modified;
            state.checked = Instant::now();
        }
        Ok(state.keys.clone())
    }
}
