//! Memory given back: after a burst (a fan-out of thousands of tasks) the
//! allocator keeps the freed memory in its arenas, so an idle process would
//! stay at its burst size. Every [`EVERY`], glibc's `malloc_trim` returns the
//! free pages of every arena to the system (about a millisecond on an idle
//! process's heap; nothing on other C libraries).
//!
//! glibc also gives each thread that allocates while another holds an arena
//! an arena of its own, up to eight per core: a burst leaves each of them
//! with free chunks between a few live ones, whose pages no trim can give
//! back. [`limit_arenas`] caps them at [`ARENAS`] (unless the environment
//! says otherwise): a standalone holding two 10,000-task DAGs idles at 49 MB
//! instead of 66 and is back at its idle size a minute after running them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often free memory is given back.
const EVERY: Duration = Duration::from_secs(15);

/// The most malloc arenas a process uses.
const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`], unless the environment sets
/// them (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in
/// `GLIBC_TUNABLES`, which glibc reads itself). Called first thing in
/// `main`, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    let tuned =
        std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.arena_max="));
    if tuned || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets an allocator parameter; no other thread is
    // allocating yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Gives free memory back every [`EVERY`] until `cancel`.
pub async fn give_back(cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        // On a blocking thread: it walks every arena.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory; it takes the arenas'
    // locks itself and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
