//! libfaketime (Debian's `faketime`) for tests whose processes' wall clocks
//! are minutes off, or jump while they run.
//!
//! Only the wall clock is shifted (`FAKETIME_DONT_FAKE_MONOTONIC`): that is
//! the fault a machine with a wrong clock has. Its monotonic and boot clocks
//! measure durations only, and libfaketime would shift them by the same
//! constant, which changes no duration Gale measures; left real, they also
//! keep libfaketime out of every timed wait (tokio's timers, the guard's
//! deadlines), so what a test sees is Gale's behaviour, not the shim's.
//! A task started by such a process inherits `LD_PRELOAD`: the marks of
//! `marks.rs` read the real clock (`env -u LD_PRELOAD date`).

#![allow(dead_code)]

use std::path::PathBuf;

/// Where Debian's `faketime` package puts libfaketime, for each architecture.
pub fn libfaketime() -> Option<PathBuf> {
    let lib = std::fs::read_dir("/usr/lib").ok()?.flatten().find_map(|e| {
        let p = e.path().join("faketime/libfaketime.so.1");
        p.is_file().then_some(p)
    });
    lib.or_else(|| {
        let p = PathBuf::from("/usr/local/lib/faketime/libfaketime.so.1");
        p.is_file().then_some(p)
    })
}

/// The environment that runs a process with its wall clock `offset` off
/// (libfaketime's syntax, e.g. `+5m`).
pub fn skewed<'a>(lib: &'a str, offset: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("LD_PRELOAD", lib),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
}

/// libfaketime with its offset read from `file` (again at most every second),
/// so that a test can make the process's wall clock jump while it runs.
pub fn jumping<'a>(lib: &'a str, file: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("LD_PRELOAD", lib),
        ("FAKETIME_TIMESTAMP_FILE", file),
        ("FAKETIME_CACHE_DURATION", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
}
