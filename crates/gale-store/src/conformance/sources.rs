//! Conformance checks: DAGs from sources other than a folder: pushes, git
//! commits stored in order, and one owner per DAG id.

use super::*;
use crate::{GitApplied, GitCommit, GitSourceSpec, NewVersion, Origin, OwnerKind, git_owner};

fn version(file: &str, source: &str) -> NewVersion {
    NewVersion {
        dag: parse_dag(file, source),
        file: file.to_owned(),
        source: source.to_owned(),
        hash: content_hash(source),
    }
}

fn spec(name: &str) -> GitSourceSpec {
    GitSourceSpec {
        name: name.to_owned(),
        url: "/srv/git/dags.git".to_owned(),
        reference: "main".to_owned(),
        path: "dags".to_owned(),
    }
}

fn commit(
    expected: Option<&str>,
    id: &str,
    versions: Vec<NewVersion>,
    errors: Vec<(String, Vec<DagError>)>,
) -> GitCommit {
    GitCommit {
        source: "repo".to_owned(),
        expected: expected.map(str::to_owned),
        commit: id.to_owned(),
        committed_at: day(1),
        by: "host-a".to_owned(),
        versions,
        errors,
    }
}

/// A push stores a version with who pushed it; the same content again is no
/// new version; a folder's scan never retires a pushed DAG; a folder file of
/// a pushed DAG's id is refused, and a push of a folder DAG's id is refused
/// with nothing of the push stored.
pub async fn push_dags_and_one_owner_per_id<S: Store + ?Sized>(store: &S) {
    let etl = version("push:etl.yaml", ETL_V1);
    let stored = store
        .push_dags(std::slice::from_ref(&etl), "alice")
        .await
        .expect("push_dags");
    assert_eq!(stored.len(), 1);
    assert!(stored[0].new_version && stored[0].changed, "{stored:?}");
    let row = store.get_dag(&etl.dag.id).await.expect("get_dag").unwrap();
    assert_eq!(row.owner_kind(), OwnerKind::Push);
    assert_eq!(row.file, "push:etl.yaml");
    assert_eq!(
        row.origin,
        Some(Origin::Push { by: "alice".into() }),
        "the row names who pushed its version"
    );
    let v = store
        .get_version(&etl.dag.id, &etl.hash)
        .await
        .expect("get_version")
        .unwrap();
    assert_eq!(v.origin, Some(Origin::Push { by: "alice".into() }));

    // The same content, pushed again under another name: nothing new.
    let same = version("push:elsewhere/etl.yaml", ETL_V1);
    let again = store.push_dags(&[same], "bob").await.expect("push again");
    assert!(!again[0].new_version && !again[0].changed, "{again:?}");

    // A folder processor's scan does not retire it.
    store.sync_files(OWNER, &[]).await.expect("sync_files");
    let row = store.get_dag(&etl.dag.id).await.expect("get_dag").unwrap();
    assert!(row.active, "a folder scan must leave a pushed DAG active");

    // A folder file with the pushed id is refused.
    let folder = parse_dag("dags/etl.yaml", ETL_V2);
    let err = store
        .upsert_dag(
            &folder,
            "dags/etl.yaml",
            ETL_V2,
            &content_hash(ETL_V2),
            OWNER,
        )
        .await
        .expect_err("a folder file of a pushed DAG id");
    assert!(
        err.to_string().contains("duplicate") && err.to_string().contains("pushed"),
        "{err}"
    );
    let row = store.get_dag(&etl.dag.id).await.expect("get_dag").unwrap();
    assert_eq!(row.version_hash, etl.hash, "no version flip");

    // A push naming a folder DAG's id stores nothing of the push.
    let report = seed(store, "dags/report.yaml", &flat_dag_source("report", 1, "")).await;
    let fresh = version("push:fresh.yaml", &flat_dag_source("fresh", 2, ""));
    let clash = version("push:report.yaml", &flat_dag_source("report", 3, ""));
    let err = store
        .push_dags(&[fresh.clone(), clash], "alice")
        .await
        .expect_err("a push of a folder DAG's id");
    assert!(err.to_string().contains("dags/report.yaml"), "{err}");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        store
            .get_dag(&fresh.dag.id)
            .await
            .expect("get_dag")
            .is_none(),
        "a refused push stores none of its DAGs"
    );
    let row = store.get_dag(report.id()).await.expect("get_dag").unwrap();
    assert_eq!(row.version_hash, report.hash);
    assert_eq!(row.owner_kind(), OwnerKind::Folder);

    // A new pushed version: a new version the row points at, the old kept.
    let etl2 = version("push:etl.yaml", ETL_V2);
    let stored = store
        .push_dags(std::slice::from_ref(&etl2), "bob")
        .await
        .expect("push v2");
    assert!(stored[0].new_version && stored[0].changed);
    let versions = store
        .list_versions(&etl.dag.id)
        .await
        .expect("list_versions");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(
        versions
            .iter()
            .any(|v| v.origin == Some(Origin::Push { by: "bob".into() })),
        "{versions:?}"
    );
}

