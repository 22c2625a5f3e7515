//! Variables and connections over the REST API of a real `gale standalone`
//! started with a key file:
//!
//! - viewers and operators list and read every variable and connection, with
//!   every secret as `***`, and get 403 on every route that creates, changes,
//!   deletes or reveals; no answer to them holds a secret value;
//! - an admin creates, changes (a password left out is kept), deletes and
//!   reveals, and each reveal is in the audit log (which holds no value);
//! - bodies are checked field by field, and no refusal quotes a secret.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::harness::{Home, Standalone};
use crate::web::{self, Response, Web};

const VAR_SECRET: &str = "var-secret-5f3a91";
const CONN_PASSWORD: &str = "conn-pass-77e2c4";
const EXTRA_SECRET: &str = "extra-key-0b9d13";
const FIELD_PASSWORD: &str = "field-pass-c41e08";

/// Every secret value the tests store.
const SECRETS: [&str; 4] = [VAR_SECRET, CONN_PASSWORD, EXTRA_SECRET, FIELD_PASSWORD];

/// A fresh key file in the home (owner-only), for `--secret-key-file`.
pub(crate) fn key_file(home: &Home) -> PathBuf {
    let path = home.path().join("test-secret.key");
    gale_secrets::write_key_file(&path).expect("writing a key file");
    path
}

/// `gale standalone` with a key file (`--secret-key-file`).
pub(crate) fn start_keyed_standalone(home: &Home) -> Standalone {
    std::fs::create_dir_all(home.dags()).expect("creating the DAG folder");
    let key = key_file(home).display().to_string();
    let dags = home.dags().display().to_string();
    home.start_with(&[
        "--dags-folder",
        &dags,
        "--no-examples",
        "--attempt-lease",
        "3s",
        "--secret-key-file",
        &key,
    ])
}

/// [`start_keyed_standalone`], and a client acting as `admin`.
fn start_keyed(home: &Home) -> (Standalone, Web) {
    let standalone = start_keyed_standalone(home);
    let web = web::connect(home, &standalone);
    (standalone, web)
}

/// Stores the variables and connections the tests read.
fn seed(admin: &Web) {
    let v = admin.post(
        "/api/v1/variables",
        &json!({"name": "deploy_key", "value": VAR_SECRET, "secret": true, "description": "CI"}),
    );
    assert_eq!(v.expect(201)["value"], "***");
    admin
        .post(
            "/api/v1/variables",
            &json!({"name": "region", "value": "eu"}),
        )
        .expect(201);
    let uri = format!(
        "postgres://etl:{CONN_PASSWORD}@db.example:5432/dw?sslmode=require&api_key={EXTRA_SECRET}"
    );
    let c = admin
        .post("/api/v1/connections", &json!({"name": "wh", "uri": uri}))
        .expect(201);
    assert_eq!(c["password"], "***", "{c}");
    assert_eq!(c["extra"]["api_key"], "***", "{c}");
    assert!(c.get("uri").is_none(), "no URI unless revealed: {c}");
    admin
        .post(
            "/api/v1/connections",
            &json!({"name": "api", "conn_type": "http", "host": "api.example", "port": "443",
                    "login": "bot", "password": FIELD_PASSWORD, "extra": {"region": "eu"}}),
        )
        .expect(201);
}

/// Asserts no secret value is in the answer.
fn no_secret(what: &str, resp: &Response) {
    let text = resp.text();
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows {s}: {text}");
    }
}

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

