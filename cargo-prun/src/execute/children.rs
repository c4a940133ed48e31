//! Every process the run started and has not yet reaped, so that an interrupt can kill them all.
//!
//! Each test process leads a process group of its own, so killing the group also takes the
//! processes a test started and left behind.

use std::collections::HashSet;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use parking_lot::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Children(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    pids: HashSet<u32>,
    interrupted: bool,
}

impl Children {
    /// Tracks a new child. After an interrupt, a child that was still starting is killed at once.
    pub(crate) fn register(&self, pid: u32) {
        let mut state = self.0.lock();
        if state.interrupted {
            signal(pid);
        } else {
            state.pids.insert(pid);
        }
    }

    /// The child was reaped: whatever it left running in its group goes with it.
    pub(crate) fn unregister(&self, pid: u32) {
        self.0.lock().pids.remove(&pid);
        signal(pid);
    }

    /// Kills every child, and any that registers from now on.
    pub(crate) fn kill_all(&self) {
        let mut state = self.0.lock();
        state.interrupted = true;
        for pid in state.pids.drain() {
            signal(pid);
        }
    }

    pub(crate) fn interrupted(&self) -> bool {
        self.0.lock().interrupted
    }
}

/// Kills the process group `pid` leads (the process and whatever it started), now.
pub(crate) fn kill_group(pid: u32) {
    signal(pid);
}

/// Kills the process group `pid` leads (the process and whatever it started).
fn signal(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // The group may be gone already; then there is nothing to kill.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
