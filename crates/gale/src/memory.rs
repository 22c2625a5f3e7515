//! Memory given back: after a burst (a fan-out of thousands of tasks) the
//! allocator keeps the freed memory in its arenas, so an idle process would
//! stay at its burst size. Every [`EVERY`], glibc's `malloc_trim` returns the
//! free pages of every arena to the system (about a millisecond on an idle
//! process's heap; nothing on other C libraries).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often free memory is given back.
const EVERY: Duration = Duration::from_secs(15);

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
