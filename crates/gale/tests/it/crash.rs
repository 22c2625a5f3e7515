//! Crash safety: a standalone killed with SIGKILL mid-task, and a new one started
//! on the same home.

use crate::harness::{Home, alive_in_group, task, wait_until};

#[test]
fn killed_standalone_run_recovers_on_restart() {
    let home = Home::new();
    let pids = home.file("pids");
    home.write_dag(
        "crashy.yaml",
        &format!(
            r#"tasks:
  slow:
    retries: 1
    retry_delay: 1s
    run: |
      echo $$ >> {pids}
      echo "slow try $GALE_TRY_NUMBER"
      if [ "$GALE_TRY_NUMBER" = 1 ]; then
        # Still running at the crash, however slow the machine: the restarted
        # standalone must end this process group.
        sleep 300 &
        sleep 120
      fi
      sleep 5
  after:
    needs: [slow]
    run: echo after
"#
        ),
    );
    let first = home.start();
    home.wait_dag("crashy");
    let run_id = home.trigger("crashy", &[]);

    // Running, with its process recorded and its first line stored.
    let first_pid: i32 = wait_until("slow to be running", || {
        let tasks = home.tasks(run_id);
        let t = task(&tasks, "slow");
        if t["state"] != "running" || t["attempts"][0]["pid"].as_i64().is_none() {
            return None;
        }
        if !home.logs(run_id, "slow", None).contains("slow try 1") {
            return None;
        }
        std::fs::read_to_string(&pids).ok()?.trim().parse().ok()
    });
    first.crash();

    let _second = home.start();
    let v = home.wait_run(run_id);
    assert_eq!(v["run"]["state"], "success", "{v:#}");
    assert_eq!(home.runs("crashy").len(), 1, "no second run was created");

    let tasks = home.tasks(run_id);
    let slow = task(&tasks, "slow");
    assert_eq!(slow["state"], "success");
    assert_eq!(slow["try_number"], 2, "{slow:#}");
    let attempts = slow["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{slow:#}");
    assert_eq!(attempts[0]["state"], "lost", "{slow:#}");
    assert!(
        attempts[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("attempt lost")),
        "{slow:#}"
    );
    assert_eq!(attempts[1]["state"], "success", "{slow:#}");
    // The lost try's log ends saying so.
    let lost_log = home.logs(run_id, "slow", Some(1));
    let last = lost_log.lines().last().unwrap_or("");
    assert!(last.contains("[gale] attempt lost"), "{lost_log}");
    assert_eq!(task(&tasks, "after")["state"], "success");

    let text = std::fs::read_to_string(&pids).expect("pids");
    let started: Vec<i32> = text
        .lines()
        .map(|l| l.trim().parse().expect("pid"))
        .collect();
    assert_eq!(started.len(), 2, "the task ran twice: {text}");
    assert_eq!(started[0], first_pid);
    assert_ne!(started[0], started[1]);
    assert!(home.logs(run_id, "slow", Some(1)).contains("slow try 1"));
    assert!(home.logs(run_id, "slow", Some(2)).contains("slow try 2"));

    // Nothing of the lost attempt runs on: the restarted standalone killed its
    // process group (the shell is the leader), with the `sleep 300` left in it.
    wait_until("the lost attempt's processes to end", || {
        (!alive_in_group(first_pid, first_pid)
            && crate::harness::live_group_members(first_pid).is_empty())
        .then_some(())
    });
}

/// A worker killed with SIGKILL takes its running tasks with it at once (its
/// guard process kills their process groups), before any restart or reap: a
/// retry elsewhere never runs beside them.
#[test]
fn killed_worker_takes_its_running_tasks_with_it() {
    let home = Home::new();
    let pids = home.file("pids");
    home.write_dag(
        "orphan.yaml",
        &format!(
            r#"tasks:
  slow:
    run: |
      echo $$ >> {pids}
      sleep 300 &
      sleep 120
"#
        ),
    );
    let node = home.start();
    home.wait_dag("orphan");
    let run_id = home.trigger("orphan", &[]);
    let pid: i32 = wait_until("slow to be running", || {
        std::fs::read_to_string(&pids).ok()?.trim().parse().ok()
    });
    wait_until("the task's background sleep to start", || {
        (crate::harness::live_group_members(pid).len() >= 2).then_some(())
    });
    node.crash();
    // No gale process is left to end them but the guard.
    wait_until("the killed worker's task group to end", || {
        crate::harness::live_group_members(pid)
            .is_empty()
            .then_some(())
    });
    let tasks = home.tasks(run_id);
    assert_eq!(
        task(&tasks, "slow")["state"],
        "running",
        "nothing reaped it yet"
    );
}
