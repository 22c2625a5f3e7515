//! Declared params and the conf check: each case one DAG `params` block and
//! one conf.

use serde_json::{Map, Value, json};

use super::*;

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn check(params: Value, undeclared: bool, conf: Value) -> Result<(), Vec<String>> {
    let d = declare(map(params));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    check_conf(
        Accepts {
            defaults: &d.defaults,
            specs: &d.specs,
            undeclared,
        },
        &map(conf),
    )
}

#[test]
fn plain_defaults_and_specs_are_told_apart() {
    let d = declare(map(json!({
        "region": "eu",
        "limits": {"cpu": 2},
        "env": {"type": "string", "enum": ["dev", "prod"], "default": "dev"},
        "token": {"secret": true, "required": true},
    })));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.defaults.get("region"), Some(&json!("eu")));
    assert_eq!(
        d.defaults.get("limits"),
        Some(&json!({"cpu": 2})),
        "an object default"
    );
    assert_eq!(d.defaults.get("env"), Some(&json!("dev")));
    assert!(!d.defaults.contains_key("token"));
    assert!(d.specs["token"].secret && d.specs["token"].required);
    assert_eq!(d.specs["env"].types, vec![ParamType::String]);
}

#[test]
fn a_bad_spec_or_default_is_an_error_naming_the_param() {
    for (params, says) in [
        (json!({"n": {"type": "int"}}), "param n: type \"int\""),
        (json!({"n": {"enum": []}}), "param n: enum is empty"),
        (
            json!({"n": {"type": "integer", "default": "x"}}),
            "param n: its default \"x\" is not of type integer",
        ),
        (
            json!({"k": {"secret": true, "type": "integer", "default": "hunter22"}}),
            "param k: its default *** is not",
        ),
        (
            json!({"n": {"required": "yes"}}),
            "required must be true or false",
        ),
    ] {
        let d = declare(map(params.clone()));
        assert!(
            d.errors.iter().any(|e| e.contains(says)),
            "{params}: {:?} should say {says:?}",
            d.errors
        );
        assert!(
            !d.errors.iter().any(|e| e.contains("hunter22")),
            "a secret default is never quoted"
        );
    }
}

#[test]
fn conf_is_checked_against_the_specs() {
    let params = json!({
        "region": {"type": "string", "enum": ["eu", "us"]},
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "name": {"type": "string", "max_length": 5},
        "pw": {"type": "string", "secret": true, "min_length": 8},
        "must": {"required": true},
        "plain": 3,
    });
    assert_eq!(check(params.clone(), false, json!({"must": 1})), Ok(()));
    assert_eq!(
        check(
            params.clone(),
            false,
            json!({"must": 1, "region": "us", "n": 10, "plain": "anything"})
        ),
        Ok(())
    );
    for (conf, says) in [
        (
            json!({"must": 1, "region": "eu; touch /tmp/x"}),
            "conf key \"region\": the value \"eu; touch /tmp/x\" is not one of \"eu\", \"us\"",
        ),
        (
            json!({"must": 1, "n": "5"}),
            "conf key \"n\": the value \"5\" is not of type integer",
        ),
        (json!({"must": 1, "n": 2.5}), "is not of type integer"),
        (json!({"must": 1, "n": 11}), "is above the maximum 10"),
        (json!({"must": 1, "n": 0}), "is below the minimum 1"),
        (json!({"must": 1, "name": "toolong"}), "is longer than 5"),
        (
            json!({"must": 1, "pw": "short"}),
            "conf key \"pw\": the value *** is shorter than 8",
        ),
        (json!({}), "conf key \"must\" is required and was not given"),
        (
            json!({"must": 1, "cmd": "$(id)"}),
            "conf key \"cmd\" is not a param of this DAG",
        ),
    ] {
        let errors = check(params.clone(), false, conf.clone()).expect_err(&conf.to_string());
        assert!(
            errors.iter().any(|e| e.contains(says)),
            "{conf}: {errors:?} should say {says:?}"
        );
    }
}

#[test]
fn undeclared_keys_pass_only_when_the_dag_allows_them() {
    assert!(check(json!({}), false, json!({"x": 1})).is_err());
    assert_eq!(check(json!({}), true, json!({"x": 1})), Ok(()));
    // Allowed undeclared keys do not relax the declared ones.
    assert!(check(json!({"n": {"type": "integer"}}), true, json!({"n": "x"})).is_err());
}

#[test]
fn a_required_param_with_a_default_need_not_be_given() {
    assert_eq!(
        check(
            json!({"n": {"required": true, "default": 1}}),
            false,
            json!({})
        ),
        Ok(())
    );
}
