//! DAGs without a shared DAG folder: pushed through the CLI or the API,
//! followed from a git repository by several schedulers, side by side with a
//! folder's DAGs (one DAG id, one source), and their versions compared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Home, wait_until};
use crate::pg::Pg;
use crate::web::{self, Web};

/// A DAG whose one task says which version it is.
fn etl(version: &str) -> String {
    format!(
        "description: the {version} load\nschedule: \"0 2 * * *\"\ntasks:\n  load:\n    run: echo load {version}\n"
    )
}

/// A file that does not load: the task it needs does not exist (line 4).
const BROKEN: &str = "tasks:\n  a:\n    run: echo a\n    needs: [missing]\n";

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("creating a folder");
    std::fs::write(path, text).expect("writing a file");
}

fn dag_row(home: &Home, dag_id: &str) -> Value {
    let list = home.json(&["dags", "list"]);
    list["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .find(|d| d["dag_id"] == dag_id)
        .unwrap_or_else(|| panic!("no DAG {dag_id} in {list:#}"))
        .clone()
}

fn version_of(home: &Home, dag_id: &str) -> String {
    let shown = home.json(&["dags", "show", dag_id]);
    shown["dag"]["version_hash"]
        .as_str()
        .expect("a version")
        .to_owned()
}

/// The import errors `gale dags errors` lists (it exits 1 when there are some).
fn import_errors(home: &Home) -> Vec<Value> {
    let out = home.gale(&["dags", "errors", "--output", "json"]);
    assert!(out.code == 0 || out.code == 1, "{out}");
    out.json().as_array().expect("an array").clone()
}

/// Pushes through the CLI and the API: a push stores versions with who
/// pushed them, the same content again changes nothing, a broken file
/// refuses the whole push with its location and leaves the last good
/// version running, viewers may not push, and a folder file with a pushed
/// DAG's id is one import error (reported once, no version flip) while a
/// push of a folder DAG's id is refused.
#[test]
fn pushed_dags_are_checked_stored_and_kept() {
    let home = Home::new();
    let (standalone, web) = web::start(&home);
    let local = home.path().join("to-push");
    write(&local, "etl.yaml", &etl("v1"));
    write(
        &local,
        "team/report.yaml",
        "tasks:\n  r:\n    run: echo report\n",
    );
    let dir = local.display().to_string();

    let out = home.ok(&["dags", "push", &dir]);
    assert!(
        out.stdout
            .contains("pushed etl.yaml (etl, 1 tasks): new version"),
        "{out}"
    );
    assert!(
        out.stdout.contains("pushed team/report.yaml (report"),
        "{out}"
    );
    let row = dag_row(&home, "etl");
    assert_eq!(row["file"], "push:etl.yaml", "{row}");
    let source = row["source"].as_str().expect("a source");
    assert!(source.starts_with("push by cli:"), "{row}");
    assert_eq!(dag_row(&home, "report")["file"], "push:team/report.yaml");
    let v1 = version_of(&home, "etl");

    // The same content again: nothing changes.
    let again = home.json(&["dags", "push", &dir]);
    assert_eq!(again["dags"][0]["changed"], false, "{again}");
    assert_eq!(again["dags"][0]["new_version"], false, "{again}");
    assert_eq!(version_of(&home, "etl"), v1);

    // A broken file refuses the whole push, naming where.
    write(&local, "etl.yaml", &etl("v2"));
    write(&local, "bad.yaml", BROKEN);
    let out = home.gale(&["dags", "push", &dir]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("bad.yaml:4:"), "{out}");
    assert!(out.stderr.contains("missing"), "{out}");
    assert!(out.stderr.contains("nothing was pushed"), "{out}");
    assert_eq!(version_of(&home, "etl"), v1, "the last good version stays");
    std::fs::remove_file(local.join("bad.yaml")).expect("removing bad.yaml");
    let run = home.trigger("etl", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "success");
    assert!(home.logs(run, "load", None).contains("load v1"));

    // Through the API: a YAML body, then the errors of a JSON body.
    let yaml = web.send(
        "POST",
        "/api/v1/dags?file=etl.yaml",
        &[("content-type", "application/yaml")],
        Some(etl("v2").into_bytes()),
    );
    let body = yaml.expect(200);
    assert_eq!(body["dags"][0]["dag_id"], "etl", "{body}");
    assert_eq!(body["dags"][0]["changed"], true, "{body}");
    let v2 = version_of(&home, "etl");
    assert_ne!(v2, v1);
    let refused = web.post(
        "/api/v1/dags",
        &json!({"files": [
            {"name": "etl.yaml", "content": etl("v3")},
            {"name": "broken.yaml", "content": BROKEN},
        ]}),
    );
    refused.problem(422);
    let problem = refused.json();
    let errors = problem["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("broken.yaml:4:"))),
        "{problem}"
    );
    assert_eq!(
        version_of(&home, "etl"),
        v2,
        "a refused push stores nothing"
    );
    let run = home.trigger("etl", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "success");
    assert!(home.logs(run, "load", None).contains("load v2"));
    let versions = web.get("/api/v1/dags/etl/versions").expect(200);
    let versions = versions.as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0]["source"]["kind"], "push", "{versions:?}");
    assert_eq!(versions[0]["source"]["by"], "admin", "{versions:?}");

    // Bad requests say what is wrong.
    let no_name = web.send(
        "POST",
        "/api/v1/dags",
        &[("content-type", "application/yaml")],
        Some(etl("v3").into_bytes()),
    );
    assert!(no_name.problem(400).contains("?file="));
    let text = web.send(
        "POST",
        "/api/v1/dags",
        &[("content-type", "text/plain")],
        Some(b"x".to_vec()),
    );
    text.problem(415);
    let escape = web.post(
        "/api/v1/dags",
        &json!({"files": [{"name": "../etl.yaml", "content": etl("v3")}]}),
    );
    escape.problem(422);
    let errors = escape.json()["errors"].to_string();
    assert!(errors.contains("relative path without"), "{errors}");

    // Viewers may not push; operators may.
    let viewer = web.with_token(&web::user_token(&home, "vera", "viewer"));
    let denied = viewer.post(
        "/api/v1/dags",
        &json!({"files": [{"name": "etl.yaml", "content": etl("v3")}]}),
    );
    denied.problem(403);
    let operator = web.with_token(&web::user_token(&home, "otto", "operator"));
    let same = operator.post(
        "/api/v1/dags",
        &json!({"files": [{"name": "etl.yaml", "content": etl("v2")}]}),
    );
    assert_eq!(same.expect(200)["dags"][0]["changed"], false);
    assert_eq!(version_of(&home, "etl"), v2);

    // A folder file claiming the pushed id: one import error, said once,
    // and the pushed version stays.
    home.write_dag("etl.yaml", &etl("folder"));
    let errors = wait_until("the folder file's import error", || {
        let errors = import_errors(&home);
        (!errors.is_empty()).then_some(errors)
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["errors"][0].as_str().expect("an error");
    assert!(message.contains("the pushed file etl.yaml"), "{message}");
    let first = errors[0]["updated_at"].clone();
    // Several scans later (every 2 s): the same one error, not reported again.
    std::thread::sleep(Duration::from_secs(7));
    let errors = import_errors(&home);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["updated_at"], first, "reported once");
    assert_eq!(version_of(&home, "etl"), v2, "no version flip");
    let said = standalone.log().matches("duplicate DAG id \"etl\"").count();
    assert_eq!(said, 1, "logged once:\n{}", standalone.log());

    // A push of a folder DAG's id is refused, naming the folder's file.
    home.write_dag("local.yaml", "tasks:\n  t:\n    run: echo local\n");
    home.wait_dag("local");
    write(&local, "local.yaml", "tasks:\n  t:\n    run: echo pushed\n");
    let file = local.join("local.yaml").display().to_string();
    let out = home.gale(&["dags", "push", &file]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("local.yaml already defines it"),
        "{out}"
    );

    // Deleting a pushed DAG drops it for good (no file brings it back).
    let deleted = home.json(&["dags", "delete", "report", "--yes"]);
    assert_eq!(deleted["file_present"], false, "{deleted}");
    assert!(deleted["note"].is_null(), "{deleted}");
    let audit = home.json(&["audit", "list", "--action", "dag.push"]);
    let outcomes: Vec<&str> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"success") && outcomes.contains(&"failure"),
        "{audit}"
    );
    drop(standalone);
}

