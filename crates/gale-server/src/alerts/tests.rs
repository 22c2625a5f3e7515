//! The pure parts: channel documents from JSON bodies, and a channel's
//! target and defaults as the alerts page shows them.

use serde_json::{Value, json};

use super::*;

fn body(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

#[test]
fn documents_from_bodies_name_what_is_wrong() {
    for (v, path, want) in [
        (json!({"kind": "webhook"}), None, "`name` is missing"),
        (
            json!({"name": 5, "kind": "webhook"}),
            None,
            "`name` must be a string",
        ),
        (json!({"name": "a"}), None, "`kind` is missing"),
        (
            json!({"name": "a", "kind": 1}),
            None,
            "`kind` must be a string",
        ),
        (
            json!({"name": "a", "kind": "command", "argv": ["/bin/true"]}),
            None,
            "gale alerts channels add",
        ),
        (
            json!({"name": "a", "kind": "slack", "description": 3}),
            None,
            "`description` must be a string",
        ),
        (json!({"name": "b", "kind": "slack"}), Some("a"), "`name`"),
    ] {
        let got = spec_of_json(body(v.clone()), path).expect_err("refused");
        assert!(got.contains(want), "{v}: {got:?} does not say {want:?}");
    }
    let spec = spec_of_json(
        body(json!({"kind": "webhook", "url": "https://h.example/x", "timeout": 5})),
        Some("hook"),
    )
    .expect("a document");
    assert_eq!(spec.name, "hook", "the path's name");
    assert_eq!(spec.kind, "webhook");
    assert_eq!(spec.settings["url"], "https://h.example/x");
    assert_eq!(spec.settings["timeout"], 5);
    assert!(!spec.settings.contains_key("name"));
    let same = spec_of_json(body(json!({"name": "hook", "kind": "slack"})), Some("hook"));
    assert!(same.is_ok(), "{same:?}");
}

#[test]
fn targets_and_defaults_read_well() {
    let view = |kind: &str, config: Value, secret: &[(&str, &str)]| ChannelView {
        name: "c".into(),
        kind: kind.into(),
        description: None,
        config: body(config),
        secret: secret
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        updated_at: None,
    };
    let mail = view(
        "email",
        json!({"to": ["a@x.test", "b@x.test"], "defaults": ["on_failure", "cluster"]}),
        &[("password", "***")],
    );
    assert_eq!(mail.target(), "a@x.test, b@x.test");
    assert_eq!(mail.defaults(), ["on_failure", "cluster"]);
    let hook = view("webhook", json!({}), &[("url", "https://h.example/***")]);
    assert_eq!(hook.target(), "https://h.example/***");
    assert!(hook.defaults().is_empty());
    let cmd = view(
        "command",
        json!({"argv": ["/usr/bin/pager", "--urgent"]}),
        &[],
    );
    assert_eq!(cmd.target(), "/usr/bin/pager --urgent");
}
