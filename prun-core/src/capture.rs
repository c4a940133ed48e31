//! Panic output goes to the test that panicked, not to the terminal.
//!
//! Stable Rust cannot redirect `println!` per thread, but the panic hook is ours: while a thread
//! runs a test (or works for one, like the threads of a heavy test's pool) its panic messages are
//! appended to that test's buffer. Threads that run no test keep the default hook.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::{Arc, Once};

use parking_lot::Mutex;

/// The text one attempt of a test produced: panic messages and its `Ctx` log lines.
#[derive(Debug, Default)]
pub(crate) struct Capture(Mutex<String>);

impl Capture {
    pub(crate) fn push_line(&self, line: &str) {
        let mut text = self.0.lock();
        text.push_str(line);
        if !line.ends_with('\n') {
            text.push('\n');
        }
    }

    pub(crate) fn take(&self) -> String {
        std::mem::take(&mut self.0.lock())
    }
}

thread_local! {
    static CURRENT: RefCell<Option<(Arc<Capture>, Arc<str>)>> = const { RefCell::new(None) };
}

/// Routes this thread's panic messages to `capture` until the guard drops.
pub(crate) fn route(capture: Arc<Capture>, test_name: Arc<str>) -> RouteGuard {
    install_hook();
    let previous = CURRENT.with(|current| current.replace(Some((capture, test_name))));
    RouteGuard { previous }
}

#[must_use]
pub(crate) struct RouteGuard {
    previous: Option<(Arc<Capture>, Arc<str>)>,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let routed = CURRENT.with(|current| current.borrow().clone());
            let Some((capture, test_name)) = routed else {
                return default_hook(info);
            };
            let mut text = String::new();
            let location = info.location().map(ToString::to_string).unwrap_or_default();
            let _ = writeln!(text, "thread '{test_name}' panicked at {location}:");
            let _ = writeln!(text, "{}", payload_text(info.payload()));
            let backtrace = std::backtrace::Backtrace::capture();
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                let full = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v == "full");
                let frames = backtrace.to_string();
                let frames = if full { frames.as_str().into() } else { short(&frames) };
                let _ = writeln!(text, "stack backtrace:\n{frames}");
            }
            capture.push_line(&text);
        }));
    });
}

/// The frames between the panic machinery and the harness, as std's short backtraces show:
/// what the test itself was doing.
fn short(frames: &str) -> std::borrow::Cow<'_, str> {
    let lines: Vec<&str> = frames.lines().collect();
    let is_frame = |line: &&str| {
        line.trim_start().split_once(": ").is_some_and(|(n, _)| n.parse::<u32>().is_ok())
    };
    let frame_starts: Vec<usize> = (0..lines.len()).filter(|&i| is_frame(&lines[i])).collect();
    let first = frame_starts
        .iter()
        .rposition(|&i| {
            lines[i].contains("core::panicking::panic") || lines[i].contains("rust_begin_unwind")
        })
        .map_or(0, |pos| pos + 1);
    let last = frame_starts
        .iter()
        .position(|&i| lines[i].contains("__prun_run"))
        .unwrap_or(frame_starts.len());
    if first >= last {
        return frames.into();
    }
    let end = frame_starts.get(last).copied().unwrap_or(lines.len());
    let mut kept = lines[frame_starts[first]..end].join("\n");
    kept.push_str(
        "\nnote: some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.",
    );
    kept.into()
}

/// The message a panic carried, as `panic!` formatted it.
pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "Box<dyn Any>"
    }
}
