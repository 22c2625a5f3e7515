//! The store conformance suite against a real PostgreSQL (started by the test
//! process from the machine's binaries), plus PostgreSQL-only behaviour:
//! concurrent schedulers and workers racing on one database.

use std::time::Duration;

use gale_store::postgres::PgStore;
use gale_store::{Store, conformance};

/// A fresh, migrated store on its own database; `None` (a loud skip) when
/// PostgreSQL cannot be started outside CI.
async fn fresh(test: &str) -> Option<PgStore> {
    let url = gale_pgtest::shared_database(test)?;
    Some(
        PgStore::connect(&url, Duration::from_secs(10))
            .await
            .expect("connect to the test database"),
    )
}

/// One `#[tokio::test]` per conformance check, each on a fresh database.
macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(store) = fresh(stringify!($check)).await else { return };
                conformance::$check(&store).await;
            }
        )*
    };
}

gale_store::for_each_check!(conformance_tests);

#[tokio::test]
async fn migrating_twice_is_a_no_op_and_reports_the_version() {
    let Some(store) = fresh("migrating_twice").await else {
        return;
    };
    assert_eq!(
        store.schema_version().await.expect("schema_version"),
        gale_store::postgres::SCHEMA_VERSION
    );
    // A second process opening the same database: nothing to do, same version.
    let url = gale_pgtest::shared_database("migrating_twice_b").expect("server already up");
    let a = PgStore::connect(&url, Duration::from_secs(10));
    let b = PgStore::connect(&url, Duration::from_secs(10));
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.expect("first"), b.expect("second, concurrently"));
    assert_eq!(
        a.schema_version().await.expect("version"),
        b.schema_version().await.expect("version")
    );
    assert!(!a.endpoint().contains("password"));
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_retryable_error() {
    let started = std::time::Instant::now();
    // Nothing listens on port 1.
    let err = match PgStore::connect(
        "postgres://gale@127.0.0.1:1/gale",
        Duration::from_millis(300),
    )
    .await
    {
        Ok(_) => panic!("connecting to a closed port must fail"),
        Err(e) => e,
    };
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1"),
        "the error names the endpoint: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up within its wait"
    );
}
