//! Retries and the flaky verdict for every kind of test: plain tests in batches, prun tests in
//! workers, isolated tests in processes of their own. A test that fails once is FLAKY with
//! retries and diagnosed flaky without them, never "fails only in parallel"; a test that fails
//! after another in its process is parallel-only; one that always fails is just failed.

mod common;

use std::collections::BTreeMap;

use common::{Run, cargo_prun_with, events, outcomes};
use serde_json::Value;

/// Runs the `flaky` fixture with a fresh marker directory (every first run fails again).
fn run_flaky(extra: &[&str]) -> (Run, BTreeMap<String, Value>, tempfile::TempDir) {
    let markers =
        tempfile::TempDir::with_prefix_in("flaky-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let mut args = vec!["-p", "flaky", "--no-fail-fast", "-j", "2", "--message-format", "json"];
    args.extend_from_slice(extra);
    let run = cargo_prun_with(&args, &[("FLAKY_DIR", markers.path().as_os_str())]);
    let outcomes = outcomes(&run);
    (run, outcomes, markers)
}

fn diagnoses(run: &Run) -> BTreeMap<String, String> {
    events(run)
        .filter(|e| e["type"] == "parallel-only" || e["type"] == "diagnosed-flaky")
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["type"].as_str().unwrap().to_owned()))
        .collect()
}

fn attempts(run: &Run, name: &str) -> Vec<(u64, String)> {
    events(run)
        .filter(|e| e["type"] == "test-finished" && e["name"] == name)
        .map(|e| (e["attempt"].as_u64().unwrap(), e["outcome"]["kind"].as_str().unwrap().into()))
        .collect()
}

const FAIL_ONCE: [&str; 3] =
    ["c_fails_first_time", "b_fails_first_time", "c_isolated_fails_first_time"];

#[test]
fn with_retries_a_test_that_fails_once_is_flaky_and_passes_the_run() {
    let dir = common::tempfile_dir("retries-junit");
    let junit = dir.join("junit.xml");
    let (run, outcomes, _markers) =
        run_flaky(&["--retries", "2", "--junit", junit.to_str().unwrap(), "--skip", "always"]);
    for name in FAIL_ONCE {
        assert_eq!(
            attempts(&run, name),
            [(1, "failed".to_owned()), (2, "passed".to_owned())],
            "{name}:\n{}",
            run.stderr
        );
        assert_eq!(outcomes[name]["passed"], true, "{name}");
    }
    let summary = events(&run).find(|e| e["type"] == "run-finished").unwrap();
    // The polluted test is retried alone and passes: flaky too, as under nextest.
    assert_eq!(summary["flaky"].as_array().unwrap().len(), 4, "{summary}");
    assert_eq!(attempts(&run, "b_fails_after_a_pollutes").last().unwrap().1, "passed");
    assert_eq!(run.code, 0, "flaky tests pass the run:\n{}", run.stderr);
    assert!(diagnoses(&run).is_empty(), "nothing left to diagnose: {:?}", diagnoses(&run));
    // JUnit holds each failed attempt, with what it printed.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let flaky: Vec<_> = document.descendants().filter(|n| n.has_tag_name("flakyFailure")).collect();
    assert_eq!(flaky.len(), 4, "{xml}");
    let plain = flaky
        .iter()
        .find(|n| n.parent().unwrap().attribute("name") == Some("c_fails_first_time"))
        .unwrap();
    let said: String = plain.descendants().filter_map(|n| n.text()).collect();
    assert!(said.contains("c's first-run output") && said.contains("first run fails"), "{said}");
    let prun = flaky
        .iter()
        .find(|n| n.parent().unwrap().attribute("name") == Some("b_fails_first_time"))
        .unwrap();
    let said: String = prun.descendants().filter_map(|n| n.text()).collect();
    assert!(said.contains("first run fails"), "the panic message is kept: {said}");
}