/// Git sources: registration checks the configuration of a name; a commit
/// is stored only over the one its follower read (a follower that read an
/// older commit stores nothing); a commit's DAGs replace the source's (one it
/// no longer has goes inactive), its broken files and refused ids are the
/// source's import errors; a refresh request is recorded.
pub async fn git_commits_in_order<S: Store + ?Sized>(store: &S) {
    let row = store
        .register_git_source(&spec("repo"))
        .await
        .expect("register_git_source");
    assert_eq!(row.commit, None);
    assert_eq!(
        store
            .register_git_source(&spec("repo"))
            .await
            .expect("the same again")
            .name,
        "repo"
    );
    let mut other = spec("repo");
    other.reference = "release".into();
    let err = store
        .register_git_source(&other)
        .await
        .expect_err("another reference under the same name");
    assert!(err.to_string().contains("already follows"), "{err}");

    let etl = version("git:repo/dags/etl.yaml", ETL_V1);
    let report = version(
        "git:repo/dags/report.yaml",
        &flat_dag_source("report", 1, ""),
    );
    let applied = store
        .apply_git_commit(&commit(
            None,
            "c1",
            vec![etl.clone(), report.clone()],
            vec![],
        ))
        .await
        .expect("apply c1");
    let GitApplied::Applied {
        stored,
        refused,
        retired,
    } = applied
    else {
        panic!("the first commit must apply: {applied:?}");
    };
    assert_eq!(stored.len(), 2);
    assert!(refused.is_empty() && retired.is_empty());
    let row = store.get_dag(&etl.dag.id).await.expect("get_dag").unwrap();
    assert_eq!(row.owner, git_owner("repo"));
    assert_eq!(
        row.origin,
        Some(Origin::Git {
            source: "repo".into(),
            commit: "c1".into()
        })
    );
    let source = store.get_source("repo").await.expect("get_source").unwrap();
    assert_eq!(source.commit.as_deref(), Some("c1"));
    assert_eq!(source.applied_by.as_deref(), Some("host-a"));

    // c2 changes etl, drops report, breaks a file; a folder holds `held`.
    let held = seed(store, "dags/held.yaml", &flat_dag_source("held", 1, "")).await;
    let etl2 = version("git:repo/dags/etl.yaml", ETL_V2);
    let clash = version("git:repo/dags/held.yaml", &flat_dag_source("held", 2, ""));
    let broken = (
        "git:repo/dags/broken.yaml".to_owned(),
        vec![DagError {
            file: "git:repo/dags/broken.yaml".into(),
            line: 3,
            column: 5,
            message: "unknown field".into(),
        }],
    );
    let c2 = commit(Some("c1"), "c2", vec![etl2.clone(), clash], vec![broken]);
    let applied = store.apply_git_commit(&c2).await.expect("apply c2");
    let GitApplied::Applied {
        stored,
        refused,
        retired,
    } = applied
    else {
        panic!("c2 over c1 must apply: {applied:?}");
    };
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].changed);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].1, held.dag.id);
    assert_eq!(retired, vec![report.dag.id.clone()]);
    assert!(!store.get_dag(&report.dag.id).await.unwrap().unwrap().active);
    let held_row = store.get_dag(held.id()).await.unwrap().unwrap();
    assert_eq!(held_row.version_hash, held.hash, "the folder keeps its DAG");
    let errors = store
        .list_import_errors()
        .await
        .expect("list_import_errors");
    let files: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        files,
        vec!["git:repo/dags/broken.yaml", "git:repo/dags/held.yaml"],
        "{errors:?}"
    );

    // The same commit stored again (a follower taking another try at its
    // refused files) keeps the errors as they were reported.
    let reported: Vec<_> = errors.iter().map(|e| e.updated_at).collect();
    let again = commit(
        Some("c2"),
        "c2",
        vec![etl2.clone(), c2.versions[1].clone()],
        c2.errors.clone(),
    );
    assert!(matches!(
        store.apply_git_commit(&again).await.expect("c2 again"),
        GitApplied::Applied { .. }
    ));
    let errors = store
        .list_import_errors()
        .await
        .expect("list_import_errors");
    let still: Vec<_> = errors.iter().map(|e| e.updated_at).collect();
    assert_eq!(
        still, reported,
        "an unchanged import error is not reported again"
    );

    // c2b breaks etl's file: etl keeps its last good version, active.
    let etl_broken = (
        "git:repo/dags/etl.yaml".to_owned(),
        vec![DagError {
            file: "git:repo/dags/etl.yaml".into(),
            line: 2,
            column: 1,
            message: "expected a mapping".into(),
        }],
    );
    let c2b = commit(Some("c2"), "c2b", vec![], vec![etl_broken]);
    let GitApplied::Applied { retired, .. } = store.apply_git_commit(&c2b).await.expect("c2b")
    else {
        panic!("c2b over c2 must apply");
    };
    assert!(
        retired.is_empty(),
        "a broken file retires nothing: {retired:?}"
    );
    let row = store.get_dag(&etl.dag.id).await.unwrap().unwrap();
    assert!(row.active);
    assert_eq!(row.version_hash, etl2.hash, "the last good version stays");
    let c2c = commit(Some("c2b"), "c2", vec![etl2.clone()], vec![]);
    assert!(matches!(
        store.apply_git_commit(&c2c).await.expect("back to c2"),
        GitApplied::Applied { .. }
    ));

    // A follower that still read c1 stores nothing.
    let late = commit(Some("c1"), "c1", vec![etl.clone()], vec![]);
    let applied = store.apply_git_commit(&late).await.expect("apply late");
    assert_eq!(applied, GitApplied::Stale(Some("c2".into())));
    let row = store.get_dag(&etl.dag.id).await.unwrap().unwrap();
    assert_eq!(row.version_hash, etl2.hash, "never rolled back");

    // c3 fixes the broken file away: the source's errors are the commit's.
    let c3 = commit(Some("c2"), "c3", vec![etl2.clone()], vec![]);
    assert!(matches!(
        store.apply_git_commit(&c3).await.expect("apply c3"),
        GitApplied::Applied { .. }
    ));
    let errors = store
        .list_import_errors()
        .await
        .expect("list_import_errors");
    assert!(errors.is_empty(), "{errors:?}");

    // A folder file of a git DAG's id is refused.
    let folder = parse_dag("dags/etl.yaml", ETL_V1);
    let err = store
        .upsert_dag(
            &folder,
            "dags/etl.yaml",
            ETL_V1,
            &content_hash(ETL_V1),
            OWNER,
        )
        .await
        .expect_err("a folder file of a git DAG id");
    assert!(err.to_string().contains("git source repo"), "{err}");

    assert!(
        store
            .request_refresh("repo")
            .await
            .expect("request_refresh")
    );
    assert!(
        !store
            .request_refresh("nope")
            .await
            .expect("request_refresh")
    );
    let source = store.get_source("repo").await.unwrap().unwrap();
    assert!(source.refresh_requested_at.is_some());
    assert_eq!(store.list_sources().await.expect("list_sources").len(), 1);
    let unknown = GitCommit {
        source: "nope".into(),
        ..commit(None, "x", vec![], vec![])
    };
    assert!(store.apply_git_commit(&unknown).await.is_err());
}
