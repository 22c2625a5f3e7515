//! Start-up recovery on one machine: a Gale process that was killed (kill -9, a
//! crash, a power cut) leaves its attempts `running`. When another process starts
//! on the same host and sees that the dead one's pid is gone, it does not wait for
//! the lease to expire: it kills whatever is left of those attempts' process
//! groups and reaps them at once.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tracing::{info, warn};

use crate::{Scheduler, SchedulerStore};

/// Whether a process with this pid runs on this machine. A zombie does not:
/// it has ended and only waits for its parent to collect its exit status,
/// which an init that does not reap orphans (in some containers) never does.
pub fn pid_alive(pid: i64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => !zombie(pid),
        Err(_) => false,
    }
}

/// Whether /proc shows `pid` as a zombie (false where there is no /proc).
fn zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": comm may contain spaces and parentheses.
    stat.rfind(')')
        .and_then(|i| stat.get(i + 2..))
        .and_then(|rest| rest.chars().next())
        .is_some_and(|state| matches!(state, 'Z' | 'X'))
}

/// Reaps the attempts of dead Gale processes on `host`. Returns how many.
pub async fn recover_dead_local_nodes<S: SchedulerStore + ?Sized>(
    sched: &mut Scheduler<S>,
    host: &str,
    own_node_id: &str,
) -> gale_store::Result<usize> {
    let store = sched.store().clone();
    let mut reaped = 0;
    for node in store.list_nodes().await? {
        if node.host != host
            || node.node_id == own_node_id
            || node.state != "running"
            || pid_alive(node.pid)
        {
            continue;
        }
        info!(node_id = %node.node_id, pid = node.pid, "found a dead gale process on this host; recovering its attempts");
        for ti in store.worker_attempts(&node.node_id.as_str().into()).await? {
            if let Some(attempt) = store
                .attempts(ti.id)
                .await?
                .into_iter()
                .find(|a| a.try_number == ti.try_number)
                && let Some(pid) = attempt.pid.and_then(|p| i32::try_from(p).ok())
                && pid > 0
            {
                // The task ran in its own process group (pgid = pid): end what is left.
                match killpg(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) => {
                        warn!(pgid = pid, ti = %ti.id, "killed the leftover process group of a lost attempt")
                    }
                    Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => {
                        warn!(pgid = pid, error = %e, "could not kill leftover process group")
                    }
                }
            }
            let message = format!(
                "attempt lost: gale process {} (pid {}) on {host} died while running it",
                node.node_id, node.pid
            );
            if sched
                .reap_lost(&ti, &node.node_id, Duration::ZERO, &message)
                .await?
            {
                reaped += 1;
            }
        }
        store
            .set_node_state(&node.node_id, gale_store::NodeState::Dead)
            .await?;
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::pid_alive;

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("starting sleep");
        let pid = i64::from(child.id());
        assert!(pid_alive(pid));
        child.kill().expect("killing sleep");
        // Not waited for yet: a zombie until `wait` collects it.
        let start = std::time::Instant::now();
        while pid_alive(pid) && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !pid_alive(pid),
            "a killed, uncollected child counts as alive"
        );
        child.wait().expect("collecting sleep");
        assert!(!pid_alive(pid));
    }
}
