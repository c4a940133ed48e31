//! What is Linux's own in how `cargo prun` starts test processes: each dies with the run.
//!
//! A test process gets the parent-death signal (SIGKILL), so a `kill -9` of `cargo prun` takes
//! every test process with it at once. A process asks for that signal itself, between its start
//! and the exec of the test, and Linux sends it when the *thread* that started the process ends,
//! not the process; prun starts processes from its pool's threads, so every test process is
//! started by one thread that lives as long as `cargo prun`.
//!
//! That thread must not fork: a fork copies the page tables of all of `cargo prun` (2-5 ms on
//! this project's 2-core machine, more with a large catalog), one start after another, so that
//! 45 tests that wait took 150 ms to start when a wave of them ended together, and the cores
//! idled meanwhile. Nor should the new process be a second program that asks for the signal
//! and then executes the test's (a trampoline, which cost a millisecond of CPU a start, as
//! much again as the test binary's own start). So a test process starts as `posix_spawn` starts
//! one: `clone` with `CLONE_VM | CLONE_VFORK`, the new process on a stack of its own in this
//! process's memory, making only system calls (signal dispositions back to the default, its
//! own process group, the parent-death signal, its standard streams, its directory) until it
//! executes the test's program, while the spawner thread waits. Everything it needs (paths,
//! arguments, environment, pipes) is made before, so nothing in the child allocates or locks.
//!
//! A test process is reaped with `wait4`, which also says what it used over its life.
#![expect(
    unsafe_code,
    reason = "a process started with clone(CLONE_VM | CLONE_VFORK) and reaped with wait4: \
              neither has a safe wrapper that asks for the parent-death signal or says the usage"
)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

/// The command of a test process, to give to [`spawn`]: a program, its arguments, environment
/// (over `cargo prun`'s own) and directory. Its stdin is `/dev/null`, its stdout and stderr are
/// pipes, and it leads a process group of its own (so that a timeout kills what it started).
#[derive(Debug, Clone)]
pub(crate) struct TestCommand {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
}

impl TestCommand {
    pub(crate) fn new(program: impl AsRef<OsStr>) -> TestCommand {
        let program = program.as_ref().to_owned();
        TestCommand { program, args: Vec::new(), envs: Vec::new(), dir: None }
    }

    pub(crate) fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TestCommand {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(&mut self, args: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    pub(crate) fn env(
        &mut self,
        key: impl AsRef<OsStr>,
        value: impl AsRef<OsStr>,
    ) -> &mut TestCommand {
        self.envs.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub(crate) fn envs<I, K, V>(&mut self, vars: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    pub(crate) fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut TestCommand {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// The file to execute, found as `execvp` would (a name without a slash on the command's
    /// `PATH`, or else ours); or what starting it would say when it cannot be found or run.
    fn program_path(&self) -> io::Result<PathBuf> {
        let executable = |path: &Path| nix::unistd::access(path, nix::unistd::AccessFlags::X_OK);
        let program = Path::new(&self.program);
        if program.components().count() > 1 {
            // A relative path is the new process's, from its directory.
            let path = match &self.dir {
                Some(dir) if program.is_relative() => dir.join(program),
                _ => program.to_owned(),
            };
            executable(&path)?;
            return Ok(path);
        }
        let path = self
            .envs
            .iter()
            .rev()
            .find(|(key, _)| key == "PATH")
            .map(|(_, value)| value.clone())
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|path| executable(path).is_ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    /// Everything the new process needs, made before it exists.
    fn prepare(&self) -> io::Result<Prepared> {
        let c_string = |text: &OsStr| {
            CString::new(text.as_bytes()).map_err(|_| {
                let text = text.to_string_lossy();
                io::Error::new(io::ErrorKind::InvalidInput, format!("a NUL byte in {text:?}"))
            })
        };
        let program = self.program_path()?;
        let mut environment: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        environment.extend(self.envs.iter().cloned());
        let environment = environment.into_iter().map(|(key, value)| {
            let mut pair = key;
            pair.push("=");
            pair.push(value);
            c_string(&pair)
        });
        let dir = self.dir.as_deref().map(|dir| c_string(dir.as_os_str())).transpose()?;
        let argv = std::iter::once(&self.program).chain(&self.args).map(|arg| c_string(arg));
        // Above the standard streams, so that placing one never overwrites another.
        let above = |fd: OwnedFd| if fd.as_raw_fd() > 2 { Ok(fd) } else { fd.try_clone() };
        let (stdout, stdout_end) = io::pipe()?;
        let (stderr, stderr_end) = io::pipe()?;
        let stdin_end = above(File::open("/dev/null")?.into())?;
        Ok(Prepared {
            program: c_string(program.as_os_str())?,
            argv: argv.collect::<io::Result<_>>()?,
            environment: environment.collect::<io::Result<_>>()?,
            dir,
            ends: [stdin_end, above(stdout_end.into())?, above(stderr_end.into())?],
            stdout: above(stdout.into())?,
            stderr: above(stderr.into())?,
        })
    }
}

/// A started test process: its pid and the read ends of its stdout and stderr.
#[derive(Debug)]
pub(crate) struct TestProcess {
    pid: u32,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
    /// Set once it was reaped: its pid may then be another process's.
    ended: Option<ExitStatus>,
}

impl TestProcess {
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// SIGKILL, unless it was reaped already.
    pub(crate) fn kill(&mut self) -> io::Result<()> {
        if self.ended.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).map_err(io::Error::other)?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).map_err(io::Error::from)
    }

    /// Reaps it if it has ended.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.ended.is_none() {
            self.ended = wait4(self.pid, libc::WNOHANG)?.map(|(status, _)| status);
        }
        Ok(self.ended)
    }

    /// Waits for it to end and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        if self.ended.is_none() {
            self.ended = wait4(self.pid, 0)?.map(|(status, _)| status);
        }
        self.ended.ok_or_else(|| io::Error::other("the process did not end"))
    }
}

