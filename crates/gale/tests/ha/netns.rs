//! A network namespace for a worker that is then cut off from the network,
//! on loopback-range addresses only: a veth pair, `127.200.X.1/30` on the
//! host's end and `127.200.X.2/30` on the namespace's (`route_localnet` on
//! both ends lets 127/8 travel over them). The PostgreSQL servers listen on
//! 127.0.0.1 only, so the test forwards `127.200.X.1:PORT` to
//! `127.0.0.1:PORT` for each of them (a TCP relay in this process).
//!
//! The cut is silent, as a pulled cable: the host's end goes down (the
//! namespace's end loses its carrier and drops every packet) and a blackhole
//! route on the host drops what the relay sends back (without it the host
//! would deliver `127.200.X.2` to its own loopback and reset the relay's
//! connections). Needs root (CAP_NET_ADMIN) and `ip` (iproute2).

use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::util::{run, tail};

fn ip(args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run(cmd, Duration::from_secs(20));
    if out.ok {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), out.stderr.trim()))
    }
}

/// A network namespace joined to the host by a veth pair.
pub struct Netns {
    pub name: String,
    host_if: String,
    pub host_ip: String,
    pub ns_ip: String,
    cut: AtomicBool,
}

impl Netns {
    /// Creates it; `tag` (0..=249) picks the addresses and names, so that
    /// clusters on different port bases do not collide.
    pub fn create(tag: u16) -> Result<Netns, String> {
        let name = format!("gale-ha-{tag}");
        let host_if = format!("galeha{tag}h");
        let ns_if = format!("galeha{tag}n");
        let net = format!("127.200.{tag}");
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: format!("{net}.1"),
            ns_ip: format!("{net}.2"),
            cut: AtomicBool::new(false),
        };
        // Leftovers of a killed earlier run on the same tag.
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &host_if]);
        let _ = ip(&["route", "del", "blackhole", &format!("{net}.2/32")]);
        ip(&["netns", "add", &name])?;
        let host_cidr = format!("{net}.1/30");
        let ns_cidr = format!("{net}.2/30");
        let steps: Vec<Vec<&str>> = vec![
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &name,
            ],
            vec!["addr", "add", &host_cidr, "dev", &host_if],
            vec!["-n", &name, "addr", "add", &ns_cidr, "dev", &ns_if],
            vec!["-n", &name, "link", "set", "lo", "up"],
            vec!["-n", &name, "link", "set", &ns_if, "up"],
            vec!["link", "set", &host_if, "up"],
        ];
        for step in steps {
            ip(&step)?;
        }
        // 127/8 may leave and enter through these two interfaces.
        std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{host_if}/route_localnet"),
            "1",
        )
        .map_err(|e| format!("route_localnet on {host_if}: {e}"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &name, "sh", "-c"]).arg(format!(
            "echo 1 > /proc/sys/net/ipv4/conf/{ns_if}/route_localnet"
        ));
        let out = run(cmd, Duration::from_secs(20));
        if !out.ok {
            return Err(format!("route_localnet on {ns_if}: {out}"));
        }
        Ok(ns)
    }

    /// `program` run inside the namespace (`ip netns exec` execs it, so the
    /// child's pid is the program's).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Cuts the namespace off: nothing goes in or out, and nobody is told.
    pub fn cut(&self) -> Result<(), String> {
        ip(&["route", "add", "blackhole", &format!("{}/32", self.ns_ip)])?;
        self.cut.store(true, Ordering::SeqCst);
        ip(&["link", "set", &self.host_if, "down"])
    }

    /// Joins it to the host again.
    pub fn heal(&self) -> Result<(), String> {
        ip(&["link", "set", &self.host_if, "up"])?;
        ip(&["route", "del", "blackhole", &format!("{}/32", self.ns_ip)])?;
        self.cut.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.cut.load(Ordering::SeqCst) {
            let _ = ip(&["route", "del", "blackhole", &format!("{}/32", self.ns_ip)]);
        }
        // Deleting the namespace deletes its end of the pair, and so the pair.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// TCP relays `host_ip:PORT -> 127.0.0.1:PORT`, one per port.
pub struct Relay {
    ports: Vec<u16>,
    host_ip: String,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(host_ip: &str, ports: &[u16]) -> Result<Relay, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        for &port in ports {
            let listener = TcpListener::bind((host_ip, port))
                .map_err(|e| format!("binding {host_ip}:{port}: {e}"))?;
            let (stop, conns) = (stop.clone(), conns.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (Ok(c1), Ok(s1), Ok(c2), Ok(s2)) = (
                        client.try_clone(),
                        server.try_clone(),
                        client.try_clone(),
                        server.try_clone(),
                    ) else {
                        continue;
                    };
                    {
                        let mut all = conns.lock().unwrap_or_else(|p| p.into_inner());
                        all.push(c1);
                        all.push(s1);
                    }
                    std::thread::spawn(move || pipe(client, server));
                    std::thread::spawn(move || pipe(s2, c2));
                }
            });
        }
        Ok(Relay {
            ports: ports.to_vec(),
            host_ip: host_ip.to_owned(),
            stop,
            conns,
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wakes each accept loop so that it sees `stop`.
        for &port in &self.ports {
            let _ = TcpStream::connect_timeout(
                &format!("{}:{port}", self.host_ip)
                    .parse()
                    .expect("a socket address"),
                Duration::from_millis(200),
            );
        }
    }
}

/// Copies bytes one way until either side closes, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A `gale` process the test started itself (in its own process group, its
/// output to a log file), SIGKILLed with its group when dropped.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    pid_file: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Starts `cmd`; its pid goes to `pid_file` too (for the cluster's
    /// watchdog, should the test process die).
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf, pid_file: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("creating a process log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("cloning a file handle"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        if let Some(dir) = pid_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&pid_file, child.id().to_string());
        Proc {
            name: name.to_owned(),
            log,
            pid_file,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Panics (with its log) if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "{} exited ({status}) while the test ran:\n{}",
                self.name,
                self.tail(60)
            );
        }
    }

    /// SIGTERM, and waits up to `limit` for it to drain and exit; SIGKILL after.
    /// Whether it exited on its own.
    pub fn stop(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        let mut exited = false;
        while start.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !exited {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.pid_file);
        exited
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&self.pid_file);
        }
    }
}
