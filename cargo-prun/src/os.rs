//! What is Linux's own in how `cargo prun` starts test processes: each dies with the run.
//!
//! A test process gets the parent-death signal (SIGKILL), so a `kill -9` of `cargo prun` takes
//! every test process with it at once. Linux sends that signal when the *thread* that started
//! the child ends, not the process, and prun starts processes from its pool's threads: so every
//! test process is started by one thread that lives as long as `cargo prun`.
//! Another platform gets its own version of this module (macOS: a kqueue watch on the parent).
//!
//! A test process is reaped with `wait4`, which also says what it used over its life.
#![expect(unsafe_code, reason = "pre_exec runs code in the child; wait4 has no safe wrapper")]

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

type Request = (Command, Sender<io::Result<Child>>);

/// Starts `command` from the spawner thread, as a process that dies when `cargo prun` does.
pub(crate) fn spawn(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, and only makes two system
    // calls (prctl, getppid) that are async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The parent may have died before the signal was asked for: then go now.
            if nix::unistd::getppid().as_raw() != i32::try_from(parent).unwrap_or(0) {
                return Err(io::Error::other("cargo prun is gone"));
            }
            Ok(())
        });
    }
    let (answer, answered) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
        .send((command, answer))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answered.recv().map_err(|_| io::Error::other("the spawner thread is gone"))?
}

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
        // thread, which lives on, so the child is not killed with the short-lived thread.
        let child = std::thread::spawn(|| {
            let mut command = Command::new("sleep");
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
    fn a_reaped_process_says_what_it_used() {
        // A shell that burns CPU until the kernel has counted some, in a child it waits for.
        let mut command = Command::new("sh");
        command.args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]);
        let (status, usage) = reap(spawn(command).unwrap()).unwrap();
        assert!(status.success());
        assert!(usage.cpu_ms > 0, "{usage:?}");
        assert!(usage.peak_kb > 0, "{usage:?}");
    }
}
