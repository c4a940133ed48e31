//! What killed a test process, in words.

use std::process::ExitStatus;

/// `SIGSEGV (segmentation fault)`, `exit code 3`, ...; with the output, to spot a stack
/// overflow (Rust aborts after printing so).
pub(crate) fn describe(status: ExitStatus, output: &[u8]) -> String {
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        let name = signal_name(signal);
        let overflow = String::from_utf8_lossy(output).contains("has overflowed its stack");
        return if overflow {
            format!("stack overflow (killed by {name})")
        } else {
            format!("killed by {name}")
        };
    }
    match status.code() {
        Some(code) => format!("the process exited with code {code} while the test ran"),
        None => format!("the process ended: {status}"),
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL (illegal instruction)",
        5 => "SIGTRAP",
        6 => "SIGABRT (abort)",
        7 => "SIGBUS (bus error)",
        8 => "SIGFPE (arithmetic error)",
        9 => "SIGKILL",
        11 => "SIGSEGV (segmentation fault)",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}
