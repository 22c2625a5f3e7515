//! Tests of connection URIs, exports, names and what a lookup masks.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::template::{self, Escape, references};

#[test]
fn parses_an_airflow_uri_with_every_part_encoded() {
    let c = Connection::from_uri(
        "postgresql://us%40er:p%40ss%3Aw%2Fo%20rd@db.example:6432/ware%2Fhouse?sslmode=require&application_name=gale",
    )
    .unwrap();
    assert_eq!(c.conn_type, "postgres");
    assert_eq!(c.login.as_deref(), Some("us@er"));
    assert_eq!(c.password.as_deref(), Some("p@ss:w/o rd"));
    assert_eq!(c.host.as_deref(), Some("db.example"));
    assert_eq!(c.port, Some(6432));
    assert_eq!(c.schema.as_deref(), Some("ware/house"));
    assert_eq!(c.extra["sslmode"], json!("require"));
    // And back: the URI reparses to the same connection.
    assert_eq!(Connection::from_uri(&c.uri()).unwrap(), c);
}

#[test]
fn json_extra_and_ipv6_and_bare_types_round_trip() {
    let c = Connection {
        conn_type: "google_cloud_platform".into(),
        host: Some("::1".into()),
        port: Some(8443),
        extra: json!({"retries": 3, "nested": {"a": true}})
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    };
    let uri = c.uri();
    assert!(
        uri.starts_with("google-cloud-platform://[::1]:8443?__extra__="),
        "{uri}"
    );
    let back = Connection::from_uri(&uri).unwrap();
    assert_eq!(back, c);
    let bare = Connection::from_uri("aws://").unwrap();
    assert_eq!(bare.conn_type, "aws");
    assert_eq!(bare.host, None);
}

#[test]
fn a_bad_uri_is_refused_without_echoing_it() {
    for bad in [
        "no-scheme",
        "postgres://u:secretpw@h:99999/db",
        "x://[::1/db",
        "p://h?__extra__=[1]",
        "postgres://u:secretpw%zz@h/db",
        "postgres://u:secretpw%ff@h/db",
    ] {
        let e = Connection::from_uri(bad).unwrap_err();
        assert!(!e.contains("secretpw"), "{e}");
        assert!(e.contains("not a connection URI"), "{e}");
    }
}

#[test]
fn imports_airflow_export_entries() {
    // What `airflow connections export --format json` writes: extra as JSON text.
    let entry = json!({
        "conn_type": "postgres", "description": "the warehouse", "host": "wh", "login": "etl",
        "password": "s3cret!", "port": 5432, "schema": "dw", "extra": "{\"sslmode\": \"disable\"}"
    });
    let c = Connection::from_export("warehouse", &entry).unwrap();
    assert_eq!(c.port, Some(5432));
    assert_eq!(c.description.as_deref(), Some("the warehouse"));
    assert_eq!(c.extra["sslmode"], json!("disable"));
    assert_eq!(
        Connection::from_export("warehouse", &c.to_export()).unwrap(),
        c
    );
    // A URI as the entry, and a YAML-style port as text.
    let u = Connection::from_export("u", &json!("http://h:80")).unwrap();
    assert_eq!(u.port, Some(80));
    let p = Connection::from_export("p", &json!({"conn_type": "http", "port": "8080"})).unwrap();
    assert_eq!(p.port, Some(8080));
    let e = Connection::from_export("q", &json!({"host": "h"})).unwrap_err();
    assert!(e.contains("conn_type"), "{e}");
    let e = Connection::from_export("bad name!", &json!("http://h")).unwrap_err();
    assert!(e.contains("invalid connection name"), "{e}");
}

#[test]
fn variables_import_plain_and_described_entries() {
    let v = variable_from_export("region", &json!("eu")).unwrap();
    assert_eq!((v.value.as_str(), v.json, v.secret), ("eu", false, false));
    let j = variable_from_export("cfg", &json!({"a": [1, 2]})).unwrap();
    assert!(j.json);
    assert_eq!(
        serde_json::from_str::<Value>(&j.value).unwrap(),
        json!({"a": [1, 2]})
    );
    let d = variable_from_export(
        "key",
        &json!({"value": "v", "description": "d", "secret": true}),
    )
    .unwrap();
    assert!(d.secret);
    assert_eq!(
        variable_from_export("key", &variable_to_export(&d)).unwrap(),
        d
    );
    // Every kind of value reads back as it was, a JSON string included.
    for (value, json) in [
        ("text", false),
        ("\"text\"", true),
        ("3", true),
        ("[1]", true),
    ] {
        let v = Variable::new("v", value.into(), json, false, None).unwrap();
        assert_eq!(
            variable_from_export("v", &variable_to_export(&v)).unwrap(),
            v,
            "{value}"
        );
    }
    // A secret-looking name is secret whatever it says.
    assert!(
        variable_from_export("db_password", &json!("x"))
            .unwrap()
            .secret
    );
    assert!(
        Variable::new("j", "{not json".into(), true, false, None)
            .unwrap_err()
            .contains("not JSON")
    );
}

