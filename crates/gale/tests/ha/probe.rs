//! The write probe: every 100 ms, one row inserted through the database URL
//! the Gale nodes use (every PostgreSQL host, read-write session wanted, all
//! hosts asked at once so that a frozen one does not hide the others), with a
//! 1 s limit on connecting and on the insert. Its successes, stamped with
//! the server's `clock_timestamp()`, say when the database accepted writes;
//! its failures, when it did not.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, Config, NoTls};

use crate::util::epoch_now;

const EVERY: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(1);

/// The table the probe writes to, in Gale's database.
pub const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS ha_write_probe (\
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
     at timestamptz NOT NULL DEFAULT clock_timestamp())";

/// One try: when it began (this machine's clock) and, if the row was
/// written, the server's clock when it was.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: f64,
    pub db: Option<f64>,
    /// The id of the row written, if it was.
    pub id: Option<i64>,
}

/// A stretch without writes, as the probe saw it.
#[derive(Clone, Copy, Debug)]
pub struct Outage {
    /// The server's time of the last write before it and the first after.
    pub last_ok: f64,
    pub first_ok: f64,
    /// Tries that failed in it.
    pub failed: usize,
}

impl Outage {
    pub fn seconds(&self) -> f64 {
        self.first_ok - self.last_ok
    }
}

pub struct Probe {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
}

impl Probe {
    pub fn start(url: &str) -> Probe {
        let mut config = Config::from_str(url).expect("parsing the database URL");
        config
            .target_session_attrs(TargetSessionAttrs::ReadWrite)
            .connect_timeout(LIMIT)
            .application_name("gale-ha-write-probe");
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the write probe");
                rt.block_on(probe_loop(config, stop, samples));
            })
        };
        Probe {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The outage between `from` and `to` (this machine's clock): from the
    /// last write before the first failed try in that time to the first write
    /// after the last failed one. `None` when no try failed.
    pub fn outage(&self, from: f64, to: f64) -> Option<Outage> {
        let samples = self.samples();
        let in_window = |s: &&Sample| s.at >= from && s.at <= to;
        let first_fail = samples
            .iter()
            .position(|s| in_window(&s) && s.db.is_none())?;
        let last_fail = samples
            .iter()
            .rposition(|s| in_window(&s) && s.db.is_none())?;
        let last_ok = samples[..first_fail].iter().rev().find_map(|s| s.db)?;
        let first_ok = samples[last_fail..].iter().find_map(|s| s.db)?;
        let failed = samples[first_fail..=last_fail]
            .iter()
            .filter(|s| s.db.is_none())
            .count();
        Some(Outage {
            last_ok,
            first_ok,
            failed,
        })
    }

    /// Whether some try after `since` failed and a later one wrote: the
    /// database went away and accepts writes again.
    pub fn recovered_since(&self, since: f64) -> bool {
        let samples = self.samples();
        let Some(fail) = samples.iter().position(|s| s.at >= since && s.db.is_none()) else {
            return false;
        };
        samples[fail..].iter().any(|s| s.db.is_some())
    }

    /// Whether the last try wrote.
    pub fn writing(&self) -> bool {
        self.samples().last().is_some_and(|s| s.db.is_some())
    }

    /// How many tries failed since `since`.
    pub fn failures_since(&self, since: f64) -> usize {
        self.samples()
            .iter()
            .filter(|s| s.at >= since && s.db.is_none())
            .count()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One config per host of `config` (the probe's own URLs name user, password
/// and database only).
fn per_host(config: &Config) -> Vec<Config> {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut one = Config::new();
            match h {
                Host::Tcp(h) => one.host(h),
                Host::Unix(p) => one.host_path(p),
            };
            one.port(ports.get(i).or(ports.first()).copied().unwrap_or(5432));
            if let Some(u) = config.get_user() {
                one.user(u);
            }
            if let Some(p) = config.get_password() {
                one.password(p);
            }
            if let Some(d) = config.get_dbname() {
                one.dbname(d);
            }
            one.target_session_attrs(TargetSessionAttrs::ReadWrite)
                .connect_timeout(LIMIT)
                .application_name("gale-ha-write-probe");
            one
        })
        .collect()
}

/// The first read-write session any host gives.
async fn connect(hosts: &[Config]) -> Option<Client> {
    let mut tries = tokio::task::JoinSet::new();
    for h in hosts {
        let h = h.clone();
        tries.spawn(async move { h.connect(NoTls).await });
    }
    while let Some(done) = tries.join_next().await {
        if let Ok(Ok((c, conn))) = done {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            return Some(c);
        }
    }
    None
}

async fn probe_loop(config: Config, stop: Arc<AtomicBool>, samples: Arc<Mutex<Vec<Sample>>>) {
    let hosts = per_host(&config);
    let mut client: Option<Client> = None;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let at = epoch_now();
        let written = tokio::time::timeout(LIMIT, write(&hosts, &mut client))
            .await
            .ok()
            .flatten();
        let (id, db) = (written.map(|w| w.0), written.map(|w| w.1));
        if db.is_none() {
            // A failed or slow connection may point at a demoted primary.
            client = None;
        }
        samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Sample { at, db, id });
    }
}

/// Inserts a row (connecting first if need be) and returns its id and the
/// server's `clock_timestamp()` of it.
async fn write(hosts: &[Config], client: &mut Option<Client>) -> Option<(i64, f64)> {
    if client.is_none() {
        *client = Some(connect(hosts).await?);
    }
    let row = client
        .as_ref()?
        .query_one(
            "INSERT INTO ha_write_probe DEFAULT VALUES \
             RETURNING id, extract(epoch FROM at)::float8",
            &[],
        )
        .await
        .ok()?;
    Some((
        row.try_get::<_, i64>(0).ok()?,
        row.try_get::<_, f64>(1).ok()?,
    ))
}