/// `git` in `dir`, as a test's committer, failing the test on an error.
fn git(dir: &Path, args: &[&str], date: Option<&str>) -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Tess", "-c", "user.email=tess@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    if let Some(date) = date {
        cmd.env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_DATE", date);
    }
    let out = cmd.output().expect("running git");
    assert!(
        out.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository `origin.git` in `repos`, and a work tree `work` beside it.
fn new_repo(repos: &Path) -> (PathBuf, PathBuf) {
    let origin = repos.join("origin.git");
    let work = repos.join("work");
    std::fs::create_dir_all(&origin).expect("creating the bare repository");
    git(&origin, &["init", "-q", "--bare"], None);
    std::fs::create_dir_all(&work).expect("creating the work tree");
    git(&work, &["init", "-q"], None);
    (origin, work)
}

/// Commits `files` (name, text; `None` removes it) in the work tree `work`
/// at `date`, and pushes to `remotes`. Returns the commit.
fn commit(work: &Path, files: &[(&str, Option<&str>)], date: &str, remotes: &[&Path]) -> String {
    for (name, text) in files {
        match text {
            Some(text) => write(work, name, text),
            None => {
                git(work, &["rm", "-q", name], None);
            }
        }
    }
    git(work, &["add", "-A"], None);
    git(work, &["commit", "-q", "-m", date], Some(date));
    for remote in remotes {
        let remote = remote.display().to_string();
        git(work, &["push", "-q", &remote, "HEAD:refs/heads/main"], None);
    }
    git(work, &["rev-parse", "HEAD"], None)
}

fn source_commit(pg: &Pg<'_>, name: &str) -> Option<(String, String)> {
    let sources = pg.json(&["dags", "sources"]);
    let s = sources
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)?
        .clone();
    Some((
        s["commit"].as_str()?.to_owned(),
        s["applied_by"].as_str()?.to_owned(),
    ))
}

