//! The actions against a real SQLite store: what each one refuses, and with
//! which kind of error.

use gale_model::{DagId, RunId};
use gale_store::prelude::*;

use gale_store::{AuditAction, AuditFilter, AuditOutcome, AuditRow};

use crate::{Actor, ClearWhat, Error, Mark};

const HELLO: &str = r#"params:
  api_password: {type: string, secret: true, default: unset}
tasks:
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

fn olga() -> Actor {
    Actor::new("olga", "192.0.2.7:5151")
}

/// The audit log, oldest first.
async fn audit(store: &dyn Store) -> Vec<AuditRow> {
    let mut rows = store
        .list_audit(&AuditFilter::default())
        .await
        .expect("list_audit");
    rows.reverse();
    rows
}

#[tokio::test]
async fn trigger_creates_a_manual_run_once_per_logical_date() {
    let (_dir, store) = store().await;
    let date = Some("2026-01-01");
    let run = crate::trigger(&*store, &olga(), &hello(), serde_json::Map::new(), date)
        .await
        .expect("trigger");
    assert_eq!(run.run_key, "manual__2026-01-01T00:00:00Z");
    let again = crate::trigger(&*store, &olga(), &hello(), serde_json::Map::new(), date).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let nope = crate::trigger(
        &*store,
        &olga(),
        &DagId("nope".into()),
        serde_json::Map::new(),
        None,
    )
    .await;
    assert!(
        matches!(&nope, Err(Error::NotFound(m)) if m == "no DAG nope"),
        "{nope:?}"
    );
    let bad = crate::trigger(
        &*store,
        &olga(),
        &hello(),
        serde_json::Map::new(),
        Some("soon"),
    )
    .await;
    assert!(
        matches!(&bad, Err(Error::Invalid(m)) if m.starts_with("logical date: ")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn backfill_needs_a_schedule_and_an_ordered_range() {
    let (_dir, store) = store().await;
    let res = crate::backfill(&*store, &olga(), &hello(), "2026-01-01", "2026-01-02").await;
    assert!(
        matches!(&res, Err(Error::Invalid(m)) if m == "hello has no schedule: trigger it instead"),
        "{res:?}"
    );
    let nightly = DagId("nightly".into());
    let res = crate::backfill(&*store, &olga(), &nightly, "2026-01-03", "2026-01-01").await;
    assert!(matches!(res, Err(Error::Invalid(_))), "{res:?}");
    let made = crate::backfill(&*store, &olga(), &nightly, "2026-01-01", "2026-01-03")
        .await
        .expect("backfill");
    assert_eq!((made.created.len(), made.existing), (3, 0));
    let again = crate::backfill(&*store, &olga(), &nightly, "2026-01-01", "2026-01-03")
        .await
        .expect("backfill again");
    assert_eq!((again.created.len(), again.existing), (0, 3));
}

#[tokio::test]
async fn clear_refuses_unknown_and_unfinished_tasks() {
    let (_dir, store) = store().await;
    let res = crate::clear(&*store, &olga(), RunId(99), &ClearWhat::Failed).await;
    assert!(
        matches!(&res, Err(Error::NotFound(m)) if m == "no run 99"),
        "{res:?}"
    );
    let run = crate::trigger(&*store, &olga(), &hello(), serde_json::Map::new(), None)
        .await
        .expect("trigger");
    let what = |id: &str| ClearWhat::Tasks {
        task_ids: vec![id.to_owned()],
        downstream: true,
    };
    let res = crate::clear(&*store, &olga(), run.id, &what("nope")).await;
    assert!(matches!(res, Err(Error::NotFound(_))), "{res:?}");
    let res = crate::clear(&*store, &olga(), run.id, &what("greet")).await;
    assert!(matches!(res, Err(Error::Conflict(_))), "{res:?}");
    let cleared = crate::clear(&*store, &olga(), run.id, &ClearWhat::Failed)
        .await
        .expect("clear");
    assert!(cleared.is_empty(), "{cleared:?}");
}

#[tokio::test]
async fn marks_and_cancels_are_conditional() {
    let (_dir, store) = store().await;
    let res = crate::cancel_run(&*store, &olga(), RunId(99)).await;
    assert!(matches!(res, Err(Error::NotFound(_))), "{res:?}");
    let run = crate::trigger(&*store, &olga(), &hello(), serde_json::Map::new(), None)
        .await
        .expect("trigger");
    let t = crate::mark_task(&*store, &olga(), run.id, "greet", Mark::Success)
        .await
        .expect("mark greet");
    assert_eq!(t.task_id.as_str(), "greet");
    let res = crate::mark_task(&*store, &olga(), run.id, "greet", Mark::Success).await;
    assert!(
        matches!(&res, Err(Error::Conflict(m)) if *m == format!("task greet of run {} is already success", run.id)),
        "{res:?}"
    );
    let res = crate::mark_task(&*store, &olga(), run.id, "nope", Mark::Failed).await;
    assert!(matches!(res, Err(Error::NotFound(_))), "{res:?}");
    crate::mark_run(&*store, &olga(), run.id, Mark::Failed)
        .await
        .expect("mark the run failed");
    let res = crate::cancel_run(&*store, &olga(), run.id).await;
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

#[tokio::test]
async fn a_conf_the_dag_does_not_declare_is_refused_and_makes_no_run() {
    let (_dir, store) = store().await;
    let mut conf = serde_json::Map::new();
    conf.insert("region; rm".into(), serde_json::json!("x"));
    let res = crate::trigger(&*store, &olga(), &hello(), conf, None).await;
    assert!(
        matches!(&res, Err(Error::Invalid(m)) if m.contains("\"region; rm\" is not a param")),
        "{res:?}"
    );
    let runs = store
        .list_runs(&gale_store::RunFilter::default())
        .await
        .expect("runs");
    assert!(runs.is_empty(), "{runs:?}");
}

#[tokio::test]
async fn every_action_is_audited_with_its_actor_and_outcome() {
    let (_dir, store) = store().await;
    let mut conf = serde_json::Map::new();
    conf.insert("api_password".into(), serde_json::json!("hunter2"));
    let run = crate::trigger(&*store, &olga(), &hello(), conf, Some("2026-01-01"))
        .await
        .expect("trigger");
    let nope = DagId("nope".into());
    let refused = crate::trigger(&*store, &olga(), &nope, Default::default(), None).await;
    assert!(refused.is_err());
    crate::mark_task(&*store, &olga(), run.id, "greet", Mark::Failed)
        .await
        .expect("mark");
    crate::clear(&*store, &olga(), run.id, &ClearWhat::Failed)
        .await
        .expect("clear");
    crate::cancel_run(&*store, &olga(), run.id)
        .await
        .expect("cancel");
    crate::set_paused(&*store, &olga(), &hello(), true)
        .await
        .expect("pause");
    let res = crate::set_paused(&*store, &olga(), &DagId("nope".into()), false).await;
    assert!(matches!(res, Err(Error::NotFound(_))), "{res:?}");
    let nightly = DagId("nightly".into());
    crate::backfill(&*store, &olga(), &nightly, "2026-01-01", "2026-01-02")
        .await
        .expect("backfill");
    crate::mark_run(&*store, &olga(), run.id, Mark::Success)
        .await
        .expect("mark run");

    let rows = audit(&*store).await;
    let seen: Vec<(AuditAction, &str, AuditOutcome)> = rows
        .iter()
        .map(|r| (r.action, r.target.as_str(), r.outcome))
        .collect();
    let run_target = format!("run/{}", run.id);
    let task_target = format!("run/{}/task/greet", run.id);
    use AuditOutcome::{Failure, Success};
    assert_eq!(
        seen,
        vec![
            (AuditAction::RunTrigger, "dag/hello", Success),
            (AuditAction::RunTrigger, "dag/nope", Failure),
            (AuditAction::TaskMark, task_target.as_str(), Success),
            (AuditAction::RunClear, run_target.as_str(), Success),
            (AuditAction::RunCancel, run_target.as_str(), Success),
            (AuditAction::DagPause, "dag/hello", Success),
            (AuditAction::DagUnpause, "dag/nope", Failure),
            (AuditAction::BackfillCreate, "dag/nightly", Success),
            (AuditAction::RunMark, run_target.as_str(), Success),
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.actor == "olga" && r.origin == "192.0.2.7:5151")
    );
    let trigger = &rows[0];
    assert_eq!(
        trigger.detail["conf_keys"],
        serde_json::json!(["api_password"])
    );
    assert_eq!(trigger.detail["run_id"], serde_json::json!(run.id.0));
    let text =
        serde_json::to_string(&rows.iter().map(|r| &r.detail).collect::<Vec<_>>()).expect("json");
    assert!(
        !text.contains("hunter2"),
        "a conf value was recorded: {text}"
    );
    assert_eq!(rows[1].detail["error"], serde_json::json!("no DAG nope"));
    assert_eq!(rows[3].detail["cleared"], serde_json::json!(["greet"]));
    assert_eq!(rows[7].detail["created_runs"], serde_json::json!(2));
    let b = store.list_backfills(None, 1).await.expect("list_backfills");
    assert_eq!(b[0].created_by.as_deref(), Some("olga"));
}

fn channel_spec(doc: serde_json::Value) -> gale_alerts::ChannelSpec {
    serde_json::from_value(doc).expect("a channel document")
}

#[tokio::test]
async fn a_replaced_channel_keeps_its_secrets_only_where_they_are_safe() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
        gale_store::sqlite::SqliteStore::open(&dir.path().join("gale.db")).expect("open SQLite"),
    );
    let key = dir.path().join("k");
    gale_secrets::write_key_file(&key).expect("a key");
    let keys = std::sync::Arc::new(gale_secrets::KeySource::file(&key).expect("the key"));
    let vault = gale_secrets::Vault::new(store.clone(), Some(keys));
    let mail = serde_json::json!({"name": "m", "kind": "email", "to": ["a@example.com"],
        "smtp": "smtp://u@mail.example.com:587?tls=required", "password": "pw-1"});
    crate::alerts::set_channel(&*store, &vault, &olga(), &channel_spec(mail), false)
        .await
        .expect("added");
    let again = crate::alerts::set_channel(
        &*store,
        &vault,
        &olga(),
        &channel_spec(serde_json::json!({"name": "m", "kind": "email", "to": ["a@example.com"]})),
        false,
    )
    .await;
    assert!(
        matches!(&again, Err(Error::Conflict(m)) if m.contains("--replace")),
        "{again:?}"
    );
    // The same server: the password is kept.
    let same = serde_json::json!({"name": "m", "kind": "email", "to": ["b@example.com"],
        "smtp": "smtp://u@mail.example.com:587?tls=required"});
    let kept = crate::alerts::set_channel(&*store, &vault, &olga(), &channel_spec(same), true)
        .await
        .expect("replaced");
    assert_eq!(
        kept.secret.get("password").map(String::as_str),
        Some("pw-1")
    );
    // Another server: the password must be given again.
    let elsewhere = serde_json::json!({"name": "m", "kind": "email", "to": ["b@example.com"],
        "smtp": "smtp://u@evil.example.net:587?tls=required"});
    let refused =
        crate::alerts::set_channel(&*store, &vault, &olga(), &channel_spec(elsewhere), true).await;
    assert!(
        matches!(&refused, Err(Error::Invalid(m)) if m.contains("give the password again")),
        "{refused:?}"
    );
    // Header values sent back as shown (`***`) keep their values.
    let hook = serde_json::json!({"name": "h", "kind": "webhook", "url": "https://hooks.example/x",
        "headers": {"Authorization": "Bearer tok-9"}});
    crate::alerts::set_channel(&*store, &vault, &olga(), &channel_spec(hook), false)
        .await
        .expect("added");
    let shown =
        serde_json::json!({"name": "h", "kind": "webhook", "headers": {"Authorization": "***"}});
    let kept = crate::alerts::set_channel(&*store, &vault, &olga(), &channel_spec(shown), true)
        .await
        .expect("replaced");
    assert_eq!(kept.config["headers"]["Authorization"], "Bearer tok-9");
}

#[tokio::test]
async fn delete_refuses_unfinished_runs_and_cancelled_backfills_stop() {
    let (_dir, store) = store().await;
    let nightly = DagId("nightly".into());
    let made = crate::backfill(&*store, &olga(), &nightly, "2026-01-01", "2026-01-03")
        .await
        .expect("backfill");
    assert_eq!(made.created.len(), 3);
    let refused = crate::delete_dag(
        &*store,
        &olga(),
        &nightly,
        gale_store::DagDeletion::Everything,
    )
    .await;
    assert!(
        matches!(&refused, Err(Error::Conflict(m)) if m.contains("unfinished runs")),
        "{refused:?}"
    );
    let cancelled = crate::cancel_backfill(&*store, &olga(), made.id)
        .await
        .expect("cancel_backfill");
    assert_eq!(cancelled.cancelled_runs, made.created);
    let again = crate::cancel_backfill(&*store, &olga(), made.id).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let missing = crate::cancel_backfill(&*store, &olga(), made.id + 100).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");

    let deleted = crate::delete_dag(
        &*store,
        &olga(),
        &nightly,
        gale_store::DagDeletion::Everything,
    )
    .await
    .expect("delete_dag");
    assert_eq!((deleted.runs, deleted.backfills), (3, 1));
    assert!(
        crate::comes_back_note(&nightly, &deleted)
            .is_some_and(|n| n.contains("within ten seconds")),
        "its file was present at the last scan"
    );
    let gone = crate::delete_dag(
        &*store,
        &olga(),
        &nightly,
        gale_store::DagDeletion::Everything,
    )
    .await;
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");

    let entries = audit(&*store).await;
    let of = |action: AuditAction| -> Vec<AuditOutcome> {
        entries
            .iter()
            .filter(|e| e.action == action)
            .map(|e| e.outcome)
            .collect()
    };
    assert_eq!(
        of(AuditAction::DagDelete),
        [
            AuditOutcome::Failure,
            AuditOutcome::Success,
            AuditOutcome::Failure
        ]
    );
    assert_eq!(
        of(AuditAction::BackfillCancel),
        [
            AuditOutcome::Success,
            AuditOutcome::Failure,
            AuditOutcome::Failure
        ]
    );
    assert_eq!(of(AuditAction::RunCancel).len(), 3);
}

#[tokio::test]
async fn admin_changes_keep_an_admin_and_default_pool() {
    use crate::admin::{self, PoolWrite};
    use gale_store::Role;
    let (_dir, store) = store().await;
    assert!(
        store
            .create_user("root", Role::Admin, "x")
            .await
            .expect("create_user")
    );
    assert!(
        store
            .create_user("ann", Role::Viewer, "x")
            .await
            .expect("create_user")
    );
    let demote = admin::set_user_role(&*store, &olga(), "root", Role::Operator).await;
    assert!(
        matches!(&demote, Err(Error::Conflict(m)) if m.contains("last admin")),
        "{demote:?}"
    );
    let was = admin::set_user_role(&*store, &olga(), "ann", Role::Admin)
        .await
        .expect("set_user_role");
    assert_eq!(was, Role::Viewer);
    let same = admin::set_user_role(&*store, &olga(), "ann", Role::Admin).await;
    assert!(matches!(same, Err(Error::Conflict(_))), "{same:?}");
    let own = admin::delete_user(&*store, &olga(), Some("ann"), "ann").await;
    assert!(matches!(own, Err(Error::Conflict(_))), "{own:?}");
    admin::delete_user(&*store, &olga(), Some("root"), "ann")
        .await
        .expect("delete_user");
    let last = admin::delete_user(&*store, &olga(), None, "root").await;
    assert!(matches!(last, Err(Error::Conflict(_))), "{last:?}");
    let nobody = admin::delete_user(&*store, &olga(), None, "zed").await;
    assert!(matches!(nobody, Err(Error::NotFound(_))), "{nobody:?}");

    assert!(
        admin::set_pool(
            &*store,
            &olga(),
            "db",
            2,
            Some("warehouse"),
            PoolWrite::Create
        )
        .await
        .expect("create")
    );
    let twice = admin::set_pool(&*store, &olga(), "db", 2, None, PoolWrite::Create).await;
    assert!(matches!(twice, Err(Error::Conflict(_))), "{twice:?}");
    let unknown = admin::set_pool(&*store, &olga(), "nope", 2, None, PoolWrite::Update).await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    let bad = admin::set_pool(&*store, &olga(), "a b", 2, None, PoolWrite::Either).await;
    assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
    let huge = admin::set_pool(&*store, &olga(), "db", u32::MAX, None, PoolWrite::Update).await;
    assert!(matches!(huge, Err(Error::Invalid(_))), "{huge:?}");
    admin::set_pool(
        &*store,
        &olga(),
        admin::DEFAULT_POOL,
        128,
        None,
        PoolWrite::Either,
    )
    .await
    .expect("default_pool");
    let kept = admin::delete_pool(&*store, &olga(), admin::DEFAULT_POOL).await;
    assert!(matches!(kept, Err(Error::Conflict(_))), "{kept:?}");
    admin::delete_pool(&*store, &olga(), "db")
        .await
        .expect("delete_pool");
    let pools: Vec<String> = store
        .list_pools()
        .await
        .expect("list_pools")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(pools, [admin::DEFAULT_POOL]);
    let entries = audit(&*store).await;
    assert!(
        entries.iter().any(|e| e.action == AuditAction::UserRole
            && e.target == "user/ann"
            && e.outcome == AuditOutcome::Success
            && e.detail["was"] == "viewer"),
        "{entries:#?}"
    );
}
