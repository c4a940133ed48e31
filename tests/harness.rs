//! A prun test binary, run as `cargo test` and `cargo nextest` run it: outcomes, output,
//! exit codes, filters, config, fixtures and scheduling, against the fixture crates.

use std::path::Path;
use std::process::Command;

use prun_e2e::{binary, fixtures_dir, fixtures_target_dir, fixtures_tmp_dir, run};

/// The parts of the output that differ from run to run: timings, and the run's temp dir
/// (`TMP/prun-RUNID/...`).
fn normalized(stdout: &str) -> String {
    let tmp = format!("{}/prun-", fixtures_tmp_dir().display());
    stdout
        .lines()
        .map(|line| {
            let line = match line.find("finished in ") {
                Some(at) => format!("{}finished in [time]", &line[..at]),
                None => line.to_owned(),
            };
            match line.find(&tmp) {
                Some(at) => {
                    let rest = &line[at + tmp.len()..];
                    let after_id = rest.find('/').map_or("", |slash| &rest[slash..]);
                    format!("{}[run temp dir]{after_id}", &line[..at])
                }
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_outcome_is_reported_like_libtest() {
    let out = run(&binary("outcomes"), &["--test-threads=1"], &[]);
    assert_eq!(out.code, 101, "a failed test makes the binary exit 101");
    insta::assert_snapshot!("outcomes_one_thread", normalized(&out.stdout));
}

#[test]
fn a_test_can_skip_itself_at_run_time() {
    let out = run(&binary("skipping"), &["--test-threads=1"], &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.status("skips_itself"), "ignored, no GPU on this machine");
    // From a fixture's setup, every test that takes it; `should_panic` does not turn it into a
    // pass or a failure.
    for test in ["needs_the_server", "a_skip_is_not_a_panic"] {
        assert_eq!(out.status(test), "ignored, no server on 127.0.0.1:1: start one first");
    }
    assert_eq!(out.status("runs"), "ok");
    assert!(!out.stderr.contains("panicked"), "a skip prints no panic: {}", out.stderr);
    assert_eq!(
        normalized(out.result_line()),
        "test result: ok. 2 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in [time]"
    );
}

#[test]
fn outcomes_are_the_same_on_many_threads() {
    let out = run(&binary("outcomes"), &["--test-threads=4"], &[]);
    assert_eq!(out.code, 101);
    assert_eq!(
        normalized(out.result_line()),
        "test result: FAILED. 6 passed; 9 failed; 2 ignored; 0 measured; 0 filtered out; finished in [time]"
    );
    for passed in [
        "passes",
        "should_panic_and_does",
        "slow_runs_first",
        "nested::is_named_by_module_path",
        "removes_its_temp_dir_on_pass",
    ] {
        assert_eq!(out.status(passed), "ok", "{passed}");
    }
    assert_eq!(out.status("flaky_passes_on_second_attempt"), "ok (flaky: passed on attempt 2)");
    assert_eq!(out.status("hangs_past_its_timeout"), "TIMED OUT (after 300ms)");
    assert_eq!(out.status("ignored_with_reason"), "ignored, needs a GPU");
    for failed in [
        "panics",
        "returns_err",
        "should_panic_with_other_words",
        "should_panic_but_returns",
        "fails_every_attempt",
        "keeps_its_temp_dir_on_failure",
        "shows_its_log_when_it_fails",
        "needs_a_fixture_that_fails",
    ] {
        assert_eq!(out.status(failed), "FAILED", "{failed}");
    }
    // A panic's text belongs to its own test, and to no other.
    assert!(out.section("panics").contains("thread 'panics' panicked at cases/tests/outcomes.rs"));
    assert!(out.section("panics").contains("boom at the counter"));
    assert_eq!(out.stdout.matches("boom at the counter").count(), 1);
    assert!(!out.stderr.contains("boom"), "panic text leaked to stderr: {}", out.stderr);
    assert!(out.section("returns_err").contains("Error: \"no connection\""));
    assert!(out.section("should_panic_but_returns").contains("test did not panic as expected"));
    assert!(
        out.section("should_panic_with_other_words")
            .contains("expected substring: \"the right words\"")
    );
    assert!(
        out.section("needs_a_fixture_that_fails")
            .contains("fixture `outcomes::DatabaseDown` failed to set up: database is down")
    );
    assert!(out.section("hangs_past_its_timeout").contains("timed out after 300ms"));
    let log = out.section("shows_its_log_when_it_fails");
    assert!(log.contains("connecting to the database\nattempt 1 on worker "), "{log}");
    assert!(out.stdout.contains(
        "flaky: 1 test passed after failing first\n    flaky_passes_on_second_attempt (2 attempts)"
    ));
}

#[test]
fn a_failed_test_keeps_its_temp_dir_and_a_passing_one_does_not() {
    let out = run(&binary("outcomes"), &["temp_dir", "--show-output"], &[]);
    let kept = out.section("keeps_its_temp_dir_on_failure");
    let kept = kept
        .lines()
        .find_map(|l| l.strip_prefix("temp dir kept: "))
        .expect("the kept path is printed");
    let kept = Path::new(kept);
    assert_eq!(std::fs::read_to_string(kept.join("evidence.txt")).unwrap(), "kept");
    let removed = out.section("removes_its_temp_dir_on_pass");
    let removed =
        removed.lines().find_map(|l| l.strip_prefix("temp dir: ")).expect("the test logs its path");
    assert!(!Path::new(removed).exists(), "{removed} outlived a passing test");
    std::fs::remove_dir_all(kept.parent().unwrap()).unwrap();
}

#[test]
fn processes_that_share_a_run_id_keep_temp_dirs_apart() {
    // Two harness processes that inherit one PRUN_RUN_ID (nested runs, a script) each get a
    // temp root of their own: one finishing never removes the other's.
    let env = [("PRUN_RUN_ID", "sharedrun")];
    let kept_root = |out: &prun_e2e::Run| {
        let section = out.section("keeps_its_temp_dir_on_failure");
        let kept = section.lines().find_map(|l| l.strip_prefix("temp dir kept: ")).unwrap();
        Path::new(kept).parent().unwrap().to_owned()
    };
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run(&binary("outcomes"), &["temp_dir"], &env));
        let b = scope.spawn(|| run(&binary("outcomes"), &["temp_dir"], &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (root_a, root_b) = (kept_root(&a), kept_root(&b));
    assert_ne!(root_a, root_b);
    for root in [&root_a, &root_b] {
        let name = root.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("prun-sharedrun-"), "{name}");
        std::fs::remove_dir_all(root).unwrap();
    }
}

#[test]
fn filters_select_like_libtest() {
    let outcomes = binary("outcomes");
    let exact = run(&outcomes, &["--exact", "passes"], &[]);
    assert_eq!(exact.code, 0);
    assert_eq!(
        normalized(exact.result_line()),
        "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 16 filtered out; finished in [time]"
    );

    let substring = run(&outcomes, &["should_panic", "--skip", "words"], &[]);
    assert_eq!(
        normalized(substring.result_line()),
        "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 15 filtered out; finished in [time]"
    );

    let category = run(&outcomes, &["--category", "slow"], &[]);
    assert_eq!(category.status("slow_runs_first"), "ok");
    assert!(
        category
            .result_line()
            .contains("1 passed; 0 failed; 0 ignored; 0 measured; 16 filtered out")
    );

    let groups = run(&binary("parallel"), &["--group", "cache"], &[]);
    assert!(
        groups.result_line().contains("6 passed; 0 failed; 0 ignored; 0 measured; 9 filtered out"),
        "{}",
        groups.stdout
    );

    let ignored = run(&outcomes, &["--ignored"], &[]);
    assert!(
        ignored
            .result_line()
            .contains("2 passed; 0 failed; 0 ignored; 0 measured; 15 filtered out")
    );
    let included = run(&outcomes, &["--include-ignored", "ignored"], &[]);
    assert!(included.result_line().contains("2 passed; 0 failed; 0 ignored"));
}

#[test]
fn list_prints_names_in_declaration_order() {
    let passing = binary("passing");
    let list = run(&passing, &["--list"], &[]);
    assert_eq!(list.code, 0);
    assert_eq!(
        list.stdout,
        "adds: test\ntalks_to_db: test\nignored_one: test\ninner::nested_passes: test\n\n4 tests, 0 benchmarks\n"
    );
    // What cargo nextest asks a custom harness for.
    let terse = run(&passing, &["--list", "--format", "terse"], &[]);
    assert_eq!(
        terse.stdout,
        "adds: test\ntalks_to_db: test\nignored_one: test\ninner::nested_passes: test\n"
    );
    let ignored = run(&passing, &["--list", "--format", "terse", "--ignored"], &[]);
    assert_eq!(ignored.stdout, "ignored_one: test\n");
}

#[test]
fn json_and_terse_formats() {
    let passing = binary("passing");
    let json = run(&passing, &["--format", "json"], &[]);
    let events: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(
        events[0],
        serde_json::json!({ "type": "suite", "event": "started", "test_count": 4 })
    );
    let finished = events.iter().filter(|e| e["type"] == "test" && e["event"] == "ok").count();
    assert_eq!(finished, 3);
    let last = events.last().unwrap();
    assert_eq!(
        (&last["event"], &last["passed"], &last["ignored"]),
        (&"ok".into(), &3.into(), &1.into())
    );

    let terse = run(&passing, &["-q"], &[]);
    assert!(terse.stdout.contains("\nrunning 4 tests\n"));
    assert_eq!(terse.stdout.lines().nth(2).unwrap().chars().filter(|c| *c == '.').count(), 3);
    assert_eq!(terse.code, 0);
}

#[test]
fn groups_and_heavy_tests_hold_on_every_thread_count() {
    let parallel = binary("parallel");
    for threads in ["1", "3", "8"] {
        let out = run(&parallel, &["--test-threads", threads], &[]);
        assert_eq!(out.code, 0, "--test-threads {threads}:\n{}", out.stdout);
    }
    // On two threads a `threads = 2` test must run alone, on a rayon pool of two.
    let out = run(&parallel, &["--test-threads", "2"], &[("EXPECT_ALONE", "1")]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = run(&parallel, &[], &[("PRUN_TEST_THREADS", "-1")]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn config_sets_threads_categories_and_groups() {
    let configured = binary("configured");
    let out = run(&configured, &[], &[]);
    assert_eq!(out.code, 101, "{}", out.stdout);
    assert_eq!(out.status("smoke_flaky"), "ok (flaky: passed on attempt 2)");
    assert_eq!(out.status("integration_hangs"), "TIMED OUT (after 250ms)");
    for name in ["db_a", "db_b", "db_c", "db_d", "db_e", "smoke_a", "smoke_b", "smoke_c"] {
        assert_eq!(out.status(name), "ok", "{name} ran over a cap:\n{}", out.stdout);
    }
    // A profile overrides the top level: one thread.
    let serial = run(&configured, &["db_"], &[("PRUN_PROFILE", "serial")]);
    assert_eq!(serial.code, 0, "{}", serial.stdout);
}

#[test]
fn bad_config_is_an_error_naming_file_line_and_key() {
    let configured = binary("configured");
    let dir = std::env::temp_dir().join(format!("prun-e2e-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prun.toml");
    std::fs::write(&file, "threads = 2\n[groups.db]\ncapasity = 2\n").unwrap();
    let out = run(&configured, &[], &[("PRUN_CONFIG", file.to_str().unwrap())]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains(&format!("invalid config {}", file.display())), "{}", out.stderr);
    assert!(out.stderr.contains("line 3") && out.stderr.contains("capasity"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing runs on a bad config");

    std::fs::write(&file, "[categories.integration]\ntimeout = \"soon\"\n").unwrap();
    let out = run(&configured, &[], &[("PRUN_CONFIG", file.to_str().unwrap())]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("line 2")
            && out.stderr.contains("timeout")
            && out.stderr.contains("soon"),
        "{}",
        out.stderr
    );

    let out = run(&configured, &[], &[("PRUN_PROFILE", "nightly")]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("profile `nightly`"), "{}", out.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_flags_are_errors_naming_the_flag() {
    let out = run(&binary("passing"), &["--test-threads", "0"], &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--test-threads"), "{}", out.stderr);
    let out = run(&binary("passing"), &["--no-such-flag"], &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
    // libtest's and nextest's variables are read too, by the same rule as under cargo prun.
    for variable in ["PRUN_TEST_THREADS", "NEXTEST_TEST_THREADS", "RUST_TEST_THREADS"] {
        let out = run(&binary("passing"), &[], &[(variable, "lots")]);
        assert_eq!(out.code, 2, "{variable}");
        assert!(out.stderr.contains(variable), "{}", out.stderr);
    }
    // A negative count is all cores but N, never fewer than one, as under cargo prun.
    let out = run(&binary("passing"), &[], &[("PRUN_TEST_THREADS", "-64")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn cargo_nextest_runs_a_prun_binary() {
    let nextest = Command::new(env!("CARGO")).args(["nextest", "--version"]).output();
    if !nextest.is_ok_and(|out| out.status.success()) {
        panic!("cargo-nextest is not installed; .ci/run installs it");
    }
    let out = Command::new(env!("CARGO"))
        .args(["nextest", "run", "--no-fail-fast", "-p", "cases", "--test", "passing"])
        .current_dir(fixtures_dir())
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .env("NO_COLOR", "1")
        .output()
        .expect("cargo nextest runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("3 tests run: 3 passed, 1 skipped"), "{stderr}");
    assert!(stderr.contains("PASS") && stderr.contains("inner::nested_passes"), "{stderr}");
}

#[test]
fn async_tests_run_on_tokio() {
    let out = run(&binary("asynchronous"), &[], &[]);
    assert_eq!(out.code, 101, "{}", out.stdout);
    assert_eq!(out.status("awaits"), "ok");
    assert_eq!(out.status("echoes_over_tcp"), "ok");
    assert_eq!(out.status("fails_after_an_await"), "FAILED");
    assert!(out.section("fails_after_an_await").contains("failed after awaiting"));
}

#[test]
fn the_harness_redacts_secrets_from_what_it_captured() {
    let token = "hunter2-very-secret";
    let env = [("PRUN_E2E_API_TOKEN", token)];
    let out = run(&binary("hardening"), &["--exact", "prints_secrets"], &env);
    assert_eq!(out.code, 101);
    // The panic message, which the harness captured, has the token redacted (what the test
    // printed itself went straight to the terminal, as with libtest).
    let section = out.section("prints_secrets");
    assert!(section.contains("rejected: [REDACTED]"), "{section}");
    assert!(!section.contains(token), "{section}");
}

/// What every runner says of a test whose category nobody declared.
const UNDECLARED: &str = "test `nightly_sync` (undeclared/tests/undeclared_category.rs:6) has \
                          category \"nightly\", which is neither built in (unit, integration, \
                          slow) nor declared under [categories] in a prun.toml (none was found)";

#[test]
fn an_undeclared_category_is_the_same_error_under_cargo_test_and_nextest() {
    let out = run(&binary("undeclared_category"), &[], &[]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains(UNDECLARED), "{}", out.stderr);
    let out = Command::new(env!("CARGO"))
        .args(["nextest", "run", "--no-fail-fast", "-p", "undeclared"])
        .current_dir(fixtures_dir())
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .env("NO_COLOR", "1")
        .output()
        .expect("cargo nextest runs");
    let printed =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains(UNDECLARED), "{printed}");
}

#[test]
fn cargo_term_color_is_honoured_by_the_harness_too() {
    let out = run(&binary("passing"), &[], &[("CARGO_TERM_COLOR", "always")]);
    assert!(out.stdout.contains('\u{1b}'), "coloured: {:?}", out.stdout);
    let out = run(&binary("passing"), &[], &[]);
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
}

/// Under `bazel test` with `shard_count = 3`, Bazel starts the binary three times: each runs
/// its share, together every test once, and each says it shards by touching the status file.
#[test]
fn a_prun_binary_run_by_bazel_runs_its_shard_and_keeps_temp_files_in_test_tmpdir() {
    let dir = fixtures_tmp_dir().join(format!("bazel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = dir.join("shard-status");
    let everything = run(&binary("passing"), &["--test-threads=2", "--include-ignored"], &[]);
    let passed_or_failed = |out: &prun_e2e::Run| -> Vec<String> {
        out.stdout
            .lines()
            .filter_map(|line| {
                line.strip_prefix("test ")?.split_once(" ... ").map(|(n, _)| n.to_owned())
            })
            .collect()
    };
    let mut all = passed_or_failed(&everything);
    all.sort();
    all.dedup();
    let mut sharded = Vec::new();
    for index in ["0", "1", "2"] {
        let env = [
            ("TEST_TOTAL_SHARDS", "3"),
            ("TEST_SHARD_INDEX", index),
            ("TEST_SHARD_STATUS_FILE", status.to_str().unwrap()),
        ];
        let out = run(&binary("passing"), &["--test-threads=2", "--include-ignored"], &env);
        let mut mine = passed_or_failed(&out);
        mine.sort();
        mine.dedup();
        assert!(!mine.is_empty() && mine.len() < all.len(), "shard {index}: {mine:?}");
        sharded.extend(mine);
    }
    sharded.sort();
    assert_eq!(sharded, all, "every test in exactly one shard");
    assert!(status.exists(), "the binary told Bazel it shards");
    // A bad shard is an error naming the variable, not a silent full run.
    let bad = [("TEST_TOTAL_SHARDS", "3"), ("TEST_SHARD_INDEX", "3")];
    let out = run(&binary("passing"), &[], &bad);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("TEST_SHARD_INDEX=3"), "{}", out.stderr);

    // Temp dirs go under Bazel's TEST_TMPDIR.
    let test_tmpdir = dir.join("test-tmpdir");
    std::fs::create_dir_all(&test_tmpdir).unwrap();
    let env = [("TEST_TMPDIR", test_tmpdir.to_str().unwrap())];
    let out = run(&binary("outcomes"), &["temp_dir", "--show-output"], &env);
    let kept = out.section("keeps_its_temp_dir_on_failure");
    let kept = kept.lines().find_map(|l| l.strip_prefix("temp dir kept: ")).unwrap();
    assert!(Path::new(kept).starts_with(&test_tmpdir), "{kept}");
    std::fs::remove_dir_all(dir).unwrap();
}
