//! The JSON event stream (`--message-format json`) is published as a JSON Schema,
//! `cargo-prun/schema/events.schema.json`: every line of real runs must satisfy it.

mod common;

use common::{cargo_prun, cargo_prun_with, events};
use serde_json::Value;

#[test]
fn every_event_of_real_runs_satisfies_the_published_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/events.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let markers =
        tempfile::TempDir::with_prefix_in("flaky-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let json = ["--message-format", "json"];
    let meeting = tempfile::TempDir::with_prefix_in("meet-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let runs = [
        // Passes, failures, a crash, an ignored test.
        cargo_prun(&[&["-p", "plain", "--nff"][..], &json].concat()),
        // Retries, a rerun phase, diagnoses (flaky and parallel-only).
        cargo_prun_with(
            &[&["-p", "flaky", "--nff"][..], &json].concat(),
            &[("FLAKY_DIR", markers.path().as_os_str())],
        ),
        cargo_prun_with(
            &[&["-p", "flaky", "--nff", "--retries", "1"][..], &json].concat(),
            &[("FLAKY_DIR", markers.path().as_os_str())],
        ),
        // A test not run after fail-fast; a timeout.
        cargo_prun(&[&["-p", "faults", "--test", "faults", "-j", "1"][..], &json].concat()),
        // Bisection's findings: the collision, its kind, the command and the fix.
        cargo_prun(
            &[&["-p", "learning", "--test", "polluted", "-j", "1", "--bisect"][..], &json].concat(),
        ),
        // A failure under load, and what each test used.
        under_load(&meeting, &json),
    ];
    let mut kinds = std::collections::BTreeSet::new();
    for run in &runs {
        for event in events(run) {
            let errors: Vec<String> = validator
                .iter_errors(&event)
                .map(|err| format!("{err} at {}", err.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{event}\n{}", errors.join("\n"));
            kinds.insert(event["type"].as_str().unwrap().to_owned());
        }
    }
    for kind in [
        "run-started",
        "test-finished",
        "rerunning",
        "parallel-only",
        "diagnosed-flaky",
        "fails-under-load",
        "run-finished",
    ] {
        assert!(kinds.contains(kind), "no {kind} event in the runs checked: {kinds:?}");
    }
    let bisected = events(&runs[4]).find(|e| e["type"] == "parallel-only").unwrap();
    assert!(bisected["fix"].is_object(), "{bisected}");
    let used = events(&runs[5]).find(|e| e["type"] == "test-finished").unwrap();
    assert!(used["usage"].is_object(), "{used}");
    // The schema is not a rubber stamp: an event without its outcome fails it.
    let mut broken = events(&runs[0]).find(|e| e["type"] == "test-finished").unwrap();
    broken.as_object_mut().unwrap().remove("outcome");
    assert!(!validator.is_valid(&broken));
}

/// The `adaptive` fixture's rendezvous of cores + 2 tests with no history: `a_fragile` fails
/// while the machine holds more tests than cores (see `tests/adaptive.rs`).
fn under_load(dir: &tempfile::TempDir, json: &[&str]) -> common::Run {
    let k = std::thread::available_parallelism().map_or(1, |n| n.get()) + 2;
    let place = dir.path().join("place");
    std::fs::create_dir_all(&place).unwrap();
    let mut args = vec!["-p", "adaptive", "--exact", "a_fragile"];
    let meets: Vec<String> = (0..k.min(17) - 1).map(|i| format!("meet_{i:02}")).collect();
    args.extend(meets.iter().map(String::as_str));
    args.extend_from_slice(json);
    let k = k.to_string();
    let marker = dir.path().join("fragile-ran");
    cargo_prun_with(
        &args,
        &[
            ("RENDEZVOUS_DIR", place.as_os_str()),
            ("RENDEZVOUS_K", std::ffi::OsStr::new(&k)),
            ("FRAGILE_MARKER", marker.as_os_str()),
        ],
    )
}
