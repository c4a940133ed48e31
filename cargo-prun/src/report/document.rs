//! `--json PATH`: the whole run as one JSON document (every attempt, the parallel-only
//! findings, the summary), rewritten atomically as tests finish, at most once a second. It is
//! what `cargo prun merge` joins, and what the HTML report and the trace are drawn from.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Finished, ParallelOnly, Reporter, Summary, WriteError, html, trace};
use crate::cli::Outputs;
use crate::files::write_atomically;

pub(crate) use crate::record::{Document, Meta, ReadError};

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
