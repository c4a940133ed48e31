//! What is Linux's own in how `cargo prun` starts test processes: each dies with the run.
//!
//! A test process gets the parent-death signal (SIGKILL), so a `kill -9` of `cargo prun` takes
//! every test process with it at once. Linux sends that signal when the *thread* that started
//! the child ends, not the process, and prun starts processes from its pool's threads: so every
//! test process is started by one thread that lives as long as `cargo prun`.
//!
//! That thread must not fork: a fork copies the page tables of all of `cargo prun` (2-5 ms on
//! this project's 2-core machine, more with a large catalog), one start after another, so that
//! 45 tests that wait took 150 ms to start when a wave of them ended together, and the cores
//! idled meanwhile. So a test process starts as `cargo-prun` itself, through `posix_spawn`
//! (which copies nothing), with [`TRAMPOLINE`] as its first argument: it asks for the signal,
//! checks that `cargo prun` is still there, and executes the test's command, which keeps the
//! signal, the process, its pid and everything the command set (directory, environment,
//! pipes, process group). The start itself then happens in the new process, on any core.
//! (Where there is no `/proc`, a test process is forked and asks for the signal before exec.)
//! Another platform gets its own version of this module (macOS: a kqueue watch on the parent).
//!
//! A test process is reaped with `wait4`, which also says what it used over its life.
#![expect(
    unsafe_code,
    reason = "wait4 has no safe wrapper; without /proc, pre_exec runs code in the child"
)]

use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

/// The first argument that makes `cargo-prun` start a test's command rather than run:
/// `cargo-prun TRAMPOLINE PARENT_PID PROGRAM ARGS...`.
pub(crate) const TRAMPOLINE: &str = "__prun-start-test";

/// The command of a test process, to give to [`spawn`]: a `Command` for `program` in all but
/// how it starts.
#[derive(Debug)]
pub(crate) struct TestCommand {
    command: Command,
    program: OsString,
}

impl TestCommand {
    pub(crate) fn new(program: impl AsRef<OsStr>) -> TestCommand {
        let program = program.as_ref().to_owned();
        // `/proc/self/exe` is read by the new process before it executes anything: this
        // `cargo-prun`, even if its file was replaced since it started.
        static PROC: OnceLock<bool> = OnceLock::new();
        if !*PROC.get_or_init(|| Path::new("/proc/self/exe").exists()) {
            return TestCommand::forked(program);
        }
        let mut command = Command::new("/proc/self/exe");
        command.arg(TRAMPOLINE).arg(std::process::id().to_string()).arg(&program);
        TestCommand { command, program }
    }

    /// Without `/proc` (a sandbox that has none): the command itself, asking for the signal
    /// between fork and exec.
    fn forked(program: OsString) -> TestCommand {
        let mut command = Command::new(&program);
        let parent = std::process::id();
        // SAFETY: the closure runs in the child between fork and exec, and only makes two
        // system calls (prctl, getppid) that are async-signal-safe; it allocates nothing and
        // takes no lock.
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                if nix::unistd::getppid().as_raw() != i32::try_from(parent).unwrap_or(0) {
                    return Err(io::Error::other("cargo prun is gone"));
                }
                Ok(())
            });
        }
        TestCommand { command, program }
    }

    /// Whether its program can be started: what starting it would say when it cannot be found
    /// or run (the new process can only say so in its exit code and stderr).
    fn check(&self) -> io::Result<()> {
        let executable = |path: &Path| nix::unistd::access(path, nix::unistd::AccessFlags::X_OK);
        let program = Path::new(&self.program);
        if program.components().count() > 1 {
            // A relative path is the new process's, from its directory.
            let path = match self.command.get_current_dir() {
                Some(dir) if program.is_relative() => dir.join(program),
                _ => program.to_owned(),
            };
            return executable(&path).map_err(io::Error::from);
        }
        let path = self
            .command
            .get_envs()
            .find(|(key, _)| *key == "PATH")
            .and_then(|(_, value)| value.map(OsStr::to_owned))
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        if std::env::split_paths(&path).any(|dir| executable(&dir.join(program)).is_ok()) {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
    }
}

impl Deref for TestCommand {
    type Target = Command;

    fn deref(&self) -> &Command {
        &self.command
    }
}

impl DerefMut for TestCommand {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.command
    }
}

/// Starts `command` from the spawner thread, as a process that dies when `cargo prun` does.
pub(crate) fn spawn(command: TestCommand) -> io::Result<Child> {
    command.check()?;
    let (answer, answered) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
        .send((command.command, answer))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answered.recv().map_err(|_| io::Error::other("the spawner thread is gone"))?
}

