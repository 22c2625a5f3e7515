//! The variables and connections pages, and the API's refusal without a
//! key, through the whole app: secrets never reach a page, an empty password
//! field keeps the password, viewers get no forms.

use super::*;

const VALUE: &str = "sekrit-value-4711";
const PASSWORD: &str = "conn-pass-0815";

/// The fixture with a keyed vault, and an admin `ada`.
async fn keyed() -> Fixture {
    let mut f = fixture().await;
    let key = gale_secrets::generate_key().expect("a key");
    let keys = Arc::new(gale_secrets::KeySource::fixed(&key).expect("a key source"));
    let vault = gale_secrets::Vault::new(f.store.clone(), Some(keys));
    let state = AppState::new(f.store.clone()).with_vault(vault);
    f.app = crate::app(Arc::new(state));
    let hash = auth::hash_password("pw-12345").expect("hash");
    f.store
        .create_user("ada", Role::Admin, &hash)
        .await
        .expect("user");
    f
}

/// `GET uri` with an API token of `user`, as JSON.
async fn api_get(f: &Fixture, user: &str, uri: &str) -> (StatusCode, serde_json::Value) {
    let (_, token) = auth::create_token(&*f.store, user, "t", None)
        .await
        .expect("a token");
    let res = f
        .app
        .clone()
        .oneshot(
            Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("a response");
    let status = res.status();
    let text = body_text(res).await;
    (status, serde_json::from_str(&text).expect("JSON"))
}

#[tokio::test]
async fn pages_add_edit_and_delete_without_showing_secrets() {
    let f = keyed().await;
    let (admin, csrf) = session(&f, "ada").await;
    let form =
        format!("csrf_token={csrf}&name=api_key&secret=on&value={VALUE}&description=the+key");
    let res = post_form(&f, &admin, "/variables", &form).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        body_text(res).await
    );
    let form = format!(
        "csrf_token={csrf}&name=wh&conn_type=postgres&host=db&port=5432&login=etl\
         &password={PASSWORD}&schema=dw&extra=%7B%22sslmode%22%3A%22require%22%2C%22token%22%3A%22tok-123456%22%7D"
    );
    let res = post_form(&f, &admin, "/connections", &form).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        body_text(res).await
    );

    let (viewer, _) = session(&f, "vic").await;
    for cookie in [&admin, &viewer] {
        for uri in [
            "/variables",
            "/variables/api_key",
            "/connections",
            "/connections/wh",
        ] {
            let (status, page) = get(&f, cookie, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {page}");
            for secret in [VALUE, PASSWORD, "tok-123456"] {
                assert!(!page.contains(secret), "{uri} shows {secret}: {page}");
            }
            assert!(page.contains("***"), "{uri}: {page}");
            let forms = page.contains("csrf_token\" value=\"") && page.contains("Delete");
            assert_eq!(forms, cookie == &admin, "{uri}: forms for admins only");
        }
    }
    let (_, page) = get(&f, &viewer, "/connections").await;
    assert!(page.contains("require") && page.contains(">db<"), "{page}");

    // Edit with the password field left empty: the password is kept.
    let form = format!(
        "csrf_token={csrf}&conn_type=postgres&host=db2&port=5433&login=etl&password=\
         &schema=dw&extra=%7B%22sslmode%22%3A%22require%22%2C%22token%22%3A%22***%22%7D"
    );
    let res = post_form(&f, &admin, "/connections/wh", &form).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        body_text(res).await
    );
    let row = f
        .store
        .connection("wh")
        .await
        .expect("read")
        .expect("a row");
    assert_eq!(row.host.as_deref(), Some("db2"));
    assert_eq!(row.port, Some(5433));
    let (status, c) = api_get(&f, "ada", "/api/v1/connections/wh?reveal=true").await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["password"], PASSWORD, "{c}");
    assert_eq!(
        c["extra"]["token"], "tok-123456",
        "*** kept the extra value: {c}"
    );
    assert_eq!(c["host"], "db2", "{c}");
    let (status, c) = api_get(&f, "vic", "/api/v1/connections/wh?reveal=true").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{c}");

    // A refused edit shows no secret again.
    let form = format!("csrf_token={csrf}&secret=on&value={VALUE}&json=on");
    let res = post_form(&f, &admin, "/variables/api_key", &form).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = body_text(res).await;
    assert!(page.contains("not JSON") && !page.contains(VALUE), "{page}");

    let res = post_form(
        &f,
        &admin,
        "/variables/api_key/delete",
        &format!("csrf_token={csrf}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(f.store.variable("api_key").await.expect("read").is_none());
    let (status, _) = get(&f, &admin, "/variables/api_key").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Viewers' and operators' posts are refused before any handler.
    let (operator, op_csrf) = session(&f, "olga").await;
    let form = format!("csrf_token={op_csrf}&name=x&value=y");
    let res = post_form(&f, &operator, "/variables", &form).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(f.store.variable("x").await.expect("read").is_none());
}

#[tokio::test]
async fn without_a_key_secrets_are_refused_saying_how_to_make_one() {
    let f = fixture().await;
    let hash = auth::hash_password("pw-12345").expect("hash");
    f.store
        .create_user("ada", Role::Admin, &hash)
        .await
        .expect("user");
    let (admin, csrf) = session(&f, "ada").await;
    let form = format!("csrf_token={csrf}&name=db_password&value={VALUE}");
    let res = post_form(&f, &admin, "/variables", &form).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = body_text(res).await;
    assert!(page.contains("gale secrets new-key"), "{page}");
    assert!(!page.contains(VALUE), "{page}");

    let (_, token) = auth::create_token(&*f.store, "ada", "t", None)
        .await
        .expect("a token");
    let res = f
        .app
        .clone()
        .oneshot(
            Request::post("/api/v1/connections")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(
                    r#"{{"name": "wh", "uri": "postgres://u:{PASSWORD}@h/db"}}"#
                )))
                .expect("a request"),
        )
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let text = body_text(res).await;
    assert!(
        text.contains("no secret key") && !text.contains(PASSWORD),
        "{text}"
    );
    // A non-secret variable needs no key.
    let form = format!("csrf_token={csrf}&name=region&value=eu");
    let res = post_form(&f, &admin, "/variables", &form).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}
