//! What happens during a run, as the reporters see it. Everything printed is rendered from these.

use std::sync::Arc;
use std::time::Duration;

use crate::outcome::Failure;

#[derive(Debug, Clone)]
pub(crate) enum Event {
    Started { name: Arc<str>, attempt: u32, worker: usize },
    Finished(Attempt),
}

/// One attempt of one test, finished.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) name: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) worker: usize,
    pub(crate) result: Result<(), Failure>,
    pub(crate) duration: Duration,
    /// Panic messages and `Ctx` log lines.
    pub(crate) output: String,
    pub(crate) will_retry: bool,
}
