//! Unit tests of `auth`: passwords, form fields, roles by path, and the
//! Host and origin checks.

use super::*;

#[test]
fn passwords_hash_and_verify() {
    let h = hash_password("correct horse").expect("hash");
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(verify_password("correct horse", &h));
    assert!(!verify_password("wrong", &h));
    assert!(!verify_password("x", "not a hash"));
}

#[test]
fn form_fields_are_decoded() {
    let body = b"a=1&csrf_token=ab%2Fc+d&x=";
    assert_eq!(form_field(body, "csrf_token").as_deref(), Some("ab/c d"));
    assert_eq!(form_field(body, "x").as_deref(), Some(""));
    assert_eq!(form_field(body, "missing"), None);
    assert_eq!(form_field(b"t=%zz%4", "t").as_deref(), Some("%zz%4"));
}

#[test]
fn origin_must_match_host() {
    let mut h = HeaderMap::new();
    assert!(same_origin(&h), "no Origin header is same-origin");
    h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
    h.insert(
        header::ORIGIN,
        HeaderValue::from_static("http://127.0.0.1:8080"),
    );
    assert!(same_origin(&h));
    h.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    assert!(!same_origin(&h));
}

#[test]
fn loopback_hosts_with_the_port() {
    assert!(loopback_host("127.0.0.1:8080", Some(8080)));
    assert!(loopback_host("localhost:8080", Some(8080)));
    assert!(loopback_host("LOCALHOST:8080", None));
    assert!(loopback_host("[::1]:8080", Some(8080)));
    assert!(loopback_host("127.0.0.2:8080", Some(8080)));
    assert!(!loopback_host("127.0.0.1:8081", Some(8080)), "another port");
    assert!(!loopback_host("127.0.0.1", Some(8080)), "no port is 80");
    assert!(!loopback_host("evil.example:8080", Some(8080)));
    assert!(!loopback_host("localhost.evil.example:8080", Some(8080)));
    assert!(!loopback_host("[::1:8080", Some(8080)));
    assert!(!loopback_host("10.0.0.1:8080", None));
}

#[test]
fn roles_by_method_and_path() {
    assert_eq!(required_role(&Method::GET, "/api/v1/dags"), Role::Viewer);
    assert_eq!(
        required_role(&Method::POST, "/api/v1/dags/x/runs"),
        Role::Operator
    );
    assert_eq!(required_role(&Method::POST, "/logout"), Role::Viewer);
    assert_eq!(required_role(&Method::GET, "/api/v1/users"), Role::Admin);
    assert_eq!(required_role(&Method::GET, "/api/v1/audit"), Role::Admin);
    assert_eq!(required_role(&Method::GET, "/audit"), Role::Admin);
    for (path, role) in [("/tokens", Role::Admin), ("/pools/a/delete", Role::Admin)]
        .into_iter()
        .chain([("/poolside", Role::Viewer), ("/api/v1/pools", Role::Viewer)])
    {
        assert_eq!(required_role(&Method::GET, path), role, "{path}");
    }
    for path in [
        "/api/v1/variables",
        "/api/v1/variables/x",
        "/api/v1/connections/x",
        "/variables",
        "/variables/x/delete",
        "/connections/x",
        "/api/v1/alerts/channels",
        "/api/v1/alerts/channels/x/test",
        "/alerts/channels/x/delete",
    ] {
        assert_eq!(required_role(&Method::GET, path), Role::Viewer, "{path}");
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(required_role(&m, path), Role::Admin, "{m} {path}");
        }
    }
    assert_eq!(
        required_role(&Method::POST, "/variablesx"),
        Role::Operator,
        "only the vault's own paths"
    );
    assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
}

#[test]
fn unknown_users_cost_a_real_password_check() {
    assert!(DUMMY_HASH.starts_with("$argon2id$"), "{}", *DUMMY_HASH);
    assert!(argon2::password_hash::phc::PasswordHash::new(&DUMMY_HASH).is_ok());
}

#[test]
fn generated_secrets_differ() {
    assert_ne!(new_secret(), new_secret());
    let p = new_password();
    assert_eq!(p.len(), 20);
}
