//! Unit tests of the PostgreSQL URL handling (no server needed).

use super::*;

#[test]
fn urls_get_safe_defaults_and_never_show_passwords() {
    let cfg = parse_url("postgres://gale:s3cret@db1:5432,db2:5433/gale").expect("parse");
    assert_eq!(
        cfg.get_target_session_attrs(),
        TargetSessionAttrs::ReadWrite
    );
    assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(3)));
    assert!(cfg.get_keepalives());
    assert!(
        cfg.get_options()
            .unwrap_or("")
            .contains("statement_timeout")
    );
    let shown = endpoint_of(&cfg);
    assert_eq!(shown, "postgres://gale@db1:5432,db2:5433/gale");
    assert!(!shown.contains("s3cret"));
}

#[test]
fn a_url_with_its_own_settings_keeps_them() {
    let cfg = parse_url(
        "host=a,b port=5432 user=u dbname=d connect_timeout=7 options='-c statement_timeout=1'",
    )
    .expect("parse");
    assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(7)));
    assert_eq!(cfg.get_options(), Some("-c statement_timeout=1"));
    assert_eq!(endpoint_of(&cfg), "postgres://u@a:5432,b:5432/d");
}

#[test]
fn bad_urls_are_explained() {
    let err = parse_url("postgres://[::1")
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("invalid PostgreSQL URL"), "{err}");
    let err = parse_url("dbname=x").expect_err("no host").to_string();
    assert!(err.contains("names no host"), "{err}");
}
