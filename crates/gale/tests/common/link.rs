//! A network link between Gale and PostgreSQL that the test shapes: a TCP relay
//! on loopback that delivers each chunk it reads after a delay with jitter,
//! stalls a share of them as a lost packet would (TCP delivers a lost
//! segment's bytes after a retransmission timeout, in order), and can go down
//! silently (nothing delivered, connections left open, as a pulled cable
//! that is plugged back in) and come back. Userspace because the kernels
//! this runs on may have no `sch_netem`; what it changes is what TCP shows
//! the processes above it: latency, jitter, stalls and silence.

#![allow(dead_code)]

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the link treats what crosses it, in each direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    /// One-way delay.
    pub delay: Duration,
    /// Up to this much more or less, at random per chunk.
    pub jitter: Duration,
    /// The share of chunks (0 to 1) that arrive a retransmission later.
    pub loss: f64,
    /// The retransmission timeout a lost chunk costs.
    pub rto: Duration,
}

struct State {
    shape: Mutex<Shape>,
    down: AtomicBool,
    stop: AtomicBool,
    rng: AtomicU64,
    conns: Mutex<Vec<TcpStream>>,
}

impl State {
    /// A uniform draw in [0, 1) from a shared xorshift64* source.
    fn uniform(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// When a chunk read now should arrive, given when the one before did.
    fn arrival(&self, previous: Instant) -> Instant {
        let s = *self.shape.lock().unwrap_or_else(|p| p.into_inner());
        let jitter = s.jitter.as_secs_f64() * (2.0 * self.uniform() - 1.0);
        let mut delay = (s.delay.as_secs_f64() + jitter).max(0.0);
        if s.loss > 0.0 && self.uniform() < s.loss {
            delay += s.rto.as_secs_f64();
        }
        // TCP delivers in order: never before the chunk ahead of it.
        (Instant::now() + Duration::from_secs_f64(delay)).max(previous)
    }
}

/// A shaped link to `127.0.0.1:target`; connect to `127.0.0.1:port()`.
pub struct Link {
    port: u16,
    state: Arc<State>,
}

impl Link {
    pub fn start(target: u16, seed: u64) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the link");
        let port = listener.local_addr().expect("the link's address").port();
        let state = Arc::new(State {
            shape: Mutex::new(Shape::default()),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            rng: AtomicU64::new(seed | 1),
            conns: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
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
                st.conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend([c1, s1]);
                direction(st.clone(), client, server);
                direction(st.clone(), s2, c2);
            }
        });
        Link { port, state }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn shape(&self, shape: Shape) {
        *self.state.shape.lock().unwrap_or_else(|p| p.into_inner()) = shape;
    }

    /// Down: nothing is delivered (what is sent waits, as TCP retransmits);
    /// up: it flows again, in order.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.down.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self
            .state
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// One direction of a connection: a reader stamps each chunk with its
/// arrival time, a writer delivers it then (and not while the link is down).
fn direction(state: Arc<State>, mut from: TcpStream, to: TcpStream) {
    let (tx, rx) = channel::<(Instant, Vec<u8>)>();
    let st = state.clone();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 16 * 1024];
        let mut previous = Instant::now();
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    previous = st.arrival(previous);
                    if tx.send((previous, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || deliver(&state, &rx, to));
}

fn deliver(state: &State, rx: &Receiver<(Instant, Vec<u8>)>, mut to: TcpStream) {
    use std::io::Write;
    while let Ok((at, bytes)) = rx.recv() {
        loop {
            let now = Instant::now();
            if state.down.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if now >= at {
                break;
            }
            std::thread::sleep((at - now).min(Duration::from_millis(5)));
        }
        if to.write_all(&bytes).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
