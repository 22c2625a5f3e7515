//! The soak's processes beside the cluster's three nodes, each there to be
//! the target of a fault the nodes themselves cannot be given:
//!
//! - a `gale worker` in a network namespace, which a fault cuts off;
//! - a `gale worker` reaching PostgreSQL through shaped links (`link.rs`),
//!   which a fault makes slow and lossy, then flapping;
//! - a `gale node` without a webserver (scheduler, DAG processor, worker)
//!   whose wall clock is libfaketime's, read from a file, which a fault
//!   moves minutes away and back while it runs.
//!
//! And PostgreSQL's connections, which a fault takes until it refuses more.
//! All of them serve the default queue, so the load reaches them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::faketime;
use crate::link::{Link, Shape};
use crate::netns::{Netns, Proc, Relay};
use crate::{LEASE, Rng, ci};

/// `gale`'s environment for a process of the soak's own: no Gale setting of
/// the test's but the database URL and home.
fn gale_env(cmd: &mut Command, url: &str, home: &PathBuf) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GALE_") {
            cmd.env_remove(k);
        }
    }
    std::fs::create_dir_all(home).expect("creating a GALE_HOME");
    cmd.env("GALE_DATABASE_URL", url).env("GALE_HOME", home);
}

/// `url` with each `127.0.0.1:PORT` in it replaced by `host:map(PORT)`.
fn map_ports(url: &str, host: &str, mut map: impl FnMut(u16) -> u16) -> String {
    let mut parts = url.split("127.0.0.1:");
    let mut out = parts.next().unwrap_or_default().to_owned();
    for rest in parts {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let port: u16 = digits
            .parse()
            .unwrap_or_else(|_| panic!("no port after 127.0.0.1: in {url}"));
        out += &format!("{host}:{}{}", map(port), &rest[digits.len()..]);
    }
    out
}

/// Why a network namespace cannot be made here, if it cannot.
fn netns_unsupported() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root (ip netns and veth need CAP_NET_ADMIN)".into());
    }
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join("ip").is_file());
    (!found).then(|| "no `ip` command (apt-get install -y iproute2)".into())
}

/// Under `CI=true` a missing fault is a failure; elsewhere a loud line.
fn unavailable(what: &str, why: &str) {
    assert!(
        !ci(),
        "the soak cannot apply {what}: {why}; CI=true makes this a failure"
    );
    eprintln!("*** SOAK: {what} left out: {why}");
}

pub struct Extras {
    /// The cut-off worker, its namespace and the relay into it.
    cut: Option<(Proc, Relay, Netns)>,
    /// The shaped worker and its links, one per database port.
    shaped: (Proc, Vec<Link>),
    /// The skewed node and the file its clock's offset is read from.
    skewed: Option<(Proc, PathBuf)>,
}

impl Extras {
    pub fn start(cluster: &Cluster, seed: u64) -> Extras {
        let dir = cluster.test_dir();
        let spawn = |name: &str, tag: &str, mut cmd: Command, url: &str| {
            cmd.args(["--concurrency", "4"]);
            gale_env(&mut cmd, url, &dir.join(tag));
            let log = dir.join(format!("{tag}.log"));
            cluster.add_log(name, &log);
            Proc::spawn(name, cmd, log, dir.join(format!("procs/{tag}")))
        };

        let cut = match netns_unsupported().map_or_else(|| Netns::create(cluster.netns_tag()), Err)
        {
            Err(why) => {
                unavailable("a worker cut off", &why);
                None
            }
            Ok(ns) => {
                let mut ports = Vec::new();
                let url = map_ports(&cluster.url, &ns.host_ip, |p| {
                    ports.push(p);
                    p
                });
                let relay = Relay::start(&ns.host_ip, &ports)
                    .unwrap_or_else(|e| panic!("starting the relay: {e}"));
                let mut cmd = ns.command(&cluster.gale_bin);
                cmd.arg("worker");
                let w = spawn(
                    "the soak's worker in a network namespace",
                    "cut-worker",
                    cmd,
                    &url,
                );
                Some((w, relay, ns))
            }
        };

        let mut links = Vec::new();
        let url = map_ports(&cluster.url, "127.0.0.1", |p| {
            let link = Link::start(p, seed ^ u64::from(p));
            let port = link.port();
            links.push(link);
            port
        });
        let mut cmd = Command::new(&cluster.gale_bin);
        cmd.arg("worker");
        let shaped = (
            spawn(
                "the soak's worker behind shaped links",
                "shaped-worker",
                cmd,
                &url,
            ),
            links,
        );

        let skewed = match faketime::libfaketime() {
            None => {
                unavailable(
                    "a skewed clock",
                    "libfaketime is not installed (apt-get install faketime)",
                );
                None
            }
            Some(lib) => {
                let clock = dir.join("skewed.faketime");
                std::fs::write(&clock, "+0\n").expect("writing an offset");
                let dags = std::fs::canonicalize(cluster.dir.join("node1/gale/dags"))
                    .expect("node 1's DAG folder");
                let mut cmd = Command::new(&cluster.gale_bin);
                cmd.arg("node")
                    .arg("--no-webserver")
                    .arg("--dags-folder")
                    .arg(&dags);
                let (lib, file) = (lib.display().to_string(), clock.display().to_string());
                cmd.envs(faketime::jumping(&lib, &file));
                let node = spawn(
                    "the soak's node with a jumping clock",
                    "skewed-node",
                    cmd,
                    &cluster.url,
                );
                Some((node, clock))
            }
        };
        Extras {
            cut,
            shaped,
            skewed,
        }
    }

