//! Real receivers for alert tests: an HTTP server that records each request
//! (headers and body) and answers with a status the test sets, and aiosmtpd
//! (PyPI) as an SMTP server with STARTTLS required and AUTH, saving each
//! message it accepts to a file, which a test can stop and start again on
//! the same port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request as the hook saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// What it was answered.
    pub status: u16,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// An HTTP receiver on 127.0.0.1.
pub struct Hook {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Hook {
    /// Answers 200 until told otherwise.
    pub fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a hook");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (s, st, d) = (seen.clone(), status.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, st, d) = (s.clone(), st.clone(), d.clone());
                std::thread::spawn(move || serve(conn, &s, &st, &d));
            }
        });
        Hook {
            url,
            seen,
            status,
            delay_ms,
        }
    }

    /// The status every later request gets (200, 400, 500, ...).
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// How long each later request waits before it is answered (it is
    /// recorded at once).
    pub fn delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>, status: &AtomicU16, delay_ms: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let code = status.load(Ordering::SeqCst);
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: code,
    });
    std::thread::sleep(Duration::from_millis(delay_ms.load(Ordering::SeqCst)));
    let text = if code == 200 {
        "ok"
    } else {
        "refused by the test"
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

const SMTP_SERVER: &str = r#"
import os, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

outdir, port, cert, key, user, password, mode = sys.argv[1:8]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        if mode == "refuse":
            return "554 5.7.1 message refused by policy"
        name = os.path.join(outdir, "%d.eml" % time.time_ns())
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 stored"

def auth(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword) and data.login.decode() == user
          and data.password.decode() == password)
    return AuthResult(success=ok, handled=False)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx,
               require_starttls=True, authenticator=auth, auth_required=True)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

/// aiosmtpd on 127.0.0.1, STARTTLS required, AUTH as `user`/`password`.
pub struct Smtp {
    pub port: u16,
    pub dir: PathBuf,
    cert: String,
    key: String,
    pub user: String,
    pub password: String,
    child: Option<Child>,
}

impl Smtp {
    /// Started, or None (with a loud note) where python3 with aiosmtpd is
    /// missing and CI is not set.
    pub fn start(dir: &Path, cert: &str, key: &str) -> Option<Smtp> {
        let has = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !has {
            let why = "python3 with aiosmtpd is needed (python3 -m pip install aiosmtpd)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("*** SKIPPED: {why} ***");
            return None;
        }
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).expect("mail dir");
        std::fs::write(dir.join("smtp_server.py"), SMTP_SERVER).expect("write the server");
        let mut smtp = Smtp {
            port: free_port(),
            dir: out,
            cert: cert.to_owned(),
            key: key.to_owned(),
            user: "alerts".into(),
            password: "s3cret-smtp-pw".into(),
            child: None,
        };
        smtp.up("accept");
        Some(smtp)
    }

    /// Starts the server again (after `down`); `mode` is `accept` or
    /// `refuse` (554 to every message).
    pub fn up(&mut self, mode: &str) {
        self.down();
        let script = self.dir.parent().expect("a parent").join("smtp_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args([
                self.dir.to_str().expect("utf-8"),
                &self.port.to_string(),
                &self.cert,
                &self.key,
                &self.user,
                &self.password,
                mode,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        self.child = Some(child);
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message stored so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// `smtp://user@127.0.0.1:PORT?tls=required` (the password apart).
    pub fn url(&self) -> String {
        format!("smtp://{}@127.0.0.1:{}?tls=required", self.user, self.port)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.down();
    }
}
