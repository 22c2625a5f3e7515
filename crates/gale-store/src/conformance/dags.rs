//! Conformance checks: DAGs: versions, one DAG per file, file sync, import errors, pausing.

use super::*;

/// `upsert_dag` creates the DAG and a version; the same content again is no new
/// version; new content is a new version the DAG points at, the old one kept.
pub async fn upsert_dag_versions<S: Store + ?Sized>(store: &S) {
    let dag = parse_dag("dags/etl.yaml", ETL_V1);
    let hash = content_hash(ETL_V1);
    let new = store
        .upsert_dag(&dag, "dags/etl.yaml", ETL_V1, &hash, OWNER)
        .await
        .expect("upsert_dag");
    assert!(
        new,
        "the first upsert_dag of a DAG must report a new version"
    );

    let row = store
        .get_dag(&dag.id)
        .await
        .expect("get_dag")
        .expect("upsert_dag must create the DAG row");
    assert_eq!(row.dag_id, dag.id);
    assert_eq!(row.file, "dags/etl.yaml");
    assert_eq!(row.version_hash, hash);
    assert!(!row.paused, "a new DAG starts unpaused");
    assert!(row.active, "a new DAG starts active");
    assert_eq!(row.schedule.as_deref(), Some("0 2 * * *"));
    assert_eq!(row.timezone, "UTC");
    assert_eq!(row.max_active_runs, 2);
    assert_eq!(row.description.as_deref(), Some("nightly load"));
    assert_eq!(row.tags, vec!["etl".to_owned(), "nightly".to_owned()]);
    assert_eq!(row.last_interval_end, None);

    let listed = store.list_dags().await.expect("list_dags");
    assert_eq!(listed.len(), 1, "list_dags: {listed:#?}");
    assert_eq!(listed[0].dag_id, dag.id);

    let version = store
        .get_version(&dag.id, &hash)
        .await
        .expect("get_version")
        .expect("upsert_dag must store the version");
    assert_eq!(version.dag_id, dag.id);
    assert_eq!(version.version_hash, hash);
    assert_eq!(version.file, "dags/etl.yaml");
    assert_eq!(version.source, ETL_V1);
    assert_eq!(version.spec, dag, "the stored spec must round-trip");

    let again = store
        .upsert_dag(&dag, "dags/etl.yaml", ETL_V1, &hash, OWNER)
        .await
        .expect("upsert_dag again");
    assert!(!again, "the same content again must not be a new version");
    let row = store.get_dag(&dag.id).await.expect("get_dag").unwrap();
    assert_eq!(row.version_hash, hash);

    let dag2 = parse_dag("dags/etl.yaml", ETL_V2);
    let hash2 = content_hash(ETL_V2);
    assert_ne!(hash, hash2);
    let new = store
        .upsert_dag(&dag2, "dags/etl.yaml", ETL_V2, &hash2, OWNER)
        .await
        .expect("upsert_dag v2");
    assert!(new, "changed content must be a new version");
    let row = store.get_dag(&dag.id).await.expect("get_dag").unwrap();
    assert_eq!(
        row.version_hash, hash2,
        "the DAG must point at the new version"
    );
    assert_eq!(row.schedule.as_deref(), Some("0 3 * * *"));
    assert_eq!(
        row.description.as_deref(),
        Some("nightly load, now with a report")
    );
    assert_eq!(row.tags, vec!["etl".to_owned()]);
    let v2 = store
        .get_version(&dag.id, &hash2)
        .await
        .expect("get_version v2")
        .expect("v2 stored");
    assert_eq!(v2.spec.tasks.len(), 3);
    assert!(
        store
            .get_version(&dag.id, &hash)
            .await
            .expect("get_version v1")
            .is_some(),
        "old versions must be kept: runs refer to them"
    );
    assert!(
        store
            .get_version(&dag.id, "no-such-hash")
            .await
            .expect("get_version unknown")
            .is_none()
    );
    assert!(
        store
            .get_dag(&DagId::from("nope"))
            .await
            .expect("get_dag unknown")
            .is_none()
    );
}

