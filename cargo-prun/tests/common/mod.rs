//! What the end-to-end tests of `cargo prun` share: running it on the fixture workspace and
//! reading what it printed.
#![allow(dead_code, reason = "each test file uses some of these")]

use std::ffi::OsStr;
use std::process::Command;

use prun_e2e::{fixtures_dir, fixtures_target_dir, fixtures_tmp_dir};
use serde_json::Value;

pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            code: output.status.code().unwrap_or(-1),
        }
    }
}

/// Runs `cargo prun ARGS` on the fixture workspace, as cargo would run the subcommand.
pub fn cargo_prun(args: &[&str]) -> Run {
    cargo_prun_with(args, &[])
}

/// `cargo prun ARGS` with more environment variables. Each run has a history of its own
/// (none), unless `PRUN_HISTORY_DIR` is among them.
pub fn cargo_prun_with(args: &[&str], env: &[(&str, &OsStr)]) -> Run {
    let history = tempfile::TempDir::with_prefix_in("history-", fixtures_tmp_dir()).unwrap();
    // The workspace is named after the subcommand, if any (`merge` reads reports only).
    let manifest = fixtures_dir().join("Cargo.toml");
    let workspace = ["--manifest-path", manifest.to_str().unwrap()];
    let (subcommand, rest) = match args.first().copied() {
        Some("merge") => (args, &[][..]),
        Some("timings") => args.split_at(2.min(args.len())),
        Some("list" | "bisect" | "run" | "archive") => args.split_at(1),
        _ => (&[][..], args),
    };
    let workspace = if subcommand.first() == Some(&"merge") { &[][..] } else { &workspace[..] };
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-prun"))
        .arg("prun")
        .args(subcommand)
        .args(workspace)
        .args(rest)
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .env("TMPDIR", fixtures_tmp_dir())
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .env_remove("PRUN_TEST_THREADS")
        .env_remove("NEXTEST_TEST_THREADS")
        .env_remove("RUST_TEST_THREADS")
        .env("PRUN_HISTORY_DIR", history.path())
        .envs(env.iter().copied())
        .output()
        .expect("cargo-prun runs");
    Run::from(output)
}

/// The events of a `--message-format json` stream.
pub fn events(run: &Run) -> impl Iterator<Item = Value> + '_ {
    run.stdout.lines().map(|line| {
        serde_json::from_str::<Value>(line).unwrap_or_else(|err| panic!("{err}: {line}"))
    })
}

/// The final attempt of each test in a `--message-format json` stream, by name.
pub fn outcomes(run: &Run) -> std::collections::BTreeMap<String, Value> {
    events(run)
        .filter(|event| event["type"] == "test-finished" && event["will_retry"] == false)
        .map(|event| (event["name"].as_str().unwrap().to_owned(), event))
        .collect()
}

/// Test names in the order a `--message-format json` run finished them.
pub fn finished_order(run: &Run) -> Vec<String> {
    events(run)
        .filter(|event| event["type"] == "test-finished")
        .map(|event| event["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `parallel-only` events of a `--message-format json` stream.
pub fn parallel_only(run: &Run) -> Vec<Value> {
    events(run).filter(|event| event["type"] == "parallel-only").collect()
}

/// The test cases of a JUnit report, which must be valid XML.
pub fn junit_cases(path: &std::path::Path) -> usize {
    let xml = std::fs::read_to_string(path).unwrap();
    let document = roxmltree::Document::parse(&xml).expect("a valid JUnit report");
    document.descendants().filter(|n| n.has_tag_name("testcase")).count()
}

pub fn last_line(text: &str) -> &str {
    text.trim_end().lines().last().unwrap_or_default()
}

pub fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = fixtures_tmp_dir().join(format!("cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `cargo prun` on a test that waits until it is killed, and returns once that test runs:
/// the child, and the process id of the test's worker. Waits on the marker the test writes, not
/// on a clock (giving up after a minute).
pub fn run_until_a_test_waits(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, u32) {
    let marker = dir.join("running");
    let child = Command::new(env!("CARGO_BIN_EXE_cargo-prun"))
        .arg("prun")
        .args(["--manifest-path", fixtures_dir().join("Cargo.toml").to_str().unwrap()])
        .args(["-p", "faults", "--test", "waits", "-j", "2"])
        .args(extra)
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .env("PRUN_MARKER", &marker)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "the waiting test never started");
        std::thread::yield_now();
    }
    (child, std::fs::read_to_string(&marker).unwrap().parse().unwrap())
}

pub fn send(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
}

/// Whether process `pid` is gone (a zombie is): it is given a minute to go, since a process
/// sent SIGKILL dies when the kernel next schedules it, which on a loaded machine can be after
/// the run that sent the signal has ended.
pub fn gone(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !gone_now(pid) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

fn gone_now(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }
    }
}

/// Runs one target of the `hostile` fixture on one thread, every test to its end, with the
/// JSON stream: the run and the final attempt of each test by name.
pub fn run_hostile(test: &str) -> (Run, std::collections::BTreeMap<String, Value>) {
    let args = ["-p", "hostile", "--test", test, "-j", "1", "--no-fail-fast"];
    let run = cargo_prun(&[&args[..], &["--message-format", "json"]].concat());
    let outcomes = outcomes(&run);
    (run, outcomes)
}

/// An event's outcome kind: `passed`, `failed`, `crashed`, ...
pub fn kind(event: &Value) -> &str {
    event["outcome"]["kind"].as_str().unwrap_or_default()
}

/// All a test said: stdout, stderr, and its captured panic and log lines.
pub fn printed(event: &Value) -> String {
    ["stdout", "stderr", "captured"].map(|field| event[field].as_str().unwrap_or("")).concat()
}

/// Starts a run on a test that waits, kills `cargo prun` with SIGKILL, and waits (a minute at
/// most) for the test process to go. Whether it went, the run's directory, and whether that
/// directory was there after the kill (a killed run cannot remove it).
pub fn kill_9_mid_run(dir: &std::path::Path) -> (bool, std::path::PathBuf, bool) {
    let (mut child, test_pid) = run_until_a_test_waits(dir, &[]);
    // The waiting test's TMPDIR is in the run's directory.
    let environ = std::fs::read(format!("/proc/{test_pid}/environ")).unwrap();
    let tmpdir = environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"TMPDIR="))
        .map(|dir| std::path::PathBuf::from(String::from_utf8_lossy(dir).into_owned()))
        .unwrap();
    let run_dir = tmpdir.parent().unwrap().to_owned();
    send(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    (gone(test_pid), run_dir.clone(), run_dir.exists())
}

/// A run of one quick test with the temp dir `run_until_a_test_waits` gives its runs: whether
/// it passed.
pub fn quick_run_in_the_usual_temp_dir() -> bool {
    Command::new(env!("CARGO_BIN_EXE_cargo-prun"))
        .arg("prun")
        .args(["--manifest-path", fixtures_dir().join("Cargo.toml").to_str().unwrap()])
        .args(["-p", "faults", "--test", "waits", "finishes_first"])
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .env("NO_COLOR", "1")
        .status()
        .unwrap()
        .success()
}

/// A JSON file: a `--json` report, a timings file, a trace.
pub fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The final outcome kind of each test (`BINARY NAME`) in a `--json` report.
pub fn report_outcomes(report: &Value) -> std::collections::BTreeMap<String, String> {
    report["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["will_retry"] == false)
        .map(|a| {
            let id = format!("{} {}", a["binary"].as_str().unwrap(), a["name"].as_str().unwrap());
            (id, a["outcome"]["kind"].as_str().unwrap().to_owned())
        })
        .collect()
}
