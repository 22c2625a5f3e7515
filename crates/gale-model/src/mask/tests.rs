//! The masker: what it finds secret in a DAG and a run, and what it leaves.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

const DAG: &str = r#"
id: m
params:
  token: {secret: true, default: "tok-default-123"}
  pin: {secret: true, type: string}
  region: eu
  db_password: "pw-default-456"
tasks:
  call:
    http:
      url: "http://h/x?k={{ params.token }}"
      headers:
        Authorization: "Bearer {{ params.token }}"
        Accept: application/json
  sh:
    run: echo hi
    env:
      API_TOKEN: "env-secret-789"
      PLAIN: "visible-value"
"#;

fn dag() -> Dag {
    crate::dag::parse("m.yaml", "m", DAG).expect("parses")
}

fn ctx(conf: Map<String, Value>) -> Context {
    let d = dag();
    let mut params = d.params.clone();
    params.extend(conf.clone());
    Context {
        dag_id: "m".into(),
        task_id: "call".into(),
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
        params,
        conf,
        tasks: BTreeMap::new(),
        lookup: None,
        prev: Default::default(),
    }
}

#[test]
fn secret_params_env_and_conf_are_masked() {
    let d = dag();
    let conf = json!({"pin": "pin-given-000", "api_key": "conf-key-111", "region": "us"});
    let conf = conf.as_object().unwrap().clone();
    let m = Masker::of_run(&d, &conf);
    let text = "tok-default-123 pw-default-456 env-secret-789 pin-given-000 conf-key-111 us visible-value eu";
    assert_eq!(m.mask(text), "*** *** *** *** *** us visible-value eu");
}

#[test]
fn a_conf_value_overrides_the_default_and_both_are_masked() {
    let d = dag();
    let conf = json!({"token": "tok-given-222"})
        .as_object()
        .unwrap()
        .clone();
    let m = Masker::of_run(&d, &conf);
    assert_eq!(m.mask("tok-given-222"), "***");
}

#[test]
fn rendered_secret_headers_and_their_encoded_forms_are_masked() {
    let d = dag();
    let conf = json!({"token": "a b'c/d=e"}).as_object().unwrap().clone();
    let task = d.task("call").unwrap();
    let m = Masker::of_attempt(&d, task, &ctx(conf));
    assert_eq!(
        m.mask("Authorization: Bearer a b'c/d=e"),
        "Authorization: ***"
    );
    assert_eq!(
        m.mask("token=a b'c/d=e"),
        "token=***",
        "the credential alone too"
    );
    assert_eq!(
        m.mask("GET http://h/x?k=a%20b%27c%2Fd%3De"),
        "GET http://h/x?k=***"
    );
    assert_eq!(m.mask("echo 'a b'\\''c/d=e'"), "echo ***");
}

#[test]
fn short_values_are_left_alone() {
    let conf = json!({"password": "abc", "token": "abcd"})
        .as_object()
        .unwrap()
        .clone();
    let m = Masker::of_conf(&conf);
    assert_eq!(m.mask("abc abcd"), "abc ***");
}

#[test]
fn shown_params_hide_declared_and_named_secrets() {
    let d = dag();
    let shown = mask_params(&d, &d.params);
    assert_eq!(shown["token"], json!("***"));
    assert_eq!(shown["db_password"], json!("***"));
    assert_eq!(shown["region"], json!("eu"));
}
