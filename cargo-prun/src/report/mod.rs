//! Report: everything the user sees is rendered from [`Finished`] events, so every report agrees.

pub(crate) mod human;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod redact;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// How one attempt of one test ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Outcome {
    Passed,
    Failed {
        reason: String,
    },
    TimedOut {
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
    },
    /// The process died while the test ran.
    Crashed {
        reason: String,
    },
    /// Not run (the run stopped early).
    Skipped {
        reason: String,
    },
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(duration.as_millis())
}

impl Outcome {
    /// Passing and skipping do not fail the run.
    pub(crate) fn passed(&self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Skipped { .. })
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Outcome::Passed => "passed".to_owned(),
            Outcome::Failed { reason }
            | Outcome::Crashed { reason }
            | Outcome::Skipped { reason } => reason.clone(),
            Outcome::TimedOut { after } => format!("timed out after {}", seconds(*after)),
        }
    }
}

/// `30s`, `1.5s`, `250ms`.
pub(crate) fn seconds(duration: Duration) -> String {
    if duration.as_millis() < 1000 {
        format!("{}ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// One attempt of one test, finished.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finished {
    pub(crate) binary: String,
    pub(crate) name: String,
    pub(crate) attempt: u32,
    pub(crate) worker: usize,
    pub(crate) passed: bool,
    pub(crate) outcome: Outcome,
    #[serde(rename = "started_at_ms", serialize_with = "millis")]
    pub(crate) started_at: Duration,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub(crate) duration: Duration,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Panic message and `Ctx` log lines (prun tests).
    pub(crate) captured: String,
    pub(crate) will_retry: bool,
}

/// What the run comes to.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    /// Ignored, or not run because the run stopped early.
    pub(crate) skipped: usize,
    /// Binary and name, and the attempts it took.
    pub(crate) flaky: Vec<(String, String, u32)>,
    #[serde(skip)]
    pub(crate) failures: Vec<Finished>,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub(crate) duration: Duration,
    pub(crate) interrupted: bool,
    /// Whether doctests ran (prun.toml: `doctests = "run"`).
    pub(crate) doctests_run: bool,
}

impl Summary {
    pub(crate) fn record(&mut self, finished: &Finished) {
        if finished.will_retry {
            return;
        }
        match &finished.outcome {
            Outcome::Skipped { .. } => self.skipped += 1,
            _ if finished.passed => {
                self.passed += 1;
                if finished.attempt > 1 {
                    self.flaky.push((
                        finished.binary.clone(),
                        finished.name.clone(),
                        finished.attempt,
                    ));
                }
            }
            _ => {
                self.failed += 1;
                self.failures.push(finished.clone());
            }
        }
    }
}

/// What the executor reports as the run goes.
#[derive(Debug)]
pub(crate) enum Event {
    Started { binary: String, name: String, worker: usize },
    Finished(Finished),
}

/// Renders a run as it happens.
pub(crate) trait Reporter {
    fn started(&mut self, tests: usize, binaries: usize, skipped: usize);
    /// A test started (only the live progress line cares).
    fn test_started(&mut self, _binary: &str, _name: &str, _worker: usize) {}
    fn finished(&mut self, finished: &Finished);
    fn done(&mut self, summary: &Summary);
}

/// Writes `contents` to `path` so that a reader sees the old file or the new one, never half.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents)?;
    file.flush()?;
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}