/// What the new process reads, in the memory it shares with the spawner thread until it
/// executes the test.
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    environment: Vec<CString>,
    dir: Option<CString>,
    /// Its stdin, stdout and stderr: `/dev/null` and the pipes' write ends.
    ends: [OwnedFd; 3],
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// What the child reads: pointers into a [`Prepared`], and where it says why it failed.
struct Start {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    environment: *const *const libc::c_char,
    dir: *const libc::c_char,
    ends: [RawFd; 3],
    parent: libc::pid_t,
    /// The errno of the step that failed, 0 while none did.
    error: AtomicI32,
}

/// The new process's stack: its own, in the spawner thread's memory. The child only makes
/// system calls through libc's thin wrappers.
const STACK: usize = 64 * 1024;

/// Starts `command` from the spawner thread, as a process that dies when `cargo prun` does.
pub(crate) fn spawn(command: TestCommand) -> io::Result<TestProcess> {
    let prepared = command.prepare()?;
    let (answer, answered) = mpsc::channel();
    let gone = || io::Error::other("the spawner thread is gone");
    spawner().lock().map_err(|_| gone())?.send((prepared, answer)).map_err(|_| gone())?;
    answered.recv().map_err(|_| gone())?
}

type Request = (Prepared, Sender<io::Result<TestProcess>>);

/// The one thread that starts test processes; it lives as long as the process.
fn spawner() -> &'static Mutex<Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (send, requests) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("prun-spawner".into())
            .spawn(move || {
                let mut stack = vec![0u8; STACK];
                for (prepared, answer) in requests {
                    let _ = answer.send(start(prepared, &mut stack));
                }
            })
            .expect("a thread to start test processes");
        Mutex::new(send)
    })
}

/// Starts the prepared process from this thread (whose end sends it SIGKILL), on `stack`.
fn start(prepared: Prepared, stack: &mut [u8]) -> io::Result<TestProcess> {
    let pointers = |strings: &[CString]| {
        let mut pointers: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(std::ptr::null());
        pointers
    };
    let (argv, environment) = (pointers(&prepared.argv), pointers(&prepared.environment));
    let start = Start {
        program: prepared.program.as_ptr(),
        argv: argv.as_ptr(),
        environment: environment.as_ptr(),
        dir: prepared.dir.as_ref().map_or(std::ptr::null(), |dir| dir.as_ptr()),
        ends: prepared.ends.each_ref().map(AsRawFd::as_raw_fd),
        parent: nix::unistd::getpid().as_raw(),
        error: AtomicI32::new(0),
    };
    // The top of the stack, aligned as the ABI asks.
    let top = stack.as_mut_ptr_range().end.map_addr(|address| address & !15);
    // SAFETY: sigset_t is plain data, filled by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are live locals. While the child shares this memory, no signal
    // handler of ours may run in it: every signal is blocked until it set them to default.
    unsafe {
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut before);
    }
    // SAFETY: `in_child` only reads `start` (alive until clone returns: CLONE_VFORK suspends
    // this thread until the child executed or exited) and makes system calls on `stack`,
    // which nothing else uses meanwhile.
    let pid = unsafe {
        libc::clone(
            in_child,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw const start).cast_mut().cast(),
        )
    };
    let cloned = io::Error::last_os_error();
    // SAFETY: `before` is the mask set above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw const before, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(cloned);
    }
    let pid = u32::try_from(pid).map_err(io::Error::other)?;
    drop(prepared.ends);
    let error = start.error.load(Ordering::SeqCst);
    if error != 0 {
        wait4(pid, 0)?;
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(TestProcess {
        pid,
        stdout: Some(ChildStdout::from(prepared.stdout)),
        stderr: Some(ChildStderr::from(prepared.stderr)),
        ended: None,
    })
}

