//! Finding the primary among the hosts of a URL when one of them may accept
//! connections and never answer.
//!
//! `tokio_postgres` tries the hosts of a multi-host URL one after another and
//! bounds only the TCP connect of each: a frozen server (its postmaster stopped,
//! or a stalled VM) completes the TCP handshake in its kernel and then says
//! nothing, so the startup exchange waits forever and the hosts after it are
//! never tried. Here every host is tried at once, each whole exchange (TCP,
//! startup, authentication, the read-write check) bounded by the connect
//! timeout; the first read-write session wins. A host that answers but cannot
//! take writes (a standby) or refuses is asked again every [`REPROBE`] until the
//! budget ends, so the standby that is promoted during a failover is found
//! within moments of accepting writes, whatever the frozen host does.
//!
//! Each host's TLS name is its own (`host=a,b` checks `a` against the
//! certificate `a` presents, `b` against `b`'s); a unix-socket host never
//! uses TLS, whatever `sslmode` says, as with libpq.

use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::Tls;

/// How soon a host that answered without a read-write session is asked again.
pub(super) const REPROBE: Duration = Duration::from_millis(250);

type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
type Connected = (Client, Connection<Socket, Stream>);

/// One config per host of `config`, each with everything else of it.
pub(super) fn per_host(config: &Config) -> Vec<Config> {
    let hosts = config.get_hosts();
    let ports = config.get_ports();
    let addrs = config.get_hostaddrs();
    (0..hosts.len())
        .map(|i| {
            let mut c = Config::new();
            match &hosts[i] {
                Host::Tcp(h) => c.host(h),
                Host::Unix(p) => c.host_path(p),
            };
            if let Some(a) = addrs.get(i) {
                c.hostaddr(*a);
            }
            c.port(ports.get(i).or(ports.first()).copied().unwrap_or(5432));
            if let Some(v) = config.get_user() {
                c.user(v);
            }
            if let Some(v) = config.get_password() {
                c.password(v);
            }
            if let Some(v) = config.get_dbname() {
                c.dbname(v);
            }
            if let Some(v) = config.get_options() {
                c.options(v);
            }
            if let Some(v) = config.get_application_name() {
                c.application_name(v);
            }
            if let Some(v) = config.get_connect_timeout() {
                c.connect_timeout(*v);
            }
            if let Some(v) = config.get_tcp_user_timeout() {
                c.tcp_user_timeout(*v);
            }
            c.keepalives(config.get_keepalives())
                .keepalives_idle(config.get_keepalives_idle());
            if let Some(v) = config.get_keepalives_interval() {
                c.keepalives_interval(v);
            }
            if let Some(v) = config.get_keepalives_retries() {
                c.keepalives_retries(v);
            }
            let ssl_mode = match &hosts[i] {
                Host::Tcp(_) => config.get_ssl_mode(),
                Host::Unix(_) => SslMode::Disable,
            };
            c.ssl_mode(ssl_mode)
                .channel_binding(config.get_channel_binding())
                .target_session_attrs(config.get_target_session_attrs());
            c
        })
        .collect()
}

/// A session on the first host that gives a read-write one, each host's whole
/// exchange bounded by `per_host`, all of it by `budget`.
pub(super) async fn connect(
    hosts: &[Config],
    tls: &Tls,
    per_host: Duration,
    budget: Duration,
) -> Result<Connected, tokio_postgres::Error> {
    let once = |i: usize, after: Duration| {
        let config = hosts[i].clone();
        let connector = tls.connector();
        async move {
            tokio::time::sleep(after).await;
            let out = match tokio::time::timeout(per_host, config.connect(connector)).await {
                Ok(out) => out,
                Err(_) => Err(tokio_postgres::Error::__private_api_timeout()),
            };
            (i, out)
        }
    };
    if hosts.len() == 1 {
        return once(0, Duration::ZERO).await.1;
    }
    let deadline = tokio::time::Instant::now() + budget;
    // Dropped on return: the hosts still being tried are given up.
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..hosts.len() {
        pending.spawn(once(i, Duration::ZERO));
    }
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, pending.join_next()).await {
            Ok(Some(Ok((_, Ok(connected))))) => return Ok(connected),
            Ok(Some(Ok((i, Err(e))))) => {
                last = Some(e);
                if tokio::time::Instant::now() + REPROBE < deadline {
                    pending.spawn(once(i, REPROBE));
                }
            }
            // A try that panicked or was aborted: the others go on.
            Ok(Some(Err(_))) => {}
            Ok(None) | Err(_) => {
                return Err(last.unwrap_or_else(tokio_postgres::Error::__private_api_timeout));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_keeps_the_rest_of_the_config() {
        let config: Config = "host=a,b,c port=5432,5433,5434 user=u password=p dbname=d \
             connect_timeout=7 options='-c x=1' application_name=app"
            .parse()
            .unwrap();
        let hosts = per_host(&config);
        assert_eq!(hosts.len(), 3);
        for (c, (h, p)) in hosts.iter().zip([("a", 5432), ("b", 5433), ("c", 5434)]) {
            assert_eq!(c.get_hosts(), &[Host::Tcp(h.into())]);
            assert_eq!(c.get_ports(), &[p]);
            assert_eq!(c.get_user(), Some("u"));
            assert_eq!(c.get_password(), Some(&b"p"[..]));
            assert_eq!(c.get_dbname(), Some("d"));
            assert_eq!(c.get_options(), Some("-c x=1"));
            assert_eq!(c.get_application_name(), Some("app"));
            assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(7)));
        }
        // One port for all hosts.
        let one: Config = "host=a,b port=6000".parse().unwrap();
        assert!(per_host(&one).iter().all(|c| c.get_ports() == [6000]));
    }

    /// TLS is for TCP: a unix-socket host goes without, as with libpq.
    #[test]
    fn a_unix_socket_host_never_uses_tls() {
        let config: Config = "host=/run/postgresql,db sslmode=require".parse().unwrap();
        let modes: Vec<SslMode> = per_host(&config).iter().map(Config::get_ssl_mode).collect();
        assert_eq!(modes, [SslMode::Disable, SslMode::Require]);
    }

    /// A host that accepts TCP and never answers (a frozen server) is given
    /// up by itself, not waited for forever.
    #[tokio::test]
    async fn a_host_that_never_answers_is_bounded() {
        let frozen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = frozen.local_addr().unwrap().port();
        let config: Config = format!("host=127.0.0.1 port={port} user=u dbname=d")
            .parse()
            .unwrap();
        let hosts = per_host(&config);
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            connect(
                &hosts,
                &Tls::new(&Default::default()).unwrap(),
                Duration::from_millis(300),
                Duration::from_secs(2),
            ),
        )
        .await
        .expect("a connect to a host that never answers must give up by itself");
        assert!(out.is_err(), "nothing answered, yet it connected");
        drop(frozen);
    }
}