/// Two schedulers follow one git repository (a local bare one), one of them
/// through a mirror that lags: a commit changes a DAG and both converge; a
/// run made before the commit runs the old version and one made after the
/// new; the lagging scheduler never stores the older commit again, and the
/// one that fetched a newer commit first stores it while the other leaves it;
/// a broken file is the commit's import error, naming where, and the DAG
/// keeps its last good version.
#[test]
fn two_schedulers_follow_one_git_repository() {
    let test = "two_schedulers_follow_one_git_repository";
    let Some(server) = gale_pgtest::server_or_skip(test) else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating the database");
    let home = Home::new();
    let pg = Pg::new(&home, &url);
    let repos = home.path().join("repos");
    let (origin, work) = new_repo(&repos);
    let mirror = repos.join("mirror.git");
    std::fs::create_dir_all(&mirror).expect("creating the mirror");
    git(&mirror, &["init", "-q", "--bare"], None);
    write(&work, "README.md", "not a DAG\n");
    let c1 = commit(
        &work,
        &[
            ("dags/etl.yaml", Some(&slow_etl("v1"))),
            ("dags/old.yaml", Some("tasks:\n  o:\n    run: echo old\n")),
        ],
        "2026-03-01T10:00:00Z",
        &[&origin, &mirror],
    );

    // The lagging scheduler fetches `origin` from the mirror (git's own URL
    // rewriting, in its environment only).
    let lag_config = repos.join("lag.gitconfig");
    std::fs::write(
        &lag_config,
        format!(
            "[url \"{}\"]\n\tinsteadOf = {}\n[protocol \"file\"]\n\tallow = always\n",
            mirror.display(),
            origin.display()
        ),
    )
    .expect("writing the lagging scheduler's git config");
    let origin_url = origin.display().to_string();
    let args = [
        "scheduler",
        "--dags-git",
        origin_url.as_str(),
        "--dags-git-ref",
        "main",
        "--dags-git-path",
        "dags",
        "--dags-git-name",
        "pipelines",
        "--dags-git-interval",
        "1s",
    ];
    let (home_a, home_b, home_w) = (Home::new(), Home::new(), Home::new());
    let mut a = Pg::new(&home_a, &url).start_registered("scheduler-a", &args);
    let lag = lag_config.display().to_string();
    let mut b = Pg::new(&home_b, &url).start_with_env(
        "scheduler-b",
        &args,
        &[("GIT_CONFIG_GLOBAL", lag.as_str())],
    );
    b.wait_registered();
    let _worker = Pg::new(&home_w, &url).start_registered("worker", &["worker"]);
    let (id_a, id_b) = (pg.node_id(a.pid()), pg.node_id(b.pid()));
    pg.wait_dags(&["etl", "old"]);
    let (stored, _) = wait_until("c1 stored", || source_commit(&pg, "pipelines"));
    assert_eq!(stored, c1);
    let listed = pg.json(&["dags", "list"]);
    let etl_row = listed["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .find(|d| d["dag_id"] == "etl")
        .expect("etl")
        .clone();
    assert_eq!(etl_row["file"], "git:pipelines/dags/etl.yaml", "{etl_row}");
    assert!(
        etl_row["source"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("git pipelines@{}", &c1[..12]))),
        "{etl_row}"
    );

    // A run made before the commit, still running when it lands.
    let before = pg.trigger("etl", &[]);
    wait_until("the first run to start", || {
        let tasks = pg.tasks(before);
        (tasks[0]["state"] == "running").then_some(())
    });

    // c2 reaches only `origin`: the first scheduler stores it; the lagging
    // one keeps fetching c1 and stores nothing.
    let c2 = commit(
        &work,
        &[
            ("dags/etl.yaml", Some(&slow_etl("v2"))),
            ("dags/old.yaml", None),
        ],
        "2026-03-01T11:00:00Z",
        &[&origin],
    );
    let by = wait_until("c2 stored", || {
        let (commit, by) = source_commit(&pg, "pipelines")?;
        (commit == c2).then_some(by)
    });
    assert_eq!(by, id_a, "the scheduler that fetched c2 stored it");
    let after = pg.trigger("etl", &[]);
    for run in [before, after] {
        wait_until(&format!("run {run} to finish"), || {
            let state = pg.json(&["runs", "show", &run.to_string()])["run"]["state"].clone();
            (state == "success").then_some(())
        });
    }
    let log = |run: i64| pg.ok(&["tasks", "logs", &run.to_string(), "load"]).stdout;
    assert!(log(before).contains("load v1"), "{}", log(before));
    assert!(log(after).contains("load v2"), "{}", log(after));
    let old = pg.json(&["dags", "list"])["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .find(|d| d["dag_id"] == "old")
        .expect("old is still listed")
        .clone();
    assert_eq!(
        old["active"], false,
        "a DAG the commit removed is retired: {old}"
    );
    // Several of the lagging scheduler's fetches: it never goes back.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        source_commit(&pg, "pipelines").map(|c| c.0),
        Some(c2.clone())
    );
    let shown = pg.json(&["dags", "show", "etl"]);
    assert!(
        shown["source"]
            .as_str()
            .is_some_and(|s| s.contains("load v2")),
        "{shown}"
    );

    // c3 reaches the mirror first: the lagging scheduler stores it, and the
    // other (still at c2) leaves it alone.
    let c3 = commit(
        &work,
        &[("dags/etl.yaml", Some(&slow_etl("v3")))],
        "2026-03-01T12:00:00Z",
        &[&mirror],
    );
    let by = wait_until("c3 stored", || {
        let (commit, by) = source_commit(&pg, "pipelines")?;
        (commit == c3).then_some(by)
    });
    assert_eq!(by, id_b, "the scheduler that fetched c3 first stored it");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        source_commit(&pg, "pipelines").map(|c| c.0),
        Some(c3.clone())
    );

    // A broken file: the commit's import error, with its location; etl
    // keeps its last good version.
    let c4 = commit(
        &work,
        &[("dags/etl.yaml", Some(BROKEN))],
        "2026-03-01T13:00:00Z",
        &[&origin, &mirror],
    );
    wait_until("c4 stored", || {
        let (commit, _) = source_commit(&pg, "pipelines")?;
        (commit == c4).then_some(())
    });
    let errors = pg.gale(&["dags", "errors", "--output", "json"]).json();
    let errors = errors.as_array().expect("errors").clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["errors"][0].as_str().expect("an error");
    assert!(
        message.starts_with("git:pipelines/dags/etl.yaml:4:"),
        "{message}"
    );
    let shown = pg.json(&["dags", "show", "etl"]);
    assert_eq!(shown["dag"]["active"], true, "{shown}");
    assert!(
        shown["source"]
            .as_str()
            .is_some_and(|s| s.contains("load v3")),
        "{shown}"
    );

    for role in [&mut a, &mut b] {
        role.assert_running();
    }
}

