//! Commands that need no shell.
//!
//! A task's `run` is a shell command, run by `/bin/sh -c`. When the command is
//! only plain words and its first word is a program, not a shell builtin or
//! keyword, the shell would do nothing but split the words and exec the program.
//! Starting the program directly then means the same, and saves loading a shell:
//! about a sixth of what a short task costs the machine. GNU make takes the same
//! fast path for its recipes.
//!
//! Anything else goes to the shell: quotes, escapes, variables, globs,
//! redirections, pipes and other operators, comments, assignments and builtins.
//! If the direct start fails (a program not found on `PATH`, a script without a
//! `#!` line), the caller runs the command through the shell after all, which
//! then runs or reports it as usual.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What runs a command started without a shell.
#[derive(Debug, PartialEq, Eq)]
pub struct Direct<'a> {
    /// The program: as written (with a `/`: relative to the task's directory;
    /// without: searched on the worker's `PATH` by `posix_spawnp`), or the file
    /// found on the task's own `PATH`.
    pub program: PathBuf,
    /// `argv[0]`, as written in the command (as the shell would pass it).
    pub arg0: &'a str,
    pub args: Vec<&'a str>,
}

/// Characters that give a command meaning beyond "split on blanks and exec".
/// `=` is handled apart: it only matters in the first word.
const SHELL_CHARS: &[char] = &[
    '#', ';', '&', '|', '<', '>', '(', ')', '{', '}', '[', ']', '*', '?', '$', '`', '\\', '"',
    '\'', '~', '!', '^',
];

/// Builtins and keywords of `sh` (dash, and bash as `sh`): words the shell
/// itself handles, and programs whose builtin and external versions differ (e.g.
/// `echo -e`, `pwd` under a symbolic link, `kill %1`, bash's `time`). Also
/// `setsid`: a program started directly leads its own process group (under the
/// shell, the shell does), and `setsid` would then fork and return at once.
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "[", "[[", "]]", "{", "}", "alias", "bg", "bltin", "break", "case", "cd",
    "chdir", "command", "continue", "do", "done", "echo", "elif", "else", "esac", "eval", "exec",
    "exit", "export", "fc", "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs",
    "kill", "local", "printf", "pwd", "read", "readonly", "return", "select", "set", "setsid",
    "shift", "source", "test", "then", "time", "times", "trap", "type", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while",
];

/// The program and arguments of `command` when it can start without a shell.
/// `task_path` is the task's own `PATH`, if it sets one (the program is then
/// looked up here: the standard library would fork instead of `posix_spawn`
/// for a lookup on a changed `PATH`); `cwd` is its working directory, absolute.
pub fn plan<'a>(command: &'a str, task_path: Option<&OsStr>, cwd: &Path) -> Option<Direct<'a>> {
    // Trailing newlines (a YAML block scalar's) end the command, nothing more.
    let command = command.trim_end_matches('\n');
    if command.contains(SHELL_CHARS)
        || command
            .chars()
            .any(|c| c.is_control() && c != ' ' && c != '\t')
    {
        return None;
    }
    let mut words = command.split([' ', '\t']).filter(|w| !w.is_empty());
    let arg0 = words.next()?;
    if arg0.contains('=') || SHELL_WORDS.contains(&arg0) {
        return None;
    }
    let program = match task_path {
        _ if arg0.contains('/') => PathBuf::from(arg0),
        Some(path) => find_on_path(arg0, path, cwd)?,
        // Without a PATH, posix_spawnp and the shell search different defaults.
        None if std::env::var_os("PATH").is_none() => return None,
        None => PathBuf::from(arg0),
    };
    Some(Direct {
        program,
        arg0,
        args: words.collect(),
    })
}

