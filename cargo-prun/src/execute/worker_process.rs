//! A prun binary running as a worker process: spawned once, sent tests one at a time.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prun::Outcome;
use prun::protocol::{self, Request, Response};

use super::Attempt;
use super::children::Children;
use super::output::{Output, Printed};
use super::status;
use crate::os::TestProcess;

/// How one test went in a worker, and whether the worker lives on (when it died or was killed
/// for a timeout, drop it and spawn another).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) attempt: Attempt,
    pub(crate) alive: bool,
}

impl Answer {
    /// The worker's process ended during the test: how that went for the test.
    fn ended(outcome: Outcome, printed: Printed) -> Answer {
        let captured = String::new();
        let attempt = Attempt { outcome, printed, captured, duration: Duration::ZERO, usage: None };
        Answer { attempt, alive: false }
    }
}

#[derive(Debug)]
pub(crate) struct WorkerProcess {
    child: TestProcess,
    requests: UnixStream,
    responses: BufReader<UnixStream>,
    output: Arc<Output>,
    seq: u64,
    children: Arc<Children>,
    /// How long to wait, with no new output, for a test's end marks after its response (they
    /// were written before it, so only a reader thread that lags behind, or a test that pointed
    /// its stdout elsewhere, makes this wait at all).
    patience: Duration,
}

/// What bounds each test of a batch: its timeout, and when it is announced as running.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) timeout: Option<Duration>,
    pub(crate) notice_after: Duration,
}

/// How a worker process is started.
#[derive(Debug, Clone)]
pub(crate) struct Launch<'a> {
    pub(crate) binary: &'a crate::build::TestBinary,
    pub(crate) cwd: &'a Path,
    pub(crate) env: &'a [(String, String)],
    /// Where its socket is made (the run's private directory).
    pub(crate) socket: &'a Path,
    pub(crate) children: &'a Arc<Children>,
}

/// Why a worker process could not be started (the test it was for crashed, with this reason).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot listen on {path}: {source}")]
    Listen { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot start {binary}: {source}")]
    Spawn { binary: String, source: std::io::Error },
    #[error("{why}\n{stderr}")]
    NoConnection { why: ConnectError, stderr: String },
    #[error("cannot use the worker's connection: {0}")]
    Stream(std::io::Error),
}

/// Why a started worker never connected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("the worker process exited before it connected ({0})")]
    Exited(std::process::ExitStatus),
    #[error("the worker process did not connect within 60s")]
    Timeout,
    #[error("cannot accept the worker's connection: {0}")]
    Accept(std::io::Error),
}

