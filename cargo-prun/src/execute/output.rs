//! A child's stdout and stderr, read into memory as it prints them.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// One stream's bytes not yet taken.
#[derive(Debug, Default)]
struct Stream {
    bytes: Vec<u8>,
    /// How far `bytes` has been searched for the current mark: each byte is looked at about
    /// once, so a test printing 40 MiB with no newline costs linear time, not quadratic.
    searched: usize,
    /// The child closed it, or died.
    closed: bool,
}

impl Stream {
    /// Where `needle` starts, searching only what arrived since the last call.
    fn find(&mut self, needle: &[u8]) -> Option<usize> {
        let from = self.searched.saturating_sub(needle.len() - 1);
        let found = self.bytes[from..]
            .windows(needle.len())
            .position(|window| window == needle)
            .map(|at| from + at);
        self.searched = self.bytes.len();
        found
    }

    /// The bytes before `at`, removing them and the `len` marker bytes.
    fn cut(&mut self, at: usize, len: usize) -> Vec<u8> {
        let rest = self.bytes.split_off(at + len);
        self.bytes.truncate(at);
        self.searched = 0;
        std::mem::replace(&mut self.bytes, rest)
    }

    fn take(&mut self) -> Vec<u8> {
        self.searched = 0;
        std::mem::take(&mut self.bytes)
    }
}

#[derive(Debug, Default)]
struct Streams {
    out: Stream,
    err: Stream,
}

/// Both output streams of one child, filled by a reader thread each.
#[derive(Debug, Default)]
pub(crate) struct Output {
    streams: Mutex<Streams>,
    grew: Condvar,
}

/// What a test printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Printed {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Output {
    /// Starts reading `stdout` and `stderr` on threads of their own.
    pub(crate) fn capture(
        stdout: impl Read + Send + 'static,
        stderr: impl Read + Send + 'static,
    ) -> Arc<Output> {
        let output = Arc::new(Output::default());
        for (stream, is_err) in
            [(Box::new(stdout) as Box<dyn Read + Send>, false), (Box::new(stderr), true)]
        {
            let output = output.clone();
            std::thread::spawn(move || output.read_all(stream, is_err));
        }
        output
    }

    fn read_all(&self, mut stream: Box<dyn Read + Send>, is_err: bool) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            let mut streams = self.streams.lock();
            let target = if is_err { &mut streams.err } else { &mut streams.out };
            if n == 0 {
                target.closed = true;
                self.grew.notify_all();
                return;
            }
            target.bytes.extend_from_slice(&buf[..n]);
            self.grew.notify_all();
        }
    }

    /// Everything up to `marker` on both streams (the marker's line is dropped); what follows
    /// stays for the next test. A stream that has ended is not waited for (a test may close its
    /// stdout); after `patience` with no new output it takes what there is.
    pub(crate) fn take_until(&self, marker: &str, patience: Duration) -> Printed {
        let line = format!("\n{marker}\n");
        let mut streams = self.streams.lock();
        let (mut out_at, mut err_at) = (None, None);
        let size = |streams: &Streams| streams.out.bytes.len() + streams.err.bytes.len();
        let mut seen = size(&streams);
        let mut deadline = Instant::now() + patience;
        loop {
            out_at = out_at.or_else(|| streams.out.find(line.as_bytes()));
            err_at = err_at.or_else(|| streams.err.find(line.as_bytes()));
            let out_done = out_at.is_some() || streams.out.closed;
            let err_done = err_at.is_some() || streams.err.closed;
            let mut give_up = false;
            if !(out_done && err_done) && self.grew.wait_until(&mut streams, deadline).timed_out() {
                // Output still arriving is a reader catching up: wait on while it grows.
                give_up = size(&streams) == seen;
                seen = size(&streams);
                deadline = Instant::now() + patience;
            }
            if (out_done && err_done) || give_up {
                let stdout = match out_at {
                    Some(at) => streams.out.cut(at, line.len()),
                    None => streams.out.take(),
                };
                let stderr = match err_at {
                    Some(at) => streams.err.cut(at, line.len()),
                    None => streams.err.take(),
                };
                return Printed { stdout, stderr };
            }
        }
    }

    /// Whether both streams end within `patience` (a process's children may hold them open).
    pub(crate) fn ended_within(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let mut streams = self.streams.lock();
        loop {
            if streams.out.closed && streams.err.closed {
                return true;
            }
            if self.grew.wait_until(&mut streams, deadline).timed_out() {
                return streams.out.closed && streams.err.closed;
            }
        }
    }

    /// Everything, once both streams have ended (or after `patience`).
    pub(crate) fn take_all(&self, patience: Duration) -> Printed {
        let deadline = Instant::now() + patience;
        let mut streams = self.streams.lock();
        let ended = |streams: &Streams| streams.out.closed && streams.err.closed;
        while !ended(&streams) {
            if self.grew.wait_until(&mut streams, deadline).timed_out() {
                break;
            }
        }
        Printed { stdout: streams.out.take(), stderr: streams.err.take() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_each_tests_marker() {
        let output =
            Output::capture(&b"one\n\nEND 1\ntwo\n\nEND 2\n"[..], &b"\nEND 1\noops\n\nEND 2\n"[..]);
        let first = output.take_until("END 1", Duration::from_secs(10));
        assert_eq!(first, Printed { stdout: b"one\n".to_vec(), stderr: Vec::new() });
        let second = output.take_until("END 2", Duration::from_secs(10));
        assert_eq!(second, Printed { stdout: b"two\n".to_vec(), stderr: b"oops\n".to_vec() });
    }

    #[test]
    fn a_missing_marker_takes_what_there_is_once_the_streams_end() {
        let output = Output::capture(&b"partial"[..], &b""[..]);
        let printed = output.take_until("END 9", Duration::from_secs(10));
        assert_eq!(printed.stdout, b"partial");
    }

    #[test]
    fn a_closed_stream_is_not_waited_for() {
        // The test closed its stdout: only stderr has the mark. No patience is spent.
        let output = Output::capture(&b""[..], &b"err\n\nEND 1\nnext"[..]);
        let printed = output.take_until("END 1", Duration::from_secs(3600));
        assert_eq!(printed, Printed { stdout: Vec::new(), stderr: b"err\n".to_vec() });
    }

    #[test]
    fn a_mark_split_across_chunks_is_found_once_searched() {
        let mut stream = Stream { bytes: b"xxxx\nEN".to_vec(), ..Stream::default() };
        assert_eq!(stream.find(b"\nEND 1\n"), None);
        stream.bytes.extend_from_slice(b"D 1\nrest");
        assert_eq!(stream.find(b"\nEND 1\n"), Some(4));
        assert_eq!(stream.cut(4, 7), b"xxxx");
        assert_eq!(stream.bytes, b"rest");
    }
}
