//! Tests of what a refused HTTP connection says: the cause first, where
//! (with the port), and never the secret URL.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::channel::ChannelSpec;
use crate::event::{Event, EventKind};

#[tokio::test]
async fn a_refused_connection_says_so_first_with_the_port_and_not_the_url() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let spec: ChannelSpec = serde_json::from_value(json!({
        "name": "hook", "kind": "webhook",
        "url": format!("http://127.0.0.1:{port}/p?token=s3cret"),
    }))
    .expect("a spec");
    let channel = spec.check().expect("a channel");
    let event = Event::new("k", EventKind::Test, Timestamp::UNIX_EPOCH);
    let refusal = send(
        &channel,
        &Settings::default(),
        &Batch::one(event),
        Duration::from_secs(20),
    )
    .await
    .expect_err("nothing listens there");
    assert!(!refusal.is_permanent(), "{refusal:?}");
    let text = refusal.text();
    assert!(
        text.starts_with(&format!("http://127.0.0.1:{port}: Connection refused")),
        "{text}"
    );
    assert!(!text.contains("client error ("), "{text}");
    assert!(!text.contains("s3cret") && !text.contains("/p"), "{text}");
    assert_eq!(
        channel.masked().secret["url"],
        format!("http://127.0.0.1:{port}/***")
    );
}
