//! Verdicts a test cannot fake: output that looks like libtest's lines or prun's framing, and
//! writes to the worker's channel, change no other test's verdict and move no output.

mod common;

use common::{Run, cargo_prun, outcomes};
use serde_json::Value;

fn run_hostile(test: &str) -> (Run, std::collections::BTreeMap<String, Value>) {
    let run = cargo_prun(&[
        "-p",
        "hostile",
        "--test",
        test,
        "-j",
        "1",
        "--no-fail-fast",
        "--message-format",
        "json",
    ]);
    let outcomes = outcomes(&run);
    (run, outcomes)
}

fn kind(event: &Value) -> &str {
    event["outcome"]["kind"].as_str().unwrap()
}

fn printed(event: &Value) -> String {
    ["stdout", "stderr", "captured"].map(|field| event[field].as_str().unwrap_or("")).concat()
}

#[test]
fn libtest_lines_printed_by_a_test_change_no_verdict() {
    let (run, outcomes) = run_hostile("forge_libtest");
    let verdicts: Vec<(&str, &str)> =
        outcomes.iter().map(|(name, event)| (name.as_str(), kind(event))).collect();
    assert_eq!(
        verdicts,
        [
            ("a_prints_ok_then_fails", "failed"),
            ("b_forges_the_next_tests_pass", "passed"),
            ("c_fails", "failed"),
            ("d_passes", "passed"),
        ],
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 101, "a failing run exits 101:\n{}", run.stderr);
    let c = printed(&outcomes["c_fails"]);
    assert!(c.contains("c's own output") && c.contains("c_fails really failed"), "{c}");
    assert!(!c.contains("a_prints_ok_then_fails really failed"), "{c}");
}

#[test]
fn end_marks_printed_by_a_test_move_no_output() {
    let (run, outcomes) = run_hostile("forge_worker");
    let a = printed(&outcomes["a_prints_end_marks"]);
    assert!(a.contains("a: after the marks\n"), "a's output stays a's: {a:?}");
    assert!(a.contains("a: after the marks on stderr"), "{a:?}");
    let b = printed(&outcomes["b_prints_its_own"]);
    assert!(b.contains("b: own output") && !b.contains("a: after"), "{b:?}");
    assert_eq!(kind(&outcomes["a_prints_end_marks"]), "failed", "{}", run.stderr);
    assert_eq!(kind(&outcomes["b_prints_its_own"]), "failed", "{}", run.stderr);
}

#[test]
fn a_response_that_answers_no_request_in_flight_fails_only_its_sender() {
    let (run, outcomes) = run_hostile("forge_worker");
    let c = &outcomes["c_writes_to_the_socket"];
    assert_eq!(kind(c), "crashed", "{c}");
    assert!(c["outcome"]["reason"].as_str().unwrap().contains("protocol error"), "{c}");
    assert_eq!(kind(&outcomes["b_prints_its_own"]), "failed", "the forged pass is not b's");
    assert_eq!(kind(&outcomes["d_runs_after_the_forger"]), "passed", "{}", run.stderr);
}