/// The new process until it executes the test: system calls only (no allocation, no lock, as
/// it shares the memory of `cargo prun`); on a failure it leaves the errno in `start.error`
/// and exits 127.
extern "C" fn in_child(start: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start` is the `Start` that `start` passed, alive while this runs.
    let start = unsafe { &*start.cast::<Start>() };
    let fail = || -> libc::c_int {
        // SAFETY: errno is this thread's (the spawner's, suspended); _exit ends only the child.
        unsafe {
            start.error.store((*libc::__errno_location()).max(1), Ordering::SeqCst);
            libc::_exit(127)
        }
    };
    // SAFETY: each call is a system call on data that `start` keeps alive.
    unsafe {
        // Handlers of ours must not run here, nor be inherited as ignored: SIGPIPE, which
        // Rust ignores, back to the default as a Command would.
        let mut action: libc::sigaction = std::mem::zeroed();
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..=libc::SIGRTMAX() {
            if libc::sigaction(signal, std::ptr::null(), &raw mut action) != 0 {
                continue;
            }
            let handled = ![libc::SIG_DFL, libc::SIG_IGN].contains(&action.sa_sigaction);
            if handled || signal == libc::SIGPIPE {
                libc::sigaction(signal, &raw const default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail();
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return fail();
        }
        // `cargo prun` died before the signal was asked for: go now.
        if libc::getppid() != start.parent {
            *libc::__errno_location() = libc::ESRCH;
            return fail();
        }
        for (target, &end) in start.ends.iter().enumerate() {
            let target = target as libc::c_int;
            if libc::dup2(end, target) < 0 {
                return fail();
            }
        }
        if !start.dir.is_null() && libc::chdir(start.dir) != 0 {
            return fail();
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const none, std::ptr::null_mut());
        libc::execve(start.program, start.argv, start.environment);
    }
    fail()
}

/// Waits for process `pid` (`flags`: 0, or `WNOHANG` for `None` while it runs), and reaps it:
/// how it ended and what it used over its life.
fn wait4(pid: u32, flags: libc::c_int) -> io::Result<Option<(ExitStatus, prun::usage::Usage)>> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &raw mut status, flags, &raw mut usage) };
        if reaped == 0 {
            return Ok(None);
        }
        if reaped == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let millis = |time: libc::timeval| {
        u64::try_from(time.tv_sec).unwrap_or(0) * 1000
            + u64::try_from(time.tv_usec).unwrap_or(0) / 1000
    };
    let used = prun::usage::Usage {
        cpu_ms: millis(usage.ru_utime) + millis(usage.ru_stime),
        peak_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    };
    Ok(Some((ExitStatus::from_raw(status), used)))
}

/// Waits for `process` to end and reaps it: how it ended, and what it used over its life (CPU
/// of its threads and of the children it waited for, its peak resident memory). The process is
/// consumed: nothing can signal its pid once it may belong to another process.
pub(crate) fn reap(mut process: TestProcess) -> io::Result<(ExitStatus, prun::usage::Usage)> {
    if let Some(status) = process.ended {
        return Ok((status, prun::usage::Usage::default()));
    }
    let reaped = wait4(process.pid, 0)?;
    process.ended = reaped.map(|(status, _)| status);
    reaped.ok_or_else(|| io::Error::other("the process did not end"))
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
    use std::io::{BufRead, Read};

    use super::*;

    fn shell(script: &str) -> TestCommand {
        let mut command = TestCommand::new("sh");
        command.args(["-c", script]);
        command
    }

    fn output(mut process: TestProcess) -> (ExitStatus, String, String) {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        process.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        process.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (process.wait().unwrap(), stdout, stderr)
    }

    #[test]
    fn a_test_process_gets_its_command_its_streams_and_a_group_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = shell(
            "echo \"$0 $PRUN_OS_TEST\"; pwd; echo to-stderr >&2; \
             test \"$(cut -d' ' -f5 /proc/$$/stat)\" = $$ && echo leads-its-group; \
             read line; echo \"stdin $?\"; exit 3",
        );
        command.arg("first").env("PRUN_OS_TEST", "set").current_dir(dir.path());
        let (status, stdout, stderr) = output(spawn(command).unwrap());
        assert_eq!(status.code(), Some(3));
        let dir = dir.path().canonicalize().unwrap();
        let expected = format!("first set\n{}\nleads-its-group\nstdin 1\n", dir.display());
        assert_eq!(stdout, expected);
        assert_eq!(stderr, "to-stderr\n");
    }

    #[test]
    fn a_test_process_blocks_no_signal_and_gets_sigpipe() {
        // The spawner thread blocks every signal while the new process shares its memory; the
        // process unblocks them, and takes SIGPIPE back from ignored (as Rust leaves it here).
        let mut command = TestCommand::new("grep");
        command.args(["-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
        let (status, stdout, _) = output(spawn(command).unwrap());
        assert!(status.success());
        let mask = |name: &str| {
            let line = stdout.lines().find_map(|line| line.strip_prefix(name)).unwrap();
            u64::from_str_radix(line.trim(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "{stdout}");
        assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{stdout}");
    }

    #[test]
    fn a_test_process_dies_with_the_thread_that_started_it() {
        // Started from a thread that then ends, the way the spawner thread starts them all:
        // the parent-death signal, asked for before the exec, kills it.
        let mut process = std::thread::spawn(|| {
            let mut stack = vec![0u8; STACK];
            let prepared = shell("echo started; exec sleep 60").prepare().unwrap();
            let mut process = start(prepared, &mut stack).unwrap();
            let mut line = String::new();
            let stdout = process.stdout.as_mut().unwrap();
            std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
            assert_eq!(line, "started\n");
            process
        })
        .join()
        .unwrap();
        assert_eq!(process.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_process_started_from_a_thread_that_ends_lives_on() {
        // Started through `spawn` from a thread that then ends: the parent-death signal is tied
        // to the spawner thread, which lives on, so the child is not killed with the thread.
        let mut process =
            std::thread::spawn(|| spawn(shell("exec sleep 30")).unwrap()).join().unwrap();
        let pid = process.id();
        assert!(alive(pid));
        assert_eq!(process.try_wait().unwrap(), None);
        process.kill().unwrap();
        assert_eq!(process.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(!alive(pid));
        // Reaped: killing it again signals nothing.
        process.kill().unwrap();
    }

    #[test]
    fn a_program_that_cannot_be_started_is_an_error_and_no_process() {
        let error = |command: TestCommand| spawn(command).unwrap_err();
        let kind = |command: TestCommand| error(command).kind();
        assert_eq!(kind(TestCommand::new("/no/such/program")), io::ErrorKind::NotFound);
        assert_eq!(kind(TestCommand::new("no-such-program-of-prun")), io::ErrorKind::NotFound);
        let mut command = TestCommand::new("no-such-program-of-prun");
        command.env("PATH", "/no/such/dir");
        assert_eq!(kind(command), io::ErrorKind::NotFound);
        // A file that is not executable.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("script"), "#!/bin/sh\n").unwrap();
        assert_eq!(
            kind(TestCommand::new(dir.path().join("script"))),
            io::ErrorKind::PermissionDenied
        );
        // A relative path is from the command's directory.
        let mut command = TestCommand::new("./script");
        command.current_dir(dir.path());
        assert_eq!(kind(command), io::ErrorKind::PermissionDenied);
        // What the new process found: an executable the kernel cannot run, a directory that is
        // not there. The child is reaped: no zombie is left.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
        std::fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_eq!(error(TestCommand::new(&junk)).raw_os_error(), Some(libc::ENOEXEC));
        let mut command = shell("true");
        command.current_dir(dir.path().join("gone"));
        assert_eq!(kind(command), io::ErrorKind::NotFound);
        assert_eq!(
            wait4(u32::MAX >> 1, libc::WNOHANG).unwrap_err().raw_os_error(),
            Some(libc::ECHILD)
        );
        // A NUL in an argument.
        let mut command = shell("true");
        command.arg("a\0b");
        assert_eq!(kind(command), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_reaped_process_says_what_it_used() {
        // A shell that burns CPU until the kernel has counted some, in a child it waits for.
        let burn = shell("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
        let (status, usage) = reap(spawn(burn).unwrap()).unwrap();
        assert!(status.success());
        assert!(usage.cpu_ms > 0, "{usage:?}");
        assert!(usage.peak_kb > 0, "{usage:?}");
    }
}
