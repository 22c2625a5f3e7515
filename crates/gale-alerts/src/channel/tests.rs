//! Tests of channel checks: each kind's settings split into clear and
//! secret, every bad field named, and the masked view.

use serde_json::json;

use super::*;

fn spec(name: &str, kind: &str, settings: serde_json::Value) -> ChannelSpec {
    let serde_json::Value::Object(settings) = settings else {
        panic!("settings must be an object");
    };
    ChannelSpec {
        name: name.into(),
        kind: kind.into(),
        description: None,
        settings,
    }
}

fn refused(s: ChannelSpec) -> String {
    s.check().expect_err("refused").to_string()
}

#[test]
fn an_email_channel_keeps_its_smtp_password_sealed() {
    let c = spec(
        "ops",
        "email",
        json!({"to": ["Ops <ops@example.com>", "b@example.com"],
               "smtp": "smtp://alerts%40x:p%40ss@mail.example.com:587?tls=required",
               "ca_file": "/etc/gale/ca.pem"}),
    )
    .check()
    .unwrap();
    assert_eq!(c.kind, ChannelKind::Email);
    assert_eq!(c.secret.get("password").map(String::as_str), Some("p@ss"));
    assert_eq!(
        c.config["smtp"],
        json!("smtp://alerts%40x@mail.example.com:587?tls=required")
    );
    let Target::Email(e) = &c.target else {
        panic!("an email target");
    };
    assert_eq!(e.to.len(), 2);
    assert_eq!(e.subject_prefix, "[gale]");
    // Stored and opened again: the same channel.
    let again = Channel::from_opened(c.to_opened()).unwrap();
    assert_eq!(again, c);
    let masked = c.masked();
    assert_eq!(
        masked.secret.get("password").map(String::as_str),
        Some("***")
    );
    assert!(
        !format!("{c:?}").contains("p@ss"),
        "Debug is the masked view"
    );
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let cases = [
        (spec("a b", "webhook", json!({})), "name:"),
        (spec(&"x".repeat(101), "slack", json!({})), "1 to 100"),
        (spec("x", "pager", json!({})), "kind:"),
        (
            spec("x", "email", json!({"to": []})),
            "to: must not be empty",
        ),
        (spec("x", "email", json!({})), "to: is required"),
        (
            spec("x", "email", json!({"to": ["not an address"]})),
            "to[0]:",
        ),
        (
            spec(
                "x",
                "email",
                json!({"to": "a@example.com", "smtp": "http://h"}),
            ),
            "smtp: the scheme",
        ),
        (
            spec(
                "x",
                "email",
                json!({"to": "a@example.com", "smtp": "smtp://h?tls=maybe"}),
            ),
            "tls=maybe",
        ),
        (
            spec(
                "x",
                "email",
                json!({"to": "a@example.com", "smtp": "smtp://u:p@h", "password": "q"}),
            ),
            "give it once",
        ),
        (
            spec(
                "x",
                "email",
                json!({"to": "a@example.com", "ca_file": "rel.pem"}),
            ),
            "ca_file:",
        ),
        (spec("x", "webhook", json!({})), "url: is required"),
        (
            spec("x", "webhook", json!({"url": "ftp://h/x"})),
            "http or https",
        ),
        (
            spec("x", "webhook", json!({"url": 3})),
            "url: must be a string",
        ),
        (
            spec(
                "x",
                "webhook",
                json!({"url": "https://h/", "timeout": "0s"}),
            ),
            "timeout:",
        ),
        (
            spec(
                "x",
                "webhook",
                json!({"url": "https://h/", "timeout": "1h"}),
            ),
            "at most 300s",
        ),
        (
            spec(
                "x",
                "webhook",
                json!({"url": "https://h/", "headers": {"X-Gale-Event": "x"}}),
            ),
            "headers.X-Gale-Event: Gale sets",
        ),
        (
            spec(
                "x",
                "webhook",
                json!({"url": "https://h/", "headers": {"bad name": "x"}}),
            ),
            "not a valid header name",
        ),
        (
            spec("x", "webhook", json!({"url": "https://h/", "to": "a"})),
            "to: not a setting",
        ),
        (
            spec("x", "command", json!({"argv": []})),
            "argv: must not be empty",
        ),
        (spec("x", "command", json!({"argv": [""]})), "argv[0]"),
        (
            spec("x", "command", json!({"argv": [1]})),
            "argv[0]: must be a string",
        ),
        (
            spec(
                "x",
                "slack",
                json!({"url": format!("https://h/{}", "a".repeat(3000))}),
            ),
            "url: longer than",
        ),
    ];
    for (s, want) in cases {
        let e = refused(s);
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
}

#[test]
fn a_webhook_keeps_its_url_secret_and_shows_only_its_host() {
    let c = spec(
        "hook",
        "webhook",
        json!({"url": "https://hooks.example.com/T0/B1/secret", "signing_secret": "s3",
               "headers": {"X-Team": "ops"}, "timeout": "5s"}),
    )
    .check()
    .unwrap();
    assert!(!c.config.contains_key("url"));
    assert_eq!(c.config["headers"], json!({"X-Team": "ops"}));
    let Target::Webhook(w) = &c.target else {
        panic!("a webhook target");
    };
    assert_eq!(w.timeout, Duration::from_secs(5));
    assert_eq!(w.headers, [("x-team".to_string(), "ops".to_string())]);
    let m = c.masked();
    assert_eq!(m.secret["url"], "https://hooks.example.com/***");
    assert_eq!(m.secret["signing_secret"], "***");
    let cmd = spec("run", "command", json!({"argv": ["/bin/true", "x"]}))
        .check()
        .unwrap();
    let Target::Command { argv, timeout } = &cmd.target else {
        panic!("a command target");
    };
    assert_eq!((argv.len(), *timeout), (2, Duration::from_secs(30)));
}

#[test]
fn a_spec_reads_from_json_with_its_settings_flat() {
    let s: ChannelSpec = serde_json::from_value(json!({
        "name": "s", "kind": "slack", "description": "team", "url": "https://hooks.slack.com/x"
    }))
    .unwrap();
    let c = s.check().unwrap();
    assert_eq!(c.description.as_deref(), Some("team"));
    assert_eq!(c.secret["url"], "https://hooks.slack.com/x");
    // A stored channel with a secret in its clear part is refused.
    let mut config = c.config.clone();
    config.insert("url".into(), json!("https://x/"));
    let e = Channel::new("s", ChannelKind::Slack, config, c.secret, None).unwrap_err();
    assert!(e.to_string().contains("url: not a setting"), "{e}");
}

#[test]
fn listings_mask_header_values_and_secret_looking_arguments() {
    let hook = spec(
        "h",
        "webhook",
        json!({"url": "https://hooks.example/T/secret", "headers": {"Authorization": "Bearer abc123", "X-Team": "data"}}),
    )
    .check()
    .expect("a webhook");
    let shown = serde_json::to_string(&hook.masked()).expect("json");
    assert!(!shown.contains("abc123"), "{shown}");
    assert!(
        !shown.contains("data\""),
        "every header value is hidden: {shown}"
    );
    assert!(shown.contains("Authorization"), "{shown}");
    let cmd = spec(
        "c",
        "command",
        json!({"argv": ["/bin/pager", "--token", "tk-1", "--api-key=k-2", "--team", "data", "password=p-3"]}),
    )
    .check()
    .expect("a command");
    let argv = cmd.masked().config["argv"].clone();
    assert_eq!(
        argv,
        json!([
            "/bin/pager",
            "--token",
            "***",
            "--api-key=***",
            "--team",
            "data",
            "password=***"
        ])
    );
}

#[test]
fn a_password_goes_only_over_tls_or_to_this_host() {
    let with = |smtp: &str| {
        spec(
            "m",
            "email",
            json!({"to": ["a@example.com"], "smtp": smtp, "password": "pw"}),
        )
        .check()
    };
    for refused in [
        "smtp://u@mail.example.com:25",
        "smtp://u@mail.example.com:587?tls=opportunistic",
    ] {
        let Err(e) = with(refused) else {
            panic!("{refused} is accepted");
        };
        let e = e.to_string();
        assert!(e.contains("only over TLS"), "{refused}: {e}");
    }
    for allowed in [
        "smtp://u@mail.example.com:587?tls=required",
        "smtps://u@mail.example.com",
        "smtp://u@127.0.0.1:2525",
        "smtp://u@localhost:25",
    ] {
        assert!(with(allowed).is_ok(), "{allowed}");
    }
    // Without a password, a plain relay is fine.
    assert!(
        spec(
            "m",
            "email",
            json!({"to": ["a@example.com"], "smtp": "smtp://relay.example.com"})
        )
        .check()
        .is_ok()
    );
    let settings = crate::Settings {
        smtp_url: Some("smtp://u:pw@mail.example.com:25".into()),
        ..Default::default()
    };
    assert_eq!(settings.check().len(), 1, "{:?}", settings.check());
}
