//! The follower's clone, through the system `git`: a bare repository of its
//! own, fetched into one ref, read without a work tree (`ls-tree`,
//! `cat-file --batch`). Credentials reach git through the environment of
//! the one command that needs them, never its arguments.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::order::Relation;

/// Where the fetched commit is kept in the clone.
const FOLLOWED: &str = "refs/gale/followed";
/// The longest a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest any other git command may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A user name and password (or token) for an HTTP(S) remote.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// A git failure, in git's words.
#[derive(Debug)]
pub struct GitError(pub String);

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GitError {}

type Result<T> = std::result::Result<T, GitError>;

/// One file of a commit.
#[derive(Clone, Debug)]
pub struct TreeFile {
    /// Its path in the repository.
    pub path: String,
    pub object: String,
    pub size: u64,
}

/// A bare clone at `dir`, of `url`.
pub struct Repo {
    pub dir: PathBuf,
    pub url: String,
    pub ssh_key: Option<PathBuf>,
}

impl Repo {
    fn git(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `cmd`, its standard output on success, git's message otherwise.
    async fn run(&self, mut cmd: Command, timeout: Duration, what: &str) -> Result<Vec<u8>> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = match tokio::time::timeout(timeout, cmd.output()).await {
            Err(_) => {
                return Err(GitError(format!(
                    "{what}: git took more than {}s",
                    timeout.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(GitError(format!("{what}: cannot run git: {e}"))),
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(out.stdout);
        }
        let message = String::from_utf8_lossy(&out.stderr);
        let message = message.trim();
        Err(GitError(format!(
            "{what}: {}",
            if message.is_empty() {
                "git failed"
            } else {
                message
            }
        )))
    }

    /// Makes the bare repository if it is not there.
    pub async fn init(&self) -> Result<()> {
        if self.dir.join("HEAD").is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            GitError(format!(
                "cannot create the clone's folder {}: {e}",
                self.dir.display()
            ))
        })?;
        let mut cmd = Command::new("git");
        cmd.arg("init")
            .arg("--bare")
            .arg("--quiet")
            .arg(&self.dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        self.run(cmd, READ_TIMEOUT, "git init").await.map(drop)
    }

    /// Fetches `reference` (a branch or tag; '' for the remote's default
    /// branch) and returns its commit and commit time.
    pub async fn fetch(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<(String, Timestamp)> {
        let mut cmd = self.git();
        if let Some(c) = credentials {
            // A helper that answers from this command's environment.
            cmd.arg("-c").arg("credential.helper=").arg("-c").arg(
                "credential.helper=!f() { test \"$1\" = get && \
                 printf 'username=%s\\npassword=%s\\n' \"$GALE_GIT_USERNAME\" \"$GALE_GIT_PASSWORD\"; }; f",
            );
            cmd.env("GALE_GIT_USERNAME", &c.username)
                .env("GALE_GIT_PASSWORD", &c.password);
        }
        if let Some(key) = &self.ssh_key {
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes",
                    key.display().to_string().replace('\'', "'\\''")
                ),
            );
        }
        let source = if reference.is_empty() {
            "HEAD"
        } else {
            reference
        };
        cmd.args(["fetch", "--quiet", "--no-tags", "--force", "--"])
            .arg(&self.url)
            .arg(format!("+{source}:{FOLLOWED}"));
        self.run(
            cmd,
            FETCH_TIMEOUT,
            &format!("fetching {source} of {}", self.url),
        )
        .await?;
        let mut cmd = self.git();
        cmd.args(["show", "-s", "--format=%H %ct", FOLLOWED]);
        let out = self
            .run(cmd, READ_TIMEOUT, "reading the fetched commit")
            .await?;
        let text = String::from_utf8_lossy(&out);
        let (commit, time) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| GitError(format!("unexpected `git show` output: {text:?}")))?;
        let time = time
            .parse::<i64>()
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
            .ok_or_else(|| GitError(format!("unexpected commit time {time:?}")))?;
        Ok((commit.to_owned(), time))
    }

    /// How `fetched` stands to `stored`.
    pub async fn relation(&self, stored: &str, fetched: &str) -> Result<Relation> {
        if stored == fetched {
            return Ok(Relation::Same);
        }
        if !self.has_commit(stored).await {
            return Ok(Relation::Unrelated);
        }
        if self.is_ancestor(stored, fetched).await? {
            return Ok(Relation::Descendant);
        }
        if self.is_ancestor(fetched, stored).await? {
            return Ok(Relation::Ancestor);
        }
        Ok(Relation::Unrelated)
    }

    async fn has_commit(&self, commit: &str) -> bool {
        if !is_object_id(commit) {
            return false;
        }
        let mut cmd = self.git();
        cmd.args(["cat-file", "-e", &format!("{commit}^{{commit}}")]);
        self.run(cmd, READ_TIMEOUT, "looking for a commit")
            .await
            .is_ok()
    }

    async fn is_ancestor(&self, a: &str, b: &str) -> Result<bool> {
        let mut cmd = self.git();
        cmd.args(["merge-base", "--is-ancestor", a, b])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = tokio::time::timeout(READ_TIMEOUT, cmd.output())
            .await
            .map_err(|_| GitError("git merge-base took too long".into()))?
            .map_err(|e| GitError(format!("cannot run git: {e}")))?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(GitError(format!(
                "comparing commits: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// The files of `commit` below `path` ('' for all), as git lists them:
    /// blobs only (no links, no submodules).
    pub async fn files(&self, commit: &str, path: &str) -> Result<Vec<TreeFile>> {
        let mut cmd = self.git();
        cmd.args(["ls-tree", "-r", "-z", "-l", "--full-tree", commit]);
        if !path.is_empty() {
            cmd.arg("--").arg(path);
        }
        let out = self
            .run(cmd, READ_TIMEOUT, "listing the commit's files")
            .await?;
        let mut files = Vec::new();
        for entry in out.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut parts = meta.split_whitespace();
            let (Some(mode), Some(kind), Some(object), Some(size)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if kind != "blob" || mode == "120000" {
                continue;
            }
            files.push(TreeFile {
                path: path.to_owned(),
                object: object.to_owned(),
                size: size.parse().unwrap_or(u64::MAX),
            });
        }
        Ok(files)
    }

    /// The contents of `objects`, in order (one `git cat-file --batch`).
    pub async fn read_blobs(&self, objects: &[String]) -> Result<Vec<Vec<u8>>> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.git();
        cmd.args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| GitError(format!("cannot run git: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input: String = objects.iter().map(|o| format!("{o}\n")).collect();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(input.as_bytes()).await;
        });
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let read = async {
            let mut blobs = Vec::with_capacity(objects.len());
            for object in objects {
                let mut header = String::new();
                out.read_line(&mut header)
                    .await
                    .map_err(|e| GitError(format!("reading {object}: {e}")))?;
                let size: usize = header
                    .split_whitespace()
                    .nth(2)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| GitError(format!("reading {object}: {}", header.trim())))?;
                let mut blob = vec![0; size + 1];
                out.read_exact(&mut blob)
                    .await
                    .map_err(|e| GitError(format!("reading {object}: {e}")))?;
                blob.pop();
                blobs.push(blob);
            }
            Ok(blobs)
        };
        let blobs = tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .map_err(|_| GitError("reading the commit's files took too long".into()))?;
        writer.abort();
        let _ = child.kill().await;
        blobs
    }
}

/// 40 (SHA-1) or 64 (SHA-256) hex digits.
fn is_object_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The folder a source's clone is kept in, below `cache`.
pub fn clone_dir(cache: &Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache.join(format!("{safe}.git"))
}
