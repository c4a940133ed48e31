//! Ctrl-C and SIGTERM during a run.

use std::sync::Arc;

use crate::execute::ProcessExecutor;

/// Watches for SIGINT and SIGTERM during the run: the first one stops the run (every test
/// process is killed, the reports of what finished are written), and sets the exit code.
pub(super) struct Interrupts {
    handle: signal_hook::iterator::Handle,
    watcher: std::thread::JoinHandle<Option<i32>>,
}

pub(super) fn on_interrupt(executor: &Arc<ProcessExecutor>) -> Result<Interrupts, std::io::Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let executor = executor.clone();
    let watcher = std::thread::spawn(move || {
        let signal = signals.forever().next()?;
        executor.interrupt();
        Some(signal)
    });
    Ok(Interrupts { handle, watcher })
}

impl Interrupts {
    /// Stops watching; the signal that interrupted the run, if one did.
    pub(super) fn finish(self) -> Option<i32> {
        self.handle.close();
        self.watcher.join().ok().flatten()
    }
}
