//! Trust boundaries between a task and the Gale that runs it:
//!
//! - a task that dumps its environment finds no database URL, no password
//!   and no Gale setting of its worker's, only the allowed names, the ones
//!   the operator adds (`--task-env`) and its own `GALE_*` task variables;
//! - run as another user (`--run-as`), it cannot read Gale's configuration
//!   file, its SQLite database, or `/proc/<worker>/environ`;
//! - the SQLite database, its WAL and a GALE_HOME that Gale creates are its
//!   owner's only.

use std::os::unix::fs::PermissionsExt;

use gale_pgtest::server_or_skip;

use crate::harness::Home;
use crate::pg::Pg;

/// A task that prints its whole environment, one `ENV name=value` a line.
const DUMP_ENV: &str = "tasks:\n  dump:\n    run: |\n      env | sed 's/^/ENV /'\n";

fn env_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once("ENV ").map(|(_, rest)| rest.to_owned()))
        .collect()
}

/// `url` with `password` added to its user part.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, host) = rest.split_once('@').expect("a user in the URL");
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn a_task_gets_no_database_url_password_or_gale_setting() {
    const TEST: &str = "a_task_gets_no_database_url_password_or_gale_setting";
    let Some(server) = server_or_skip(TEST) else {
        return;
    };
    let url = with_password(
        &server.create_database("gale").expect("a database"),
        "sekrit-url-password",
    );
    let home = Home::new();
    home.write_dag("dump_env.yaml", DUMP_ENV);
    let pg = Pg::new(&home, &url);
    let dags = home.dags().display().to_string();
    let mut scheduler = pg.start("scheduler", &["scheduler", "--dags-folder", &dags]);
    // Everything a deployment may hand a worker through its environment.
    let mut worker = pg.start_with_env(
        "worker",
        &["worker", "--task-env", "KEEP_ME"],
        &[
            ("GALE_DATABASE_URL", &url),
            ("PGPASSWORD", "sekrit-pgpassword"),
            ("DATABASE_URL", &url),
            ("AWS_SECRET_ACCESS_KEY", "sekrit-aws"),
            ("KEEP_ME", "kept"),
            ("LC_TIME", "C"),
        ],
    );
    scheduler.wait_registered();
    worker.wait_registered();
    pg.wait_dags(&["dump_env"]);
    let run = pg.trigger("dump_env", &[]);
    let state = crate::harness::wait_until("the run to finish", || {
        let v = pg.json(&["runs", "show", &run.to_string()]);
        let state = v["run"]["state"].as_str()?.to_owned();
        matches!(state.as_str(), "success" | "failed").then_some(state)
    });
    let log = pg.ok(&["tasks", "logs", &run.to_string(), "dump"]).stdout;
    assert_eq!(state, "success", "{log}");
    let env = env_lines(&log);
    assert!(env.iter().any(|l| l.starts_with("PATH=")), "{log}");
    assert!(env.iter().any(|l| l == "KEEP_ME=kept"), "{log}");
    assert!(env.iter().any(|l| l == "LC_TIME=C"), "{log}");
    assert!(
        env.iter().any(|l| l == "GALE_DAG_ID=dump_env"),
        "the task variables are set: {log}"
    );
    for secret in ["sekrit", "postgres://", "PGPASSWORD", "DATABASE_URL"] {
        assert!(
            !env.iter().any(|l| l.contains(secret)),
            "{secret} reached the task:\n{log}"
        );
    }
    let task_vars = [
        "GALE_DAG_ID",
        "GALE_RUN_ID",
        "GALE_TASK_ID",
        "GALE_TRY_NUMBER",
        "GALE_LOGICAL_DATE",
        "GALE_OUTPUT",
    ];
    let gale_names: Vec<&String> = env
        .iter()
        .filter(|l| l.starts_with("GALE_"))
        .filter(|l| !task_vars.iter().any(|v| l.starts_with(&format!("{v}="))))
        .collect();
    assert!(
        gale_names.is_empty(),
        "Gale settings reached the task: {gale_names:?}"
    );
}

