//! Login throttling: per client address and per user name, a few free
//! failures, then a lockout window that doubles with each further failure up
//! to a cap (answered 429 with `Retry-After`); and a bound on the password
//! checks (argon2, run off the async runtime) in flight at once.
//!
//! The state is this webserver's memory, not the store's: several webservers
//! behind a load balancer each count on their own (an attacker spread over
//! them gets each one's allowance), and a restart forgets. It is bounded: at
//! most [`LoginPolicy::max_entries`] addresses and as many user names are
//! remembered, stale ones are dropped and, when full, the one whose last
//! failure is oldest is evicted, so a flood of random user names cannot grow
//! memory without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How logins are throttled.
#[derive(Clone, Debug)]
pub struct LoginPolicy {
    /// Failures of one user name before its lockouts start.
    pub free_failures_per_user: u32,
    /// Failures from one address (an IPv6 /64) before its lockouts start.
    pub free_failures_per_address: u32,
    /// The first lockout; each further failure doubles it.
    pub first_lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
    /// An address or name with no failure for this long starts afresh.
    pub forget_after: Duration,
    /// Most addresses, and most user names, remembered.
    pub max_entries: usize,
    /// Most password checks running at once.
    pub max_checks: usize,
    /// How long a login waits for a free check before it is answered 503.
    pub check_wait: Duration,
}

impl Default for LoginPolicy {
    fn default() -> LoginPolicy {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        LoginPolicy {
            free_failures_per_user: 5,
            free_failures_per_address: 20,
            first_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_entries: 10_000,
            // Half the cores at most: the rest stay for the runtime (the
            // scheduler's and the worker's heartbeats in the same process).
            max_checks: (cores / 2).max(1),
            check_wait: Duration::from_secs(2),
        }
    }
}

/// Why a login was not checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The address or the user name is locked out for this long.
    Throttled(Duration),
    /// Every password check is busy (a flood): try again shortly.
    Busy,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Address(IpAddr),
    User(String),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

/// Remembered failures, by address and by user name, bounded in size.
#[derive(Default)]
struct Table {
    addresses: HashMap<Key, Entry>,
    users: HashMap<Key, Entry>,
}

/// The login throttle of one webserver.
pub struct LoginGuard {
    policy: LoginPolicy,
    table: Mutex<Table>,
    checks: Arc<Semaphore>,
    /// Logins refused for a wrong name or password.
    pub failures: Counter,
    /// Logins answered 429 or 503 without a check.
    pub refused: Counter,
}

impl Default for LoginGuard {
    fn default() -> LoginGuard {
        LoginGuard::new(LoginPolicy::default())
    }
}

/// One address of an IPv6 /64 (a single host often has them all), or the
/// IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4 one).
fn address_key(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(_) => Key::Address(addr),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::Address(IpAddr::V4(v4)),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Key::Address(IpAddr::V6(prefix.into()))
            }
        },
    }
}

/// A user name as remembered: at most 64 bytes (longer names do not exist).
fn user_key(user: &str) -> Key {
    let mut end = user.len().min(64);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    Key::User(user[..end].to_owned())
}

impl LoginGuard {
    pub fn new(policy: LoginPolicy) -> LoginGuard {
        LoginGuard {
            checks: Arc::new(Semaphore::new(policy.max_checks.max(1))),
            policy,
            table: Mutex::new(Table::default()),
            failures: Counter::default(),
            refused: Counter::default(),
        }
    }

    pub fn policy(&self) -> &LoginPolicy {
        &self.policy
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic elsewhere while holding it leaves counts, never a broken
        // invariant: keep using them.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a login whose address or user name is locked out now; the
    /// `Duration` is how long is left (for `Retry-After`).
    pub fn admit(&self, addr: Option<IpAddr>, user: &str) -> Result<(), Refused> {
        let now = Instant::now();
        let table = self.table();
        let left = |map: &HashMap<Key, Entry>, key: &Key| {
            map.get(key)
                .and_then(|e| e.locked_until)
                .and_then(|until| until.checked_duration_since(now))
                .filter(|d| !d.is_zero())
        };
        let by_addr = addr.and_then(|a| left(&table.addresses, &address_key(a)));
        let by_user = left(&table.users, &user_key(user));
        match by_addr.max(by_user) {
            Some(d) => {
                self.refused.inc();
                Err(Refused::Throttled(d))
            }
            None => Ok(()),
        }
    }

    /// A slot to check a password in, waiting at most
    /// [`LoginPolicy::check_wait`] for one.
    pub async fn check_slot(&self) -> Result<OwnedSemaphorePermit, Refused> {
        let wait = self.policy.check_wait;
        match tokio::time::timeout(wait, self.checks.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.refused.inc();
                Err(Refused::Busy)
            }
        }
    }

    /// Counts a failed login; returns the lockout it starts, if any.
    pub fn failed(&self, addr: Option<IpAddr>, user: &str) -> Option<Duration> {
        self.failures.inc();
        let now = Instant::now();
        let p = &self.policy;
        let mut table = self.table();
        let by_user = record(
            &mut table.users,
            user_key(user),
            now,
            p,
            p.free_failures_per_user,
        );
        let by_addr = addr.and_then(|a| {
            record(
                &mut table.addresses,
                address_key(a),
                now,
                p,
                p.free_failures_per_address,
            )
        });
        by_user.max(by_addr)
    }

