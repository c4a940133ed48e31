//! Verdicts a test cannot fake: output that looks like libtest's lines or prun's framing, and
//! writes to the worker's channel, change no other test's verdict and move no output.

mod common;

use common::{Run, kind, outcomes, printed, run_hostile};
use serde_json::Value;

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

#[test]
fn the_run_directory_is_0700_whatever_the_umask() {
    let cargo_prun = env!("CARGO_BIN_EXE_cargo-prun");
    let manifest = prun_e2e::fixtures_dir().join("Cargo.toml");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" prun --manifest-path \"$1\" -p hostile --test private")
        .arg(cargo_prun)
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", prun_e2e::fixtures_target_dir())
        .env("TMPDIR", prun_e2e::fixtures_tmp_dir())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let run = Run::from(output);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn a_fifo_in_place_of_the_history_is_a_warning_not_a_hang() {
    let history = tempfile::TempDir::with_prefix_in("fifo-", prun_e2e::fixtures_tmp_dir()).unwrap();
    for name in ["history.bin", "history.lock"] {
        nix::unistd::mkfifo(&history.path().join(name), nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    let run = common::cargo_prun_with(
        &["-p", "hostile", "--test", "private"],
        &[("PRUN_HISTORY_DIR", history.path().as_os_str())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("is not a regular file"), "{}", run.stderr);
}

#[test]
fn a_secret_reaches_no_report_whatever_field_it_is_in() {
    let secret = "hunter2-correct-horse";
    let dir = common::tempfile_dir("secrets");
    let (junit, json) = (dir.join("junit.xml"), dir.join("run.json"));
    let run = common::cargo_prun_with(
        &[
            "-p",
            "hostile",
            "--test",
            "secrets",
            "--no-fail-fast",
            "--junit",
            junit.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        &[("HOSTILE_DB_PASSWORD", secret.as_ref())],
    );
    assert_eq!(run.code, 101, "{}", run.stderr);
    assert!(run.stdout.contains("cannot log in with [REDACTED]"), "{}", run.stdout);
    for (what, text) in [
        ("stdout", run.stdout.clone()),
        ("stderr", run.stderr.clone()),
        ("junit", std::fs::read_to_string(&junit).unwrap()),
        ("json", std::fs::read_to_string(&json).unwrap()),
    ] {
        // No part of it either: a cut through the secret would leave its first half.
        assert!(!text.contains(&secret[..7]), "the secret is in the {what}");
    }
}

/// Runs the `stall` fixture with `HOSTILE_DIR` set; the child it left must be gone after.
fn run_stall(
    extra: &[&str],
    config: Option<&str>,
) -> (Run, std::collections::BTreeMap<String, Value>) {
    let dir = tempfile::TempDir::with_prefix_in("stall-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let config_path = dir.path().join("prun.toml");
    let mut env = vec![("HOSTILE_DIR", dir.path().as_os_str())];
    if let Some(config) = config {
        std::fs::write(&config_path, config).unwrap();
        env.push(("PRUN_CONFIG", config_path.as_os_str()));
    }
    let mut args = vec!["-p", "hostile", "--test", "stall", "--message-format", "json"];
    args.extend_from_slice(extra);
    // Were the run to wait for the child's pipe, it would wait an hour: the test would hang.
    let run = common::cargo_prun_with(&args, &env);
    let pid: u32 = std::fs::read_to_string(dir.path().join("child.pid")).unwrap().parse().unwrap();
    assert!(common::gone(pid), "the child holding the output was killed");
    let outcomes = outcomes(&run);
    (run, outcomes)
}

#[test]
fn a_child_holding_a_batchs_output_does_not_stall_the_run() {
    let (run, outcomes) = run_stall(&[], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(kind(&outcomes["b_passes"]), "passed");
    assert!(run.stderr.contains("left a process holding its output open"), "{}", run.stderr);
}

#[test]
fn a_test_of_its_own_that_leaves_a_child_is_reported_leak() {
    let (run, outcomes) = run_stall(&["--isolate", "a_leaves"], None);
    let leaked = &outcomes["a_leaves_a_child_holding_its_output"];
    assert_eq!(kind(leaked), "leaked", "{leaked}");
    assert_eq!(run.code, 0, "a leak passes with a warning:\n{}", run.stderr);
    // Configured as nextest spells it, a leak fails the test.
    let config = "leak-timeout = { period = \"200ms\", result = \"fail\" }\n";
    let (run, outcomes) = run_stall(&["--isolate", "a_leaves"], Some(config));
    let leaked = &outcomes["a_leaves_a_child_holding_its_output"];
    assert_eq!(kind(leaked), "failed", "{leaked}");
    assert!(leaked["outcome"]["reason"].as_str().unwrap().contains("200ms"), "{leaked}");
    assert_eq!(run.code, 101);
    // For this one test, by an override of .config/nextest.toml (profile `leaky`).
    let (run, outcomes) = run_stall(&["--isolate", "a_leaves", "-P", "leaky"], None);
    let leaked = &outcomes["a_leaves_a_child_holding_its_output"];
    assert_eq!(kind(leaked), "failed", "{leaked}");
    assert!(leaked["outcome"]["reason"].as_str().unwrap().contains("300ms"), "{leaked}");
    assert!(!run.stderr.contains("does not honour"), "{}", run.stderr);
}

#[test]
fn a_test_that_closes_the_workers_stdout_costs_the_tests_after_it_nothing() {
    let (run, outcomes) = run_hostile("stall_worker");
    assert_eq!(kind(&outcomes["a_closes_its_stdout"]), "passed", "{}", run.stderr);
    assert_eq!(kind(&outcomes["c_passes"]), "passed", "{}", run.stderr);
    let b = printed(&outcomes["b_prints_and_fails"]);
    assert!(b.contains("b: on stderr") && b.contains("b fails"), "{b:?}");
}

#[test]
fn a_harness_that_takes_one_filter_runs_with_the_right_verdicts_and_odd_names() {
    let (run, outcomes) = run_hostile("mimic");
    let long = format!("long {}", "x".repeat(3000));
    for name in ["passes with spaces", "ünïcødé passes", "-leading-dash passes", long.as_str()]
    {
        let event = outcomes.get(name).unwrap_or_else(|| panic!("{name:.40} ran:\n{}", run.stderr));
        assert_eq!(kind(event), "passed", "{name:.40}: {event}");
    }
    assert_eq!(kind(&outcomes["fails on purpose"]), "failed");
    assert!(printed(&outcomes["fails on purpose"]).contains("this one fails"));
    assert_eq!(run.code, 101);
    let diagnosed = common::parallel_only(&run);
    assert!(diagnosed.is_empty(), "it failed alone, nothing else to say: {diagnosed:?}");
    let listed =
        common::cargo_prun(&["list", "-p", "hostile", "--test", "mimic", "--format", "json"]);
    assert!(listed.stdout.contains("\"one-filter\""), "{}", listed.stdout);
}

#[test]
fn a_target_whose_main_ignores_its_arguments_is_an_error_naming_it_and_runs_once() {
    let dir = tempfile::TempDir::with_prefix_in("args-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let run = common::cargo_prun_with(
        &["-p", "hostile", "--test", "ignores_args", "--always-build"],
        &[("HOSTILE_DIR", dir.path().as_os_str())],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("hostile::ignores_args"), "{}", run.stderr);
    assert!(run.stderr.contains("--test NAME"), "how to leave it out: {}", run.stderr);
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "listing ran it once, not twice");
}

#[test]
fn terminate_after_bounds_a_test_that_stops_itself() {
    let dir = tempfile::TempDir::with_prefix_in("slow-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let config = dir.path().join("prun.toml");
    std::fs::write(&config, "slow-timeout = { period = \"300ms\", terminate-after = 2 }\n")
        .unwrap();
    let run = common::cargo_prun_with(
        &["-p", "hostile", "--test", "slow", "--skip", "b_waits", "--message-format", "json"],
        &[("PRUN_CONFIG", config.as_os_str())],
    );
    let outcomes = outcomes(&run);
    let stopped = &outcomes["a_stops_itself"];
    assert_eq!(kind(stopped), "timed-out", "{stopped}");
    assert_eq!(stopped["outcome"]["after_ms"], 600, "period x terminate-after");
    assert_eq!(kind(&outcomes["c_passes"]), "passed");
    assert_eq!(run.code, 101);
}

#[test]
fn a_test_running_past_the_slow_period_is_reported_slow_while_it_runs() {
    use std::io::BufRead;
    let dir = tempfile::TempDir::with_prefix_in("slow-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let config = dir.path().join("prun.toml");
    std::fs::write(&config, "slow-timeout = \"200ms\"\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-prun"))
        .arg("prun")
        .args(["--manifest-path", prun_e2e::fixtures_dir().join("Cargo.toml").to_str().unwrap()])
        .args(["-p", "hostile", "--test", "slow", "b_waits_for_release"])
        .env("CARGO_TARGET_DIR", prun_e2e::fixtures_target_dir())
        .env("TMPDIR", prun_e2e::fixtures_tmp_dir())
        .env("NO_COLOR", "1")
        .env("PRUN_CONFIG", &config)
        .env("HOSTILE_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    // Should no SLOW line ever come, the test is released after a minute and the assertions
    // below fail, rather than the suite hanging.
    let release = dir.path().join("release");
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = std::fs::write(release, "");
    });
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // The test is still running: it goes on only once released, which happens here.
        if line.contains("SLOW") && line.contains("b_waits_for_release") {
            std::fs::write(dir.path().join("release"), "").unwrap();
        }
        lines.push(line);
    }
    let status = child.wait().unwrap();
    let all = lines.join("\n");
    assert!(status.success(), "{all}");
    let slow = lines.iter().position(|l| l.contains("SLOW")).expect("a SLOW line");
    let pass = lines.iter().position(|l| l.contains("PASS")).expect("a PASS line");
    assert!(slow < pass, "reported slow while it ran:\n{all}");
    // A multiple of the period (a loaded machine may tell it a period late).
    assert!(lines[slow].contains("[>  0.") && lines[slow].contains("00s]"), "{}", lines[slow]);
}

#[test]
fn forty_mebibytes_on_one_line_are_read_once_and_kept_in_part() {
    for target in ["loud", "loud_worker"] {
        let (run, outcomes) = run_hostile(target);
        let event = &outcomes["prints_forty_mebibytes_on_one_line_then_fails"];
        assert_eq!(kind(event), "failed", "{target}: {}", run.stderr);
        let said = printed(event);
        assert!(said.contains("MiB of output left out here"), "{target}: first and last MiB kept");
        assert!(said.len() < 3 << 20, "{target}: {} bytes", said.len());
        assert!(said.contains("failed after a long line"), "{target}: its panic is kept");
    }
}

/// The stalling tests cost the run a bounded multiple of the same run without them. Were prun
/// to wait on them, the run would take an hour (the leaked child sleeps 3600 s); the bound is
/// wide (20 times, plus 2 s for a loaded machine) so that no ordinary noise can trip it.
#[test]
fn a_stalling_test_costs_a_bounded_ratio_of_the_run_without_it() {
    let dir = tempfile::TempDir::with_prefix_in("ratio-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let env = [("HOSTILE_DIR", dir.path().as_os_str())];
    let timed = |args: &[&str]| {
        let started = std::time::Instant::now();
        let run = common::cargo_prun_with(args, &env);
        (started.elapsed(), run)
    };
    for (test, benign) in [("stall", "b_passes"), ("stall_worker", "c_passes")] {
        let args = ["-p", "hostile", "--test", test, "-j", "1"];
        let (without, _) = timed(&[&args[..], &[benign]].concat());
        let (with, run) = timed(&args);
        let bound = without * 20 + std::time::Duration::from_secs(2);
        assert!(
            with < bound,
            "{test}: {with:?} with the staller, {without:?} without\n{}",
            run.stderr
        );
    }
}