#[test]
fn an_operator_cannot_hand_tasks_a_gale_setting() {
    let home = Home::new();
    let out = home.gale(&["worker", "--task-env", "GALE_DATABASE_URL"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("--task-env GALE_DATABASE_URL") && out.stderr.contains("never reach"),
        "the refusal names the setting: {out}"
    );
}

#[test]
fn a_task_run_as_another_user_cannot_read_gale_files_or_processes() {
    const TEST: &str = "a_task_run_as_another_user_cannot_read_gale_files_or_processes";
    if !nix::unistd::geteuid().is_root() {
        let why = "starting tasks as another user needs root";
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{TEST}: {why}; CI=true makes this a failure"
        );
        eprintln!("*** SKIPPED {TEST}: {why}");
        return;
    }
    let home = Home::new();
    // Only the files' own modes protect them here, not the directory's.
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755))
        .expect("opening the home's directory");
    let config = home.file("gale.env");
    std::fs::write(
        &config,
        "GALE_DATABASE_URL=postgres://gale:sekrit@db/gale\n",
    )
    .expect("writing a config file");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
        .expect("making the config file private");
    let db = home.file("gale.db");
    home.write_dag(
        "probe.yaml",
        &format!(
            "tasks:\n  probe:\n    cwd: /tmp\n    run: |\n      \
             echo \"UID $(id -u)\"\n      \
             for f in /proc/$PPID/environ {db} {db}-wal {config}; do [ -e \"$f\" ] || echo \"MISSING $f\"; done\n      \
             if cat /proc/$PPID/environ >/dev/null 2>&1; then echo 'READ environ'; else echo 'DENIED environ'; fi\n      \
             if cat {db} >/dev/null 2>&1; then echo 'READ database'; else echo 'DENIED database'; fi\n      \
             if cat {db}-wal >/dev/null 2>&1; then echo 'READ wal'; else echo 'DENIED wal'; fi\n      \
             if cat {config} >/dev/null 2>&1; then echo 'READ config'; else echo 'DENIED config'; fi\n"
        ),
    );
    let dags = home.dags().display().to_string();
    let mut gale = home.start_with_env(
        &[
            "--dags-folder",
            &dags,
            "--no-examples",
            "--run-as",
            "nobody",
        ],
        &[("PGPASSWORD", "sekrit-pgpassword")],
    );
    home.wait_dag("probe");
    let run = home.trigger("probe", &[]);
    let shown = home.wait_run(run);
    assert_eq!(shown["run"]["state"], "success", "{shown:#}");
    let log = home.logs(run, "probe", None);
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("looking nobody up")
        .expect("a user nobody");
    assert!(
        log.contains(&format!("UID {}", nobody.uid)),
        "the task ran as nobody: {log}"
    );
    assert!(!log.contains("MISSING"), "a probed file is missing:\n{log}");
    for what in ["environ", "database", "wal", "config"] {
        assert!(
            log.contains(&format!("DENIED {what}")),
            "the task could read the worker's {what}:\n{log}"
        );
    }
    assert!(
        gale.log().contains("tasks run  as nobody"),
        "the banner says who tasks run as: {}",
        gale.log()
    );
    assert!(gale.exited().is_none(), "gale exited:\n{}", gale.log());
}

#[test]
fn gale_home_and_the_sqlite_files_are_owner_only() {
    let home = Home::new();
    let inner = home.path().join("fresh-home");
    let inner_s = inner.display().to_string();
    let mut gale = home.start_with(&["--home", &inner_s, "--no-examples"]);
    let db = inner.join("gale.db");
    let wal = inner.join("gale.db-wal");
    crate::harness::wait_until("the database and its WAL to exist", || {
        (db.exists() && wal.exists()).then_some(())
    });
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&inner), 0o700, "GALE_HOME");
    assert_eq!(mode(&db), 0o600, "gale.db");
    assert_eq!(mode(&wal), 0o600, "gale.db-wal");
    assert!(gale.exited().is_none(), "gale exited:\n{}", gale.log());
}
