//! Tests of sealing, key files, rotation and the providers' order, on a real
//! SQLite store.

use std::sync::Arc;

use gale_model::secrets::{Connection, References, Variable};
use gale_store::Store;
use gale_store::sqlite::SqliteStore;

use super::*;

fn store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.join("gale.db")).expect("open store"))
}

fn key_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    write_key_file(&path).expect("key file");
    path
}

fn secret(value: &str) -> Variable {
    Variable::new("tok", value.into(), false, true, None).unwrap()
}

#[test]
fn a_sealed_value_opens_only_under_its_key_and_its_name() {
    let k1 = Keyring::parse(&generate_key().unwrap(), "test").unwrap();
    let k2 = Keyring::parse(&generate_key().unwrap(), "test").unwrap();
    let sealed = k1.seal("variable \"a\"", b"hunter2").unwrap();
    assert_eq!(sealed.key_id, k1.current_id());
    assert!(!sealed.data.contains(&hex::encode("hunter2")));
    assert_eq!(k1.open("variable \"a\"", &sealed).unwrap(), b"hunter2");
    let moved = k1.open("variable \"b\"", &sealed).unwrap_err().to_string();
    assert!(moved.contains("was altered"), "{moved}");
    let other = k2.open("variable \"a\"", &sealed).unwrap_err().to_string();
    assert!(
        other.contains(k1.current_id()) && other.contains("not among"),
        "{other}"
    );
    let mut tampered = sealed.clone();
    let last = tampered.data.pop().unwrap();
    tampered.data.push(if last == '0' { '1' } else { '0' });
    assert!(k1.open("variable \"a\"", &tampered).is_err());
    // Two seals of one value differ (a fresh nonce each).
    assert_ne!(
        k1.seal("x", b"v").unwrap().data,
        k1.seal("x", b"v").unwrap().data
    );
    assert!(
        Keyring::parse("not-a-key", "GALE_SECRET_KEY")
            .unwrap_err()
            .to_string()
            .contains("64 hex digits")
    );
}

#[test]
fn a_key_file_is_owner_only_and_read_again_when_it_changes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(dir.path(), "key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        write_key_file(&path).is_err(),
        "an existing key file is never replaced"
    );
    let source = KeySource::file(&path).unwrap();
    let first = source.keyring().current_id().to_owned();
    let new = generate_key().unwrap();
    let old = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{new}\n{old}")).unwrap();
    let ring = source.reload().unwrap();
    assert_ne!(ring.current_id(), first);
    assert_eq!(ring.ids()[1], first);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = KeySource::file(&path).unwrap_err().to_string();
    assert!(e.contains("chmod 600"), "{e}");
}

#[tokio::test]
async fn without_a_key_secrets_are_refused_and_plain_values_kept() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(store(dir.path()), None);
    let e = vault
        .set_variable("tok", &secret("abcd"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no secret key") && e.contains("gale secrets new-key"),
        "{e}"
    );
    let plain = Variable::new("region", "eu".into(), false, false, None).unwrap();
    vault.set_variable("region", &plain).await.unwrap();
    assert_eq!(vault.variable("region").await.unwrap(), Some(plain));
    let conn = Connection::from_uri("http://u:pw@h").unwrap();
    assert!(vault.set_connection("c", &conn).await.is_err());
    let open = Connection::from_uri("http://h:80").unwrap();
    vault.set_connection("c", &open).await.unwrap();
    assert_eq!(vault.connection("c").await.unwrap(), Some(open));
}