/// A second file defining an active DAG's id is refused, changing nothing.
pub async fn duplicate_dag_id_is_refused<S: Store + ?Sized>(store: &S) {
    let original = seed(store, "dags/etl.yaml", ETL_V1).await;
    let copy_source = ETL_V1.replace("nightly load", "a copy");
    let copy = parse_dag("dags/copy.yaml", &copy_source);
    assert_eq!(copy.id, original.dag.id);
    let copy_hash = content_hash(&copy_source);
    let err = store
        .upsert_dag(&copy, "dags/copy.yaml", &copy_source, &copy_hash, OWNER)
        .await
        .expect_err("a second file defining an active DAG id must be refused");
    assert!(
        err.to_string().contains("duplicate"),
        "the error must say \"duplicate\": {err}"
    );
    assert!(
        !err.is_retryable(),
        "a duplicate DAG id is not fixed by retrying: {err:?}"
    );
    let row = store
        .get_dag(original.id())
        .await
        .expect("get_dag")
        .unwrap();
    assert_eq!(row.file, "dags/etl.yaml", "the original file keeps the DAG");
    assert_eq!(row.version_hash, original.hash);
    assert_eq!(row.description.as_deref(), Some("nightly load"));
    assert!(
        store
            .get_version(original.id(), &copy_hash)
            .await
            .expect("get_version")
            .is_none(),
        "a refused file must not leave a version behind"
    );
    // The original file itself may be upserted again.
    let again = store
        .upsert_dag(&original.dag, &original.file, ETL_V1, &original.hash, OWNER)
        .await
        .expect("the file that owns the DAG id may upsert it again");
    assert!(!again);
}

/// A file defines one DAG: when a file's DAG id changes, the DAG it defined before
/// becomes inactive (it is no longer defined anywhere) and its id is free again.
pub async fn renamed_dag_id_retires_the_old_one<S: Store + ?Sized>(store: &S) {
    let old = seed(store, "dags/a.yaml", &flat_dag_source("old_name", 1, "")).await;
    let other = seed(store, "dags/other.yaml", &flat_dag_source("other", 1, "")).await;
    let new = seed(store, "dags/a.yaml", &flat_dag_source("new_name", 1, "")).await;

    let new_row = store.get_dag(new.id()).await.expect("get_dag").unwrap();
    assert!(new_row.active);
    assert_eq!(new_row.file, "dags/a.yaml");
    let old_row = store
        .get_dag(old.id())
        .await
        .expect("get_dag")
        .expect("the old DAG is kept (its runs refer to it), only inactive");
    assert!(
        !old_row.active,
        "a DAG whose file now defines another id must become inactive"
    );
    assert!(
        store
            .get_dag(other.id())
            .await
            .expect("get_dag")
            .unwrap()
            .active,
        "DAGs of other files are not touched"
    );

    // The old id is free: another file may define it now.
    let moved = seed(store, "dags/b.yaml", &flat_dag_source("old_name", 2, "")).await;
    let row = store.get_dag(moved.id()).await.expect("get_dag").unwrap();
    assert!(row.active);
    assert_eq!(row.file, "dags/b.yaml");
    assert!(
        store
            .get_dag(new.id())
            .await
            .expect("get_dag")
            .unwrap()
            .active,
        "taking over a free id does not retire the file's former owner's new DAG"
    );
}

/// The files that have import errors recorded.
async fn error_files<S: Store + ?Sized>(store: &S) -> Vec<String> {
    store
        .list_import_errors()
        .await
        .expect("list_import_errors")
        .into_iter()
        .map(|e| e.file)
        .collect()
}