#[test]
fn without_retries_a_test_that_fails_once_is_diagnosed_flaky_not_parallel_only() {
    let (run, outcomes, _markers) = run_flaky(&[]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let diagnoses = diagnoses(&run);
    for name in FAIL_ONCE {
        assert_eq!(outcomes[name]["outcome"]["kind"], "failed", "{name}");
        // An isolated test may have had nothing beside it: then it already failed alone and
        // is not diagnosed. Never parallel-only.
        let found = diagnoses.get(name).map(String::as_str);
        let alone_is_fine = name.contains("isolated") && found.is_none();
        assert!(found == Some("diagnosed-flaky") || alone_is_fine, "{name}: {found:?}");
    }
    assert_eq!(
        diagnoses.get("b_fails_after_a_pollutes").map(String::as_str),
        Some("parallel-only"),
        "{diagnoses:?}"
    );
    // Failing alone too: failed, with no diagnosis (both binaries have one).
    assert_eq!(outcomes["d_fails_always"]["outcome"]["kind"], "failed");
    assert!(!diagnoses.contains_key("d_fails_always"), "{diagnoses:?}");
    assert!(run.stdout.contains("flaky: it failed, then passed alone"), "{}", run.stdout);
}

#[test]
fn a_quarantined_test_is_retried_and_reported_and_never_fails_the_run() {
    let dir = common::tempfile_dir("quarantine-retries");
    let config = dir.join("prun.toml");
    std::fs::write(&config, "quarantine = [\"d_fails_always\"]\n").unwrap();
    let markers =
        tempfile::TempDir::with_prefix_in("flaky-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let run = cargo_prun_with(
        &["-p", "flaky", "--test", "plain_flaky", "--retries", "1", "--message-format", "json"],
        &[("PRUN_CONFIG", config.as_os_str()), ("FLAKY_DIR", markers.path().as_os_str())],
    );
    assert_eq!(
        attempts(&run, "d_fails_always"),
        [(1, "failed".to_owned()), (2, "failed".to_owned())],
        "retried as configured"
    );
    let summary = events(&run).find(|e| e["type"] == "run-finished").unwrap();
    assert_eq!(summary["quarantined"][0][1], "d_fails_always", "{summary}");
    assert_eq!(run.code, 0, "a quarantined failure does not fail the run:\n{}", run.stderr);
}

#[test]
fn the_rerun_alone_phase_says_what_it_does_and_can_be_turned_off() {
    let (run, _, _markers) = run_flaky(&[]);
    let rerunning = events(&run).find(|e| e["type"] == "rerunning").expect("announced");
    assert!(rerunning["tests"].as_u64().unwrap() >= 3, "{rerunning}");
    let (run, outcomes, _markers) = run_flaky(&["--no-rerun-alone"]);
    assert!(events(&run).all(|e| e["type"] != "rerunning"), "not run");
    assert!(diagnoses(&run).is_empty(), "{:?}", diagnoses(&run));
    assert_eq!(outcomes["b_fails_after_a_pollutes"]["outcome"]["kind"], "failed");
}

#[test]
fn the_history_keeps_the_flaky_verdict_and_list_shows_its_rate() {
    let history =
        tempfile::TempDir::with_prefix_in("history-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let markers =
        tempfile::TempDir::with_prefix_in("flaky-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let env = [
        ("FLAKY_DIR", markers.path().as_os_str()),
        ("PRUN_HISTORY_DIR", history.path().as_os_str()),
    ];
    // Diagnosed flaky (no retries), then flaky by a retry.
    let run = cargo_prun_with(&["-p", "flaky", "--test", "plain_flaky", "-j", "1"], &env);
    assert!(run.stdout.contains("FLAKY flaky::plain_flaky c_fails_first_time"), "{}", run.stdout);
    let listed = cargo_prun_with(
        &["list", "-p", "flaky", "--test", "plain_flaky", "--format", "json"],
        &env,
    );
    let rate = listed
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|test| test["name"] == "c_fails_first_time")
        .map(|test| test["flaky_rate"].as_f64().unwrap_or(0.0))
        .unwrap();
    assert!(rate > 0.0, "the history counts the diagnosed flaky run: {}", listed.stdout);
}
