//! The actions against a real SQLite store: what each one refuses, and with
//! which kind of error.

use gale_model::{DagId, RunId};
use gale_store::prelude::*;

use crate::{ClearWhat, Error, Mark};

const HELLO: &str = r#"tasks:
  greet:
    run: echo hello
  after:
    needs: [greet]
    run: echo done
"#;

const NIGHTLY: &str = r#"schedule: "@daily"
start_date: 2026-01-01
catchup: false
tasks:
  only:
    run: "true"
"#;

async fn store() -> (tempfile::TempDir, Box<dyn Store>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store =
        gale_store::sqlite::SqliteStore::open(&dir.path().join("gale.db")).expect("open SQLite");
    for (name, source) in [("hello", HELLO), ("nightly", NIGHTLY)] {
        let file = format!("dags/{name}.yaml");
        let dag = gale_model::dag::parse(&file, name, source).expect("a valid DAG");
        let hash = gale_model::dag::content_hash(source);
        store
            .upsert_dag(&dag, &file, source, &hash, "test")
            .await
            .expect("upsert_dag");
    }
    (dir, Box::new(store))
}

fn hello() -> DagId {
    DagId("hello".into())
}

#[tokio::test]
async fn trigger_creates_a_manual_run_once_per_logical_date() {
    let (_dir, store) = store().await;
    let date = Some("2026-01-01");
    let run = crate::trigger(&*store, &hello(), serde_json::Map::new(), date)
        .await
        .expect("trigger");
    assert_eq!(run.run_key, "manual__2026-01-01T00:00:00Z");
    let again = crate::trigger(&*store, &hello(), serde_json::Map::new(), date).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let nope = crate::trigger(&*store, &DagId("nope".into()), serde_json::Map::new(), None).await;
    assert!(
        matches!(&nope, Err(Error::NotFound(m)) if m == "no DAG nope"),
        "{nope:?}"
    );
    let bad = crate::trigger(&*store, &hello(), serde_json::Map::new(), Some("soon")).await;
    assert!(
        matches!(&bad, Err(Error::Invalid(m)) if m.starts_with("logical date: ")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn backfill_needs_a_schedule_and_an_ordered_range() {
    let (_dir, store) = store().await;
    let res = crate::backfill(&*store, &hello(), "2026-01-01", "2026-01-02", None).await;
    assert!(
        matches!(&res, Err(Error::Invalid(m)) if m == "hello has no schedule: trigger it instead"),
        "{res:?}"
    );
    let nightly = DagId("nightly".into());
    let res = crate::backfill(&*store, &nightly, "2026-01-03", "2026-01-01", None).await;
    assert!(matches!(res, Err(Error::Invalid(_))), "{res:?}");
    let made = crate::backfill(&*store, &nightly, "2026-01-01", "2026-01-03", Some("olga"))
        .await
        .expect("backfill");
    assert_eq!((made.created.len(), made.existing), (3, 0));
    let again = crate::backfill(&*store, &nightly, "2026-01-01", "2026-01-03", None)
        .await
        .expect("backfill again");
    assert_eq!((again.created.len(), again.existing), (0, 3));
}

#[tokio::test]
async fn clear_refuses_unknown_and_unfinished_tasks() {
    let (_dir, store) = store().await;
    let res = crate::clear(&*store, RunId(99), &ClearWhat::Failed).await;
    assert!(
        matches!(&res, Err(Error::NotFound(m)) if m == "no run 99"),
        "{res:?}"
    );
    let run = crate::trigger(&*store, &hello(), serde_json::Map::new(), None)
        .await
        .expect("trigger");
    let what = |id: &str| ClearWhat::Tasks {
        task_ids: vec![id.to_owned()],
        downstream: true,
    };
    let res = crate::clear(&*store, run.id, &what("nope")).await;
    assert!(matches!(res, Err(Error::NotFound(_))), "{res:?}");
    let res = crate::clear(&*store, run.id, &what("greet")).await;
    assert!(matches!(res, Err(Error::Conflict(_))), "{res:?}");
    let cleared = crate::clear(&*store, run.id, &ClearWhat::Failed)
        .await
        .expect("clear");
    assert!(cleared.is_empty(), "{cleared:?}");
}

#[tokio::test]
async fn marks_and_cancels_are_conditional() {
    let (_dir, store) = store().await;
    let res = crate::cancel_run(&*store, RunId(99), "olga").await;
    assert!(matches!(res, Err(Error::NotFound(_))), "{res:?}");
    let run = crate::trigger(&*store, &hello(), serde_json::Map::new(), None)
        .await
        .expect("trigger");
    let t = crate::mark_task(&*store, run.id, "greet", Mark::Success, "olga")
        .await
        .expect("mark greet");
    assert_eq!(t.task_id.as_str(), "greet");
    let res = crate::mark_task(&*store, run.id, "greet", Mark::Success, "olga").await;
    assert!(
        matches!(&res, Err(Error::Conflict(m)) if *m == format!("task greet of run {} is already success", run.id)),
        "{res:?}"
    );
    let res = crate::mark_task(&*store, run.id, "nope", Mark::Failed, "olga").await;
    assert!(matches!(res, Err(Error::NotFound(_))), "{res:?}");
    crate::mark_run(&*store, run.id, Mark::Failed, "olga")
        .await
        .expect("mark the run failed");
    let res = crate::cancel_run(&*store, run.id, "olga").await;
    assert!(
        matches!(&res, Err(Error::Conflict(m)) if m.contains("has already finished")),
        "{res:?}"
    );
    assert!(matches!(Mark::parse("failed"), Ok(Mark::Failed)));
    let res = Mark::parse("done");
    assert!(
        matches!(&res, Err(Error::Invalid(m)) if m == "mark as \"success\" or \"failed\", not \"done\""),
        "{res:?}"
    );
}