/// `sync_files` marks DAGs of absent files inactive (freeing their ids) and drops
/// the import errors of absent files.
pub async fn sync_files_marks_absent_files<S: Store + ?Sized>(store: &S) {
    let a = seed(store, "dags/a.yaml", &flat_dag_source("a", 1, "")).await;
    let b = seed(store, "dags/b.yaml", &flat_dag_source("b", 1, "")).await;
    let err = |file: &str| DagError {
        file: file.to_owned(),
        line: 3,
        column: 7,
        message: "bad".into(),
    };
    store
        .record_import_errors("dags/gone.yaml", None, &[err("dags/gone.yaml")], OWNER)
        .await
        .expect("record_import_errors");
    store
        .record_import_errors("dags/bad.yaml", Some("bad"), &[err("dags/bad.yaml")], OWNER)
        .await
        .expect("record_import_errors");

    // What another DAG processor (another host or folder) recorded is its own.
    let theirs_source = flat_dag_source("theirs", 1, "");
    let theirs = parse_dag("other/theirs.yaml", &theirs_source);
    store
        .upsert_dag(
            &theirs,
            "other/theirs.yaml",
            &theirs_source,
            &content_hash(&theirs_source),
            "node2:/other",
        )
        .await
        .expect("upsert_dag");
    store
        .record_import_errors(
            "other/broken.yaml",
            None,
            &[err("other/broken.yaml")],
            "node2:/other",
        )
        .await
        .expect("record_import_errors");

    store
        .sync_files(
            OWNER,
            &["dags/a.yaml".to_owned(), "dags/bad.yaml".to_owned()],
        )
        .await
        .expect("sync_files");
    assert!(
        store
            .get_dag(&theirs.id)
            .await
            .expect("get_dag")
            .expect("theirs")
            .active,
        "another processor's DAG is not retired by this one"
    );
    assert!(
        store
            .list_import_errors()
            .await
            .expect("list_import_errors")
            .iter()
            .any(|e| e.file == "other/broken.yaml"),
        "another processor's import errors are not dropped by this one"
    );
    store
        .sync_files("node2:/other", &[])
        .await
        .expect("sync_files");
    assert!(
        !store
            .get_dag(&theirs.id)
            .await
            .expect("get_dag")
            .expect("theirs")
            .active,
        "its own processor retires it"
    );

    let a_row = store.get_dag(a.id()).await.expect("get_dag").unwrap();
    assert!(a_row.active, "a DAG whose file is present stays active");
    let b_row = store
        .get_dag(b.id())
        .await
        .expect("get_dag")
        .expect("an absent file's DAG is kept (its runs refer to it), only inactive");
    assert!(
        !b_row.active,
        "a DAG whose file is absent must become inactive"
    );
    let files = error_files(store).await;
    assert_eq!(
        files,
        vec!["dags/bad.yaml".to_owned()],
        "import errors of absent files must be dropped, others kept"
    );

    // The inactive DAG's id is free for another file now.
    let moved = seed(store, "dags/b2.yaml", &flat_dag_source("b", 2, "")).await;
    let row = store.get_dag(moved.id()).await.expect("get_dag").unwrap();
    assert_eq!(row.file, "dags/b2.yaml");
    assert!(row.active, "upserting a DAG makes it active again");
    assert_eq!(row.version_hash, moved.hash);

    // A processor that stops drops its import errors, not another's, and
    // keeps its DAGs.
    store
        .record_import_errors(
            "other/broken.yaml",
            None,
            &[err("other/broken.yaml")],
            "node2:/other",
        )
        .await
        .expect("record_import_errors");
    store
        .drop_import_errors(OWNER)
        .await
        .expect("drop_import_errors");
    let files = error_files(store).await;
    assert_eq!(
        files,
        vec!["other/broken.yaml".to_owned()],
        "a stopped processor's import errors go, another's stay"
    );
    let a_row = store.get_dag(a.id()).await.expect("get_dag").unwrap();
    assert!(a_row.active, "its DAGs stay active");
}

