//! Every process the run started and has not yet reaped, so that an interrupt can kill them all.

use std::collections::HashSet;

use nix::sys::signal::{Signal, kill};
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

    /// The child was reaped.
    pub(crate) fn unregister(&self, pid: u32) {
        self.0.lock().pids.remove(&pid);
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

fn signal(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // The process may have exited already; then there is nothing to kill.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