    /// Panics (with its log) if one of them has exited.
    pub fn assert_running(&mut self) {
        if let Some((w, _, _)) = self.cut.as_mut() {
            w.assert_running();
        }
        self.shaped.0.assert_running();
        if let Some((n, _)) = self.skewed.as_mut() {
            n.assert_running();
        }
    }

    pub fn can_cut(&self) -> bool {
        self.cut.is_some()
    }

    pub fn can_skew(&self) -> bool {
        self.skewed.is_some()
    }

    /// Cuts the namespaced worker off for 1.5 leases: it fences its tries,
    /// they are retried elsewhere, its late results are refused.
    pub fn cut_off(&self) -> String {
        let (_, _, ns) = self.cut.as_ref().expect("a namespace");
        ns.cut()
            .unwrap_or_else(|e| panic!("cutting the namespace off: {e}"));
        std::thread::sleep(LEASE * 3 / 2);
        ns.heal()
            .unwrap_or_else(|e| panic!("healing the namespace: {e}"));
        format!("{} s", (LEASE * 3 / 2).as_secs_f64())
    }

    /// 20 s of 200 ms ± 100 ms each way with 5 % of chunks a 200 ms
    /// retransmission late, then 4 flaps (down 2 s, up 3 s), then clean.
    pub fn shape(&self) -> String {
        let set = |shape: Shape| self.shaped.1.iter().for_each(|l| l.shape(shape));
        set(Shape {
            delay: Duration::from_millis(200),
            jitter: Duration::from_millis(100),
            loss: 0.05,
            rto: Duration::from_millis(200),
        });
        std::thread::sleep(Duration::from_secs(20));
        set(Shape::default());
        for _ in 0..4 {
            self.shaped.1.iter().for_each(|l| l.set_down(true));
            std::thread::sleep(Duration::from_secs(2));
            self.shaped.1.iter().for_each(|l| l.set_down(false));
            std::thread::sleep(Duration::from_secs(3));
        }
        "20 s slow and lossy, 4 flaps".into()
    }

    /// The skewed node's wall clock jumps 1 to 10 minutes ahead or behind,
    /// stays there 15 s, and jumps back.
    pub fn skew(&self, rng: &mut Rng) -> String {
        let (_, clock) = self.skewed.as_ref().expect("a skewed node");
        let minutes = 1 + rng.below(10);
        let sign = if rng.below(2) == 0 { '+' } else { '-' };
        std::fs::write(clock, format!("{sign}{minutes}m\n")).expect("writing an offset");
        std::thread::sleep(Duration::from_secs(15));
        std::fs::write(clock, "+0\n").expect("writing an offset");
        // libfaketime reads the file again at most every second.
        std::thread::sleep(Duration::from_secs(2));
        format!("{sign}{minutes} min for 15 s")
    }
}

/// Takes every connection PostgreSQL gives Gale's role (through Gale's own
/// URL), holds them 8 s, and lets them go.
pub fn exhaust_connections(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut fillers = Vec::new();
        let refused = loop {
            let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
            match tokio::time::timeout(Duration::from_secs(10), connect).await {
                Ok(Ok((client, conn))) => {
                    let driver = tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    fillers.push((client, driver));
                }
                Ok(Err(e)) => {
                    break e
                        .as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned());
                }
                Err(_) => break "a connection attempt timed out".to_owned(),
            }
            if fillers.len() >= 1000 {
                break "no limit below 1000".to_owned();
            }
        };
        let taken = fillers.len();
        tokio::time::sleep(Duration::from_secs(8)).await;
        for (client, driver) in fillers {
            drop(client);
            let _ = driver.await;
        }
        format!("{taken} taken, then: {refused}")
    })
}
