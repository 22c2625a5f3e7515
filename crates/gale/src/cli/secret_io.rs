//! What `gale variables` and `gale connections` share: reading a value or a
//! file from standard input, the import formats (JSON, YAML, `.env`) and
//! writing exports (JSON, YAML, `.env`) to a file only its owner may read,
//! and turning an action's errors into the exit codes scripts rely on.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use gale_secrets::Resolver;
use serde_json::{Map, Value};

use super::NotFound;

/// What an import does with a name that is already stored.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnExisting {
    /// Replace it with the file's entry.
    Overwrite,
    /// Keep the stored one.
    Skip,
    /// Import nothing when any name is already stored.
    Fail,
}

/// A file format of imports and exports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Json,
    Yaml,
    /// `name=URI` lines (connections only), as `airflow connections export
    /// --file-format env` writes them.
    Env,
}

impl FileFormat {
    /// The format a file's name says, if any.
    pub fn of_path(path: &str) -> Option<FileFormat> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(FileFormat::Json),
            "yaml" | "yml" => Some(FileFormat::Yaml),
            "env" => Some(FileFormat::Env),
            _ => None,
        }
    }
}

/// An action's error: `NotFound` as the CLI's (exit code 4), the others
/// with their message.
pub(super) fn action_error(e: gale_actions::Error) -> anyhow::Error {
    match e {
        gale_actions::Error::NotFound(m) => NotFound(m).into(),
        other => anyhow::Error::new(other),
    }
}

/// A name found nowhere (exit code 4), saying where it was looked for, in
/// the order tasks look.
pub(super) fn not_anywhere(e: gale_actions::Error, looked_in: &Resolver) -> anyhow::Error {
    match e {
        gale_actions::Error::NotFound(m) => {
            NotFound(format!("{m} (looked in {})", looked_in.order().join(", "))).into()
        }
        other => action_error(other),
    }
}

/// All of standard input, as text (`what` names it in messages). When it is
/// a terminal, says how to end it.
pub(super) fn read_stdin(what: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "reading {what} from standard input (end it with Ctrl-D)"
        );
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("reading {what} from standard input"))?;
    Ok(text)
}

/// A value from standard input, its one trailing newline dropped.
pub(super) fn read_stdin_value(what: &str) -> anyhow::Result<String> {
    let mut text = read_stdin(what)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// How messages name `file`.
pub(super) fn label(file: &str) -> &str {
    if file == "-" { "standard input" } else { file }
}

/// The text of `file` (`-`: standard input).
pub(super) fn read_input(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        return read_stdin("the file");
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
}

/// The entries of an import file: a mapping of names to entries in JSON or
/// YAML, or (when `env` is allowed) `name=value` lines, a value that starts
/// with `{` being JSON. The format is the one the file's name says, else
/// guessed from the text.
pub(super) fn parse_entries(
    file: &str,
    text: &str,
    allow_env: bool,
) -> anyhow::Result<Vec<(String, Value)>> {
    let file = label(file);
    let format = match FileFormat::of_path(file) {
        Some(FileFormat::Env) if !allow_env => {
            bail!("{file}: a .env file holds connections only; variables are JSON or YAML")
        }
        Some(f) => f,
        None => guess_format(text, allow_env),
    };
    let value: Value = match format {
        FileFormat::Env => return parse_env(file, text),
        FileFormat::Json => {
            serde_json::from_str(text).with_context(|| format!("{file} is not valid JSON"))?
        }
        FileFormat::Yaml => {
            if text.trim().is_empty() {
                Value::Object(Map::new())
            } else {
                // Only where: serde's messages quote the value they choke
                // on, and this file holds secrets.
                serde_saphyr::from_str(text).map_err(|e: serde_saphyr::Error| {
                    match e.location() {
                        Some(at) => anyhow::anyhow!(
                            "{file} is not valid YAML (line {}, column {})",
                            at.line(),
                            at.column()
                        ),
                        None => anyhow::anyhow!("{file} is not valid YAML"),
                    }
                })?
            }
        }
    };
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        Value::Null => Ok(Vec::new()),
        other => bail!(
            "{file}: expected a mapping of names to entries, not {}",
            kind_of(&other)
        ),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// JSON when the text starts with `{`; `.env` when its first line is
/// `name=...` (a name with no `:` or space before the `=`); else YAML.
fn guess_format(text: &str, allow_env: bool) -> FileFormat {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return FileFormat::Json;
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    if allow_env
        && let Some(line) = first
        && let Some((name, _)) = line.split_once('=')
        && !name.is_empty()
        && !name.contains([':', ' ', '\t'])
    {
        return FileFormat::Env;
    }
    FileFormat::Yaml
}

/// `name=value` lines; blank lines and `#` comments skipped, as Airflow's
/// local file secrets backend reads them.
fn parse_env(file: &str, text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            bail!("{file}:{}: expected NAME=URI", i + 1);
        };
        let (name, value) = (name.trim(), value.trim());
        if out.iter().any(|(n, _)| n == name) {
            bail!("{file}:{}: {name} is given twice", i + 1);
        }
        let value = if value.starts_with('{') {
            serde_json::from_str(value)
                .with_context(|| format!("{file}:{}: {name}: not valid JSON", i + 1))?
        } else {
            Value::String(value.to_owned())
        };
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// `value` as YAML: mappings in block style, every string value
/// double-quoted (JSON's escapes are YAML's) and keys too unless plainly
/// text, so nothing that looks like a number or a boolean changes type;
/// lists in flow style.
pub(super) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => yaml_map(map, 0, &mut out),
        other => {
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
    out
}

fn yaml_map(map: &Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in map {
        out.push_str(&" ".repeat(indent));
        if plain_key(k) {
            out.push_str(k);
        } else {
            out.push_str(&Value::String(k.clone()).to_string());
        }
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_map(inner, indent + 2, out);
            }
            other => {
                out.push(' ');
                out.push_str(&other.to_string());
                out.push('\n');
            }
        }
    }
}

/// Whether `k` reads back as the same text unquoted: a letter or `_`, then
/// letters, digits, `_`, `.` and `-`, and not a word YAML 1.1 takes for a
/// boolean or null.
fn plain_key(k: &str) -> bool {
    let mut bytes = k.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    let word = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"]
        .contains(&k.to_ascii_lowercase().as_str());
    first_ok && rest_ok && !word
}

/// Writes an export holding secrets: to standard output when `file` is
/// none or `-`, else to `file`, made readable by its owner only before
/// anything is written to it. Returns whether it went to a file.
pub(super) fn write_secret_output(file: Option<&str>, text: &str) -> anyhow::Result<bool> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let Some(path) = file.filter(|f| *f != "-") else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("writing to standard output")?;
        return Ok(false);
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {path}"))?;
    // A file that was there keeps its mode on open: narrow it first.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {path} readable by its owner only"))?;
    f.set_len(0)
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {path}"))?;
    Ok(true)
}

/// Says on standard error that a secret was given on the command line, and
/// how to give it on standard input instead.
pub(super) fn warn_command_line(what: &str, instead: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "warning: {what} is on the command line, where `ps` and shell history can read it; \
         {instead}"
    );
}

/// A one-line view of a value for a table: newlines shown as `\n`, long
/// values cut.
pub(super) fn cell(value: &str) -> String {
    cell_of(value, 60)
}

/// [`cell`], cut at `max` characters.
pub(super) fn cell_of(value: &str, max: usize) -> String {
    let flat = value.replace('\r', "\\r").replace('\n', "\\n");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
