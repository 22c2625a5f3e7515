//! Tests of what an SMTP server's refusal says, against a real (if tiny)
//! SMTP server on a local socket that offers neither AUTH nor STARTTLS.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::channel::ChannelSpec;
use crate::event::{Batch, Event, EventKind};
use crate::send::{Refusal, Settings, send};

/// An SMTP server that greets, answers EHLO with no extension but 8BITMIME,
/// and says OK to everything else; returns its port.
async fn bare_smtp() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 localhost ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-localhost\r\n250 8BITMIME\r\n",
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    if write.write_all(answer).await.is_err() || verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    port
}

async fn refusal(smtp: String) -> String {
    let spec: ChannelSpec = serde_json::from_value(json!({
        "name": "mail", "kind": "email", "to": ["ops@example.com"],
        "from": "gale@example.com", "smtp": smtp, "password": "pw",
    }))
    .expect("a spec");
    let channel = spec.check().expect("a channel");
    let event = Event::new("k", EventKind::Test, Timestamp::UNIX_EPOCH);
    match send(
        &channel,
        &Settings::default(),
        &Batch::one(event),
        Duration::from_secs(20),
    )
    .await
    {
        Err(Refusal::Permanent(text)) => text,
        other => panic!("a permanent refusal, not {other:?}"),
    }
}

#[tokio::test]
async fn a_server_offering_no_login_or_no_starttls_is_said_in_words() {
    let port = bare_smtp().await;
    let text = refusal(format!("smtp://alerts@127.0.0.1:{port}")).await;
    assert!(
        text.starts_with(&format!(
            "smtp://127.0.0.1:{port}: the server offers no way to log in over this connection"
        )),
        "{text}"
    );
    assert!(
        text.contains("?tls=required") && text.contains("smtps://"),
        "{text}"
    );
    assert!(!text.contains("internal client error"), "{text}");
    let text = refusal(format!("smtp://alerts@127.0.0.1:{port}?tls=required")).await;
    assert!(
        text.contains("the server does not offer STARTTLS, which tls=required needs"),
        "{text}"
    );
    assert!(!text.contains("internal client error"), "{text}");
}
