//! Who a task process runs as, and the environment it starts with.
//!
//! A task never inherits the worker's environment whole: that holds Gale's
//! own settings, the database URL with its password among them, and one
//! `env` dump (or `gale users create … --role admin` from a step) would own
//! the cluster. A task gets the names of [`ALLOWED`] (and `LC_*`) from the
//! worker's environment, the names the operator adds (`--task-env`), then
//! its DAG's `env` and the `GALE_*` task variables. No `GALE_*` name of the
//! worker's reaches it, whatever the operator adds.
//!
//! The worker's names a task does not get are removed one by one
//! (`env_remove`) rather than the environment cleared: a cleared environment
//! makes the standard library fork instead of `posix_spawn` for every program
//! looked up on `PATH`, which costs milliseconds per task in a large process.
//!
//! With `--run-as USER` the task runs as that user, with its groups, `HOME`,
//! `USER`, `LOGNAME` and `SHELL`: it can then read neither Gale's
//! configuration, its database file, nor its processes' memory and
//! `/proc/<pid>/environ`. Changing user needs a worker running as root, and
//! makes every start a fork (a `pre_exec` hook rules out `posix_spawn`). The
//! hook also enters the task's working directory, after the switch, so that
//! the directory is entered with the task's rights, not the worker's.

use std::ffi::{OsStr, OsString};

/// Names a task gets from the worker's environment, with every `LC_*`.
pub const ALLOWED: &[&str] = &[
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM",
];

/// Whether a task gets `name` from the worker's environment.
fn allowed(name: &OsStr, extra: &[String]) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    if name.starts_with("GALE_") {
        return false;
    }
    ALLOWED.contains(&name) || name.starts_with("LC_") || extra.iter().any(|e| e == name)
}

/// The user tasks run as (`--run-as`).
#[derive(Clone, Debug)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups (the primary one included).
    pub groups: Vec<u32>,
    pub home: String,
    pub shell: String,
}

impl RunAs {
    /// Looks `user` up (a name, or a numeric uid). Starting processes as
    /// another user needs a worker running as root.
    pub fn lookup(user: &str) -> Result<RunAs, String> {
        use nix::unistd::{Uid, User};
        let found = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(user),
        }
        .map_err(|e| format!("--run-as {user}: cannot look the user up: {e}"))?;
        let u = found.ok_or_else(|| format!("--run-as {user}: no such user"))?;
        if u.uid.is_root() {
            return Err(format!(
                "--run-as {user}: that is root; tasks would run with every right"
            ));
        }
        // Root only: a worker that switched users by capabilities (CAP_SETUID,
        // CAP_SETGID) would hand them on to its tasks through the ambient set,
        // and could neither signal nor clean up after them without CAP_KILL
        // and CAP_FOWNER: root is the one case where all of that holds.
        if !nix::unistd::geteuid().is_root() {
            return Err(format!(
                "--run-as {user} needs the worker to run as root (to start, signal and clean up \
                 after tasks of another user); it runs as uid {}",
                nix::unistd::geteuid()
            ));
        }
        let cname = std::ffi::CString::new(u.name.clone())
            .map_err(|_| format!("--run-as {user}: the name holds a NUL byte"))?;
        let groups: Vec<u32> = nix::unistd::getgrouplist(&cname, u.gid)
            .map_err(|e| format!("--run-as {user}: cannot list its groups: {e}"))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        if groups.contains(&0) {
            return Err(format!(
                "--run-as {user}: the user is in group 0 (root), whose files tasks could then read"
            ));
        }
        Ok(RunAs {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            groups,
            home: u.dir.display().to_string(),
            shell: u.shell.display().to_string(),
        })
    }
}

/// How task processes start: their user and the environment they inherit.
#[derive(Clone, Debug)]
pub struct TaskEnv {
    /// Names of the worker's environment a task does not get.
    remove: Vec<OsString>,
    run_as: Option<RunAs>,
}

