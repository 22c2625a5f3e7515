//! TLS and password authentication against a real PostgreSQL: the test makes
//! its own CA and server certificates (rcgen), starts a server with `ssl = on`
//! and scram-sha-256 for TCP, and checks each `sslmode` as libpq defines it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gale_pgtest::{PgServer, ServerTls, Setup, server_with_or_skip};
use gale_store::postgres::PgStore;
use gale_store::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const PASSWORD: &str = "tls-test-pw";

/// A CA of the test's own, written to `ca.crt` in a temp dir.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.crt"), issuer.pem()).expect("writing ca.crt");
        Ca { issuer, dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    fn server_cert(&self, names: &[&str]) -> ServerTls {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "gale test server");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("signing");
        ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A server with TLS on (serving `tls`) and a password for TCP.
fn tls_server(test: &str, tls: ServerTls) -> Option<PgServer> {
    server_with_or_skip(
        test,
        &Setup {
            password: Some(PASSWORD.into()),
            tls: Some(tls),
            ..Setup::default()
        },
    )
}

fn url(host: &str, pg: &PgServer, query: &str) -> String {
    format!(
        "postgres://postgres:{PASSWORD}@{host}:{}/postgres?{query}",
        pg.port()
    )
}

fn verify(mode: &str, ca: &Path) -> String {
    format!("sslmode={mode}&sslrootcert={}", ca.display())
}

async fn open(url: &str) -> Result<PgStore, gale_store::Error> {
    PgStore::connect(url, Duration::from_secs(20)).await
}

/// The session is encrypted, as the server sees it.
async fn assert_encrypted(store: &PgStore) {
    let tls = store.session_tls().await.expect("pg_stat_ssl");
    let tls = tls.expect("the session must be encrypted (pg_stat_ssl.ssl)");
    assert!(tls.starts_with("TLSv1."), "{tls}");
}

/// What connecting says when it must fail: never "try again later".
async fn refusal(url: &str) -> String {
    let err = match open(url).await {
        Ok(_) => panic!("{url} must be refused"),
        Err(e) => e,
    };
    assert!(!err.is_retryable(), "a refusal is not an outage: {err:?}");
    err.to_string()
}

#[tokio::test]
async fn verify_full_connects_by_a_name_the_certificate_has() {
    let ca = Ca::new("gale test CA");
    let Some(pg) = tls_server("verify_full_connects", ca.server_cert(&["localhost"])) else {
        return;
    };
    // Over TLS, SCRAM binds the password exchange to the server's
    // certificate (SCRAM-SHA-256-PLUS): channel_binding=require fails without.
    let query = format!(
        "{}&channel_binding=require",
        verify("verify-full", &ca.file())
    );
    let store = open(&url("localhost", &pg, &query))
        .await
        .expect("verify-full to localhost with a certificate for localhost");
    assert_encrypted(&store).await;
    assert!(
        store.endpoint().ends_with("?sslmode=verify-full"),
        "{}",
        store.endpoint()
    );
    assert!(store.tls_settings().verifies_name());
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let ca = Ca::new("gale test CA");
    let Some(pg) = tls_server("verify_full_refuses", ca.server_cert(&["db.example"])) else {
        return;
    };
    for host in ["localhost", "127.0.0.1"] {
        let text = refusal(&url(host, &pg, &verify("verify-full", &ca.file()))).await;
        assert!(
            text.contains(&format!("does not match host \"{host}\"")),
            "the error names the host: {text}"
        );
        assert!(
            text.contains("db.example"),
            "and the certificate's name: {text}"
        );
    }
    // verify-ca checks the chain, not the name: the same server is accepted.
    let store = open(&url("127.0.0.1", &pg, &verify("verify-ca", &ca.file())))
        .await
        .expect("verify-ca accepts a certificate for another name");
    assert_encrypted(&store).await;
    // So does require with a CA (libpq: then it behaves like verify-ca).
    let store = open(&url("127.0.0.1", &pg, &verify("require", &ca.file())))
        .await
        .expect("require with sslrootcert");
    assert_encrypted(&store).await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let (ca, other) = (Ca::new("gale test CA"), Ca::new("someone else's CA"));
    let Some(pg) = tls_server("another_ca", ca.server_cert(&["localhost"])) else {
        return;
    };
    for mode in ["verify-ca", "verify-full", "require"] {
        let text = refusal(&url("localhost", &pg, &verify(mode, &other.file()))).await;
        assert!(
            text.contains("not signed by a CA in sslrootcert"),
            "{mode}: {text}"
        );
    }
    // Without a CA, require encrypts and checks nothing.
    let store = open(&url("localhost", &pg, "sslmode=require"))
        .await
        .expect("require without sslrootcert");
    assert_encrypted(&store).await;
}

/// In a multi-host URL each host is checked by its own name: the one the
/// certificate names connects, the other is refused.
#[tokio::test]
async fn each_host_of_a_url_is_checked_by_its_own_name() {
    let ca = Ca::new("gale test CA");
    let Some(pg) = tls_server("each_host_by_name", ca.server_cert(&["localhost"])) else {
        return;
    };
    let port = pg.port();
    let multi = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{port},localhost:{port}/postgres?{}",
        verify("verify-full", &ca.file())
    );
    let store = open(&multi).await.expect("the host named localhost passes");
    assert_encrypted(&store).await;
    let text = refusal(&url("127.0.0.1", &pg, &verify("verify-full", &ca.file()))).await;
    assert!(text.contains("does not match host \"127.0.0.1\""), "{text}");
}

