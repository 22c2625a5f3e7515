//! `gale dags push`: DAG files stored without a DAG folder, into the store
//! this command names or through a node's API (`--url`); and `gale dags
//! sources`, the git sources schedulers follow.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use gale_scheduler::processor::dag_files;
use gale_server::api::sources::{PushOut, PushedOut, SourceOut};

use super::output::{print_json, table};
use super::{Usage, cli_actor, open_store};
use crate::{Output, Paths, exit};

/// The files of `paths` to push, each with the name it is pushed under: a
/// file's own name, or a folder's files' paths inside it.
fn files_to_push(paths: &[PathBuf]) -> anyhow::Result<Vec<gale_actions::PushFile>> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
        let found: Vec<(PathBuf, String)> = if meta.is_dir() {
            dag_files(p)
                .into_iter()
                .map(|f| {
                    let name = relative_name(&f, p);
                    (f, name)
                })
                .collect()
        } else {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            vec![(p.clone(), name)]
        };
        if found.is_empty() {
            bail!("{} holds no .yaml or .yml files", p.display());
        }
        for (path, name) in found {
            let content =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push(gale_actions::PushFile { name, content });
        }
    }
    Ok(files)
}

fn relative_name(file: &Path, folder: &Path) -> String {
    file.strip_prefix(folder)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

/// `gale dags push PATH...`.
pub(super) async fn push(
    paths: &Paths,
    inputs: &[PathBuf],
    url: Option<&str>,
    token: Option<&str>,
    output: Output,
) -> anyhow::Result<u8> {
    let files = files_to_push(inputs)?;
    let result = match url {
        Some(url) => push_over_http(url, token, files).await?,
        None => {
            let store = open_store(paths).await?;
            match gale_actions::push_dags(&*store, &cli_actor(), files).await {
                Ok(pushed) => Ok(pushed.into_iter().map(PushedOut::from).collect()),
                Err(gale_actions::Error::Rejected(errors)) => Err(errors),
                Err(gale_actions::Error::Invalid(m)) => return Err(Usage(m).into()),
                Err(gale_actions::Error::Store(gale_store::Error::Invalid(m))) => {
                    return Err(Usage(m).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    match result {
        Ok(dags) => {
            if output == Output::Json {
                print_json(&PushOut { dags })?;
            } else {
                for d in &dags {
                    let what = if !d.changed {
                        "unchanged"
                    } else if d.new_version {
                        "new version"
                    } else {
                        "back to an earlier version"
                    };
                    println!(
                        "pushed {} ({}, {} tasks): {what} {}",
                        d.file, d.dag_id, d.tasks, d.version_hash
                    );
                }
            }
            Ok(exit::OK)
        }
        Err(errors) => {
            if output == Output::Json {
                print_json(&serde_json::json!({ "errors": errors }))?;
            } else {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!("nothing was pushed: fix the files above and push again");
            }
            Ok(exit::FAILED)
        }
    }
}

/// Pushes through a node's API: the stored files, or the files' errors.
async fn push_over_http(
    url: &str,
    token: Option<&str>,
    files: Vec<gale_actions::PushFile>,
) -> anyhow::Result<Result<Vec<PushedOut>, Vec<String>>> {
    let mut body = Vec::with_capacity(files.len());
    for f in files {
        let content = String::from_utf8(f.content)
            .map_err(|_| anyhow::anyhow!("{}: the file is not valid UTF-8", f.name))?;
        body.push(serde_json::json!({ "name": f.name, "content": content }));
    }
    let endpoint = format!("{}/api/v1/dags", url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let mut request = client
        .post(&endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&serde_json::json!({ "files": body }))?);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("pushing to {endpoint}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {endpoint} ({status})"))?;
    let answer: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{endpoint} answered {status} with no JSON"))?;
    if status.is_success() {
        let dags = answer["dags"]
            .as_array()
            .map(|a| a.iter().filter_map(pushed_of).collect())
            .unwrap_or_default();
        return Ok(Ok(dags));
    }
    if status.as_u16() == 422 {
        let errors = answer["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Err(errors));
    }
    let detail = answer["detail"].as_str().unwrap_or("no detail");
    if status.as_u16() == 401 {
        bail!("{endpoint}: {detail} (pass --token, or set GALE_TOKEN)");
    }
    bail!("{endpoint} answered {status}: {detail}")
}

fn pushed_of(v: &serde_json::Value) -> Option<PushedOut> {
    Some(PushedOut {
        file: v["file"].as_str()?.to_owned(),
        dag_id: v["dag_id"].as_str()?.to_owned(),
        version_hash: v["version_hash"].as_str()?.to_owned(),
        new_version: v["new_version"].as_bool()?,
        changed: v["changed"].as_bool()?,
        tasks: usize::try_from(v["tasks"].as_u64()?).ok()?,
    })
}

/// `gale dags sources`.
pub(super) async fn sources(paths: &Paths, output: Output) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    let rows: Vec<SourceOut> = store
        .list_sources()
        .await?
        .into_iter()
        .map(SourceOut::from)
        .collect();
    if output == Output::Json {
        print_json(&rows)?;
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        println!("no git sources are followed (start a scheduler with --dags-git URL)");
        return Ok(exit::OK);
    }
    let rows = rows
        .into_iter()
        .map(|s| {
            vec![
                s.name,
                s.url,
                if s.reference.is_empty() {
                    "(default)".into()
                } else {
                    s.reference
                },
                if s.path.is_empty() {
                    "/".into()
                } else {
                    s.path
                },
                s.commit
                    .map_or("-".into(), |c| c.chars().take(12).collect()),
                s.applied_at.map_or("-".into(), |t| t.to_string()),
                s.applied_by.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["NAME", "URL", "REF", "FOLDER", "COMMIT", "STORED", "BY"],
            rows
        )
    );
    Ok(exit::OK)
}