#[test]
fn env_from_gives_libpq_names() {
    let c = Connection::from_uri("postgres://etl:pw@wh:5433/dw").unwrap();
    let env = c.env("PG");
    assert_eq!(
        env,
        vec![
            ("PGHOST".to_string(), "wh".to_string()),
            ("PGPORT".into(), "5433".into()),
            ("PGUSER".into(), "etl".into()),
            ("PGPASSWORD".into(), "pw".into()),
            ("PGDATABASE".into(), "dw".into()),
        ]
    );
}

#[test]
fn a_lookup_lists_every_secret_it_handed_out() {
    let mut lookup = Lookup::default();
    lookup.variables.insert(
        "plain".into(),
        Variable::new("plain", "visible".into(), false, false, None).unwrap(),
    );
    lookup.variables.insert(
        "tok".into(),
        Variable::new("tok", "hidden-1".into(), false, true, None).unwrap(),
    );
    let mut c = Connection::from_uri("http://u:hidden-2@h?api_key=hidden-3&region=eu").unwrap();
    c.extra
        .insert("nested".into(), json!({"client_secret": "hidden-4"}));
    lookup.connections.insert("c".into(), c);
    let mut secrets = lookup.secrets();
    secrets.sort();
    assert_eq!(secrets, ["hidden-1", "hidden-2", "hidden-3", "hidden-4"]);
    let shown = lookup.connections["c"].masked();
    assert_eq!(shown.password.as_deref(), Some("***"));
    assert_eq!(shown.extra["api_key"], json!("***"));
    assert_eq!(shown.extra["region"], json!("eu"));
}

fn ctx_with(lookup: Lookup) -> template::Context {
    template::Context {
        dag_id: "d".into(),
        task_id: "t".into(),
        run_id: "1".into(),
        run_number: 1,
        run_type: "manual".into(),
        try_number: 1,
        ds: String::new(),
        ds_nodash: String::new(),
        ts: String::new(),
        logical_date: String::new(),
        data_interval_start: String::new(),
        data_interval_end: String::new(),
        params: Map::new(),
        conf: Map::new(),
        tasks: Default::default(),
        lookup: Some(Arc::new(lookup)),
        prev: Default::default(),
    }
}