#[tokio::test]
async fn rotation_reseals_everything_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(dir.path(), "key");
    let source = Arc::new(KeySource::file(&path).unwrap());
    let st = store(dir.path());
    let vault = Vault::new(st.clone(), Some(source.clone()));
    for i in 0..450 {
        vault
            .set_variable(
                &format!("v{i}"),
                &Variable::new(&format!("v{i}"), format!("secret-{i}"), false, true, None).unwrap(),
            )
            .await
            .unwrap();
    }
    vault
        .set_connection(
            "wh",
            &Connection::from_uri("postgres://etl:pw-123@wh/dw?sslmode=require").unwrap(),
        )
        .await
        .unwrap();
    let old_id = source.keyring().current_id().to_owned();
    let old = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{}\n{old}", generate_key().unwrap())).unwrap();
    let done = vault.rotate().await.unwrap();
    assert_eq!(done.resealed, 451);
    assert_ne!(done.key_id, old_id);
    let status = vault.key_status().await.unwrap();
    assert_eq!(status.sealed, vec![(done.key_id.clone(), 451, true)]);
    // The old key can go now; everything still opens.
    std::fs::write(
        &path,
        format!(
            "{}\n",
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .find(|l| !l.starts_with('#'))
                .unwrap()
        ),
    )
    .unwrap();
    source.reload().unwrap();
    assert_eq!(
        vault.variable("v449").await.unwrap().unwrap().value,
        "secret-449"
    );
    assert_eq!(
        vault
            .connection("wh")
            .await
            .unwrap()
            .unwrap()
            .password
            .as_deref(),
        Some("pw-123")
    );
}

#[tokio::test]
async fn the_environment_comes_before_the_directory_before_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(dir.path(), "key");
    let vault = Vault::new(
        store(dir.path()),
        Some(Arc::new(KeySource::file(&path).unwrap())),
    );
    for name in ["order_a", "order_b", "order_c"] {
        vault
            .set_variable(
                name,
                &Variable::new(name, format!("store-{name}"), false, false, None).unwrap(),
            )
            .await
            .unwrap();
    }
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("variables")).unwrap();
    std::fs::create_dir_all(secrets.join("connections")).unwrap();
    std::fs::write(secrets.join("variables/order_a"), "dir-a\n").unwrap();
    std::fs::write(secrets.join("variables/order_b"), "dir-b\n").unwrap();
    std::fs::write(
        secrets.join("connections/wh.x"),
        "postgres://d:dpw@dirhost:1/db\n",
    )
    .unwrap();
    // SAFETY: this test alone reads or writes these variables.
    unsafe { std::env::set_var("GALE_VAR_ORDER_A", "env-a") };
    let resolver = Resolver::new(Some(secrets.clone()), Some(vault));
    let refs = References {
        variables: ["order_a", "order_b", "order_c", "nowhere"]
            .map(String::from)
            .into(),
        connections: ["wh.x"].map(String::from).into(),
    };
    let lookup = resolver.lookup(&refs).await.unwrap();
    let got: Vec<_> = lookup
        .variables
        .iter()
        .map(|(k, v)| (k.as_str(), v.value.as_str(), v.secret))
        .collect();
    assert_eq!(
        got,
        [
            ("order_a", "env-a", true),
            ("order_b", "dir-b", true),
            ("order_c", "store-order_c", false)
        ]
    );
    assert_eq!(lookup.connections["wh.x"].host.as_deref(), Some("dirhost"));
    unsafe {
        std::env::set_var(
            "GALE_CONN_WH_X",
            r#"{"conn_type": "postgres", "host": "envhost"}"#,
        )
    };
    let again = resolver.lookup(&refs).await.unwrap();
    assert_eq!(again.connections["wh.x"].host.as_deref(), Some("envhost"));
    assert_eq!(resolver.missing(&refs).await.unwrap(), ["variable nowhere"]);
    assert_eq!(resolver.order().len(), 3);
}

#[tokio::test]
async fn rotation_reseals_what_opens_and_reports_what_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let k1 = generate_key().unwrap();
    let k2 = generate_key().unwrap();
    let k3 = generate_key().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{k1}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let source = Arc::new(KeySource::file(&path).unwrap());
    let vault = Vault::new(st.clone(), Some(source.clone()));
    vault.set_variable("a", &secret("under-k1")).await.unwrap();
    std::fs::write(&path, format!("{k2}\n")).unwrap();
    source.reload().unwrap();
    for name in ["b", "c"] {
        vault.set_variable(name, &secret("under-k2")).await.unwrap();
    }
    // K1 is gone: `a` cannot open; `b` and `c` are re-sealed under K3.
    std::fs::write(&path, format!("{k3}\n{k2}\n")).unwrap();
    let done = vault.rotate().await.unwrap();
    assert_eq!((done.resealed, done.not_opened), (2, 1), "{done:?}");
    assert!(done.unopened[0].contains("not among"), "{done:?}");
    let status = vault.key_status().await.unwrap();
    assert!(
        status
            .sealed
            .iter()
            .any(|(id, n, known)| *id == done.key_id && *n == 2 && *known),
        "{status:?}"
    );
    // A key file others may read is not taken on reload; the keys stay.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        source
            .reload()
            .unwrap_err()
            .to_string()
            .contains("chmod 600")
    );
    assert_eq!(
        vault.variable("b").await.unwrap().unwrap().value,
        "under-k2"
    );
}

