//! HTTPS (`--tls-cert`, `--tls-key`) and the start-up checks of the web
//! settings: a certificate that does not load, `--no-auth` off loopback.

use std::process::Command;
use std::time::Duration;

use crate::harness::Home;
use crate::ui::admin_password;
use crate::web::wait_url;

/// A self-signed certificate for 127.0.0.1 made by the `openssl` command, or
/// None (with a loud note) where it is missing and CI is not set.
pub fn self_signed(home: &Home) -> Option<(String, String)> {
    let (cert, key) = (home.file("cert.pem"), home.file("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            &key,
            "-out",
            &cert,
        ])
        .output();
    match made {
        Ok(out) if out.status.success() => Some((cert, key)),
        other => {
            let why = format!("cannot make a test certificate with `openssl`: {other:?}");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("*** SKIPPED: {why} ***");
            None
        }
    }
}

#[tokio::test]
async fn https_serves_and_its_session_cookie_is_secure() {
    let home = Home::new();
    let Some((cert, key)) = self_signed(&home) else {
        return;
    };
    let dags = home.dags().display().to_string();
    let standalone = home.start_with(&[
        "--dags-folder",
        &dags,
        "--no-examples",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let base = wait_url("gale standalone", || standalone.log());
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let password = admin_password(&standalone);
    let pem = std::fs::read(&cert).expect("reading the certificate");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTPS client");
    let live = client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .expect("GET /health/live over HTTPS");
    assert_eq!(live.status(), 200);

    let login = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("user=admin&password={password}&next=/"))
        .send()
        .await
        .expect("POST /login over HTTPS");
    assert_eq!(login.status(), 303, "a good login redirects");
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-gale_session="))
        .unwrap_or_else(|| panic!("no __Host- session cookie in {:?}", login.headers()))
        .to_owned();
    assert!(
        login.headers().contains_key("strict-transport-security"),
        "HTTPS answers carry HSTS: {:?}",
        login.headers()
    );
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing from {cookie}"
        );
    }

    // Plain HTTP on the HTTPS port gets no page.
    let plain = reqwest::Client::new()
        .get(base.replacen("https://", "http://", 1) + "/health/live")
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP must not be served on the HTTPS port"
    );
}

#[test]
fn bad_web_settings_stop_the_start_with_a_clear_error() {
    let home = Home::new();
    let missing = home.file("missing.pem");
    let out = home.gale(&[
        "standalone",
        "--no-examples",
        "--tls-cert",
        &missing,
        "--tls-key",
        &missing,
    ]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("cannot load the TLS certificate")
            && out.stderr.contains("missing.pem"),
        "the error names the file: {out}"
    );

    let out = home.gale(&["webserver", "--no-auth", "--bind", "0.0.0.0"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("--no-auth is refused on 0.0.0.0"),
        "{out}"
    );

    let out = home.gale(&["webserver", "--tls-cert", &missing]);
    assert_eq!(out.code, 2, "--tls-cert needs --tls-key: {out}");

    // A port in use is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = taken.local_addr().expect("its address").port().to_string();
    let out = home
        .command(&["standalone", "--no-examples", "--port", &port])
        .output()
        .expect("running gale standalone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "the error names the address: {stderr}"
    );
}