#[test]
fn templates_read_variables_and_connections_quoted() {
    let mut lookup = Lookup::default();
    lookup.variables.insert(
        "greeting".into(),
        Variable::new("greeting", "it's $(id)".into(), false, false, None).unwrap(),
    );
    lookup.variables.insert(
        "cfg".into(),
        Variable::new("cfg", r#"{"bucket": "b 1"}"#.into(), true, false, None).unwrap(),
    );
    lookup.connections.insert(
        "wh".into(),
        Connection::from_uri("postgres://etl:p w@wh:5432/dw?sslmode=require").unwrap(),
    );
    let ctx = ctx_with(lookup);
    let out = template::render(
        "echo {{ var.greeting }} {{ var.value.greeting }} {{ var.json.cfg.bucket }} {{ conn.wh.host }}:{{ conn.wh.port }} {{ conn.wh.password }} {{ conn.wh.extra.sslmode }} {{ var.value.get('nope', 'dflt') }}",
        &ctx,
        Escape::Shell,
    )
    .unwrap();
    assert_eq!(
        out,
        r#"echo 'it'\''s $(id)' 'it'\''s $(id)' 'b 1' wh:5432 'p w' require dflt"#
    );
    let uri = template::render("{{ conn.wh.uri }}", &ctx, Escape::None).unwrap();
    assert_eq!(uri, "postgres://etl:p%20w@wh:5432/dw?sslmode=require");
    let e = template::render("echo {{ var.missing_one }}", &ctx, Escape::Shell).unwrap_err();
    assert!(e.contains("variable \"missing_one\" does not exist"), "{e}");
    let e = template::render("echo {{ conn.nowhere.host }}", &ctx, Escape::Shell).unwrap_err();
    assert!(e.contains("connection \"nowhere\" does not exist"), "{e}");
    let e = template::render("echo {{ var.json.greeting.x }}", &ctx, Escape::Shell).unwrap_err();
    assert!(e.contains("is not JSON"), "{e}");
}

#[test]
fn references_are_found_in_tags_only() {
    let refs = references(
        "var.not_this {{ var.a }} {{ var.value.b | upper }} {{ var.json.c.x }} {% if conn.d.host %}{{ conn['e'].port }}{% endif %} {{ var.value.get('f', 'x') }} {{ var['g'] }} {{ myvar.h }} {{ params.var }}",
    );
    assert_eq!(
        refs.variables
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["a", "b", "c", "f", "g"]
    );
    assert_eq!(
        refs.connections
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["d", "e"]
    );
    assert!(references("echo {{ ds }} {plain}").is_empty());
}

#[test]
fn names_are_checked() {
    assert!(check_name("variable", "a.b-c_1").is_ok());
    for bad in ["", "-x", "a b", "a/b", &"x".repeat(251)] {
        assert!(check_name("variable", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_part_of_a_secret_json_variable_is_masked() {
    let mut lookup = Lookup::default();
    let creds =
        r#"{"user": "bob", "password": "JsonInnerPw9876", "keys": ["k-11112222"], "pin": 98765}"#;
    lookup.variables.insert(
        "creds".into(),
        Variable::new("creds", creds.into(), true, true, None).unwrap(),
    );
    let secrets = lookup.secrets();
    for part in ["JsonInnerPw9876", "k-11112222", "98765", "bob"] {
        assert!(secrets.iter().any(|s| s == part), "{part} in {secrets:?}");
    }
}

#[test]
fn every_value_under_a_secret_extra_key_is_masked_json_text_too() {
    let mut c = Connection::from_uri("google-cloud-platform://").unwrap();
    c.extra.insert("tokens".into(), json!(["ListTok-55667788"]));
    c.extra.insert(
        "keyfile_dict".into(),
        json!(r#"{"private_key": "-----BEGIN PRIVATE KEY-----abc", "client_email": "x@y"}"#),
    );
    c.extra
        .insert("settings".into(), json!(r#"{"passphrase": "phrase-0099"}"#));
    c.extra.insert("project".into(), json!("my-project"));
    let secrets = c.secrets();
    for part in [
        "ListTok-55667788",
        "-----BEGIN PRIVATE KEY-----abc",
        "x@y",
        "phrase-0099",
    ] {
        assert!(secrets.iter().any(|s| s == part), "{part} in {secrets:?}");
    }
    assert!(!secrets.iter().any(|s| s == "my-project"));
    let shown = serde_json::to_string(&c.masked()).unwrap();
    for part in ["ListTok", "PRIVATE KEY", "phrase-0099"] {
        assert!(!shown.contains(part), "{part} in {shown}");
    }
    assert!(shown.contains("my-project"), "{shown}");
}

#[test]
fn plus_is_a_space_only_in_the_query_and_ipv6_hosts_lose_their_brackets() {
    let c = Connection::from_uri("postgres://u:ab+cd@[::1]:5432/d+b?opt=a+b").unwrap();
    assert_eq!(c.password.as_deref(), Some("ab+cd"));
    assert_eq!(c.schema.as_deref(), Some("d+b"));
    assert_eq!(c.extra["opt"], json!("a b"));
    assert_eq!(c.host.as_deref(), Some("::1"));
    assert_eq!(c.env("PG")[0], ("PGHOST".to_string(), "::1".to_string()));
    assert!(c.uri().contains("@[::1]:5432/"), "{}", c.uri());
    assert_eq!(Connection::from_uri(&c.uri()).unwrap(), c);
    let web = Connection {
        conn_type: "slack".into(),
        host: Some("https://hooks.example/x".into()),
        ..Default::default()
    };
    assert_eq!(
        Connection::from_uri(&web.uri()).unwrap(),
        web,
        "{}",
        web.uri()
    );
}

#[test]
fn an_airflow_value_with_a_value_key_stays_whole_and_types_are_checked() {
    let v = variable_from_export("threshold", &json!({"value": 5, "unit": "s"})).unwrap();
    assert!(v.json);
    assert_eq!(
        serde_json::from_str::<Value>(&v.value).unwrap(),
        json!({"value": 5, "unit": "s"})
    );
    let bad = Connection {
        conn_type: "my type".into(),
        ..Default::default()
    };
    assert!(bad.check("c").unwrap_err().contains("may hold only"));
}
