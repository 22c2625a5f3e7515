//! The variables and connections pages in headless Chromium, on a real
//! `gale standalone` with a key file: an admin adds a secret variable and a
//! connection through the forms, sees them listed as `***`, edits the
//! connection without typing the password again (it is kept: checked through
//! the API with `reveal=true`) and deletes the variable; a viewer sees both
//! pages without forms and without a secret value.

use std::time::Duration;

use serde_json::Value;

use crate::harness::Home;
use crate::secrets_api::start_keyed_standalone;
use crate::ui::{admin_password, create_user, log_in, shoot};
use crate::web::{self, Web, wait_url};
use crate::webdriver::{self, Browser};

const WAIT: Duration = Duration::from_secs(60);
const VAR_SECRET: &str = "ui-var-secret-3c7f";
const CONN_PASSWORD: &str = "ui-conn-pass-91ad";

/// `GET path` with `token`, off the async runtime (the client blocks).
async fn api_get(base: &str, token: &str, path: &str) -> (u16, Value) {
    let (base, token, path) = (base.to_owned(), token.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let resp = Web::new(&base).with_token(&token).get(&path);
        let body = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        (resp.status, body)
    })
    .await
    .expect("the API call")
}

/// Types `text` into the field `css` (emptied first).
async fn fill(browser: &Browser, css: &str, text: &str) {
    let field = browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"));
    field
        .clear()
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"));
    if !text.is_empty() {
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("{css}: {e:#}"));
    }
}

async fn click(browser: &Browser, css: &str) {
    browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e:#}"));
}

async fn source(browser: &Browser) -> String {
    browser.page_source().await.expect("the page source")
}

async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"))
        .text()
        .await
        .expect("its text")
}

