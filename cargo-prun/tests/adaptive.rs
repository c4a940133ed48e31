//! Adaptive concurrency, end to end: with no `-j`, `cargo prun` runs more tests at once than
//! there are cores while they wait (the fixture's tests pass only when cores + 2 of them meet),
//! measures what each test used and keeps it in the history and `list`; a test that failed
//! while the machine was oversubscribed, and passed alone and with the same company, is "fails
//! under load": it does not fail the run, and later runs give it a core of its own.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{Run, cargo_prun_with, events, outcomes};
use serde_json::Value;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the rendezvous of `a_fragile` and `k - 1` `meet_NN` tests (and `burn` unless `extra`
/// says `--skip burn`), with a fresh meeting place, the given history and fragile marker.
fn meet(k: usize, history: &Path, marker: &Path, extra: &[&str]) -> Run {
    let place = tempfile::TempDir::with_prefix_in("meet-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let names: Vec<String> = std::iter::once("a_fragile".to_owned())
        .chain((0..k - 1).map(|i| format!("meet_{i:02}")))
        .chain(std::iter::once("burn".to_owned()))
        .collect();
    let mut args = vec!["-p", "adaptive", "--message-format", "json", "--exact"];
    args.extend(names.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let k = k.to_string();
    let env: [(&str, &OsStr); 4] = [
        ("RENDEZVOUS_DIR", place.path().as_os_str()),
        ("RENDEZVOUS_K", OsStr::new(&k)),
        ("FRAGILE_MARKER", marker.as_os_str()),
        ("PRUN_HISTORY_DIR", history.as_os_str()),
    ];
    cargo_prun_with(&args, &env)
}

/// What the history in `dir` says of the test `name`, as `cargo prun list --format json` shows it.
fn history_of(dir: &Path, name: &str) -> Value {
    let list = cargo_prun_with(
        &["list", "-p", "adaptive", "--format", "json"],
        &[("PRUN_HISTORY_DIR", dir.as_os_str())],
    );
    events(&list)
        .find(|line| line["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {}", list.stdout))
}

#[test]
fn waiting_tests_run_more_at_once_than_cores_and_a_failure_under_load_is_told_apart() {
    // a_fragile and 16 meet tests at most: a rendezvous of cores + 2.
    let k = cores() + 2;
    if k > 17 {
        eprintln!("skipped: {} cores need more meeting tests than the fixture has", cores());
        return;
    }
    let dir = tempfile::TempDir::with_prefix_in("adaptive-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let (history, marker) = (dir.path().join("history"), dir.path().join("fragile-ran"));

    // First run, no history: every test weighs a core, and the measured idle cores let the
    // rest in. a_fragile fails once, while the machine holds more tests than cores.
    let first = meet(k, &history, &marker, &[]);
    let outcome = outcomes(&first);
    assert_eq!(first.code, 0, "a failure under load does not fail the run:\n{}", first.stderr);
    for i in 0..k - 1 {
        assert_eq!(outcome[&format!("meet_{i:02}")]["passed"], true, "{}", first.stderr);
    }
    let under_load: Vec<Value> =
        events(&first).filter(|e| e["type"] == "fails-under-load").collect();
    assert_eq!(under_load.len(), 1, "{}", first.stdout);
    assert_eq!(under_load[0]["name"], "a_fragile");
    assert!(under_load[0]["reason"].as_str().unwrap().contains("oversubscribed"));
    let summary = events(&first).find(|e| e["type"] == "run-finished").unwrap();
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(summary["flaky"].to_string().contains("a_fragile"), "{summary}");
    assert!(first.stderr.contains("UNDER-LOAD"), "{}", first.stderr);

    // What each test used is measured, reported and kept.
    let burn = &outcome["burn"]["usage"];
    assert!(burn["cpu_ms"].as_u64().unwrap() >= 50, "{burn}");
    assert!(burn["peak_kb"].as_u64().unwrap() > 0, "{burn}");
    let burned = history_of(&history, "burn");
    assert_eq!(burned["runs"], 1, "{burned}");
    // It burned 50 ms of CPU or more: its CPU per second of its typical time says as much.
    let cpu_ms =
        burned["cpu_per_second"].as_f64().unwrap() * burned["typical_ms"].as_f64().unwrap();
    assert!(cpu_ms >= 45.0, "{burned}");
    assert!(history_of(&history, "meet_00")["cpu_per_second"].is_f64());
    assert_eq!(history_of(&history, "a_fragile")["fails_under_load"], true);

    // With the history, the meeting tests weigh what they used: all meet again, and a_fragile
    // (a core of its own now, and nothing beyond the cores beside it) passes. Not beside burn:
    // a core for each of the two and the rest for the meeting tests would be more than the
    // cores, which a test that fails under load is not run beside.
    let second = meet(k, &history, &marker, &["--skip", "burn"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(outcomes(&second).values().all(|o| o["passed"] == true), "{}", second.stdout);
    assert!(!second.stdout.contains("fails-under-load"), "{}", second.stdout);

    // `list` shows what the history knows.
    let list =
        cargo_prun_with(&["list", "-p", "adaptive"], &[("PRUN_HISTORY_DIR", history.as_os_str())]);
    let line = |name: &str| {
        list.stdout.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or("").to_owned()
    };
    assert!(line("burn").contains(" cpu="), "{}", list.stdout);
    assert!(line("a_fragile").contains("fails-under-load"), "{}", list.stdout);
}

#[test]
fn with_fail_on_flaky_a_failure_under_load_fails_the_run() {
    let k = cores() + 2;
    if k > 17 {
        return;
    }
    let dir = tempfile::TempDir::with_prefix_in("adaptive-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let (history, marker) = (dir.path().join("history"), dir.path().join("fragile-ran"));
    let run = meet(k, &history, &marker, &["--fail-on-flaky"]);
    assert!(run.stdout.contains("fails-under-load"), "{}", run.stdout);
    assert_eq!(run.code, 101, "{}", run.stderr);
}