/// `$PWD` as the shell sets it for a task in `cwd`: the inherited value (the
/// task's own `PWD`, else the worker's) when it names that directory, else the
/// physical path. None when `cwd` cannot be resolved. Cached per directory and
/// inherited value, so a task costs no path walk.
pub fn shell_pwd(cwd: &Path, given: Option<&OsStr>) -> Option<PathBuf> {
    type Cache = HashMap<(PathBuf, Option<OsString>), PathBuf>;
    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
    let given = given
        .map(OsStr::to_owned)
        .or_else(|| std::env::var_os("PWD"));
    let key = (cwd.to_path_buf(), given);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(pwd) = cache.get(&key) {
        return Some(pwd.clone());
    }
    let same_dir = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    let pwd = match &key.1 {
        Some(g) if Path::new(g).is_absolute() && same_dir(Path::new(g), cwd) => PathBuf::from(g),
        _ => std::fs::canonicalize(cwd).ok()?,
    };
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(key, pwd.clone());
    Some(pwd)
}

/// The first executable file named `name` in the directories of `path`, as
/// the shell searches them (an empty entry is the working directory).
fn find_on_path(name: &str, path: &OsStr, cwd: &Path) -> Option<PathBuf> {
    std::env::split_paths(path).find_map(|dir| {
        let candidate = cwd.join(dir).join(name);
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(command: &str) -> Option<(String, Vec<String>)> {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        plan(command, Some(&path), Path::new("/")).map(|d| {
            assert_eq!(
                d.program.file_name().unwrap(),
                Path::new(d.arg0).file_name().unwrap()
            );
            (
                d.arg0.to_owned(),
                d.args.iter().map(|a| a.to_string()).collect(),
            )
        })
    }

    #[test]
    fn plain_words_start_directly() {
        assert_eq!(planned("true"), Some(("true".into(), vec![])));
        assert_eq!(
            planned("  sleep\t 1  "),
            Some(("sleep".into(), vec!["1".into()]))
        );
        assert_eq!(
            planned("ls -l --color=never /tmp"),
            Some((
                "ls".into(),
                vec!["-l".into(), "--color=never".into(), "/tmp".into()]
            ))
        );
        let d = plan("/bin/sh -c x", None, Path::new("/")).unwrap();
        assert_eq!(d.program, PathBuf::from("/bin/sh"));
        // A YAML block scalar's trailing newline.
        assert_eq!(planned("true\n"), Some(("true".into(), vec![])));
    }

    #[test]
    fn anything_the_shell_would_interpret_goes_to_the_shell() {
        for command in [
            "",
            "   ",
            "echo hi",
            "cd /tmp",
            "exit 3",
            "true; false",
            "true && false",
            "true | cat",
            "cat < /etc/hostname",
            "ls > out",
            "ls *.txt",
            "ls file?",
            "echo $HOME",
            "ls ~",
            "ls 'a b'",
            "ls \"a b\"",
            "ls a\\ b",
            "ls `pwd`",
            "ls # comment",
            "A=1 env",
            "(true)",
            "{ true; }",
            "! true",
            "true\nfalse",
            "true\rfalse",
            "if true; then :; fi",
            "kill 1",
            "pwd",
            "test -e /",
            "[ -e / ]",
            // Looked up on the task's own PATH: not found goes to the shell.
            "no-such-program-anywhere",
            "setsid sleep 1",
            "time sleep 1",
        ] {
            assert_eq!(planned(command), None, "{command:?}");
        }
    }

    #[test]
    fn path_lookup_follows_the_tasks_path_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "not executable").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        let d = plan("tool x", Some(&path), Path::new("/")).unwrap();
        assert_eq!(
            (d.program, d.arg0, d.args),
            (tool.clone(), "tool", vec!["x"])
        );
        assert_eq!(plan("plain", Some(&path), Path::new("/")), None);
        // An empty PATH entry is the working directory.
        let d = plan("tool", Some(OsStr::new(":/nonexistent")), dir.path()).unwrap();
        assert_eq!(d.program, tool);
        // No PATH of its own: the name is left for posix_spawnp to search.
        let d = plan("tool", None, dir.path()).unwrap();
        assert_eq!(d.program, PathBuf::from("tool"));
        // A name with a slash is not looked up.
        let d = plan("./tool", None, dir.path()).unwrap();
        assert_eq!(d.program, PathBuf::from("./tool"));
    }
}