#[tokio::test]
async fn a_secrets_directory_reads_regular_files_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("variables")).unwrap();
    let fifo = dir.path().join("variables/fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("variables/zero")).unwrap();
    let p = DirProvider {
        dir: dir.path().to_owned(),
    };
    for name in ["fifo", "zero"] {
        let e = p.variable(name).await.unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{name}: {e}");
    }
    assert!(
        p.variable("../etc").await.is_err(),
        "a name cannot leave the folder"
    );
    assert!(p.variable("absent").await.unwrap().is_none());
}

fn webhook(name: &str, url: &str) -> OpenedChannel {
    let mut config = serde_json::Map::new();
    config.insert("timeout".into(), serde_json::json!("10s"));
    OpenedChannel {
        name: name.into(),
        kind: gale_store::ChannelKind::Webhook,
        config,
        secret: [("url".to_string(), url.to_string())].into(),
        description: Some("on call".into()),
        updated_at: None,
    }
}

#[tokio::test]
async fn a_channel_is_sealed_listed_opened_and_still_opens_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(dir.path(), "key");
    let source = Arc::new(KeySource::file(&path).unwrap());
    let st = store(dir.path());
    let vault = Vault::new(st.clone(), Some(source.clone()));
    let hook = webhook("hook", "https://hooks.example.com/T0/secret-path");
    vault.put_channel(&hook).await.unwrap();
    let row = st.channel("hook").await.unwrap().unwrap();
    let sealed = row.sealed.expect("the secret part is sealed");
    assert!(!sealed.data.contains("secret-path"));
    assert!(!row.config.contains_key("url"));
    let listed = vault.channels().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].sealed);
    assert_eq!(
        listed[0].config.get("timeout"),
        Some(&serde_json::json!("10s"))
    );
    let opened = vault.channel("hook").await.unwrap().unwrap();
    assert_eq!(opened.secret, hook.secret);
    assert!(opened.updated_at.is_some());
    assert!(
        !format!("{opened:?}").contains("secret-path"),
        "Debug hides secrets"
    );
    // Sealed under its name: moved to another name it does not open.
    st.put_channel(&gale_store::AlertChannelRow {
        name: "moved".into(),
        sealed: Some(sealed.clone()),
        ..st.channel("hook").await.unwrap().unwrap()
    })
    .await
    .unwrap();
    assert!(vault.channel("moved").await.is_err());
    st.delete_channel("moved").await.unwrap();
    // Rotation reseals it and it still opens under the new key alone.
    let old = std::fs::read_to_string(&path).unwrap();
    let new_key = generate_key().unwrap();
    std::fs::write(&path, format!("{new_key}\n{old}")).unwrap();
    let done = vault.rotate().await.unwrap();
    assert_eq!(done.resealed, 1);
    std::fs::write(&path, format!("{new_key}\n")).unwrap();
    source.reload().unwrap();
    let row = st.channel("hook").await.unwrap().unwrap();
    assert_eq!(row.sealed.unwrap().key_id, done.key_id);
    assert_eq!(
        vault.channel("hook").await.unwrap().unwrap().secret,
        hook.secret
    );
    // Without a key: a channel with secrets is refused, one without is kept.
    let keyless = Vault::new(st.clone(), None);
    let e = keyless
        .put_channel(&webhook("other", "https://x.example.com/"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("alert channel other"), "{e}");
    let plain = OpenedChannel {
        secret: Default::default(),
        ..webhook("plain", "")
    };
    keyless.put_channel(&plain).await.unwrap();
    let got = keyless.channel("plain").await.unwrap().unwrap();
    assert!(got.secret.is_empty());
    assert_eq!(got.config, plain.config);
    assert!(st.channel("plain").await.unwrap().unwrap().sealed.is_none());
    assert!(vault.delete_channel("hook").await.unwrap());
    assert!(vault.channel("hook").await.unwrap().is_none());
}