/// Import errors round-trip file, DAG id, line, column and message; recording a
/// file again replaces its errors; a successful upsert of the file clears them.
pub async fn import_errors_round_trip<S: Store + ?Sized>(store: &S) {
    let broken = "schedule: '99 * * * *'\ntasks:\n  a:\n    run: x\n    needs: [nope]\n";
    let errors =
        parse("dags/broken.yaml", "broken", broken).expect_err("the fixture must not parse");
    assert!(errors.len() >= 2, "{errors:?}");
    store
        .record_import_errors("dags/broken.yaml", Some("broken"), &errors, OWNER)
        .await
        .expect("record_import_errors");
    let other = vec![DagError {
        file: "dags/other.yaml".into(),
        line: 0,
        column: 0,
        message: "file is not UTF-8: ünïcödé ✓".into(),
    }];
    store
        .record_import_errors("dags/other.yaml", None, &other, OWNER)
        .await
        .expect("record_import_errors");

    let mut listed = store
        .list_import_errors()
        .await
        .expect("list_import_errors");
    listed.sort_by(|x, y| x.file.cmp(&y.file));
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(listed[0].file, "dags/broken.yaml");
    assert_eq!(listed[0].dag_id.as_deref(), Some("broken"));
    assert_eq!(
        listed[0].errors, errors,
        "file, line, column and message must round-trip"
    );
    assert_eq!(listed[1].file, "dags/other.yaml");
    assert_eq!(listed[1].dag_id, None);
    assert_eq!(listed[1].errors, other);

    let replacement = vec![DagError {
        file: "dags/broken.yaml".into(),
        line: 9,
        column: 2,
        message: "still broken".into(),
    }];
    store
        .record_import_errors("dags/broken.yaml", None, &replacement, OWNER)
        .await
        .expect("record_import_errors again");
    let listed = store
        .list_import_errors()
        .await
        .expect("list_import_errors");
    let entries: Vec<_> = listed
        .iter()
        .filter(|e| e.file == "dags/broken.yaml")
        .collect();
    assert_eq!(entries.len(), 1, "one entry per file: {listed:#?}");
    assert_eq!(entries[0].errors, replacement, "recording again replaces");
    assert_eq!(entries[0].dag_id, None);

    seed(store, "dags/broken.yaml", &flat_dag_source("broken", 1, "")).await;
    let files = error_files(store).await;
    assert_eq!(
        files,
        vec!["dags/other.yaml".to_owned()],
        "a successful upsert_dag clears the file's import errors"
    );
}

/// `set_paused` is false for an unknown DAG, toggles `paused`, and a new version
/// of a paused DAG stays paused.
pub async fn set_paused<S: Store + ?Sized>(store: &S) {
    let unknown = store
        .set_paused(&DagId::from("nope"), true)
        .await
        .expect("set_paused unknown");
    assert!(!unknown, "set_paused of an unknown DAG must return false");
    assert!(
        store.list_dags().await.expect("list_dags").is_empty(),
        "set_paused must not create a DAG"
    );

    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    assert!(store.set_paused(dag.id(), true).await.expect("set_paused"));
    let row = store.get_dag(dag.id()).await.expect("get_dag").unwrap();
    assert!(row.paused, "set_paused(true) must pause");

    seed(store, "dags/etl.yaml", ETL_V2).await;
    let row = store.get_dag(dag.id()).await.expect("get_dag").unwrap();
    assert!(row.paused, "a new version of a paused DAG must stay paused");

    assert!(store.set_paused(dag.id(), false).await.expect("set_paused"));
    let row = store.get_dag(dag.id()).await.expect("get_dag").unwrap();
    assert!(!row.paused, "set_paused(false) must unpause");
}

