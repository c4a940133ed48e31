//! `cargo prun` end to end, against the fixture workspace in tests/fixtures: faults, plain
//! libtest binaries, a group across binaries, reports, and bad input.

mod common;

use std::ffi::OsStr;
use std::process::Command;

use common::{
    cargo_prun, cargo_prun_with, events, finished_order, gone, last_line, outcomes, parallel_only,
    run_until_a_test_waits, send, tempfile_dir,
};
use prun_e2e::{fixtures_dir, fixtures_target_dir};
use serde_json::Value;

#[test]
fn each_fault_costs_only_its_own_test() {
    let args = ["-p", "faults", "--test", "faults", "--no-fail-fast", "-j", "2"];
    let run = cargo_prun(&[&args[..], &["--message-format", "json"]].concat());
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = outcomes(&run);
    assert_eq!(tests.len(), 12, "every test ran: {:?}", tests.keys());
    let outcome = |name: &str| &tests[name]["outcome"];
    let reason = |name: &str| outcome(name)["reason"].as_str().unwrap_or_default().to_owned();
    for passed in ["a_passes_before", "prints_a_hundred_megabytes", "z_passes_after"] {
        assert_eq!(outcome(passed)["kind"], "passed", "{passed}: {}", outcome(passed));
    }
    for crashed in ["aborts", "segfaults", "exits_zero", "exits_three", "overflows_its_stack"] {
        assert_eq!(outcome(crashed)["kind"], "crashed", "{crashed}: {}", outcome(crashed));
    }
    assert!(reason("aborts").contains("SIGABRT"), "{}", reason("aborts"));
    assert!(reason("segfaults").contains("SIGSEGV"), "{}", reason("segfaults"));
    assert!(reason("exits_zero").contains("exited with code 0"));
    assert!(reason("exits_three").contains("exited with code 3"));
    assert!(reason("overflows_its_stack").starts_with("stack overflow"));
    assert_eq!(outcome("hangs")["kind"], "timed-out");
    assert_eq!(outcome("hangs")["after_ms"], 1000);
    // Output is attributed to the test that printed it, byte for byte, and to no other.
    let printer = &tests["prints_and_fails"];
    assert_eq!(printer["stdout"], "my own stdout line\n");
    assert_eq!(printer["stderr"], "my own stderr line\n");
    assert!(printer["captured"].as_str().unwrap().contains("failed on purpose"));
    let others = tests.iter().filter(|(name, _)| *name != "prints_and_fails");
    for (name, event) in others {
        let all = format!("{}{}", event["stdout"], event["stderr"]);
        assert!(!all.contains("my own"), "{name} got another test's output");
    }
    let bad_bytes = tests["prints_invalid_utf8_then_fails"]["stdout"].as_str().unwrap();
    assert!(bad_bytes.starts_with("bytes \u{fffd}\u{fffd} and \u{1b}[31mred"), "{bad_bytes:?}");
    assert_eq!(
        tests["prints_a_hundred_megabytes"]["stdout"], "",
        "a passing test's output is not kept"
    );
    // A failing one's is, its first and last MiB: the report stays small.
    let loud = &tests["prints_a_hundred_megabytes_then_fails"];
    let stdout = loud["stdout"].as_str().unwrap();
    assert!(stdout.len() < 3 << 20, "{} bytes kept", stdout.len());
    assert!(stdout.starts_with("first line\n") && stdout.ends_with("last line\n"));
    assert!(stdout.contains("[prun: 98.0 MiB of output left out here]"));
    assert!(loud["captured"].as_str().unwrap().contains("failed after all that output"));
    assert_eq!(last_line(&run.stderr), "3 passed, 9 failed");
}