impl TaskEnv {
    /// From this process's environment, with the names the operator allows
    /// beyond [`ALLOWED`]. A `GALE_*` name among them is an error.
    pub fn new(extra: &[String], run_as: Option<RunAs>) -> Result<TaskEnv, String> {
        if let Some(bad) = extra.iter().find(|e| e.starts_with("GALE_")) {
            return Err(format!(
                "--task-env {bad}: Gale's own settings never reach a task (a task that could \
                 read GALE_DATABASE_URL would own the cluster)"
            ));
        }
        if let Some(bad) = extra
            .iter()
            .find(|e| e.is_empty() || e.contains('=') || e.contains('\0'))
        {
            return Err(format!(
                "--task-env {bad:?}: not an environment variable name"
            ));
        }
        Ok(TaskEnv::keeping(extra, run_as))
    }

    /// [`ALLOWED`] only, as the worker's own user.
    pub fn filtered() -> TaskEnv {
        TaskEnv::keeping(&[], None)
    }

    fn keeping(extra: &[String], run_as: Option<RunAs>) -> TaskEnv {
        let remove = std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| !allowed(k, extra))
            .collect();
        TaskEnv { remove, run_as }
    }

    pub fn run_as(&self) -> Option<&RunAs> {
        self.run_as.as_ref()
    }

    /// The uid task processes run as.
    pub fn task_uid(&self) -> u32 {
        self.run_as
            .as_ref()
            .map_or_else(|| nix::unistd::geteuid().as_raw(), |u| u.uid)
    }

    /// Applies it to a task's command, to start in `cwd`, before the DAG's
    /// `env` and the task variables are set on it.
    pub fn apply(&self, cmd: &mut tokio::process::Command, cwd: &std::path::Path) {
        for name in &self.remove {
            cmd.env_remove(name);
        }
        let Some(r) = &self.run_as else {
            cmd.current_dir(cwd);
            return;
        };
        cmd.env("HOME", &r.home)
            .env("USER", &r.name)
            .env("LOGNAME", &r.name)
            .env("SHELL", &r.shell);
        let groups: Vec<nix::unistd::Gid> = r
            .groups
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        let (uid, gid) = (
            nix::unistd::Uid::from_raw(r.uid),
            nix::unistd::Gid::from_raw(r.gid),
        );
        use std::os::unix::ffi::OsStrExt;
        // A path holding a NUL byte cannot be entered: the start fails.
        let dir = std::ffi::CString::new(cwd.as_os_str().as_bytes()).ok();
        // The groups first, while the process may still change them, then
        // the group, then the user (the standard library's `uid`/`gid`
        // would switch the user before any hook could set the groups).
        // SAFETY: between fork and exec only setgroups(2), setgid(2),
        // setuid(2) and chdir(2) run, which are async-signal-safe; the
        // vector and the path were built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
                nix::unistd::chdir(dir.as_deref().ok_or(nix::errno::Errno::EINVAL)?)?;
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_names_and_never_gale_settings() {
        let extra = vec!["AWS_PROFILE".to_owned()];
        for (name, ok) in [
            ("PATH", true),
            ("LC_ALL", true),
            ("AWS_PROFILE", true),
            ("GALE_DATABASE_URL", false),
            ("DATABASE_URL", false),
            ("PGPASSWORD", false),
            ("SSH_AUTH_SOCK", false),
        ] {
            assert_eq!(allowed(OsStr::new(name), &extra), ok, "{name}");
        }
    }

    #[test]
    fn an_operator_cannot_allow_a_gale_setting() {
        let err = TaskEnv::new(&["GALE_DATABASE_URL".to_owned()], None).unwrap_err();
        assert!(err.contains("never reach a task"), "{err}");
        let err = TaskEnv::new(&["A=B".to_owned()], None).unwrap_err();
        assert!(err.contains("not an environment variable name"), "{err}");
    }
}
