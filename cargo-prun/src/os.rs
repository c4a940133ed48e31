//! What is Linux's own in how `cargo prun` starts test processes: each dies with the run.
//!
//! A test process gets the parent-death signal (SIGKILL), so a `kill -9` of `cargo prun` takes
//! every test process with it at once. Linux sends that signal when the *thread* that started
//! the child ends, not the process, and prun starts processes from its pool's threads: so every
//! test process is started by one thread that lives as long as `cargo prun`.
//! Another platform gets its own version of this module (macOS: a kqueue watch on the parent).
#![expect(unsafe_code, reason = "pre_exec runs code in the child between fork and exec")]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
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
}
