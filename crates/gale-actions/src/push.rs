//! Pushing DAG files: each parsed and checked as the DAG processor would, and
//! stored all together or not at all.

use gale_model::dag;
use gale_store::{AuditAction, NewVersion};
use serde_json::{Value, json};

use crate::audit::{Actor, audited, detail};
use crate::{ActionStore, Error, Result};

/// The most files one push may carry.
pub const MAX_PUSHED_FILES: usize = 1000;

/// One DAG file to push: the name it is known by (its last path segment,
/// without extension, is the DAG's id unless the file says `id:`), and its
/// content.
#[derive(Clone, Debug)]
pub struct PushFile {
    pub name: String,
    pub content: Vec<u8>,
}

/// What a push stored for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    pub name: String,
    pub dag_id: gale_model::DagId,
    pub version_hash: String,
    /// False when that content was stored before.
    pub new_version: bool,
    /// The DAG's current version changed.
    pub changed: bool,
    pub tasks: usize,
}

/// The name a pushed file is stored under, checked: relative, plain, of
/// a `.yaml` or `.yml` file.
fn file_name(name: &str) -> Result<String> {
    let clean = name.trim_start_matches("./");
    let bad = |why: &str| Error::Invalid(format!("the file name {name:?} {why}"));
    if clean.is_empty() || clean.len() > 512 {
        return Err(bad("must have 1 to 512 characters"));
    }
    if clean.starts_with('/')
        || clean
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad("must be a relative path without `.` or `..` parts"));
    }
    if clean.chars().any(char::is_control) {
        return Err(bad("must not hold control characters"));
    }
    if !(clean.ends_with(".yaml") || clean.ends_with(".yml")) {
        return Err(bad("must end in .yaml or .yml"));
    }
    Ok(clean.to_owned())
}

/// Parses every file (all errors of every file reported together, as
/// `file:line:column: message`, refusing all) and stores them as `actor`'s
/// push, in one transaction: a DAG id a folder or a git source holds refuses
/// the whole push. Audited as `dag.push`.
pub async fn push_dags(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    files: Vec<PushFile>,
) -> Result<Vec<Pushed>> {
    let names: Vec<Value> = files.iter().take(100).map(|f| json!(f.name)).collect();
    let result = parse_and_store(store, actor, files).await;
    audited(
        store,
        actor,
        AuditAction::DagPush,
        "dags",
        detail([("files", Value::Array(names))]),
        result,
        |pushed, out| {
            let changed: Vec<Value> = pushed
                .iter()
                .filter(|p| p.changed)
                .map(|p| json!(format!("{}@{}", p.dag_id, p.version_hash)))
                .collect();
            out.insert("changed".into(), Value::Array(changed));
        },
    )
    .await
}

async fn parse_and_store(
    store: &(impl ActionStore + ?Sized),
    actor: &Actor,
    files: Vec<PushFile>,
) -> Result<Vec<Pushed>> {
    if files.is_empty() {
        return Err(Error::Invalid("the push has no DAG files".into()));
    }
    if files.len() > MAX_PUSHED_FILES {
        return Err(Error::Invalid(format!(
            "a push may carry at most {MAX_PUSHED_FILES} files, not {}",
            files.len()
        )));
    }
    let mut errors = Vec::new();
    let mut versions = Vec::new();
    let mut names = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for f in files {
        let name = match file_name(&f.name) {
            Ok(name) => name,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        match dag::parse_bytes(&name, f.content) {
            Ok((dag, source)) => {
                if let Some(other) = ids.insert(dag.id.0.clone(), name.clone()) {
                    errors.push(format!(
                        "{name}:1:1: duplicate DAG id {:?}: {other} defines it too",
                        dag.id.0
                    ));
                    continue;
                }
                names.push(name.clone());
                versions.push(NewVersion {
                    hash: dag::content_hash(&source),
                    file: format!("push:{name}"),
                    dag,
                    source,
                });
            }
            Err(errs) => errors.extend(errs.iter().map(ToString::to_string)),
        }
    }
    if !errors.is_empty() {
        return Err(Error::Rejected(errors));
    }
    let stored = store.push_dags(&versions, &actor.name).await?;
    Ok(stored
        .into_iter()
        .zip(names)
        .zip(&versions)
        .map(|((s, name), v)| Pushed {
            name,
            dag_id: s.dag_id,
            version_hash: s.version_hash,
            new_version: s.new_version,
            changed: s.changed,
            tasks: v.dag.tasks.len(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn pushed_names_are_plain_relative_yaml_paths() {
        assert_eq!(file_name("./etl.yaml").unwrap(), "etl.yaml");
        assert_eq!(file_name("team/etl.yml").unwrap(), "team/etl.yml");
        for bad in [
            "",
            "/etc/x.yaml",
            "../x.yaml",
            "a//b.yaml",
            "a/./b.yaml",
            "x.txt",
            "a\nb.yaml",
        ] {
            assert!(file_name(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