/// `etl` whose task takes a few seconds, so a run made before a commit is
/// still running when the commit lands.
fn slow_etl(version: &str) -> String {
    format!("tasks:\n  load:\n    run: sleep 2; echo load {version}\n")
}

/// A git source beside a DAG folder, in one standalone: the git DAGs are
/// stored from the commit there at start; a folder file claiming a git DAG's
/// id is one import error and no flip; a long poll interval waits until the
/// webhook asks for a fetch (operators may, viewers may not, an unknown
/// source is 404); a file removed from the repository retires its DAG.
#[test]
fn a_git_source_beside_a_folder_and_its_webhook() {
    let home = Home::new();
    let repos = home.path().join("repos");
    let (origin, work) = new_repo(&repos);
    let c1 = commit(
        &work,
        &[
            ("etl.yaml", Some(&etl("v1"))),
            ("extra/report.yaml", Some("tasks:\n  r:\n    run: echo r\n")),
            (".github/ci.yaml", Some("not: a DAG\n")),
        ],
        "2026-03-01T10:00:00Z",
        &[&origin],
    );
    let dags = home.dags().display().to_string();
    let origin_url = origin.display().to_string();
    let standalone = home.start_with(&[
        "--dags-folder",
        &dags,
        "--no-examples",
        "--dags-git",
        &origin_url,
        "--dags-git-interval",
        "1h",
    ]);
    let web = web::connect(&home, &standalone);
    home.wait_dag("etl");
    home.wait_dag("report");
    let sources = web.get("/api/v1/sources").expect(200);
    assert_eq!(sources[0]["name"], "origin", "{sources}");
    assert_eq!(sources[0]["commit"], c1.as_str(), "{sources}");
    assert!(
        import_errors(&home).is_empty(),
        "hidden folders are not read: {:?}",
        import_errors(&home)
    );

    // A folder file with the git DAG's id: one import error, no flip.
    let v1 = version_of(&home, "etl");
    home.write_dag("etl.yaml", &etl("folder"));
    let errors = wait_until("the folder file's import error", || {
        let errors = import_errors(&home);
        (!errors.is_empty()).then_some(errors)
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["errors"][0].as_str().expect("an error");
    assert!(message.contains("git source origin"), "{message}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(import_errors(&home).len(), 1);
    assert_eq!(version_of(&home, "etl"), v1, "no version flip");
    std::fs::remove_file(home.dags().join("etl.yaml")).expect("removing the folder file");

    // A commit waits for the next poll (an hour) ...
    let c2 = commit(
        &work,
        &[("etl.yaml", Some(&etl("v2"))), ("extra/report.yaml", None)],
        "2026-03-01T11:00:00Z",
        &[&origin],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        web.get("/api/v1/sources").expect(200)[0]["commit"],
        c1.as_str()
    );
    // ... unless the webhook asks for it.
    let viewer = web.with_token(&web::user_token(&home, "vic", "viewer"));
    viewer
        .post("/api/v1/dags/sources/origin/refresh", &json!({}))
        .problem(403);
    web.post("/api/v1/dags/sources/nope/refresh", &json!({}))
        .problem(404);
    let hook = web.post("/api/v1/dags/sources/origin/refresh", &json!({}));
    assert_eq!(hook.status, 202, "{}", hook.text());
    wait_until("c2 stored after the webhook", || {
        let sources = web.get("/api/v1/sources").expect(200);
        (sources[0]["commit"] == c2.as_str()).then_some(())
    });
    assert_ne!(version_of(&home, "etl"), v1);
    assert_eq!(
        dag_row(&home, "report")["active"],
        false,
        "removed from the repository"
    );
    let run = home.trigger("etl", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "success");
    assert!(home.logs(run, "load", None).contains("load v2"));
    drop(standalone);
}

/// Three nodes on PostgreSQL, none with a DAG folder: a DAG pushed through
/// node 1's API is scheduled and runs; node 1 is killed; node 2 keeps
/// scheduling it (its next slot's run) and takes the next push.
#[test]
fn three_nodes_without_a_dag_folder_take_pushes_through_any_node() {
    let test = "three_nodes_without_a_dag_folder_take_pushes_through_any_node";
    let Some(server) = gale_pgtest::server_or_skip(test) else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating the database");
    let home = Home::new();
    let pg = Pg::new(&home, &url);
    let node_args = [
        "node",
        "--attempt-lease",
        "3s",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ];
    let homes: Vec<Home> = (0..3).map(|_| Home::new()).collect();
    let mut nodes: Vec<_> = homes
        .iter()
        .enumerate()
        .map(|(i, h)| Pg::new(h, &url).start_registered(&format!("node-{}", i + 1), &node_args))
        .collect();
    for n in &nodes {
        assert!(n.log().contains("DAG folder none"), "{}", n.log());
    }
    let webs: Vec<Web> = nodes
        .iter()
        .map(|n| Web::new(&web::wait_url("gale node", || n.log())))
        .collect();
    pg.ok(&["users", "create", "deployer", "--role", "operator"]);
    let token = pg.ok(&["tokens", "create", "--user", "deployer", "--name", "ci"]);
    let token = token.stdout.trim().to_owned();
    let webs: Vec<Web> = webs.iter().map(|w| w.with_token(&token)).collect();

    // Every minute; the newest slot's run is made at once.
    let every_minute = |version: &str| {
        format!(
            "schedule: \"* * * * *\"\nstart_date: 2026-01-01\ncatchup: false\nmax_active_runs: 3\n\
             tasks:\n  tick:\n    run: echo tick {version}\n"
        )
    };
    let pushed = webs[0].post(
        "/api/v1/dags",
        &json!({"files": [{"name": "ticker.yaml", "content": every_minute("v1")}]}),
    );
    assert_eq!(pushed.expect(200)["dags"][0]["changed"], true);
    let scheduled = |pg: &Pg<'_>| -> Vec<Value> {
        pg.json(&["runs", "list", "--dag", "ticker"])
            .as_array()
            .expect("runs")
            .iter()
            .filter(|r| r["run_type"] == "scheduled")
            .cloned()
            .collect()
    };
    let first = wait_until("the first scheduled run to succeed", || {
        let runs = scheduled(&pg);
        let done = runs.iter().find(|r| r["state"] == "success")?;
        Some(done["logical_date"].as_str()?.to_owned())
    });

    // Node 1 dies; node 2 takes the next push and the DAG keeps its schedule.
    nodes[0].crash();
    let pushed = webs[1].post(
        "/api/v1/dags",
        &json!({"files": [{"name": "ticker.yaml", "content": every_minute("v2")}]}),
    );
    let body = pushed.expect(200);
    assert_eq!(body["dags"][0]["changed"], true, "{body}");
    // The next slot (at most a minute away) runs the new version.
    let next = wait_until("a scheduled run after node 1 died", || {
        scheduled(&pg)
            .into_iter()
            .find(|r| r["state"] == "success" && r["logical_date"].as_str() > Some(first.as_str()))
    });
    let run = next["run_id"].as_i64().expect("a run id");
    let log = pg.ok(&["tasks", "logs", &run.to_string(), "tick"]).stdout;
    assert!(log.contains("tick v2"), "{log}");
    let manual = webs[2].post("/api/v1/dags/ticker/runs", &json!({}));
    assert!(
        manual.status == 200 || manual.status == 201,
        "{}",
        manual.text()
    );
    for n in nodes.iter_mut().skip(1) {
        n.assert_running();
    }
}

/// A DAG in three versions (scheduled from 2099 on: its only runs are the
/// test's own).
fn versioned(version: u32) -> String {
    let (schedule, extra) = match version {
        1 => ("0 2 * * *", "  b:\n    run: echo b\n"),
        _ => ("0 4 * * *", "  c:\n    needs: [a]\n    run: echo c\n"),
    };
    let description = if version == 3 { "three" } else { "one" };
    format!(
        "description: {description}\nschedule: \"{schedule}\"\nstart_date: 2099-01-01\nparams:\n  db_password: hunter2-v{version}\n\
         tasks:\n  a:\n    run: echo a{}\n{extra}",
        if version == 1 { "" } else { " twice" }
    )
}

/// What changed between versions, in the API and on the source page: the
/// previous version by default, since the newest successful run on request,
/// settings, tasks added, removed and changed, the file's lines; a secret's
/// values only as `***` for a viewer; unknown versions 404.
#[test]
fn version_diffs_in_the_api_and_the_page() {
    let home = Home::new();
    let (standalone, web) = web::start(&home);
    let push = |version: u32| {
        let body = web.post(
            "/api/v1/dags",
            &json!({"files": [{"name": "shop.yaml", "content": versioned(version)}]}),
        );
        body.expect(200);
    };
    push(1);
    let run = home.trigger("shop", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "success");
    push(2);
    push(3);

    // By default: the current version against the one before it.
    let d = web.get("/api/v1/dags/shop/diff").expect(200);
    let fields: Vec<&str> = d["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(fields.contains(&"description"), "{d:#}");
    assert!(!fields.contains(&"schedule"), "{d:#}");
    assert_eq!(d["tasks_added"], json!([]), "{d:#}");
    assert_eq!(d["to"]["source"]["kind"], "push", "{d:#}");

    // Since the last successful run: v1 to v3.
    let d = web
        .get("/api/v1/dags/shop/diff?from=last_success&context=1")
        .expect(200);
    let field = |name: &str| {
        d["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|c| c["field"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no change of {name}: {d:#}"))
    };
    assert_eq!(field("schedule")["before"], "0 2 * * *");
    assert_eq!(field("schedule")["after"], "0 4 * * *");
    assert_eq!(d["tasks_added"], json!(["c"]), "{d:#}");
    assert_eq!(d["tasks_removed"], json!(["b"]), "{d:#}");
    let a = d["tasks_changed"]
        .as_array()
        .expect("tasks_changed")
        .iter()
        .find(|t| t["task_id"] == "a")
        .cloned()
        .expect("a changed");
    assert_eq!(a["changes"][0]["field"], "run", "{a}");
    assert_eq!(a["changes"][0]["after"], "echo a twice", "{a}");
    let lines: Vec<&Value> = d["hunks"]
        .as_array()
        .expect("hunks")
        .iter()
        .flat_map(|h| h.as_array().expect("a hunk").iter())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "added" && l["text"] == "schedule: \"0 4 * * *\""),
        "{d:#}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "removed" && l["old_line"] == 2),
        "{d:#}"
    );

    // A viewer sees the secret param's change only as `***`.
    let viewer = web.with_token(&web::user_token(&home, "vi", "viewer"));
    let masked = viewer.get("/api/v1/dags/shop/diff?from=last_success");
    let text = masked.text();
    assert_eq!(masked.status, 200, "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("***"), "{text}");

    // Bad names.
    web.get("/api/v1/dags/shop/diff?from=deadbeefcafe")
        .problem(404);
    web.get("/api/v1/dags/nope/diff").problem(404);
    web.get("/api/v1/dags/shop/diff?context=99").problem(400);

    // The source page compares the same way.
    crate::ui::create_user(&home, "eve", "viewer", "viewer-pass-1");
    let anon = web.anonymous();
    let (cookie, _) = crate::ui::form_login(&anon, "eve", "viewer-pass-1");
    let page = anon.send(
        "GET",
        "/dags/shop?tab=source&against=last_success",
        &[("cookie", &cookie)],
        None,
    );
    let html = page.text();
    assert_eq!(page.status, 200, "{html}");
    assert!(html.contains("class=\"card version-diff\""), "{html}");
    assert!(html.contains("Tasks added: <code>c</code>"), "{html}");
    assert!(html.contains("Tasks removed: <code>b</code>"), "{html}");
    assert!(html.contains("data-task=\"a\""), "{html}");
    assert!(html.contains("push by admin"), "{html}");
    assert!(!html.contains("hunter2"), "{html}");
    let plain = anon.send("GET", "/dags/shop?tab=source", &[("cookie", &cookie)], None);
    let html = plain.text();
    assert!(html.contains("since the last successful run"), "{html}");
    assert!(
        html.contains("<dd class=\"small dag-source\">push by admin</dd>"),
        "the DAG's facts name its source: {html}"
    );
    let list = anon.send("GET", "/", &[("cookie", &cookie)], None).text();
    assert!(
        list.contains(
            "<span class=\"pill source\" title=\"where its version came from\">push by admin</span>"
        ),
        "{list}"
    );
    assert!(html.contains("class=\"small compare\""), "{html}");
    let missing = anon.send(
        "GET",
        "/dags/shop?tab=source&against=0000000000",
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(missing.status, 404, "{}", missing.text());
    drop(standalone);
}

/// A git server over HTTP with basic authentication: `git http-backend`
/// behind a check of `Authorization`, on a free port it prints first.
const GIT_HTTP_SERVER: &str = r#"
import base64, http.server, os, subprocess, sys
ROOT, USER, PASSWORD = sys.argv[1], sys.argv[2], sys.argv[3]
WANT = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
class Handler(http.server.BaseHTTPRequestHandler):
    def serve(self):
        if self.headers.get("Authorization") != WANT:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = dict(os.environ, GIT_PROJECT_ROOT=ROOT, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), REMOTE_USER=USER,
                   CONTENT_LENGTH=str(len(body)))
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    do_GET = serve
    do_POST = serve
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A git remote over HTTPS-style basic authentication: the password comes
/// from a file or from a Gale connection, reaches git only through its
/// environment (never a log or the command line), and a wrong one is said
/// plainly while nothing is stored.
#[test]
fn a_git_source_behind_a_password() {
    let home = Home::new();
    let repos = home.path().join("repos");
    let (origin, work) = new_repo(&repos);
    commit(
        &work,
        &[("guarded.yaml", Some(&etl("v1")))],
        "2026-03-01T10:00:00Z",
        &[&origin],
    );
    let script = home.path().join("git_http.py");
    std::fs::write(&script, GIT_HTTP_SERVER).expect("writing the git server");
    let secret = "s3cret-Tok3n-9f2a";
    let mut server = Command::new("python3")
        .arg(&script)
        .arg(&repos)
        .args(["bot", secret])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the git server");
    let port = {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("the git server's port");
        line.trim().to_owned()
    };
    let url = format!("http://bot@127.0.0.1:{port}/origin.git");

    // A wrong password: said in the log, nothing stored.
    let wrong = home.path().join("wrong-token");
    std::fs::write(&wrong, "not-it\n").expect("writing a password file");
    let wrong = wrong.display().to_string();
    let dags = home.dags().display().to_string();
    let base = [
        "--dags-folder",
        dags.as_str(),
        "--no-examples",
        "--dags-git",
        url.as_str(),
    ];
    let mut args = base.to_vec();
    args.extend([
        "--dags-git-interval",
        "1s",
        "--dags-git-password-file",
        &wrong,
    ]);
    let standalone = home.start_with(&args);
    let log = wait_until("the refused fetch in the log", || {
        let log = standalone.log();
        log.contains("fetching").then_some(log)
    });
    assert!(
        log.contains("Authentication failed") || log.contains("401"),
        "{log}"
    );
    let listed = home.json(&["dags", "list"]);
    assert_eq!(listed["dags"], json!([]), "{listed}");
    drop(standalone);

    // The right one, from a file: stored; the password is in no log.
    let right = home.path().join("token");
    std::fs::write(&right, format!("{secret}\n")).expect("writing a password file");
    let right = right.display().to_string();
    let mut args = base.to_vec();
    args.extend(["--dags-git-password-file", &right]);
    let standalone = home.start_with(&args);
    home.wait_dag("guarded");
    assert!(!standalone.log().contains(secret), "{}", standalone.log());
    drop(standalone);

    // From a connection, in a home of its own (a fresh clone).
    let other = Home::new();
    other.ok(&[
        "secrets",
        "new-key",
        "--file",
        &other.path().join("secret.key").display().to_string(),
    ]);
    let conn = format!("http://bot:{secret}@git.example.com");
    other.ok(&["connections", "add", "gitbot", "--uri", &conn]);
    let dags = other.dags().display().to_string();
    let standalone = other.start_with(&[
        "--dags-folder",
        &dags,
        "--no-examples",
        "--dags-git",
        &url,
        "--dags-git-connection",
        "gitbot",
    ]);
    other.wait_dag("guarded");
    assert!(!standalone.log().contains(secret), "{}", standalone.log());
    drop(standalone);

    // A password in the URL is refused at start.
    let leaky = format!("http://bot:{secret}@127.0.0.1:{port}/origin.git");
    let out = home.gale(&["scheduler", "--dags-git", &leaky]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("holds a password"), "{out}");
    assert!(!out.stderr.contains(secret), "{out}");
    let _ = server.kill();
    let _ = server.wait();
}
