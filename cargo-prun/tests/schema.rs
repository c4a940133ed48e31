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
        "run-finished",
    ] {
        assert!(kinds.contains(kind), "no {kind} event in the runs checked: {kinds:?}");
    }
    // The schema is not a rubber stamp: an event without its outcome fails it.
    let mut broken = events(&runs[0]).find(|e| e["type"] == "test-finished").unwrap();
    broken.as_object_mut().unwrap().remove("outcome");
    assert!(!validator.is_valid(&broken));
}