#[tokio::test]
async fn each_mode_gets_the_encryption_it_asks_for() {
    let ca = Ca::new("gale test CA");
    let Some(pg) = tls_server("each_mode", ca.server_cert(&["localhost"])) else {
        return;
    };
    for query in ["sslmode=require", "sslmode=prefer", "connect_timeout=5"] {
        let store = open(&url("127.0.0.1", &pg, query)).await.expect(query);
        assert_encrypted(&store).await;
    }
    let store = open(&url("127.0.0.1", &pg, "sslmode=disable"))
        .await
        .expect("disable");
    assert_eq!(store.session_tls().await.expect("pg_stat_ssl"), None);
}

/// `require` never falls back to plaintext; `prefer` does.
#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let Some(pg) = server_with_or_skip(
        "require_refuses_plaintext",
        &Setup {
            password: Some(PASSWORD.into()),
            tls: None,
            ..Setup::default()
        },
    ) else {
        return;
    };
    let ca = Ca::new("gale test CA");
    for query in [
        "sslmode=require".to_owned(),
        verify("verify-ca", &ca.file()),
        verify("verify-full", &ca.file()),
    ] {
        let text = refusal(&url("localhost", &pg, &query)).await;
        assert!(
            text.contains("the server does not support TLS"),
            "{query}: {text}"
        );
    }
    let store = open(&url("localhost", &pg, "sslmode=prefer"))
        .await
        .expect("prefer falls back to plaintext");
    assert_eq!(store.session_tls().await.expect("pg_stat_ssl"), None);
}

/// scram-sha-256 over TCP: the right user with a wrong password, or none, is
/// refused, over TLS and without.
#[tokio::test]
async fn a_wrong_or_missing_password_is_refused() {
    let ca = Ca::new("gale test CA");
    let Some(pg) = tls_server("wrong_password", ca.server_cert(&["localhost"])) else {
        return;
    };
    let port = pg.port();
    for query in ["sslmode=disable", "sslmode=require"] {
        for (creds, says) in [
            (
                "postgres:wrong",
                "password authentication failed for user \"postgres\"",
            ),
            (
                "postgres",
                "the server asks for a password and the URL has none",
            ),
        ] {
            let text = refusal(&format!(
                "postgres://{creds}@127.0.0.1:{port}/postgres?{query}"
            ))
            .await;
            assert!(text.contains(says), "{creds} ({query}): {text}");
        }
    }
}