/// `dag_page` pages the DAGs in id order, filtered by search (id or
/// description, any case, `%` and `_` taken literally), tag and pause, with
/// the count it matches and the active and paused counts of all; `dag_tags`
/// lists the active DAGs' tags.
pub async fn dag_page_filters_and_pages<S: Store + ?Sized>(store: &S) {
    use crate::DagQuery;
    for i in 0..25 {
        let tags = if i % 5 == 0 {
            "tags: [nightly, team_a]\n"
        } else {
            "tags: [team_b]\n"
        };
        let extra = if i == 7 {
            format!("{tags}description: Loads the 100% WAREHOUSE\n")
        } else {
            tags.to_owned()
        };
        seed(
            store,
            &format!("dags/d{i:02}.yaml"),
            &flat_dag_source(&format!("d{i:02}"), 1, &extra),
        )
        .await;
    }
    store
        .set_paused(&DagId::from("d03"), true)
        .await
        .expect("set_paused");
    store
        .sync_files(
            OWNER,
            &(0..24)
                .map(|i| format!("dags/d{i:02}.yaml"))
                .collect::<Vec<_>>(),
        )
        .await
        .expect("sync_files");
    let page = |q: DagQuery| async move { store.dag_page(&q).await.expect("dag_page") };
    let ids =
        |p: &crate::DagPage| -> Vec<String> { p.dags.iter().map(|d| d.dag_id.0.clone()).collect() };
    let first = page(DagQuery {
        limit: 10,
        ..DagQuery::default()
    })
    .await;
    assert_eq!(
        ids(&first),
        (0..10).map(|i| format!("d{i:02}")).collect::<Vec<_>>()
    );
    assert_eq!(
        (first.matched, first.active, first.paused),
        (24, 24, 1),
        "d24 was removed"
    );
    let last = page(DagQuery {
        limit: 10,
        offset: 20,
        ..DagQuery::default()
    })
    .await;
    assert_eq!(ids(&last), ["d20", "d21", "d22", "d23"]);
    let all = page(DagQuery {
        include_inactive: true,
        limit: 5,
        offset: 22,
        ..DagQuery::default()
    })
    .await;
    assert_eq!(
        (ids(&all), all.matched),
        (vec!["d22".into(), "d23".into(), "d24".into()], 25)
    );
    let tagged = page(DagQuery {
        tag: Some("nightly".into()),
        ..DagQuery::default()
    })
    .await;
    assert_eq!(ids(&tagged), ["d00", "d05", "d10", "d15", "d20"]);
    let paused = page(DagQuery {
        paused: Some(true),
        ..DagQuery::default()
    })
    .await;
    assert_eq!(ids(&paused), ["d03"]);
    let found = page(DagQuery {
        search: Some(" warehouse ".into()),
        ..DagQuery::default()
    })
    .await;
    assert_eq!(ids(&found), ["d07"], "the description, any case");
    let found = page(DagQuery {
        search: Some("D1".into()),
        ..DagQuery::default()
    })
    .await;
    assert_eq!(found.matched, 10, "the id, any case");
    let literal = page(DagQuery {
        search: Some("100%".into()),
        ..DagQuery::default()
    })
    .await;
    assert_eq!(ids(&literal), ["d07"]);
    let none = page(DagQuery {
        search: Some("d_1".into()),
        ..DagQuery::default()
    })
    .await;
    assert_eq!(none.matched, 0, "_ is no wildcard");
    let both = page(DagQuery {
        tag: Some("team_b".into()),
        search: Some("d0".into()),
        paused: Some(false),
        ..DagQuery::default()
    })
    .await;
    assert_eq!(
        ids(&both),
        ["d01", "d02", "d04", "d06", "d07", "d08", "d09"]
    );
    assert_eq!(
        store.dag_tags().await.expect("dag_tags"),
        ["nightly", "team_a", "team_b"]
    );
}

