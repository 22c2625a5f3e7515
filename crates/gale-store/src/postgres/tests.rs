//! Unit tests of the PostgreSQL URL handling (no server needed).

use tokio_postgres::config::TargetSessionAttrs;

use super::*;

#[test]
fn urls_get_safe_defaults_and_never_show_passwords() {
    let cfg = parse_url("postgres://gale:s3cret@db1:5432,db2:5433/gale")
        .expect("parse")
        .config;
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
    .expect("parse")
    .config;
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

/// The TLS settings a URL gives, and what tokio-postgres is left to read.
fn tls_of(url: &str) -> (TlsSettings, tokio_postgres::Config) {
    let parsed = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    (parsed.tls, parsed.config)
}

#[test]
fn tls_settings_are_taken_off_both_forms() {
    use tokio_postgres::config::SslMode as Wire;
    let (tls, cfg) = tls_of(
        "postgres://gale:p%3Fw@db1:5432,db2:5433/gale?connect_timeout=7&sslmode=verify-full\
         &sslrootcert=%2Fetc%2Fgale%2Fca.crt&application_name=x",
    );
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert_eq!(
        tls.root_cert,
        Some(RootCert::File("/etc/gale/ca.crt".into()))
    );
    assert_eq!(cfg.get_ssl_mode(), Wire::Require);
    assert_eq!(cfg.get_password(), Some(&b"p?w"[..]));
    assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(7)));
    assert_eq!(cfg.get_application_name(), Some("x"));
    assert_eq!(cfg.get_hosts().len(), 2);

    let (tls, cfg) = tls_of(
        "host=a,b dbname=d sslmode = verify-ca sslrootcert='/tmp/my ca.crt' \
         sslcert=/c.crt sslkey=/c\\ key user=u",
    );
    assert_eq!(tls.mode, SslMode::VerifyCa);
    assert_eq!(tls.root_cert, Some(RootCert::File("/tmp/my ca.crt".into())));
    assert_eq!(tls.client_cert.as_deref(), Some("/c.crt".as_ref()));
    assert_eq!(tls.client_key.as_deref(), Some("/c key".as_ref()));
    assert_eq!(cfg.get_user(), Some("u"));
    assert_eq!(cfg.get_dbname(), Some("d"));
    assert_eq!(cfg.get_ssl_mode(), Wire::Require);
}

#[test]
fn tls_modes_follow_libpq() {
    use tokio_postgres::config::SslMode as Wire;
    // The default is prefer: TLS when offered, nothing checked.
    let (tls, cfg) = tls_of("postgres://gale@db/gale");
    assert_eq!(tls.mode, SslMode::Prefer);
    assert!(!tls.verifies());
    assert_eq!(cfg.get_ssl_mode(), Wire::Prefer);
    let (tls, cfg) = tls_of("postgres://gale@db/gale?sslmode=disable");
    assert_eq!(
        (tls.mode, cfg.get_ssl_mode()),
        (SslMode::Disable, Wire::Disable)
    );
    // require checks the chain only when given a CA, as libpq does.
    let (tls, _) = tls_of("postgres://gale@db/gale?sslmode=require");
    assert!(!tls.verifies());
    let (tls, _) = tls_of("postgres://gale@db/gale?sslmode=require&sslrootcert=/ca.crt");
    assert!(tls.verifies() && !tls.verifies_name());
    let (tls, _) = tls_of("postgres://gale@db/gale?sslrootcert=system");
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert!(tls.verifies_name());
}

#[test]
fn bad_tls_settings_are_explained() {
    let err = |url: &str| parse_url(url).map(|_| ()).expect_err(url).to_string();
    let text = err("postgres://gale@db/gale?sslmode=verify-full");
    assert!(
        text.contains("needs the CA") && text.contains("sslrootcert="),
        "{text}"
    );
    let text = err("host=db sslmode=verify-ca");
    assert!(text.contains("sslmode=verify-ca needs the CA"), "{text}");
    let text = err("postgres://gale@db/gale?sslmode=bogus");
    assert!(text.contains("invalid sslmode \"bogus\""), "{text}");
    let text = err("postgres://gale@db/gale?sslmode=allow");
    assert!(text.contains("sslmode=allow is not supported"), "{text}");
    let text = err("postgres://gale@db/gale?sslmode=require&sslrootcert=system");
    assert!(
        text.contains("sslrootcert=system needs sslmode=verify-full"),
        "{text}"
    );
    let text = err("postgres://gale@db/gale?sslcert=/c.crt");
    assert!(text.contains("sslcert without sslkey"), "{text}");
    let text = err("host=db sslkey=/c.key");
    assert!(text.contains("sslkey without sslcert"), "{text}");
    let text = err("host=db sslrootcert='/ca");
    assert!(text.contains("no closing quote"), "{text}");
}

#[test]
fn an_endpoint_never_shows_tls_files_or_passwords() {
    let parsed = parse_url("postgres://gale:pw@db:5432/gale?sslmode=require").expect("parse");
    assert_eq!(endpoint_of(&parsed.config), "postgres://gale@db:5432/gale");
}
