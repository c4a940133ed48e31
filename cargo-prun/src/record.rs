//! A run's record as a file: the `--json` report document (what ran, every attempt, what
//! diagnosis found, the summary), which `cargo prun merge`, `--rerun-failed` and the timings
//! read back. `report::document` writes it.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::event::{Finished, ParallelOnly, Summary};

pub(crate) const VERSION: u32 = 1;

/// What the run was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) version: u32,
    /// `--partition`, when the run was one shard of several.
    pub(crate) partition: Option<String>,
    /// Every test the filters selected (`BINARY NAME`), before the partition: every shard of
    /// one run lists the same ones.
    pub(crate) selected: Vec<String>,
    pub(crate) threads: usize,
    /// When the run started, in milliseconds since the Unix epoch.
    pub(crate) started_unix_ms: u64,
    /// The run ran again what an earlier one did not pass (`--rerun-failed`): a merge takes its
    /// results over that run's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) rerun: bool,
}

impl Meta {
    pub(crate) fn new(partition: Option<String>, selected: Vec<String>, threads: usize) -> Meta {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let started_unix_ms = u64::try_from(since_epoch.as_millis()).unwrap_or(0);
        Meta { version: VERSION, partition, selected, threads, started_unix_ms, rerun: false }
    }
}

/// A run, or shards of one merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Document {
    #[serde(flatten)]
    pub(crate) meta: Meta,
    /// Every attempt, retries included, in the order they finished.
    pub(crate) attempts: Vec<Finished>,
    pub(crate) parallel_only: Vec<ParallelOnly>,
    /// `None` while the run goes on (or when it died).
    pub(crate) summary: Option<Summary>,
    /// When the failed tests started to run again alone (after the schedule), in milliseconds
    /// from the run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rerun_started_ms: Option<u64>,
}

/// Why a file is not a report this prun reads.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{path} is not a prun --json report: {source}")]
    NotAReport { path: std::path::PathBuf, source: serde_json::Error },
    #[error("{path} is a report of version {found}; this prun reads version {VERSION}")]
    Version { path: std::path::PathBuf, found: u32 },
}

impl Document {
    pub(crate) fn read(path: &Path) -> Result<Document, ReadError> {
        let bytes = std::fs::read(path)
            .map_err(|source| ReadError::Read { path: path.to_owned(), source })?;
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let not_a_report = |source| ReadError::NotAReport { path: path.to_owned(), source };
        let versioned: Versioned = serde_json::from_slice(&bytes).map_err(not_a_report)?;
        if versioned.version != VERSION {
            return Err(ReadError::Version { path: path.to_owned(), found: versioned.version });
        }
        serde_json::from_slice(&bytes).map_err(not_a_report)
    }
}