/// `dags_changed_since` lists the DAGs whose row changed since an instant (a
/// pause, a new version, a file gone), oldest change first; a run moving the
/// cursor is not a change, and a deleted DAG is not listed.
pub async fn dags_changed_since_lists_changes<S: Store + ?Sized>(store: &S) {
    let ids = |rows: Vec<crate::DagRow>| -> Vec<String> {
        rows.into_iter().map(|r| r.dag_id.0).collect()
    };
    let a = seed(store, "dags/a.yaml", &flat_dag_source("a", 1, "")).await;
    let b = seed(store, "dags/b.yaml", &flat_dag_source("b", 1, "")).await;
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(5));
    tick().await;
    let t0 = store.now().await.expect("now");
    tick().await;
    let changed =
        |since| async move { ids(store.dags_changed_since(since).await.expect("changed")) };
    assert!(changed(t0).await.is_empty(), "nothing changed yet");
    assert!(store.set_paused(a.id(), true).await.expect("set_paused"));
    assert_eq!(changed(t0).await, ["a"]);
    create(
        store,
        &new_run(&b, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    assert_eq!(changed(t0).await, ["a"], "a cursor moving is no change");
    tick().await;
    seed(store, "dags/b.yaml", &flat_dag_source("b", 2, "")).await;
    assert_eq!(changed(t0).await, ["a", "b"], "oldest change first");
    tick().await;
    let t1 = store.now().await.expect("now");
    tick().await;
    store
        .sync_files(OWNER, std::slice::from_ref(&a.file))
        .await
        .expect("sync_files");
    let rows = store.dags_changed_since(t1).await.expect("changed");
    assert!(
        matches!(rows.as_slice(), [r] if r.dag_id == *b.id() && !r.active),
        "a file gone is a change: {rows:?}"
    );
    assert!(
        store
            .delete_dag(a.id(), crate::DagDeletion::Everything)
            .await
            .map(|d| matches!(d, crate::DeleteDag::Deleted(_)))
            .expect("delete_dag")
    );
    assert_eq!(changed(t0).await, ["b"], "a deleted DAG is not listed");
}

/// `delete_dag` refuses a DAG with an unfinished run, then removes the DAG
/// with its runs, task instances, log lines and backfills in one go (only
/// its row with `KeepHistory`), leaving other DAGs alone; the file of a
/// deleted DAG that is still present is reported as unknown by `sync_files`,
/// so its processor parses it again.
pub async fn delete_dag_and_history<S: Store + ?Sized>(store: &S) {
    use crate::{DagDeleted, DagDeletion, DeleteDag};
    let (gone, run) = queued_run(store, "gone", 1).await;
    let (kept, kept_run) = queued_run(store, "kept", 1).await;
    let line = LogLine {
        ts: day(1),
        stream: Stream::Stdout,
        text: "hello".into(),
    };
    let ti = ti_of(store, run, "t1").await.id;
    let kept_ti = ti_of(store, kept_run, "t1").await.id;
    store
        .append_logs(ti, 1, &[line.clone(), line.clone()])
        .await
        .expect("append_logs");
    store
        .append_logs(kept_ti, 1, std::slice::from_ref(&line))
        .await
        .expect("append_logs");
    store
        .create_backfill(gone.id(), day(1), day(2), Some("dora"))
        .await
        .expect("create_backfill");

    assert_eq!(
        store
            .delete_dag(gone.id(), DagDeletion::Everything)
            .await
            .expect("delete_dag"),
        DeleteDag::Unfinished(vec![run]),
        "a DAG with a queued run is not deleted"
    );
    assert!(store.get_dag(gone.id()).await.expect("get_dag").is_some());

    assert_eq!(store.promote_runs().await.expect("promote_runs").len(), 2);
    for r in [run, kept_run] {
        assert!(
            store
                .finish_run(r, RunState::Success, &[])
                .await
                .expect("finish_run")
        );
    }
    let deleted = store
        .delete_dag(gone.id(), DagDeletion::Everything)
        .await
        .expect("delete_dag");
    assert_eq!(
        deleted,
        DeleteDag::Deleted(DagDeleted {
            file: gone.file.clone(),
            file_present: true,
            runs: 1,
            task_instances: 1,
            attempts: 0,
            log_lines: 2,
            backfills: 1,
        })
    );
    assert!(store.get_dag(gone.id()).await.expect("get_dag").is_none());
    assert!(store.get_run(run).await.expect("get_run").is_none());
    assert!(
        store
            .get_version(gone.id(), &gone.hash)
            .await
            .expect("get_version")
            .is_none()
    );
    assert!(
        store
            .read_logs(ti, 1, 0, 100)
            .await
            .expect("read_logs")
            .is_empty()
    );
    assert!(
        store
            .list_backfills(Some(gone.id()), 10)
            .await
            .expect("list_backfills")
            .is_empty()
    );
    assert_eq!(
        store
            .delete_dag(gone.id(), DagDeletion::Everything)
            .await
            .expect("delete_dag"),
        DeleteDag::NotFound
    );
    // A run of a deleted DAG is refused, and none is made.
    let late = store
        .create_run(&new_run(&gone, "manual__late", RunType::Manual, day(3)))
        .await;
    assert!(
        matches!(&late, Err(crate::Error::Invalid(m)) if m.contains("gone")),
        "{late:?}"
    );
    let late = store
        .create_run(&new_run(
            &gone,
            "scheduled__late",
            RunType::Scheduled,
            day(3),
        ))
        .await;
    assert!(
        matches!(&late, Err(crate::Error::Invalid(m)) if m.contains("gone")),
        "a scheduled run too: {late:?}"
    );
    assert!(
        store
            .list_runs(&crate::RunFilter {
                dag_id: Some(gone.id().clone()),
                limit: 10,
                ..crate::RunFilter::default()
            })
            .await
            .expect("list_runs")
            .is_empty()
    );
    // A trigger racing a delete: either the delete sees the run unfinished
    // or the run is refused; never a run left of a deleted DAG.
    for i in 0..8 {
        let race = seed(
            store,
            &format!("dags/race{i}.yaml"),
            &flat_dag_source(&format!("race{i}"), 1, ""),
        )
        .await;
        let run = new_run(&race, "manual__race", RunType::Manual, day(4));
        let (made, deleted) = tokio::join!(
            store.create_run(&run),
            store.delete_dag(race.id(), DagDeletion::Everything)
        );
        match (&made, &deleted) {
            (Ok(Some(_)), Ok(DeleteDag::Unfinished(_))) => {}
            (Err(crate::Error::Invalid(_)), Ok(DeleteDag::Deleted(_))) => {}
            other => panic!("a run and a delete of one DAG at once: {other:?}"),
        }
    }
    // The other DAG keeps everything.
    assert!(store.get_run(kept_run).await.expect("get_run").is_some());
    assert_eq!(
        store
            .read_logs(kept_ti, 1, 0, 100)
            .await
            .expect("read_logs")
            .len(),
        1
    );
    let unknown = store
        .sync_files(OWNER, &[gone.file.clone(), kept.file.clone()])
        .await
        .expect("sync_files");
    assert_eq!(
        unknown,
        vec![gone.file.clone()],
        "the deleted DAG's file is parsed again"
    );

    let deleted = store
        .delete_dag(kept.id(), DagDeletion::KeepHistory)
        .await
        .expect("delete_dag");
    assert!(
        matches!(&deleted, DeleteDag::Deleted(d) if d.runs == 0 && d.log_lines == 0),
        "{deleted:?}"
    );
    assert!(store.get_dag(kept.id()).await.expect("get_dag").is_none());
    assert!(
        store.get_run(kept_run).await.expect("get_run").is_some(),
        "its history is kept"
    );
    assert!(
        store
            .get_version(kept.id(), &kept.hash)
            .await
            .expect("get_version")
            .is_some(),
        "and the version its runs ran"
    );
}