#[test]
fn plain_libtest_binaries_run_one_test_per_process() {
    let run = cargo_prun(&["-p", "plain", "--no-fail-fast", "--message-format", "json"]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = outcomes(&run);
    assert_eq!(tests["tests::doubles"]["outcome"]["kind"], "passed");
    assert_eq!(tests["tests::fails"]["outcome"]["kind"], "failed");
    assert!(tests["tests::fails"]["stderr"].as_str().unwrap().contains("two doubled is not five"));
    assert_eq!(tests["tests::segfaults"]["outcome"]["kind"], "crashed");
    assert_eq!(tests["integration_passes"]["outcome"]["kind"], "passed");
    assert_eq!(tests["reads_its_package_dir"]["outcome"]["kind"], "passed");
    // Not run: reported skipped, with its reason.
    assert_eq!(tests["tests::ignored"]["outcome"]["kind"], "skipped");
    assert_eq!(tests["tests::ignored"]["attempt"], 1);
    assert_eq!(last_line(&run.stderr), "3 passed, 2 failed, 1 skipped");
}

#[test]
fn a_test_that_skips_itself_is_reported_skipped_with_its_reason() {
    let args = ["-p", "cases", "--test", "skipping", "--message-format", "json"];
    let run = cargo_prun(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tests = outcomes(&run);
    let skipped = &tests["needs_the_server"]["outcome"];
    assert_eq!(skipped["kind"], "skipped");
    assert_eq!(skipped["reason"], "no server on 127.0.0.1:1: start one first");
    assert_eq!(tests["skips_itself"]["outcome"]["reason"], "no GPU on this machine");
    // The fixture's setup ran once for the two tests that took it (a test checks, last).
    assert_eq!(tests["z_server_was_asked_once"]["outcome"]["kind"], "passed");
    assert_eq!(last_line(&run.stderr), "2 passed, 0 failed, 3 skipped");
}

#[test]
fn postgres_databases_of_every_worker_process_are_dropped_after_a_failed_run() {
    let Some(url) = prun_e2e::postgres_url() else { return };
    let id = format!("e2eprun{}", std::process::id());
    let env = [
        ("PRUN_PG_URL", OsStr::new(&url)),
        ("PRUN_RUN_ID", OsStr::new(&id)),
        ("PG_INVENTORY_FAIL", OsStr::new("1")),
    ];
    let args = ["-p", "pg", "--no-fail-fast", "-j", "3", "--message-format", "json"];
    let run = cargo_prun_with(&args, &env);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = outcomes(&run);
    assert_eq!(tests.len(), 13);
    assert_eq!(tests["fails_when_asked"]["outcome"]["kind"], "failed");
    let passed = tests.values().filter(|t| t["outcome"]["kind"] == "passed").count();
    assert_eq!(passed, 12, "{}", run.stderr);
    assert_eq!(prun_e2e::databases(&url, &format!("prun_{id}")), Vec::<String>::new());
}

#[test]
fn reports_and_temp_dirs_are_the_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile_dir("modes");
    let (junit, json) = (dir.join("report.xml"), dir.join("report.json"));
    let args = ["-p", "faults", "--test", "hardening", "--exact", "fills_its_temp_dir_then_fails"];
    let reports = ["--junit", junit.to_str().unwrap(), "--json", json.to_str().unwrap()];
    let run =
        cargo_prun_with(&[&args[..], &reports[..], &["--message-format", "json"]].concat(), &[]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&junit), 0o600);
    assert_eq!(mode(&json), 0o600);
    // The failed test's temp dir was kept: it, and the directories it is in, are 0700.
    let captured = outcomes(&run)["fills_its_temp_dir_then_fails"]["captured"].to_string();
    let kept = captured.split("temp dir kept: ").nth(1).unwrap().split("\\n").next().unwrap();
    let kept = std::path::Path::new(kept);
    for path in [kept, kept.parent().unwrap(), kept.parent().unwrap().parent().unwrap()] {
        assert_eq!(mode(path), 0o700, "{}", path.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_test_that_runs_its_own_binary_again_keeps_working() {
    let run = cargo_prun(&["-p", "plain-many", "--test", "reexec", "--message-format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(outcomes(&run)["crashes_in_a_child_process"]["outcome"]["kind"], "passed");
    assert_eq!(last_line(&run.stderr), "1 passed, 0 failed, 1 skipped");
}

#[test]
fn a_group_is_exclusive_across_binaries() {
    // The tests themselves hold a lock file while they run: an overlap fails one of them.
    let run = cargo_prun(&["-p", "shared-db", "-j", "4"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(last_line(&run.stdout), "12 passed, 0 failed");
}

#[test]
fn fail_fast_stops_starting_tests() {
    // Stopping means starting no more jobs: one test each for a prun binary.
    let run = cargo_prun(&["-p", "faults", "--test", "faults", "-j", "1", "--skip", "hangs"]);
    assert_eq!(run.code, 101);
    let summary = last_line(&run.stdout);
    assert!(summary.contains(" 1 failed") && !summary.contains("skipped"), "{summary}");
    // One line says what did not run and why; no SKIP line a test, no count with skipped.
    assert!(
        run.stdout.contains(
            " tests not run: stopped after the first failure (--no-fail-fast runs them all)"
        ),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("SKIP"), "{}", run.stdout);
    let run = cargo_prun(&[
        "-p",
        "faults",
        "--test",
        "faults",
        "-j",
        "1",
        "--max-fail",
        "2",
        "--skip",
        "hangs",
    ]);
    assert!(last_line(&run.stdout).contains(" 2 failed"), "{}", run.stdout);
    assert!(
        run.stdout.contains("not run: stopped after 2 failures (--max-fail 2)"),
        "{}",
        run.stdout
    );
}

#[test]
fn junit_parses_back_with_every_test() {
    let dir = tempfile_dir("junit");
    let path = dir.join("report.xml");
    let run = cargo_prun(&[
        "-p",
        "plain",
        "-p",
        "shared-db",
        "--no-fail-fast",
        "--junit",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 101, "{}", run.stdout);
    let xml = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    // Every test, the ignored one too, listed as skipped with its reason.
    assert_eq!(cases.len(), 18, "{xml}");
    let ignored = cases.iter().find(|c| c.attribute("name") == Some("tests::ignored")).unwrap();
    let skipped = ignored.children().find(|n| n.has_tag_name("skipped")).expect("skipped");
    assert_eq!(skipped.attribute("message"), Some("ignored"));
    let failed = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure") || n.has_tag_name("error")))
        .count();
    assert_eq!(failed, 2);
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap().to_owned())
        .collect();
    assert_eq!(suites, ["plain", "plain::integration", "shared-db::alpha", "shared-db::beta"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn list_shows_what_the_scheduler_knows() {
    let run = cargo_prun(&["-p", "shared-db", "-p", "plain", "--list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("shared-db::alpha alpha_1 [integration] groups=db\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("plain tests::doubles [unit]\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("tests::ignored"), "ignored tests are not listed as running");
    let json = cargo_prun(&["-p", "shared-db", "--list", "--message-format", "json", "alpha_1"]);
    let line: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(line["groups"], serde_json::json!(["db"]));
    assert_eq!(line["kind"], "prun");
}

#[test]
fn bad_input_is_a_clear_error() {
    let run = cargo_prun(&["--no-such-flag"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);

    let run = cargo_prun(&["-p", "plain", "no_test_has_this_name"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("no test matches"), "{}", run.stderr);

    let dir = tempfile_dir("config");
    std::fs::write(dir.join("prun.toml"), "[groups.db]\ncapacity = \"two\"\n").unwrap();
    let config = dir.join("prun.toml");
    let run = cargo_prun_with(&["-p", "plain"], &[("PRUN_CONFIG", config.as_os_str())]);
    let stderr = &run.stderr;
    assert_eq!(run.code, 2);
    assert!(
        stderr.contains("prun.toml") && stderr.contains("line 2") && stderr.contains("capacity"),
        "{stderr}"
    );

    let run = cargo_prun(&["-p", "plain", "--junit", "/nonexistent-dir/report.xml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--junit"), "{}", run.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_interrupt_stops_the_run_and_keeps_what_finished() {
    let dir = tempfile_dir("interrupt");
    let junit = dir.join("report.xml");
    let (child, test_pid) = run_until_a_test_waits(&dir, &["--junit", junit.to_str().unwrap()]);
    send(&child, nix::sys::signal::Signal::SIGINT);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    // The worker running the test is gone, not orphaned.
    assert!(gone(test_pid), "the test process outlived the run");
    let xml = std::fs::read_to_string(&junit).unwrap();
    roxmltree::Document::parse(&xml).expect("the report of what finished is valid XML");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Durations and thread ids, which differ from run to run.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut line = line.to_owned();
        // `[   0.012s]` → `[duration]`
        while let Some(start) = line.find("[ ").or_else(|| line.find("[0")) {
            let Some(len) = line[start..].find("s]") else { break };
            line.replace_range(start..start + len + 2, "[duration]");
        }
        if let Some(at) = line.find("finished in ") {
            let from = at + "finished in ".len();
            if let Some(len) = line[from..].find('s') {
                line.replace_range(from..=from + len, "[time]");
            }
        }
        // `thread 'name' (1234) panicked` → `thread 'name' panicked`
        if let (Some(open), Some(close)) = (line.find("' ("), line.find(") panicked")) {
            line.replace_range(open + 1..close + 1, "");
        }
        // What a test used is measured (a test that ends within a millisecond may not be): out.
        if let Some(at) = line.find(",\"usage\":{")
            && let Some(len) = line[at..].find('}')
        {
            line.replace_range(at..=at + len, "");
        }
        for key in ["\"duration_ms\":", "\"started_at_ms\":"] {
            if let Some(at) = line.find(key) {
                let from = at + key.len();
                let to = line[from..].find([',', '}']).map_or(line.len(), |end| from + end);
                line.replace_range(from..to, "0");
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn human_output_snapshot() {
    let run = cargo_prun(&["-p", "plain", "-j", "1", "--no-fail-fast"]);
    assert_eq!(run.code, 101);
    insta::assert_snapshot!("human_plain", normalized(&run.stdout));
}

#[test]
fn json_stream_snapshot() {
    let run = cargo_prun(&["-p", "plain", "-j", "1", "--no-fail-fast", "--message-format", "json"]);
    assert_eq!(run.code, 101);
    // The event stream's shape: every line a versioned JSON object.
    for line in run.stdout.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["version"], 1, "{line}");
    }
    insta::assert_snapshot!("json_plain", normalized(&run.stdout));
}

#[test]
fn doctests_run_when_the_config_says_so() {
    let dir = tempfile_dir("doctests");
    std::fs::write(dir.join("prun.toml"), "doctests = \"run\"\n").unwrap();
    let config = dir.join("prun.toml");
    let args = ["-p", "plain", "--no-fail-fast", "--message-format", "json"];
    let run = cargo_prun_with(&args, &[("PRUN_CONFIG", config.as_os_str())]);
    let tests = outcomes(&run);
    let doctest = |prefix: &str| {
        tests
            .iter()
            .find(|(name, _)| name.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no {prefix}: {:?}", tests.keys()))
    };
    assert_eq!(doctest("plain/src/lib.rs - double")["outcome"]["kind"], "passed");
    let failed = doctest("plain/src/lib.rs - triple");
    assert_eq!(failed["outcome"]["kind"], "failed");
    assert_eq!(failed["binary"], "doctests");
    assert!(failed["stdout"].as_str().unwrap().contains("a doctest that fails on purpose"));
    assert_eq!(last_line(&run.stderr), "4 passed, 3 failed, 1 skipped");

    // One job of the schedule, the first: on one thread the doctests finish before any test.
    let one = [&args[..], &["-j", "1"]].concat();
    let run = cargo_prun_with(&one, &[("PRUN_CONFIG", config.as_os_str())]);
    let binaries: Vec<String> = events(&run)
        .filter(|e| e["type"] == "test-finished" && e["outcome"]["kind"] != "skipped")
        .map(|e| e["binary"].as_str().unwrap().to_owned())
        .collect();
    let doctests = binaries.iter().take_while(|b| *b == "doctests").count();
    assert_eq!(doctests, 2, "doctests first: {binaries:?}");
    assert!(binaries[doctests..].iter().all(|b| b != "doctests"), "{binaries:?}");
    std::fs::remove_dir_all(dir).unwrap();

    // --doc runs only the doctests, as cargo test --doc, with no prun.toml.
    let run = cargo_prun(&["-p", "plain", "--doc", "--message-format", "json"]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = outcomes(&run);
    assert!(tests.values().all(|e| e["binary"] == "doctests"), "{tests:?}");
    assert_eq!(last_line(&run.stderr), "1 passed, 1 failed");
    let run = cargo_prun(&["-p", "plain", "--doc", "--lib"]);
    assert_eq!(run.code, 2, "cargo refuses --doc with other targets, and so does prun");
}

#[test]
fn plain_tests_run_in_batches_and_a_crash_costs_one_test() {
    let pids = tempfile_dir("pids");
    let args = ["-p", "plain-many", "--test", "many", "--test", "sharing", "-j", "2"];
    let args = [&args[..], &["--no-fail-fast", "--message-format", "json"]].concat();
    let run = cargo_prun_with(&args, &[("PRUN_PIDS", pids.as_os_str())]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = outcomes(&run);
    assert_eq!(tests.len(), 303);
    let crashed = &tests["b_crashes_in_the_middle"]["outcome"];
    assert_eq!(crashed["kind"], "crashed");
    assert!(crashed["reason"].as_str().unwrap().contains("SIGSEGV"));
    let passed = tests.values().filter(|t| t["outcome"]["kind"] == "passed").count();
    assert_eq!(passed, 301, "every test but the crasher and the sharer passed");
    let sharer = &tests["shared_2_expects_an_untouched_flag"];
    assert_eq!(sharer["outcome"]["kind"], "failed");
    assert!(sharer["stdout"].as_str().unwrap().contains("touched the flag"), "{sharer}");
    // Rerun alone after the schedule, it passes: it fails only beside the test before it.
    let found = parallel_only(&run);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["name"], "shared_2_expects_an_untouched_flag");
    assert_eq!(found[0]["shared_process"], true);
    let reason = found[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("fails only when sharing a process"), "{reason}");
    let neighbours = found[0]["neighbours"].as_array().unwrap();
    assert!(neighbours.contains(&"plain-many::sharing shared_1_touches_the_flag".into()));
    // 301 tests of `many` ran in a handful of processes: batches, and one more after the crash.
    let processes = std::fs::read_dir(&pids).unwrap().count();
    assert!((2..=12).contains(&processes), "{processes} processes for 301 tests");
    std::fs::remove_dir_all(pids).unwrap();

    // Isolated, the two sharing tests each get a process, and both pass.
    let run =
        cargo_prun(&["-p", "plain-many", "--test", "sharing", "--isolate", "sharing shared_"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(last_line(&run.stdout), "2 passed, 0 failed");
}

#[test]
fn a_timeout_in_a_batch_costs_only_the_test_that_hung() {
    let dir = tempfile_dir("batch-timeout");
    std::fs::write(dir.join("prun.toml"), "[categories.unit]\ntimeout = \"1s\"\n").unwrap();
    let args =
        ["-p", "plain-many", "--test", "hangs", "--no-fail-fast", "--message-format", "json"];
    let config = dir.join("prun.toml");
    let env = [("PRUN_CONFIG", config.as_os_str()), ("PRUN_HANG", OsStr::new("1"))];
    let run = cargo_prun_with(&args, &env);
    let tests = outcomes(&run);
    assert_eq!(
        tests["b_hangs_when_asked"]["outcome"],
        serde_json::json!({"kind": "timed-out", "after_ms": 1000})
    );
    assert_eq!(tests["a_before"]["outcome"]["kind"], "passed");
    assert_eq!(tests["c_after"]["outcome"]["kind"], "passed");
    assert_eq!(last_line(&run.stderr), "2 passed, 1 failed");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plain_binaries_give_the_same_counts_as_nextest() {
    let nextest = Command::new("cargo")
        .args(["nextest", "run", "--no-fail-fast", "-p", "plain-many", "--test", "many"])
        .current_dir(fixtures_dir())
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let nextest = String::from_utf8_lossy(&nextest.stderr);
    assert!(nextest.contains("301 tests run: 300 passed, 1 failed"), "{nextest}");
    let run = cargo_prun(&["-p", "plain-many", "--test", "many", "--no-fail-fast"]);
    assert_eq!(last_line(&run.stdout), "300 passed, 1 failed");
    // A `#[should_panic]` test in a batch (libtest prints it as `NAME - should panic`).
    let run = cargo_prun(&["-p", "plain-many", "--test", "should_panic"]);
    assert_eq!(last_line(&run.stdout), "2 passed, 0 failed", "{}", run.stdout);
}

/// Whether a process is gone (or a zombie nobody needs to wait for).

#[test]
fn hardening_cases_cost_one_test_and_leave_no_process_behind() {
    let dir = tempfile_dir("hardening");
    let child_pid = dir.join("child.pid");
    let args =
        ["-p", "faults", "--test", "hardening", "--no-fail-fast", "--message-format", "json"];
    let run = cargo_prun_with(&args, &[("PRUN_CHILD_PID", child_pid.as_os_str())]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = outcomes(&run);
    assert_eq!(tests["panics_in_drop"]["outcome"]["kind"], "failed");
    assert!(tests["panics_in_drop"]["captured"].as_str().unwrap().contains("panicked in drop"));
    let aborted = &tests["panics_while_panicking"]["outcome"];
    assert_eq!(aborted["kind"], "crashed");
    assert!(aborted["reason"].as_str().unwrap().contains("SIGABRT"), "{aborted}");
    assert_eq!(
        tests["deadlocks"]["outcome"],
        serde_json::json!({"kind": "timed-out", "after_ms": 1000})
    );
    assert_eq!(tests["leaves_a_child_behind"]["outcome"]["kind"], "passed");
    assert_eq!(tests["still_passes"]["outcome"]["kind"], "passed");
    // The `sleep 300` the test left running was killed with its worker's process group.
    let pid: u32 = std::fs::read_to_string(&child_pid).unwrap().parse().unwrap();
    assert!(gone(pid), "process {pid}, started by a test, outlived the run");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sigterm_stops_the_run_with_143() {
    let dir = tempfile_dir("sigterm");
    let (child, test_pid) = run_until_a_test_waits(&dir, &[]);
    send(&child, nix::sys::signal::Signal::SIGTERM);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143));
    assert!(gone(test_pid), "the test process outlived the run");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_runs_at_once_in_one_workspace_both_complete() {
    let history = tempfile_dir("two-runs-history");
    let env = [("PRUN_HISTORY_DIR", history.as_os_str())];
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| cargo_prun_with(&["-p", "shared-db", "-j", "2"], &env));
        let b = scope.spawn(|| cargo_prun_with(&["-p", "shared-db", "-j", "2"], &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Each run's db tests hold a lock file in that run's own temp dir: runs never share one.
    assert_eq!(last_line(&a.stdout), "12 passed, 0 failed", "{}", a.stdout);
    assert_eq!(last_line(&b.stdout), "12 passed, 0 failed", "{}", b.stdout);
    // Both runs are in the history, which is whole.
    let list = cargo_prun_with(&["list", "-p", "shared-db", "--format", "json"], &env);
    let runs: Vec<Value> = events(&list).map(|line| line["runs"].clone()).collect();
    assert_eq!(runs, vec![Value::from(2); 12], "{}", list.stdout);
    std::fs::remove_dir_all(history).unwrap();
}

/// `BINARY NAME` of every test `cargo prun --list` selects with `args`.
fn listed(args: &[&str]) -> std::collections::BTreeSet<String> {
    let run = cargo_prun(&[args, &["--list", "--message-format", "json"]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    events(&run)
        .map(|test| {
            format!("{} {}", test["binary"].as_str().unwrap(), test["name"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn partitions_split_the_suite_into_disjoint_shards() {
    let packages = ["-p", "shared-db", "-p", "plain-many"];
    let all = listed(&packages);
    assert!(all.len() > 300);
    for kind in ["count", "hash"] {
        let mut seen = std::collections::BTreeSet::new();
        for shard in 1..=3 {
            let partition = format!("{kind}:{shard}/3");
            let ours = listed(&[&packages[..], &["--partition", &partition]].concat());
            assert!(!ours.is_empty(), "{partition} is empty");
            assert!(ours.is_disjoint(&seen), "{partition} overlaps an earlier shard");
            seen.extend(ours);
        }
        assert_eq!(seen, all, "the {kind} shards together are the whole suite");
    }
    let run = cargo_prun(&["--partition", "thirds:1/2", "--list"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--partition"), "{}", run.stderr);
}

/// Names in the order a one-thread run finished them.
fn run_order(args: &[&str]) -> Vec<String> {
    finished_order(&cargo_prun(&[args, &["-j", "1", "--message-format", "json"]].concat()))
}

#[test]
fn a_shuffle_seed_reproduces_its_order() {
    let first = run_order(&["-p", "shared-db", "--order", "shuffle:42"]);
    assert_eq!(first.len(), 12);
    assert_eq!(run_order(&["-p", "shared-db", "--order", "shuffle:42"]), first);
    assert_ne!(run_order(&["-p", "shared-db", "--order", "shuffle:7"]), first);
    let declared = run_order(&["-p", "shared-db", "--test", "alpha", "--order", "declared"]);
    assert_eq!(declared, ["alpha_1", "alpha_2", "alpha_3", "alpha_4", "alpha_5", "alpha_free"]);
    let run = cargo_prun(&["-p", "shared-db", "--order", "shuffle", "--list"]);
    assert!(run.stderr.contains("--order shuffle:"), "the seed is printed: {}", run.stderr);
}

#[test]
fn retries_from_the_command_line_and_fail_on_flaky() {
    let args =
        ["-p", "faults", "--test", "faults", "--exact", "prints_and_fails", "--retries", "2"];
    let run = cargo_prun(&[&args[..], &["--message-format", "json"]].concat());
    let attempts: Vec<(u64, bool)> = events(&run)
        .filter(|event| event["type"] == "test-finished")
        .map(|event| (event["attempt"].as_u64().unwrap(), event["will_retry"].as_bool().unwrap()))
        .collect();
    assert_eq!(attempts, [(1, true), (2, true), (3, false)]);

    let flaky = [
        "-p",
        "cases",
        "--test",
        "outcomes",
        "--exact",
        "flaky_passes_on_second_attempt",
        "-j",
        "1",
    ];
    let run = cargo_prun(&flaky);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("FLAKY"), "{}", run.stdout);
    let run = cargo_prun(&[&flaky[..], &["--fail-on-flaky"]].concat());
    assert_eq!(run.code, 101, "{}", run.stdout);
}

#[test]
fn secrets_never_reach_a_report() {
    let dir = tempfile_dir("redact");
    let config = dir.join("prun.toml");
    std::fs::write(&config, "[redact]\npatterns = [\"sk-[a-z0-9]{8}\"]\n").unwrap();
    let junit = dir.join("junit.xml");
    let args = ["-p", "faults", "--test", "hardening", "--exact", "prints_secrets"];
    let args =
        [&args[..], &["--message-format", "json", "--junit", junit.to_str().unwrap()]].concat();
    let env = [
        ("PRUN_CONFIG", config.as_os_str()),
        ("PRUN_E2E_API_TOKEN", OsStr::new("hunter2-very-secret")),
    ];
    let run = cargo_prun_with(&args, &env);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let junit = std::fs::read_to_string(&junit).unwrap();
    for (report, text) in [("json", &run.stdout), ("human", &run.stderr), ("junit", &junit)] {
        assert!(!text.contains("hunter2-very-secret"), "the token is in the {report} report");
        assert!(!text.contains("sk-abcd1234"), "the key is in the {report} report");
        assert!(text.contains("[REDACTED]"), "{report}: {text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nextest_and_cargo_habits_are_understood() {
    // `cargo prun run` is `cargo prun`; cargo's lock-file flags go to cargo; libtest's spelling
    // of --no-capture is taken.
    let run = cargo_prun(&[
        "run",
        "-p",
        "plain",
        "--test",
        "integration",
        "--locked",
        "--offline",
        "--nocapture",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(last_line(&run.stdout).contains("passed"), "{}", run.stdout);
    // --config reaches cargo, which refuses this one.
    let run = cargo_prun(&["-p", "plain", "--config", "build.jobs=0"]);
    assert_ne!(run.code, 0, "cargo saw --config: {}", run.stderr);
    assert!(run.stderr.contains("jobs"), "{}", run.stderr);
    // libtest's flags after `--`, as cargo test users type them, choose what runs.
    let args = ["-p", "plain", "--lib", "--message-format", "json", "--"];
    let run = cargo_prun(&[&args[..], &["tests::doubles", "--exact", "--test-threads=1"]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ran: Vec<String> = outcomes(&run).into_keys().collect();
    assert_eq!(ran, ["tests::doubles"]);
    let run = cargo_prun(&[&args[..], &["--ignored", "--nocapture"]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ran: Vec<String> = outcomes(&run)
        .into_iter()
        .filter(|(_, e)| e["outcome"]["kind"] == "passed")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(ran, ["tests::ignored"]);
    // Both: the ignored tests and the rest, as a prun harness reads the pair.
    let both = ["tests::doubles", "tests::ignored", "--exact", "--ignored", "--include-ignored"];
    let run = cargo_prun(&[&args[..], &both].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ran: Vec<String> = outcomes(&run).into_keys().collect();
    assert_eq!(ran, ["tests::doubles", "tests::ignored"]);
}

#[test]
fn kill_9_of_cargo_prun_takes_its_tests_along_and_the_next_run_sweeps_up() {
    let dir = tempfile_dir("kill-9");
    let (test_gone, run_dir, left) = common::kill_9_mid_run(&dir);
    assert!(test_gone, "the test outlived a kill -9 of cargo prun (its parent-death signal)");
    assert!(left, "a killed run cannot remove its directory");
    // The next run, with the same temp dir, removes it.
    assert!(common::quick_run_in_the_usual_temp_dir());
    assert!(!run_dir.exists(), "{} was left behind", run_dir.display());
}

#[test]
fn an_undeclared_category_is_the_harnesss_own_error() {
    let run = cargo_prun(&["-p", "undeclared"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let expected = "test `nightly_sync` (undeclared/tests/undeclared_category.rs:6) has category \
                    \"nightly\", which is neither built in (unit, integration, slow) nor \
                    declared under [categories] in a prun.toml (none was found)";
    assert!(run.stderr.contains(expected), "{}", run.stderr);
}

#[test]
fn cargo_term_color_is_honoured_over_no_color() {
    let always = [("CARGO_TERM_COLOR", OsStr::new("always"))];
    let run = cargo_prun_with(&["-p", "plain", "--test", "integration"], &always);
    assert!(run.stdout.contains("\u{1b}[32m"), "coloured: {:?}", run.stdout);
    let run = cargo_prun(&["-p", "plain", "--test", "integration"]);
    assert!(!run.stdout.contains('\u{1b}'), "NO_COLOR, no terminal: {:?}", run.stdout);
}

#[test]
fn nextests_output_and_selection_flags_work() {
    // --nff is --no-fail-fast.
    let run = cargo_prun(&["-p", "plain", "--nff", "-j", "1"]);
    assert!(last_line(&run.stdout).starts_with("3 passed, 2 failed"), "{}", run.stdout);
    // --status-level fail: a line for each failure, none for passes.
    let run = cargo_prun(&["-p", "plain", "--nff", "-j", "1", "--status-level", "fail"]);
    assert!(run.stdout.contains("FAIL [") && !run.stdout.contains("PASS ["), "{}", run.stdout);
    // --failure-output final: the failure's output once, at the end; never: not at all.
    let run = cargo_prun(&["-p", "plain", "--nff", "-j", "1", "--failure-output", "final"]);
    assert_eq!(run.stdout.matches("--- FAIL: plain tests::fails").count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("\nFailures:\n"), "{}", run.stdout);
    let run = cargo_prun(&["-p", "plain", "--nff", "-j", "1", "--failure-output", "never"]);
    assert!(!run.stdout.contains("--- FAIL:"), "{}", run.stdout);
    // --final-status-level none: the summary lists no test again.
    let run = cargo_prun(&["-p", "plain", "--nff", "-j", "1", "--final-status-level", "none"]);
    let summary = run.stdout.split("Summary [").nth(1).unwrap();
    assert!(!summary.contains("FAIL"), "{summary}");
    // --success-output final: passing tests are shown at the end too.
    let args = ["-p", "plain", "--test", "integration", "--success-output", "final"];
    let run = cargo_prun(&[&args[..], &["--hide-progress-bar"]].concat());
    assert!(
        run.stdout.contains("--- PASS: plain::integration integration_passes"),
        "{}",
        run.stdout
    );
    // --run-ignored only runs the ignored test alone; all runs it with the rest.
    let run = cargo_prun(&["-p", "plain", "--test", "integration", "--run-ignored", "all"]);
    let all = last_line(&run.stdout).to_owned();
    let run = cargo_prun(&["-p", "plain", "--run-ignored", "only", "--nff"]);
    assert!(!run.stdout.contains("tests::doubles"), "only ignored tests: {}", run.stdout);
    assert!(!all.contains("skipped"), "{all}");
    // --no-tests: a selection of nothing fails (4) by default; warn and pass let it pass.
    let nothing = ["-p", "plain", "no_test_has_this_name"];
    assert_eq!(cargo_prun(&nothing).code, 4);
    let run = cargo_prun(&[&nothing[..], &["--no-tests", "warn"]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning: no test matches the filters"), "{}", run.stderr);
    let run = cargo_prun(&[&nothing[..], &["--no-tests", "pass"]].concat());
    assert_eq!(run.code, 0);
    assert!(!run.stderr.contains("no test matches"), "{}", run.stderr);
}

#[test]
fn rerun_failed_runs_what_did_not_pass_in_the_last_run_or_in_a_report() {
    let history =
        tempfile::TempDir::with_prefix_in("history-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let env = [("PRUN_HISTORY_DIR", history.path().as_os_str())];
    let dir = tempfile_dir("rerun-failed");
    let report = dir.join("run.json");
    let json = ["--message-format", "json"];
    let run = cargo_prun_with(&["-p", "plain", "--nff", "--json", report.to_str().unwrap()], &env);
    assert_eq!(run.code, 101);
    let ran = |run: &common::Run| outcomes(run).keys().cloned().collect::<Vec<_>>();
    let failed = ["tests::fails", "tests::segfaults"].map(String::from).to_vec();
    // From the last run, recorded beside the history.
    let rerun =
        cargo_prun_with(&[&["-p", "plain", "--nff", "--rerun-failed"][..], &json].concat(), &env);
    assert_eq!(ran(&rerun), failed, "{}", rerun.stderr);
    assert!(
        rerun.stderr.contains("--rerun-failed: 2 of the 5 tests of")
            && rerun.stderr.contains("(2 failed, 0 did not finish)"),
        "{}",
        rerun.stderr
    );
    // From a report a CI job uploaded.
    let path = report.to_str().unwrap();
    let from_report = cargo_prun_with(
        &[&["-p", "plain", "--nff", "--rerun-failed", path][..], &json].concat(),
        &env,
    );
    assert_eq!(ran(&from_report), failed, "{}", from_report.stderr);
    // A test with no attempt in the report (its shard never reported) is rerun too.
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    document["attempts"].as_array_mut().unwrap().retain(|a| a["name"] != "integration_passes");
    std::fs::write(&report, document.to_string()).unwrap();
    let lost = cargo_prun_with(
        &[&["-p", "plain", "--nff", "--rerun-failed", path][..], &json].concat(),
        &env,
    );
    assert_eq!(
        ran(&lost),
        ["integration_passes", "tests::fails", "tests::segfaults"],
        "{}",
        lost.stderr
    );
    assert!(lost.stderr.contains("(2 failed, 1 did not finish)"), "{}", lost.stderr);
}

#[test]
fn auto_partitions_take_the_shard_from_the_ci_they_run_in() {
    let args = ["-p", "plain-many", "--test", "many"];
    let fixed = listed(&[&args[..], &["--partition", "hash:2/4"]].concat());
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "4")], "GitLab"),
        (&[("JOB_COMPLETION_INDEX", "1"), ("PRUN_SHARD_TOTAL", "4")], "Kubernetes"),
        (&[("TEST_SHARD_INDEX", "1"), ("TEST_TOTAL_SHARDS", "4")], "Bazel"),
    ];
    for (vars, ci) in cases {
        let env: Vec<(&str, &OsStr)> = vars.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
        let auto = ["--partition", "hash:auto", "--list", "--message-format", "json"];
        let run = cargo_prun_with(&[&args[..], &auto].concat(), &env);
        assert!(run.stderr.contains(&format!("shard 2 of 4, from {ci}")), "{}", run.stderr);
        let got: std::collections::BTreeSet<String> = events(&run)
            .map(|t| format!("{} {}", t["binary"].as_str().unwrap(), t["name"].as_str().unwrap()))
            .collect();
        assert_eq!(got, fixed, "{ci}");
    }
    // Under `bazel test`: the shard status file is touched, JUnit goes where Bazel reads it.
    let dir = tempfile_dir("bazel");
    let (status, xml) = (dir.join("shard-status"), dir.join("test.xml"));
    let env = [
        ("TEST_SHARD_INDEX", OsStr::new("0")),
        ("TEST_TOTAL_SHARDS", OsStr::new("4")),
        ("TEST_SHARD_STATUS_FILE", status.as_os_str()),
        ("XML_OUTPUT_FILE", xml.as_os_str()),
    ];
    let run = cargo_prun_with(&[&args[..], &["--partition", "count:auto"]].concat(), &env);
    assert!(run.stderr.contains("shard 1 of 4, from Bazel"), "{}", run.stderr);
    assert!(status.exists(), "the shard status file is touched");
    assert!(common::junit_cases(&xml) > 0, "JUnit at XML_OUTPUT_FILE");
    // No CI variables: an error that says which it looks for.
    let run = cargo_prun(&[&args[..], &["--partition", "timing:auto"]].concat());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no CI shard variables found"), "{}", run.stderr);
}

#[test]
fn timing_shards_run_one_after_another_in_one_checkout_hold_every_test_once() {
    let history =
        tempfile::TempDir::with_prefix_in("history-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let env = [("PRUN_HISTORY_DIR", history.path().as_os_str())];
    let args = ["-p", "plain-many", "--test", "many", "--message-format", "json"];
    // One run of the whole selection first: its history is what the shards balance by.
    cargo_prun_with(&args, &env);
    let mut seen: Vec<String> = Vec::new();
    for k in 1..=4 {
        let partition = format!("timing:{k}/4");
        let run = cargo_prun_with(&[&args[..], &["--partition", &partition]].concat(), &env);
        seen.extend(outcomes(&run).into_keys());
    }
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no test ran in two shards");
    assert_eq!(distinct.len(), 301, "every test ran");
    // The first shard took the snapshot; the next run of the whole selection, which adds a run
    // to every test's history, drops it for the next shards to take anew.
    let snapshot = history.path().join("partition-timings.json");
    assert!(snapshot.exists(), "the shards balanced by a snapshot");
    cargo_prun_with(&args, &env);
    assert!(!snapshot.exists(), "a run that changed the history left the old snapshot");
}

#[test]
fn cargos_build_flags_reach_cargo() {
    // --no-run builds and stops.
    let run = cargo_prun(&["-p", "plain", "--no-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("Starting"), "{}", run.stdout);
    // --all-targets, --bin, --examples, --benches, --build-jobs, -v go to cargo.
    let run = cargo_prun(&["-p", "plain", "--all-targets", "--nff", "--build-jobs", "1", "-v"]);
    assert!(last_line(&run.stdout).starts_with("3 passed, 2 failed"), "{}", run.stdout);
    assert!(run.stderr.contains("Fresh") || run.stderr.contains("Running"), "-v: {}", run.stderr);
    // --cargo-quiet quiets cargo; -q also keeps passing tests off the screen.
    let run =
        cargo_prun(&["-p", "plain", "--test", "integration", "--cargo-quiet", "--always-build"]);
    assert!(!run.stderr.contains("Finished"), "{}", run.stderr);
    let run = cargo_prun(&["-p", "plain", "--test", "integration", "-q"]);
    assert!(!run.stdout.contains("PASS ["), "{}", run.stdout);
    assert_eq!(last_line(&run.stdout), "2 passed, 0 failed");
    // --target with this machine's triple: binaries under target/TRIPLE, run as usual.
    let host = host_triple();
    let run = cargo_prun(&["-p", "plain", "--test", "integration", "--target", &host]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(last_line(&run.stdout), "2 passed, 0 failed");
    // Cargo's flags that prun does not model go to cargo as given, values and all.
    let args = ["-p", "plain", "--test", "integration", "--ignore-rust-version", "--all"];
    let run = cargo_prun(&args);
    assert_eq!(last_line(&run.stdout), "2 passed, 0 failed", "{}", run.stderr);
    let run = cargo_prun(&["-p", "plain", "-Z", "unstable-options", "--always-build"]);
    assert_eq!(run.code, 3, "cargo's own refusal, on a stable toolchain: {}", run.stderr);
    assert!(run.stderr.contains("-Z"), "{}", run.stderr);
    // What neither takes is refused, naming the flag.
    let run = cargo_prun(&["-p", "plain", "--no-such-flag"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
}

/// This machine's target triple, as rustc names it.
fn host_triple() -> String {
    let rustc = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap()
}

#[test]
fn the_targets_runner_from_cargo_config_runs_every_test_binary() {
    // A runner as a cross build sets one (qemu-aarch64, say): it logs what it runs, then runs it.
    let dir = tempfile_dir("runner");
    let log = dir.join("runner.log");
    let script = dir.join("runner.sh");
    std::fs::write(&script, format!("echo \"$@\" >> '{}'\nexec \"$@\"\n", log.display())).unwrap();
    // --target TRIPLE with CARGO_TARGET_<TRIPLE>_RUNNER, as CI sets it for a cross target.
    let host = host_triple();
    let var = format!("CARGO_TARGET_{}_RUNNER", host.to_uppercase().replace('-', "_"));
    let runner = format!("sh {}", script.display());
    let run = cargo_prun_with(
        &["-p", "plain", "--test", "integration", "--target", &host],
        &[(&var, OsStr::new(&runner))],
    );
    assert_eq!(last_line(&run.stdout), "2 passed, 0 failed", "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("(set by the environment variable {var})")));
    let logged = std::fs::read_to_string(&log).unwrap();
    let binary = format!("/{host}/debug/deps/integration-");
    assert!(logged.lines().any(|l| l.contains(&binary) && l.contains("--list")), "{logged}");
    assert!(logged.lines().any(|l| l.contains(&binary) && l.contains("--exact")), "{logged}");
    // A prun crate's worker processes too, under a `cfg(..)` runner given by --config.
    std::fs::remove_file(&log).unwrap();
    let config = format!("target.'cfg(unix)'.runner=['sh', '{}']", script.display());
    let run = cargo_prun(&["-p", "shared-db", "-j", "2", "--config", &config]);
    assert_eq!(last_line(&run.stdout), "12 passed, 0 failed", "{}\n{}", run.stdout, run.stderr);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains(prun::protocol::WORKER_FLAG), "{logged}");
    // A runner that cannot start is an error that names it and where it was set.
    let config = "target.'cfg(unix)'.runner='/no/such/runner'";
    let run = cargo_prun(&["-p", "plain", "--test", "integration", "--config", config]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("under the runner /no/such/runner (set by --config"),
        "{}",
        run.stderr
    );
}

#[test]
fn libtest_json_is_what_cargo_test_prints_on_nightly() {
    let run = cargo_prun(&["-p", "plain", "--nff", "-j", "1", "--message-format", "libtest-json"]);
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["type"], "suite");
    assert_eq!(lines[0]["event"], "started");
    let event = |name: &str| {
        lines.iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("{name}: {}", run.stdout))
    };
    assert_eq!(event("plain$tests::doubles")["event"], "ok");
    assert_eq!(event("plain$tests::fails")["event"], "failed");
    assert!(event("plain$tests::fails")["stdout"].as_str().unwrap().contains("two doubled"));
    assert_eq!(event("plain$tests::ignored")["event"], "ignored");
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["event"], &last["passed"], &last["failed"]),
        (&"failed".into(), &3.into(), &2.into())
    );
    // The human output moved to stderr.
    assert!(last_line(&run.stderr).starts_with("3 passed, 2 failed"), "{}", run.stderr);
}

#[test]
fn filtersets_choose_tests_as_nextests_do() {
    let ran = |expr: &str| {
        let run = cargo_prun(&["-p", "plain", "--nff", "-E", expr, "--message-format", "json"]);
        let mut names: Vec<String> = outcomes(&run)
            .into_iter()
            .filter(|(_, e)| e["outcome"]["kind"] != "skipped")
            .map(|(name, _)| name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        ran("test(doubles) | binary(integration)"),
        ["integration_passes", "reads_its_package_dir", "tests::doubles"]
    );
    assert_eq!(ran("kind(lib) - test(/fails|segfaults/)"), ["tests::doubles"]);
    assert_eq!(ran("package(plain) & not kind(test) & test(=tests::fails)"), ["tests::fails"]);
    let bad = cargo_prun(&["-p", "plain", "-E", "test(doubles) &"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("at character 16: expected a predicate"), "{}", bad.stderr);
}

#[test]
fn a_project_on_nextest_gets_its_groups_and_profiles_from_nextest_toml() {
    // The fixture workspace has no prun.toml and a .config/nextest.toml with a test group.
    let args =
        ["-p", "nextest-groups", "-j", "4", "--isolate", "serial", "--message-format", "json"];
    let run = cargo_prun(&args);
    assert_eq!(run.code, 0, "the group's tests never overlapped: {}", run.stderr);
    assert!(run.stderr.contains("nextest.toml (profile default)"), "{}", run.stderr);
    assert_eq!(outcomes(&run).len(), 5);
    let listed = cargo_prun(&["list", "-p", "nextest-groups", "--format", "json"]);
    let serial = listed
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|test| test["name"] == "serial_1")
        .unwrap();
    assert_eq!(serial["groups"], serde_json::json!(["fixture-serial"]), "{serial}");
    // -P (or NEXTEST_PROFILE) picks a profile: `retrying` retries every test twice.
    let run = cargo_prun(&["-p", "nextest-groups", "-P", "retrying"]);
    assert!(run.stderr.contains("(profile retrying)"), "{}", run.stderr);
    let run =
        cargo_prun_with(&["-p", "nextest-groups"], &[("NEXTEST_PROFILE", OsStr::new("nope"))]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("profile `nope` is not defined"), "{}", run.stderr);
}
