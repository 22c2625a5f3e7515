//! Conformance checks: Secrets: variables and connections, sealed parts, and
//! the conditional reseal key rotation relies on.

use super::*;
use crate::{ConnectionRow, Sealed, SecretKind, VariableRow};

fn sealed(key: &str, data: &str) -> Sealed {
    Sealed {
        key_id: key.into(),
        data: data.into(),
    }
}

fn plain_var(name: &str, value: &str) -> VariableRow {
    VariableRow {
        name: name.into(),
        value: Some(value.into()),
        sealed: None,
        json: false,
        secret: false,
        description: Some("plain".into()),
        updated_at: None,
    }
}

fn secret_var(name: &str, s: Sealed) -> VariableRow {
    VariableRow {
        name: name.into(),
        value: None,
        sealed: Some(s),
        json: true,
        secret: true,
        description: None,
        updated_at: None,
    }
}

/// Variables are created, replaced, listed by name and deleted; a secret one
/// keeps only its sealed value, and a row claiming to be secret with a value
/// in clear (or sealed without being secret) is refused, not stored.
pub async fn variables_round_trip<S: Store + ?Sized>(store: &S) {
    store
        .put_variable(&plain_var("region", "eu"))
        .await
        .expect("put");
    store
        .put_variable(&secret_var("api_token", sealed("k1", "00ff")))
        .await
        .expect("put");
    let got = store
        .variable("region")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.value.as_deref(), Some("eu"));
    assert!(got.updated_at.is_some(), "the store stamps the change");
    let secret = store
        .variable("api_token")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(secret.value, None);
    assert_eq!(secret.sealed, Some(sealed("k1", "00ff")));
    assert!(secret.json && secret.secret);
    store
        .put_variable(&plain_var("region", "us"))
        .await
        .expect("replace");
    let names: Vec<_> = store
        .list_variables()
        .await
        .expect("list")
        .into_iter()
        .map(|v| (v.name, v.value))
        .collect();
    assert_eq!(
        names,
        [
            ("api_token".to_string(), None),
            ("region".into(), Some("us".into()))
        ]
    );
    let mut clear_secret = plain_var("leak", "hunter2");
    clear_secret.secret = true;
    assert!(
        store.put_variable(&clear_secret).await.is_err(),
        "a secret variable with a value in clear is refused"
    );
    let mut sealed_plain = plain_var("odd", "x");
    sealed_plain.sealed = Some(sealed("k1", "aa"));
    assert!(store.put_variable(&sealed_plain).await.is_err());
    assert!(store.variable("leak").await.expect("get").is_none());
    assert!(store.delete_variable("region").await.expect("delete"));
    assert!(!store.delete_variable("region").await.expect("delete"));
    assert!(store.variable("region").await.expect("get").is_none());
}

/// Connections keep their public fields in clear and their password and
/// extra only sealed; replaced whole, listed by name, deleted.
pub async fn connections_round_trip<S: Store + ?Sized>(store: &S) {
    let row = ConnectionRow {
        name: "warehouse".into(),
        conn_type: "postgres".into(),
        host: Some("db.example".into()),
        port: Some(6432),
        login: Some("etl".into()),
        schema: Some("dw".into()),
        sealed: Some(sealed("k1", "abcd")),
        description: Some("the warehouse".into()),
        updated_at: None,
    };
    store.put_connection(&row).await.expect("put");
    let got = store
        .connection("warehouse")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        ConnectionRow {
            updated_at: None,
            ..got
        },
        row
    );
    let bare = ConnectionRow {
        name: "api".into(),
        conn_type: "http".into(),
        host: None,
        port: None,
        login: None,
        schema: None,
        sealed: None,
        description: None,
        updated_at: None,
    };
    store.put_connection(&bare).await.expect("put");
    let changed = ConnectionRow {
        port: Some(5432),
        ..row.clone()
    };
    store.put_connection(&changed).await.expect("replace");
    let list = store.list_connections().await.expect("list");
    assert_eq!(
        list.iter()
            .map(|c| (c.name.as_str(), c.port))
            .collect::<Vec<_>>(),
        [("api", None), ("warehouse", Some(5432))]
    );
    assert!(store.delete_connection("api").await.expect("delete"));
    assert!(!store.delete_connection("api").await.expect("delete"));
}

/// Rotation's reads and writes: the values sealed under other keys, a reseal
/// that applies only to an unchanged value, and the count under each key.
pub async fn reseal_is_conditional<S: Store + ?Sized>(store: &S) {
    store
        .put_variable(&secret_var("a", sealed("old", "01")))
        .await
        .expect("put");
    store
        .put_variable(&secret_var("b", sealed("new", "02")))
        .await
        .expect("put");
    store
        .put_variable(&plain_var("c", "clear"))
        .await
        .expect("put");
    let conn = ConnectionRow {
        name: "a".into(),
        conn_type: "http".into(),
        host: None,
        port: None,
        login: None,
        schema: None,
        sealed: Some(sealed("old", "03")),
        description: None,
        updated_at: None,
    };
    store.put_connection(&conn).await.expect("put");
    let todo = store
        .sealed_under_other_keys("new", 10)
        .await
        .expect("list");
    assert_eq!(
        todo.iter()
            .map(|r| (r.kind, r.name.as_str(), r.sealed.data.as_str()))
            .collect::<Vec<_>>(),
        [
            (SecretKind::Variable, "a", "01"),
            (SecretKind::Connection, "a", "03")
        ]
    );
    assert_eq!(
        store
            .sealed_under_other_keys("new", 1)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        store.sealed_counts().await.expect("counts"),
        [("new".to_string(), 1), ("old".to_string(), 2)]
    );
    // Someone sets the variable meanwhile: the reseal of the old value loses.
    store
        .put_variable(&secret_var("a", sealed("new", "04")))
        .await
        .expect("put");
    assert!(
        !store
            .reseal(
                SecretKind::Variable,
                "a",
                &sealed("old", "01"),
                &sealed("new", "05")
            )
            .await
            .expect("reseal"),
        "a value changed since it was read is not overwritten"
    );
    assert_eq!(
        store
            .variable("a")
            .await
            .expect("get")
            .expect("exists")
            .sealed,
        Some(sealed("new", "04"))
    );
    assert!(
        store
            .reseal(
                SecretKind::Connection,
                "a",
                &sealed("old", "03"),
                &sealed("new", "06")
            )
            .await
            .expect("reseal")
    );
    assert!(
        store
            .sealed_under_other_keys("new", 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store.sealed_counts().await.expect("counts"),
        [("new".to_string(), 3)]
    );
}