#[test]
fn viewers_and_operators_read_masked_and_change_nothing() {
    let home = Home::new();
    let (_gale, admin) = start_keyed(&home);
    seed(&admin);
    let viewer = admin.with_token(&web::user_token(&home, "vera", "viewer"));
    let operator = admin.with_token(&web::user_token(&home, "otto", "operator"));

    for (who, web) in [("viewer", &viewer), ("operator", &operator)] {
        // Reading: every route, secrets as ***.
        let resp = web.get("/api/v1/variables");
        no_secret(who, &resp);
        let vars = resp.expect(200);
        assert_eq!(by_name(&vars, "deploy_key")["value"], "***", "{vars:#}");
        assert_eq!(by_name(&vars, "deploy_key")["secret"], true, "{vars:#}");
        assert_eq!(by_name(&vars, "region")["value"], "eu", "{vars:#}");
        let resp = web.get("/api/v1/variables/deploy_key");
        no_secret(who, &resp);
        let v = resp.expect(200);
        assert_eq!(v["value"], "***");
        assert_eq!(v["description"], "CI");
        assert_eq!(
            web.get("/api/v1/variables/region").expect(200)["value"],
            "eu"
        );

        let resp = web.get("/api/v1/connections");
        no_secret(who, &resp);
        let conns = resp.expect(200);
        let wh = by_name(&conns, "wh");
        assert_eq!(wh["password"], "***", "{wh:#}");
        assert_eq!(wh["extra"]["api_key"], "***", "{wh:#}");
        assert_eq!(
            wh["extra"]["sslmode"], "require",
            "non-secret extra: {wh:#}"
        );
        assert_eq!(wh["host"], "db.example");
        assert_eq!(wh["login"], "etl");
        assert_eq!(wh["port"], 5432);
        assert_eq!(wh["schema"], "dw");
        for name in ["wh", "api"] {
            let resp = web.get(&format!("/api/v1/connections/{name}"));
            no_secret(who, &resp);
            let c = resp.expect(200);
            assert_eq!(c["password"], "***", "{c:#}");
            assert!(c.get("uri").is_none(), "{c:#}");
        }
        assert_eq!(
            web.get("/api/v1/connections/api").expect(200)["extra"]["region"],
            "eu"
        );

        // Revealing, creating, changing, deleting: every route is 403.
        let refused: Vec<(&str, String, Option<Value>)> = vec![
            (
                "GET",
                "/api/v1/variables/deploy_key?reveal=true".into(),
                None,
            ),
            ("GET", "/api/v1/variables/region?reveal=true".into(), None),
            ("GET", "/api/v1/variables/nosuch?reveal=true".into(), None),
            (
                "POST",
                "/api/v1/variables".into(),
                Some(json!({"name": format!("{who}_var"), "value": "x"})),
            ),
            (
                "PUT",
                "/api/v1/variables/deploy_key".into(),
                Some(json!({"value": "replaced"})),
            ),
            (
                "PUT",
                format!("/api/v1/variables/{who}_new"),
                Some(json!({"value": "x"})),
            ),
            ("DELETE", "/api/v1/variables/deploy_key".into(), None),
            ("DELETE", "/api/v1/variables/region".into(), None),
            ("GET", "/api/v1/connections/wh?reveal=true".into(), None),
            ("GET", "/api/v1/connections/api?reveal=true".into(), None),
            (
                "POST",
                "/api/v1/connections".into(),
                Some(json!({"name": format!("{who}_conn"), "uri": "http://h"})),
            ),
            (
                "PUT",
                "/api/v1/connections/wh".into(),
                Some(json!({"conn_type": "http", "host": "evil.example"})),
            ),
            ("DELETE", "/api/v1/connections/wh".into(), None),
            ("DELETE", "/api/v1/connections/api".into(), None),
        ];
        for (method, path, body) in &refused {
            let resp = match body {
                Some(b) => web.send_json(method, path, b),
                None => web.send(method, path, &[], None),
            };
            no_secret(&format!("{who}: {method} {path}"), &resp);
            let detail = resp.problem(403);
            assert!(
                detail.contains(who) && detail.contains("admin"),
                "{who}: {method} {path}: {detail}"
            );
        }
    }

    // Nothing changed, and no reveal by them was recorded.
    let v = admin
        .get("/api/v1/variables/deploy_key?reveal=true")
        .expect(200);
    assert_eq!(v["value"], VAR_SECRET);
    assert_eq!(
        admin
            .get("/api/v1/variables")
            .expect(200)
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let c = admin.get("/api/v1/connections/wh?reveal=true").expect(200);
    assert_eq!(c["password"], CONN_PASSWORD, "{c:#}");
    assert_eq!(c["extra"]["api_key"], EXTRA_SECRET, "{c:#}");
    assert_eq!(c["host"], "db.example", "{c:#}");
    let uri = c["uri"].as_str().expect("a revealed URI");
    assert!(
        uri.starts_with("postgres://etl:") && uri.contains(CONN_PASSWORD),
        "{uri}"
    );
    assert_eq!(
        admin
            .get("/api/v1/connections")
            .expect(200)
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // The admin's reveals are in the audit log, as they did them; the log
    // holds no value.
    let resp = admin.get("/api/v1/audit?limit=1000");
    no_secret("the audit log", &resp);
    let audit = resp.expect(200);
    let entries = audit["entries"].as_array().expect("entries");
    for (action, target) in [
        ("variable.reveal", "variable/deploy_key"),
        ("connection.reveal", "connection/wh"),
    ] {
        let found: Vec<&Value> = entries
            .iter()
            .filter(|e| e["action"] == action && e["target"] == target && e["outcome"] == "success")
            .collect();
        assert_eq!(found.len(), 1, "{action} {target}: {audit:#}");
        assert_eq!(found[0]["actor"], "admin");
        // The refused ones are there too, as failures of who tried.
        assert!(
            entries.iter().any(|e| e["action"] == action
                && e["target"] == target
                && e["outcome"] == "failure"
                && e["actor"] != "admin"),
            "a refused {action} is recorded: {audit:#}"
        );
    }
    for action in ["variable.set", "connection.set"] {
        assert!(
            entries
                .iter()
                .filter(|e| e["action"] == action)
                .all(|e| e["actor"] == "admin"),
            "only the admin changed anything: {audit:#}"
        );
    }
    let reveals = admin
        .get("/api/v1/audit?action=variable.reveal")
        .expect(200);
    let succeeded = reveals["entries"]
        .as_array()
        .map(|l| l.iter().filter(|e| e["outcome"] == "success").count());
    assert_eq!(succeeded, Some(1), "{reveals:#}");
}

#[test]
fn admins_change_and_bodies_are_checked_without_echoing_secrets() {
    let home = Home::new();
    let (_gale, admin) = start_keyed(&home);
    seed(&admin);

    // A password and extra left out are kept; a `***` sent back too.
    let c = admin
        .send_json(
            "PUT",
            "/api/v1/connections/wh",
            &json!({"conn_type": "postgres", "host": "db2.example", "port": 5433, "login": "etl", "schema": "dw"}),
        )
        .expect(200);
    assert_eq!(c["password"], "***", "{c:#}");
    let shown = admin.get("/api/v1/connections/api").expect(200);
    let mut back = shown.clone();
    let back = back.as_object_mut().expect("an object");
    for k in ["name", "updated_at"] {
        back.remove(k);
    }
    back.insert("host".into(), json!("api2.example"));
    admin
        .send_json(
            "PUT",
            "/api/v1/connections/api",
            &Value::Object(back.clone()),
        )
        .expect(200);
    let wh = admin.get("/api/v1/connections/wh?reveal=true").expect(200);
    assert_eq!(wh["password"], CONN_PASSWORD, "{wh:#}");
    assert_eq!(wh["extra"]["api_key"], EXTRA_SECRET, "{wh:#}");
    assert_eq!(wh["host"], "db2.example");
    assert_eq!(wh["port"], 5433);
    let api = admin.get("/api/v1/connections/api?reveal=true").expect(200);
    assert_eq!(api["password"], FIELD_PASSWORD, "*** kept it: {api:#}");
    assert_eq!(api["host"], "api2.example");

    // A secret variable's value left out is kept, and it cannot be made
    // readable without giving it.
    let v = admin
        .send_json(
            "PUT",
            "/api/v1/variables/deploy_key",
            &json!({"description": "CD"}),
        )
        .expect(200);
    assert_eq!(
        (v["value"].as_str(), v["description"].as_str()),
        (Some("***"), Some("CD"))
    );
    let detail = admin
        .send_json(
            "PUT",
            "/api/v1/variables/deploy_key",
            &json!({"secret": false}),
        )
        .problem(400);
    assert!(detail.contains("`value`"), "{detail}");
    let v = admin
        .get("/api/v1/variables/deploy_key?reveal=true")
        .expect(200);
    assert_eq!(
        (v["value"].as_str(), v["secret"].as_bool()),
        (Some(VAR_SECRET), Some(true))
    );

    // Created by PUT, 409 on a second POST, deleted, then gone.
    let made = admin.send_json(
        "PUT",
        "/api/v1/variables/batch.size",
        &json!({"value": "10"}),
    );
    assert_eq!(made.expect(201)["value"], "10");
    let detail = admin
        .post(
            "/api/v1/variables",
            &json!({"name": "batch.size", "value": "11"}),
        )
        .problem(409);
    assert!(detail.contains("batch.size"), "{detail}");
    let resp = admin.send("DELETE", "/api/v1/variables/batch.size", &[], None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    admin.get("/api/v1/variables/batch.size").problem(404);
    admin
        .send("DELETE", "/api/v1/variables/batch.size", &[], None)
        .problem(404);
    let resp = admin.send("DELETE", "/api/v1/connections/api", &[], None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    admin.get("/api/v1/connections/api").problem(404);
    admin
        .get("/api/v1/connections/api?reveal=true")
        .problem(404);

    // Refusals name the field and quote no secret.
    let bad: Vec<(&str, &str, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/variables",
            json!({"value": VAR_SECRET}),
            "`name`",
        ),
        (
            "POST",
            "/api/v1/variables",
            json!({"name": "a b", "value": VAR_SECRET}),
            "`name`",
        ),
        (
            "POST",
            "/api/v1/variables",
            json!({"name": "n", "value": 5}),
            "`value`",
        ),
        (
            "POST",
            "/api/v1/variables",
            json!({"name": "n", "value": VAR_SECRET, "secret": "yes"}),
            "`secret`",
        ),
        (
            "POST",
            "/api/v1/variables",
            json!({"name": "n", "value": VAR_SECRET, "colour": 1}),
            "`colour`",
        ),
        (
            "POST",
            "/api/v1/variables",
            json!({"name": "n", "value": VAR_SECRET, "json": true}),
            "not JSON",
        ),
        (
            "PUT",
            "/api/v1/variables/fresh",
            json!({"description": "d"}),
            "`value`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "c", "uri": format!("postgres://u:{CONN_PASSWORD}%zz@h/db")}),
            "`uri`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "c", "uri": format!("postgres://u:{CONN_PASSWORD}@h:99999/db")}),
            "`uri`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "c", "uri": "http://h", "password": CONN_PASSWORD}),
            "`password`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "c", "host": "h"}),
            "`conn_type`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "c", "conn_type": "p", "port": CONN_PASSWORD}),
            "`port`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "c", "conn_type": "p", "password": 12345678}),
            "`password`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "c", "conn_type": "p", "extra": format!("{{\"k\": {CONN_PASSWORD}")}),
            "`extra`",
        ),
        (
            "PUT",
            "/api/v1/connections/wh",
            json!({"conn_type": "p", "pasword": CONN_PASSWORD}),
            "`pasword`",
        ),
        (
            "POST",
            "/api/v1/connections",
            json!({"name": "wh", "uri": "http://h"}),
            "exists",
        ),
    ];
    for (method, path, body, names) in &bad {
        let resp = admin.send_json(method, path, body);
        no_secret(&format!("{method} {path}"), &resp);
        assert!(!resp.text().contains("12345678"), "{}", resp.text());
        let status = if *names == "exists" { 409 } else { 400 };
        let detail = resp.problem(status);
        assert!(detail.contains(names), "{method} {path} {body}: {detail}");
    }
    // Nothing refused was stored.
    let names: Vec<Value> = admin
        .get("/api/v1/variables")
        .expect(200)
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(names, [json!("deploy_key"), json!("region")]);
}