    /// A correct password: the user name starts afresh (the address does
    /// not, or one account could clear the failures of guesses at others).
    pub fn succeeded(&self, user: &str) {
        self.table().users.remove(&user_key(user));
    }

    /// How many addresses and user names are remembered.
    pub fn remembered(&self) -> (usize, usize) {
        let table = self.table();
        (table.addresses.len(), table.users.len())
    }
}

/// Adds a failure to `key`'s entry (making room first when the map is
/// full); returns the lockout it starts.
fn record(
    map: &mut HashMap<Key, Entry>,
    key: Key,
    now: Instant,
    p: &LoginPolicy,
    free: u32,
) -> Option<Duration> {
    let stale = |e: &Entry| now.saturating_duration_since(e.last_failure) >= p.forget_after;
    if map.get(&key).is_some_and(stale) {
        map.remove(&key);
    }
    if !map.contains_key(&key) && map.len() >= p.max_entries.max(1) {
        map.retain(|_, e| !stale(e));
        if map.len() >= p.max_entries.max(1)
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    let entry = map.entry(key).or_insert(Entry {
        failures: 0,
        locked_until: None,
        last_failure: now,
    });
    entry.failures = entry.failures.saturating_add(1);
    entry.last_failure = now;
    let over = entry.failures.checked_sub(free)?.checked_sub(1)?;
    let lockout = p
        .first_lockout
        .checked_mul(1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(p.max_lockout)
        .min(p.max_lockout);
    entry.locked_until = Some(now + lockout);
    Some(lockout)
}

/// `Retry-After` in whole seconds, rounded up (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LoginPolicy {
        LoginPolicy {
            free_failures_per_user: 2,
            free_failures_per_address: 3,
            first_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(8),
            forget_after: Duration::from_secs(3600),
            max_entries: 4,
            max_checks: 1,
            check_wait: Duration::from_millis(50),
        }
    }

    #[test]
    fn lockouts_start_after_the_free_failures_and_double_to_the_cap() {
        let g = LoginGuard::new(policy());
        let addr: IpAddr = "192.0.2.1".parse().expect("an address");
        assert_eq!(g.failed(Some(addr), "ann"), None);
        assert_eq!(g.failed(Some(addr), "ann"), None);
        assert!(
            g.admit(Some(addr), "ann").is_ok(),
            "free failures lock nothing"
        );
        let lockouts: Vec<_> = (0..6).map(|_| g.failed(None, "ann")).collect();
        assert_eq!(
            lockouts,
            [1, 2, 4, 8, 8, 8].map(|s| Some(Duration::from_secs(s))),
            "doubling, capped"
        );
        match g.admit(Some("192.0.2.9".parse().expect("addr")), "ann") {
            Err(Refused::Throttled(d)) => assert!(d > Duration::from_secs(7), "{d:?}"),
            other => panic!("a locked user is throttled from any address: {other:?}"),
        }
        assert!(g.admit(Some(addr), "bob").is_ok(), "other users are not");
        g.succeeded("ann");
        assert!(g.admit(None, "ann").is_ok(), "a success clears the user");
        assert_eq!(g.failures.get(), 8);
    }

    #[test]
    fn an_address_is_locked_across_user_names() {
        let g = LoginGuard::new(policy());
        let addr: IpAddr = "2001:db8::1".parse().expect("an address");
        let sibling: IpAddr = "2001:db8::ffff:2".parse().expect("an address");
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(g.failed(Some(addr), name), None, "failure {i}");
        }
        assert_eq!(
            g.failed(Some(sibling), "d"),
            Some(Duration::from_secs(1)),
            "the same /64 counts as one address"
        );
        assert!(matches!(
            g.admit(Some(addr), "e"),
            Err(Refused::Throttled(_))
        ));
        assert!(
            g.admit(Some("2001:db9::1".parse().expect("addr")), "e")
                .is_ok()
        );
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_oldest() {
        let g = LoginGuard::new(policy());
        for i in 0..1000 {
            g.failed(
                Some(IpAddr::from([10, 0, (i / 256) as u8, i as u8])),
                &format!("u{i}"),
            );
        }
        assert_eq!(g.remembered(), (4, 4), "at most max_entries of each");
        let long = "x".repeat(10_000);
        g.failed(None, &long);
        g.failed(None, &long);
        g.failed(None, &long);
        assert!(
            matches!(g.admit(None, &long), Err(Refused::Throttled(_))),
            "a long name is remembered by its first 64 bytes"
        );
    }

    #[tokio::test]
    async fn password_checks_are_bounded() {
        let g = LoginGuard::new(policy());
        let held = g.check_slot().await.expect("a free slot");
        assert_eq!(g.check_slot().await.err(), Some(Refused::Busy));
        drop(held);
        assert!(g.check_slot().await.is_ok(), "a freed slot is reused");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::from_secs(4)), 4);
    }
}
