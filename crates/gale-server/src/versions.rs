//! Comparing a DAG's versions, for the API and the pages: which version a
//! name means (`current`, `previous`, `last_success` or a hash), and what
//! changed between two (tasks and fields, and the file's lines), masked for
//! the reader as the file's text is.

use gale_actions::Error;
use gale_model::dag::diff::{self, DagDiff, Line};
use gale_model::{DagId, RunState};
use gale_store::{DagVersion, RunFilter, Store, VersionInfo};

/// The DAG's current version.
pub const CURRENT: &str = "current";
/// The version stored before the other one compared.
pub const PREVIOUS: &str = "previous";
/// The version the DAG's newest successful run ran.
pub const LAST_SUCCESS: &str = "last_success";

/// Two versions of a DAG and what changed from the first to the second.
pub struct Comparison {
    pub from: DagVersion,
    pub to: DagVersion,
    pub diff: DagDiff,
    /// The file's lines, old and new (`Same`, `Added`, `Removed`).
    pub lines: Vec<Line>,
}

/// The hash `which` names, among `versions` (newest first): `current` (the
/// row's), `previous` (the one stored before `after`), `last_success`, or a
/// hash or its first digits (at least 6, naming one version).
pub async fn resolve(
    store: &dyn Store,
    dag_id: &DagId,
    current: &str,
    versions: &[VersionInfo],
    which: &str,
    after: Option<&str>,
) -> Result<String, Error> {
    match which {
        CURRENT | "" => Ok(current.to_owned()),
        PREVIOUS => {
            let after = after.unwrap_or(current);
            let at = versions.iter().position(|v| v.version_hash == after);
            at.and_then(|i| versions.get(i + 1))
                .map(|v| v.version_hash.clone())
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "{dag_id} has no version before {}",
                        &after[..after.len().min(12)]
                    ))
                })
        }
        LAST_SUCCESS => {
            let runs = store
                .list_runs(&RunFilter {
                    dag_id: Some(dag_id.clone()),
                    state: Some(RunState::Success),
                    limit: 1,
                    ..RunFilter::default()
                })
                .await?;
            runs.into_iter()
                .next()
                .map(|r| r.version_hash)
                .ok_or_else(|| Error::NotFound(format!("{dag_id} has no successful run yet")))
        }
        hash => {
            let found: Vec<&VersionInfo> = if hash.len() >= 6 {
                versions
                    .iter()
                    .filter(|v| v.version_hash.starts_with(hash))
                    .collect()
            } else {
                versions.iter().filter(|v| v.version_hash == hash).collect()
            };
            match found.as_slice() {
                [one] => Ok(one.version_hash.clone()),
                [] => Err(Error::NotFound(format!("{dag_id} has no version {hash:?}"))),
                _ => Err(Error::Invalid(format!(
                    "{hash:?} names several versions of {dag_id}: give more of the hash"
                ))),
            }
        }
    }
}

/// What changed from version `from` to version `to` (names as [`resolve`]
/// takes them; `from` may be `previous`, the version before `to`). Secret
/// params' values and secret-looking `env` values are `***` for all but
/// admins, as on the source page.
pub async fn compare(
    store: &dyn Store,
    dag_id: &DagId,
    from: &str,
    to: &str,
    role: gale_store::Role,
) -> Result<Comparison, Error> {
    let row = store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no DAG {dag_id}")))?;
    let versions = store.list_versions(dag_id).await?;
    let to = resolve(store, dag_id, &row.version_hash, &versions, to, None).await?;
    let from = resolve(store, dag_id, &row.version_hash, &versions, from, Some(&to)).await?;
    let load = async |hash: &str| -> Result<DagVersion, Error> {
        store
            .get_version(dag_id, hash)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{dag_id} has no version {hash:?}")))
    };
    let (from, to) = (load(&from).await?, load(&to).await?);
    let mut changes = diff::diff(&from.spec, &to.spec);
    let mut lines = diff::lines(&from.source, &to.source);
    if role < gale_store::Role::Admin {
        for spec in [&from.spec, &to.spec] {
            let masker = crate::secrets::Secrets::of_source(spec);
            changes = changes.masked(&masker);
            lines = diff::mask_lines(lines, &masker);
        }
    }
    Ok(Comparison {
        from,
        to,
        diff: changes,
        lines,
    })
}
