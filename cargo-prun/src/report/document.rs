//! `--json PATH`: the whole run as one JSON document (every attempt, the parallel-only
//! findings, the summary), rewritten atomically as tests finish, at most once a second. It is
//! what `cargo prun merge` joins, and what the HTML report and the trace are drawn from.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Finished, ParallelOnly, Reporter, Summary, WriteError, html, trace};
use crate::cli::Outputs;
use crate::files::write_atomically;

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

/// Writes the document, the HTML report and the trace that `outputs` ask for.
pub(crate) struct Writer {
    document: Document,
    outputs: Outputs,
    written: Option<Instant>,
    /// The first error writing a file.
    error: Option<WriteError>,
    /// When the run started (its tests' times count from then).
    origin: Option<Instant>,
}

impl Writer {
    pub(crate) fn new(meta: Meta, outputs: Outputs) -> Writer {
        let document = Document {
            meta,
            attempts: Vec::new(),
            parallel_only: Vec::new(),
            summary: None,
            rerun_started_ms: None,
        };
        Writer { document, outputs, written: None, error: None, origin: None }
    }

    /// The writer, with every file written once now, so that a path that cannot be written
    /// stops a run before any test starts.
    pub(crate) fn create(meta: Meta, outputs: Outputs) -> Result<Writer, WriteError> {
        let mut writer = Writer::new(meta, outputs);
        writer.write(false);
        writer.error.take().map_or(Ok(writer), Err)
    }

    /// Writes every file asked for at once (for `cargo prun merge`).
    pub(crate) fn write_document(document: Document, outputs: Outputs) -> Result<(), WriteError> {
        let mut writer = Writer { document, outputs, written: None, error: None, origin: None };
        writer.write(true);
        writer.error.map_or(Ok(()), Err)
    }

    /// The JSON document as the run goes; the HTML report and the trace too when `last`.
    fn write(&mut self, last: bool) {
        let mut files: Vec<(&Path, &str, Vec<u8>)> = Vec::new();
        if let Some(path) = &self.outputs.json {
            let json = serde_json::to_vec(&self.document).expect("documents serialize");
            files.push((path, "--json", json));
        }
        // The page and the trace are drawn at the start too, so that a bad path stops the run
        // before it starts, and at the end.
        let draw = last || self.written.is_none();
        if let Some(path) = &self.outputs.html
            && draw
        {
            files.push((path, "--html", html::render(&self.document).into_bytes()));
        }
        if let Some(path) = &self.outputs.trace
            && draw
        {
            files.push((path, "--trace", trace::render(&self.document).into_bytes()));
        }
        for (path, flag, contents) in files {
            if let Err(source) = write_atomically(path, &contents) {
                let path = path.to_owned();
                self.error.get_or_insert(WriteError { flag, path, source });
            }
        }
        self.written = Some(Instant::now());
    }
}

impl Reporter for Writer {
    fn started(&mut self, _tests: usize, _binaries: usize, _skipped: usize) {
        self.origin = Some(Instant::now());
        self.write(false);
    }

    fn rerunning(&mut self, _tests: usize, _bisect_within: Option<Duration>) {
        let since = self.origin.map(|origin| origin.elapsed().as_millis() as u64);
        self.document.rerun_started_ms = since;
    }

    fn finished(&mut self, finished: &Finished) {
        self.document.attempts.push(finished.clone());
        if self.written.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            self.write(false);
        }
    }

    fn parallel_only(&mut self, found: &ParallelOnly) {
        self.document.parallel_only.push(found.clone());
    }

    fn done(&mut self, summary: &Summary) {
        self.document.summary = Some(summary.clone());
        self.write(true);
        if let Some(error) = self.error.take() {
            eprintln!("error: {error}");
        }
    }
}