impl WorkerProcess {
    pub(crate) fn spawn(launch: &Launch<'_>) -> Result<WorkerProcess, StartError> {
        let _ = std::fs::remove_file(launch.socket);
        let listener = UnixListener::bind(launch.socket)
            .map_err(|source| StartError::Listen { path: launch.socket.to_owned(), source })?;
        let mut command = launch.binary.test_command();
        command
            .current_dir(launch.cwd)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .arg(protocol::WORKER_FLAG)
            .arg(launch.socket);
        let mut child = crate::os::spawn(command)
            .map_err(|source| StartError::Spawn { binary: launch.binary.describe(), source })?;
        launch.children.register(child.id());
        let output = Output::capture(
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let stream = accept(&listener, &mut child).map_err(|why| {
            let printed = output.take_all(Duration::from_secs(1));
            StartError::NoConnection {
                why,
                stderr: String::from_utf8_lossy(&printed.stderr).into_owned(),
            }
        })?;
        let _ = std::fs::remove_file(launch.socket);
        let responses = BufReader::new(stream.try_clone().map_err(StartError::Stream)?);
        Ok(WorkerProcess {
            child,
            requests: stream,
            responses,
            output,
            seq: 0,
            children: launch.children.clone(),
            patience: Duration::from_secs(1),
        })
    }

    /// The next request: numbered, with a fresh random token for its end mark.
    fn request(&mut self, name: &str, attempt: u32, slots: u32, index: usize) -> Request {
        self.seq += 1;
        Request {
            name: name.to_owned(),
            attempt,
            slots,
            index,
            seq: self.seq,
            token: fastrand::u64(..),
        }
    }

    /// Runs one test; past `timeout` the process is killed (the answer is then not `alive`).
    pub(crate) fn run(
        &mut self,
        name: &str,
        attempt: u32,
        slots: u32,
        index: usize,
        timeout: Option<Duration>,
    ) -> Answer {
        let request = self.request(name, attempt, slots, index);
        let line = serde_json::to_string(&request).expect("a request serializes");
        if writeln!(self.requests, "{line}").is_err() {
            return self.died();
        }
        let started = Instant::now();
        let mut reply = String::new();
        loop {
            let left = timeout.map(|limit| limit.saturating_sub(started.elapsed()));
            if left == Some(Duration::ZERO) {
                return self.timed_out(timeout.unwrap_or_default());
            }
            let _ = self.responses.get_ref().set_read_timeout(left);
            match self.responses.read_line(&mut reply) {
                Ok(0) => return self.died(),
                Ok(_) => break,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.died(),
            }
        }
        self.answer(&request, &reply)
    }

    /// The response to `request` read from `reply`, with the test's output; a reply that is no
    /// response to it ends the worker.
    fn answer(&mut self, request: &Request, reply: &str) -> Answer {
        let response = match serde_json::from_str::<Response>(reply) {
            Ok(response) if response.answers(request) => response,
            Ok(response) => {
                return self.protocol_error(format!(
                    "the worker answered request {} ({:?}) while {} ({:?}) was in flight",
                    response.seq, response.name, request.seq, request.name
                ));
            }
            Err(err) => return self.protocol_error(format!("the worker sent no response: {err}")),
        };
        let printed = self.output.take_until(&protocol::output_end(request), self.patience);
        let attempt = Attempt {
            outcome: response.outcome,
            printed,
            captured: response.captured,
            duration: Duration::from_secs_f64(response.duration_ms.max(0.0) / 1000.0),
            usage: response.usage,
        };
        Answer { attempt, alive: true }
    }

    /// Runs `tests` (name and index) one after another, keeping up to a window of requests in
    /// flight so the worker never waits for a round trip. Stops at the first that does not
    /// finish (the worker is then gone): the results so far, that one last.
    /// After each result `keep_going` says whether to send more; the tests already sent still
    /// finish and are returned. A test still running `limits.notice_after` after it started is
    /// told to `long` (its position in `tests`, and how long it has run).
    pub(crate) fn run_many(
        &mut self,
        tests: &[(&str, usize)],
        attempt: u32,
        limits: Limits,
        mut long: impl FnMut(usize, Duration),
        mut keep_going: impl FnMut(&Answer) -> bool,
    ) -> Vec<Answer> {
        const WINDOW: usize = 32;
        let mut in_flight = std::collections::VecDeque::with_capacity(WINDOW);
        let (mut sent, mut results) = (0, Vec::with_capacity(tests.len()));
        let mut wanted = tests.len();
        while results.len() < wanted {
            while sent < wanted && in_flight.len() < WINDOW {
                let (name, index) = tests[sent];
                let request = self.request(name, attempt, 1, index);
                let line = serde_json::to_string(&request).expect("a request serializes");
                if writeln!(self.requests, "{line}").is_err() {
                    results.push(self.died());
                    return results;
                }
                in_flight.push_back(request);
                sent += 1;
            }
            // The test in flight started when the one before it answered.
            let started = Instant::now();
            let mut announced = false;
            let mut reply = String::new();
            loop {
                let ran = started.elapsed();
                let kill = limits.timeout.map(|limit| limit.saturating_sub(ran));
                let notice = (!announced).then(|| limits.notice_after.saturating_sub(ran));
                let wait = kill
                    .into_iter()
                    .chain(notice)
                    .min()
                    .map(|wait| wait.max(Duration::from_millis(1)));
                let _ = self.responses.get_ref().set_read_timeout(wait);
                match self.responses.read_line(&mut reply) {
                    Ok(n) if n > 0 => break,
                    Err(err)
                        if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        let ran = started.elapsed();
                        if limits.timeout.is_some_and(|limit| ran >= limit) {
                            results.push(self.timed_out(limits.timeout.unwrap_or_default()));
                            return results;
                        }
                        if !announced && ran >= limits.notice_after {
                            announced = true;
                            long(results.len(), ran);
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    _ => {
                        results.push(self.died());
                        return results;
                    }
                }
            }
            let request = in_flight.pop_front().expect("a reply answers a request in flight");
            let result = self.answer(&request, &reply);
            let finished = result.alive;
            if !finished || !keep_going(&result) {
                wanted = sent;
            }
            results.push(result);
            if !finished {
                return results;
            }
        }
        results
    }

    fn died(&mut self) -> Answer {
        let status = self.child.wait();
        self.children.unregister(self.child.id());
        let printed = self.output.take_all(Duration::from_secs(5));
        let why = match status {
            Ok(status) => status::describe(status, &printed.stderr),
            Err(err) => format!("the worker process was lost: {err}"),
        };
        Answer::ended(Outcome::Crashed { reason: why }, printed)
    }

    /// The worker broke the protocol: it is killed, and the test in flight gets the reason.
    fn protocol_error(&mut self, why: String) -> Answer {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.children.unregister(self.child.id());
        let printed = self.output.take_all(self.patience);
        Answer::ended(Outcome::Crashed { reason: format!("protocol error: {why}") }, printed)
    }

    fn timed_out(&mut self, limit: Duration) -> Answer {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.children.unregister(self.child.id());
        let printed = self.output.take_all(Duration::from_secs(5));
        Answer::ended(Outcome::TimedOut { after: limit }, printed)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let pid = self.child.id();
        self.reap();
        self.children.unregister(pid);
    }
}

impl WorkerProcess {
    /// Closes the socket: the worker's loop ends and the process exits.
    pub(crate) fn hang_up(&self) {
        let _ = self.requests.shutdown(std::net::Shutdown::Both);
    }

    fn reap(&mut self) {
        // A worker that does not end after the hang-up is killed.
        self.hang_up();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the child to connect, or to die first.
fn accept(listener: &UnixListener, child: &mut TestProcess) -> Result<UnixStream, ConnectError> {
    listener.set_nonblocking(true).map_err(ConnectError::Accept)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(ConnectError::Accept)?;
                return Ok(stream);
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(ConnectError::Exited(status));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    return Err(ConnectError::Timeout);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(err) => return Err(ConnectError::Accept(err)),
        }
    }
}