#[tokio::test]
async fn browser_manages_variables_and_connections() {
    let Some(browser) = webdriver::start_or_skip("browser_manages_variables_and_connections").await
    else {
        return;
    };
    let home = Home::new();
    let standalone = start_keyed_standalone(&home);
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    let admin_token = web::token(&home, "admin");
    log_in(&browser, &base, "admin", &password).await;

    // Add a secret variable (the box is ticked already, the value a password
    // field).
    browser
        .goto(&format!("{base}/variables"))
        .await
        .expect("the variables page");
    browser
        .wait_for_text("nav.top a.active", "Variables", WAIT)
        .await
        .expect("the nav entry");
    let value = browser
        .find("#add-variable input[name=value]")
        .await
        .expect("the value field");
    assert_eq!(
        value.attr("type").await.expect("type").as_deref(),
        Some("password")
    );
    fill(&browser, "#add-variable input[name=name]", "deploy_key").await;
    fill(&browser, "#add-variable input[name=value]", VAR_SECRET).await;
    fill(&browser, "#add-variable input[name=description]", "for CD").await;
    click(&browser, "#add-variable button[type=submit]").await;
    browser
        .wait_for_text(".flash.ok", "added variable deploy_key", WAIT)
        .await
        .expect("a flash");
    let shown = text_of(&browser, "tr[data-variable='deploy_key'] td.value").await;
    assert!(shown.starts_with("***"), "{shown}");
    assert!(!source(&browser).await.contains(VAR_SECRET));
    // A plain one, typed in clear once the box is unticked.
    fill(&browser, "#add-variable input[name=name]", "region").await;
    click(&browser, "#variable-secret").await;
    let value = browser
        .find("#add-variable input[name=value]")
        .await
        .expect("the value field");
    assert_eq!(
        value.attr("type").await.expect("type").as_deref(),
        Some("text"),
        "unticking shows the value"
    );
    fill(&browser, "#add-variable input[name=value]", "eu-west").await;
    click(&browser, "#add-variable button[type=submit]").await;
    browser
        .wait_for_text("tr[data-variable='region'] td.value", "eu-west", WAIT)
        .await
        .expect("the plain value listed");

    // Add a connection by its fields.
    browser
        .goto(&format!("{base}/connections"))
        .await
        .expect("the connections page");
    for (field, text) in [
        ("input[name=name]", "wh"),
        ("input[name=conn_type]", "postgres"),
        ("input[name=host]", "db.example"),
        ("input[name=port]", "5432"),
        ("input[name=login]", "etl"),
        ("input[name=password]", CONN_PASSWORD),
        ("input[name=schema]", "dw"),
        ("textarea[name=extra]", r#"{"sslmode": "require"}"#),
    ] {
        fill(&browser, &format!("#add-connection {field}"), text).await;
    }
    click(&browser, "#add-connection button[type=submit]").await;
    browser
        .wait_for_text(".flash.ok", "added connection wh", WAIT)
        .await
        .expect("a flash");
    let pw = text_of(&browser, "tr[data-connection='wh'] td.password").await;
    assert_eq!(pw, "***");
    assert!(!source(&browser).await.contains(CONN_PASSWORD));
    shoot(&browser, "connections").await;

    // Edit it without typing the password: the field is empty, and the
    // password is kept.
    browser
        .goto(&format!("{base}/connections/wh"))
        .await
        .expect("the connection's page");
    let pw_field = browser
        .wait_for("#edit-connection input[name=password]", WAIT)
        .await
        .expect("the password field");
    assert_eq!(
        pw_field.prop("value").await.expect("value"),
        Value::from("")
    );
    assert_eq!(
        pw_field.attr("type").await.expect("type").as_deref(),
        Some("password")
    );
    assert!(!source(&browser).await.contains(CONN_PASSWORD));
    fill(&browser, "#edit-connection input[name=host]", "db2.example").await;
    click(&browser, "#edit-connection button[type=submit]").await;
    browser
        .wait_for_text(".flash.ok", "saved connection wh", WAIT)
        .await
        .expect("a flash");
    let (status, c) = api_get(&base, &admin_token, "/api/v1/connections/wh?reveal=true").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["host"], "db2.example", "{c:#}");
    assert_eq!(c["password"], CONN_PASSWORD, "the password was kept: {c:#}");
    assert_eq!(c["extra"]["sslmode"], "require", "{c:#}");

    // Delete the secret variable from the list.
    browser
        .goto(&format!("{base}/variables"))
        .await
        .expect("the variables page");
    browser
        .execute("window.confirm = function () { return true; };", vec![])
        .await
        .expect("accepting confirmations");
    click(
        &browser,
        "tr[data-variable='deploy_key'] form button[type=submit]",
    )
    .await;
    browser
        .wait_for_text(".flash.ok", "deleted variable deploy_key", WAIT)
        .await
        .expect("a flash");
    let (status, _) = api_get(&base, &admin_token, "/api/v1/variables/deploy_key").await;
    assert_eq!(status, 404);
    // Another secret, for the viewer not to see.
    let (status, _) = api_get(&base, &admin_token, "/api/v1/variables/region").await;
    assert_eq!(status, 200);
    let again =
        format!("{{\"name\": \"deploy_key\", \"value\": \"{VAR_SECRET}\", \"secret\": true}}");
    let (base2, token2) = (base.clone(), admin_token.clone());
    let status = tokio::task::spawn_blocking(move || {
        let body: Value = serde_json::from_str(&again).expect("JSON");
        Web::new(&base2)
            .with_token(&token2)
            .post("/api/v1/variables", &body)
            .status
    })
    .await
    .expect("the API call");
    assert_eq!(status, 201);

    // A viewer: the same pages, no forms, no secret.
    click(&browser, "nav.top form[action='/logout'] button").await;
    browser
        .wait_for("form[action='/login']", WAIT)
        .await
        .expect("the login page");
    create_user(&home, "vera", "viewer", "viewer-pass-1");
    log_in(&browser, &base, "vera", "viewer-pass-1").await;
    for path in [
        "/variables",
        "/variables/deploy_key",
        "/connections",
        "/connections/wh",
    ] {
        browser
            .goto(&format!("{base}{path}"))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:#}"));
        browser
            .wait_for("nav.top .user", WAIT)
            .await
            .expect("a page");
        let page = source(&browser).await;
        for secret in [VAR_SECRET, CONN_PASSWORD] {
            assert!(!page.contains(secret), "{path} shows {secret} to a viewer");
        }
        assert!(page.contains("***"), "{path}: {page}");
        let forms = browser
            .find_all("main form")
            .await
            .expect("looking for forms");
        assert!(
            forms.is_empty(),
            "{path} has {} forms for a viewer",
            forms.len()
        );
    }
    browser
        .goto(&format!("{base}/variables"))
        .await
        .expect("the variables page");
    let shown = text_of(&browser, "tr[data-variable='region'] td.value").await;
    assert!(
        shown.contains("eu-west"),
        "non-secret values are readable: {shown}"
    );
    browser
        .goto(&format!("{base}/connections"))
        .await
        .expect("the connections page");
    let host = text_of(&browser, "tr[data-connection='wh'] td:nth-child(3)").await;
    assert_eq!(host, "db2.example");
    shoot(&browser, "connections-viewer").await;
    browser.quit().await.expect("closing the browser");
    drop(standalone);
}
