//! Edits keep what is not given again, bodies are checked field by field,
//! and no refusal quotes a value.

use serde_json::json;

use super::*;

fn body(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

fn secret_var() -> Variable {
    Variable::new(
        "token",
        "s3cr3t-value".into(),
        false,
        true,
        Some("d".into()),
    )
    .expect("valid")
}

#[test]
fn a_variable_keeps_its_secret_value_unless_given() {
    let kept = VariableEdit::default()
        .apply("token", Some(secret_var()))
        .expect("applies");
    assert_eq!(kept.value, "s3cr3t-value");
    assert!(kept.secret);
    assert_eq!(kept.description.as_deref(), Some("d"));
    let masked = VariableEdit {
        value: Some(MASK.into()),
        description: Some(" ".into()),
        ..VariableEdit::default()
    }
    .apply("token", Some(secret_var()))
    .expect("applies");
    assert_eq!(
        masked.value, "s3cr3t-value",
        "*** sent back keeps the value"
    );
    assert_eq!(masked.description, None, "an empty description clears it");
    let new = VariableEdit {
        value: Some("other".into()),
        ..VariableEdit::default()
    }
    .apply("token", Some(secret_var()))
    .expect("applies");
    assert_eq!(new.value, "other");
}

#[test]
fn a_secret_variable_is_not_made_readable_unseen() {
    let mut v = secret_var();
    v.secret = true;
    let e = VariableEdit {
        secret: Some(false),
        ..VariableEdit::default()
    }
    .apply("plain_name", Some(v.clone()))
    .unwrap_err();
    assert!(e.contains("`value`") && !e.contains("s3cr3t"), "{e}");
    let given = VariableEdit {
        value: Some("now public".into()),
        secret: Some(false),
        ..VariableEdit::default()
    }
    .apply("plain_name", Some(v))
    .expect("applies");
    assert!(!given.secret);
    let e = VariableEdit::default().apply("new_one", None).unwrap_err();
    assert!(e.contains("`value` is missing"), "{e}");
}

#[test]
fn variable_bodies_name_the_wrong_field() {
    for (b, field) in [
        (json!({"value": "v"}), "`name`"),
        (json!({"name": 5, "value": "v"}), "`name`"),
        (json!({"name": "-bad", "value": "v"}), "`name`"),
        (json!({"name": "a", "value": 17}), "`value`"),
        (
            json!({"name": "a", "value": "v", "secret": "yes"}),
            "`secret`",
        ),
        (json!({"name": "a", "value": "v", "colour": 1}), "`colour`"),
    ] {
        let e = VariableEdit::from_json(&body(b.clone()), true).unwrap_err();
        assert!(e.contains(field), "{b}: {e}");
    }
    let (name, edit) = VariableEdit::from_json(
        &body(json!({"name": "a", "value": "v", "json": false})),
        true,
    )
    .expect("parses");
    assert_eq!(name.as_deref(), Some("a"));
    assert_eq!(edit.value.as_deref(), Some("v"));
    let e = VariableEdit::from_json(&body(json!({"name": "a"})), false).unwrap_err();
    assert!(e.contains("`name`"), "no name in a PUT body: {e}");
}

fn conn() -> Connection {
    Connection::from_uri("postgres://etl:pw-0123456@db:5432/dw?sslmode=require&api_key=k-98765")
        .expect("parses")
}

#[test]
fn a_connection_keeps_its_password_and_masked_extras() {
    let shown = conn().masked();
    let back = ConnectionEdit {
        conn_type: Some(shown.conn_type.clone()),
        host: Some("db2".into()),
        port: shown.port,
        login: shown.login.clone(),
        password: None,
        schema: shown.schema.clone(),
        extra: Some(shown.extra.clone()),
        ..ConnectionEdit::default()
    };
    assert!(back.needs_current());
    let c = back.apply("wh", Some(conn())).expect("applies");
    assert_eq!(c.host.as_deref(), Some("db2"));
    assert_eq!(c.password.as_deref(), Some("pw-0123456"));
    assert_eq!(c.extra["api_key"], "k-98765");
    assert_eq!(c.extra["sslmode"], "require");
    let masked = ConnectionEdit {
        conn_type: Some("postgres".into()),
        password: Some(MASK.into()),
        ..ConnectionEdit::default()
    }
    .apply("wh", Some(conn()))
    .expect("applies");
    assert_eq!(masked.password.as_deref(), Some("pw-0123456"));
    assert_eq!(masked.extra, conn().extra, "extra left out is kept");
    let cleared = ConnectionEdit {
        conn_type: Some("postgres".into()),
        password: Some(String::new()),
        extra: Some(Map::new()),
        ..ConnectionEdit::default()
    };
    assert!(!cleared.needs_current());
    let cleared = cleared.apply("wh", Some(conn())).expect("applies");
    assert_eq!(cleared.password, None);
    assert!(cleared.extra.is_empty());
}

#[test]
fn a_connection_uri_replaces_it_whole() {
    let c = ConnectionEdit {
        uri: Some("http://u:***@h:80".into()),
        description: Some("API".into()),
        ..ConnectionEdit::default()
    }
    .apply("api", Some(conn()))
    .expect("applies");
    assert_eq!(c.conn_type, "http");
    assert_eq!(c.password.as_deref(), Some("pw-0123456"), "*** keeps it");
    assert_eq!(c.description.as_deref(), Some("API"));
    assert!(c.extra.is_empty());
    let e = ConnectionEdit {
        uri: Some("postgres://u:leaky-pass%zz@h".into()),
        ..ConnectionEdit::default()
    }
    .apply("x", None)
    .unwrap_err();
    assert!(e.contains("`uri`") && !e.contains("leaky"), "{e}");
}

#[test]
fn connection_bodies_name_the_wrong_field_and_quote_nothing() {
    for (b, field) in [
        (json!({"name": "c", "uri": "x://h", "host": "h"}), "`host`"),
        (
            json!({"name": "c", "conn_type": "p", "port": 70000}),
            "`port`",
        ),
        (
            json!({"name": "c", "conn_type": "p", "port": "pw-in-port"}),
            "`port`",
        ),
        (
            json!({"name": "c", "conn_type": "p", "password": 123456789}),
            "`password`",
        ),
        (
            json!({"name": "c", "conn_type": "p", "extra": "{not json pw-x"}),
            "`extra`",
        ),
        (
            json!({"name": "c", "conn_type": "p", "extra": [1]}),
            "`extra`",
        ),
        (json!({"name": "c", "uri": 5}), "`uri`"),
        (
            json!({"name": "c", "conn_type": "p", "pasword": "x"}),
            "`pasword`",
        ),
    ] {
        let e = ConnectionEdit::from_json(&body(b.clone()), true).unwrap_err();
        assert!(e.contains(field), "{b}: {e}");
        assert!(!e.contains("pw-") && !e.contains("123456789"), "{b}: {e}");
    }
    let e = ConnectionEdit::from_json(&body(json!({"name": "c"})), true)
        .and_then(|(_, edit)| edit.apply("c", None))
        .unwrap_err();
    assert!(e.contains("`conn_type`"), "{e}");
    let (_, edit) = ConnectionEdit::from_json(
        &body(json!({"conn_type": "p", "port": "5432", "extra": "{\"a\": 1}"})),
        false,
    )
    .expect("parses");
    let c = edit.apply("c", None).expect("applies");
    assert_eq!(c.port, Some(5432));
    assert_eq!(c.extra["a"], 1);
}