/// When this process was started as [`TRAMPOLINE`]: asks for the parent-death signal and
/// becomes the test's command (or says why it cannot, and exits 127, as a shell does).
/// Otherwise returns at once.
pub(crate) fn start_test_if_asked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(TRAMPOLINE)) {
        return;
    }
    let parent = args.next().and_then(|pid| pid.to_str()?.parse::<i32>().ok());
    let Some((parent, program)) = parent.zip(args.next()) else {
        eprintln!("cargo-prun {TRAMPOLINE}: expected PARENT_PID PROGRAM [ARGS...]");
        std::process::exit(127);
    };
    if let Err(err) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        eprintln!("cargo prun: cannot tie {} to the run: {err}", program.to_string_lossy());
        std::process::exit(127);
    }
    // The parent may have died before the signal was asked for: then go now.
    if nix::unistd::getppid().as_raw() != parent {
        std::process::exit(127);
    }
    let err = Command::new(&program).args(args).exec();
    eprintln!("cargo prun: cannot start {}: {err}", program.to_string_lossy());
    std::process::exit(127);
}

type Request = (Command, Sender<io::Result<Child>>);

/// The one thread that starts test processes; it lives as long as the process.
fn spawner() -> &'static Mutex<Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (send, requests) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("prun-spawner".into())
            .spawn(move || {
                for (mut command, answer) in requests {
                    let _ = answer.send(command.spawn());
                }
            })
            .expect("a thread to start test processes");
        Mutex::new(send)
    })
}

/// Waits for `child` to end and reaps it: how it ended, and what it used over its life (CPU of
/// its threads and of the children it waited for, its peak resident memory). The `Child` is
/// consumed: nothing can signal its pid once it may belong to another process.
pub(crate) fn reap(child: Child) -> io::Result<(ExitStatus, prun::usage::Usage)> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if reaped == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    drop(child);
    let millis = |time: libc::timeval| {
        u64::try_from(time.tv_sec).unwrap_or(0) * 1000
            + u64::try_from(time.tv_usec).unwrap_or(0) / 1000
    };
    let used = prun::usage::Usage {
        cpu_ms: millis(usage.ru_utime) + millis(usage.ru_stime),
        peak_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    };
    Ok((ExitStatus::from_raw(status), used))
}

/// Whether process `pid` is still there (a zombie is not).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_started_from_a_thread_that_ends_lives_on() {
        // Started from a thread that then ends: the parent-death signal is tied to the spawner
        // thread, which lives on, so the child is not killed with the short-lived thread. (The
        // forked command asks for the signal as the trampoline does, which a unit test, not
        // being cargo-prun, cannot be: tests/cli.rs runs the trampoline.)
        let child = std::thread::spawn(|| {
            let mut command = TestCommand::forked("sleep".into());
            command.arg("30");
            spawn(command).unwrap()
        })
        .join()
        .unwrap();
        let pid = child.id();
        assert!(alive(pid));
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    #[test]
    fn a_program_that_cannot_be_started_is_an_error_before_any_process_starts() {
        let error = |command: TestCommand| spawn(command).unwrap_err().kind();
        assert_eq!(error(TestCommand::new("/no/such/program")), io::ErrorKind::NotFound);
        assert_eq!(error(TestCommand::new("no-such-program-of-prun")), io::ErrorKind::NotFound);
        let mut command = TestCommand::new("no-such-program-of-prun");
        command.env("PATH", "/no/such/dir");
        assert_eq!(error(command), io::ErrorKind::NotFound);
        // A file that is not executable.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("script"), "#!/bin/sh\n").unwrap();
        assert_eq!(
            error(TestCommand::new(dir.path().join("script"))),
            io::ErrorKind::PermissionDenied
        );
        // A relative path is from the command's directory.
        let mut command = TestCommand::new("./script");
        command.current_dir(dir.path());
        assert_eq!(error(command), io::ErrorKind::PermissionDenied);
        assert!(TestCommand::new("sh").check().is_ok());
    }

    #[test]
    fn a_reaped_process_says_what_it_used() {
        // A shell that burns CPU until the kernel has counted some, in a child it waits for.
        let mut command = Command::new("sh");
        command.args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]);
        let (status, usage) = reap(command.spawn().unwrap()).unwrap();
        assert!(status.success());
        assert!(usage.cpu_ms > 0, "{usage:?}");
        assert!(usage.peak_kb > 0, "{usage:?}");
    }
}
