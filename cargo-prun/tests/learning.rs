//! What `cargo prun` learns from runs, end to end over the `learning` fixture crate: history
//! and longest-first order, timing shards and timings files, flaky tests, quarantine,
//! `--repeat`, parallel-only failures and bisection, shard reports merged, and the HTML report
//! in a real browser.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;

use common::{
    Run, cargo_prun_with, events, finished_order, junit_cases, last_line, outcomes, parallel_only,
    read_json, report_outcomes, tempfile_dir,
};
use serde_json::Value;

/// `cargo prun ARGS` with the history kept in `history`.
fn with_history(history: &Path, args: &[&str]) -> Run {
    cargo_prun_with(args, &[("PRUN_HISTORY_DIR", history.as_os_str())])
}

#[test]
fn history_puts_the_longest_test_first_and_balances_timing_shards() {
    let dir = tempfile_dir("history-order");
    let history = dir.join("history");
    let args = ["-p", "learning", "--test", "durations", "-j", "1", "--message-format", "json"];
    let first = with_history(&history, &args);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(finished_order(&first).last().unwrap(), "takes_a_while", "no history: declared");
    let second = with_history(&history, &args);
    assert_eq!(finished_order(&second)[0], "takes_a_while", "with history: longest first");

    // The catalog shows what the history says.
    let list = with_history(&history, &["list", "--format", "json", "-p", "learning"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let listed: BTreeMap<String, Value> =
        events(&list).map(|test| (test["name"].as_str().unwrap().to_owned(), test)).collect();
    let long = &listed["takes_a_while"];
    assert!(long["typical_ms"].as_u64().unwrap() >= 300, "{long}");
    assert_eq!(long["runs"], 2);
    assert_eq!(long["flaky_rate"], 0.0);
    assert_eq!(listed["a_expects_a_clean_flag"]["typical_ms"], Value::Null);

    // Timing shards: the long test is a shard of its own; the quick ones share the other.
    let shard = |history: &Path, extra: &[&str], k: u32| -> BTreeSet<String> {
        let partition = format!("timing:{k}/2");
        let args = ["-p", "learning", "--test", "durations", "--partition", &partition];
        let list = ["--list", "--message-format", "json"];
        let run = with_history(history, &[&args[..], extra, &list[..]].concat());
        assert_eq!(run.code, 0, "{}", run.stderr);
        events(&run).map(|test| test["name"].to_string()).collect()
    };
    let ones = [shard(&history, &[], 1), shard(&history, &[], 2)];
    let long_shard = ones.iter().find(|s| s.contains("\"takes_a_while\"")).unwrap();
    assert_eq!(long_shard.len(), 1, "{ones:?}");
    assert_eq!(ones[0].len() + ones[1].len(), 5);

    // Exported, the timings give the same shards on a machine with no history.
    let timings = dir.join("timings.json");
    let export = with_history(&history, &["timings", "export", timings.to_str().unwrap()]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let elsewhere = dir.join("elsewhere");
    let flag = ["--timings", timings.to_str().unwrap()];
    assert_eq!([shard(&elsewhere, &flag, 1), shard(&elsewhere, &flag, 2)], ones);
    // With what each test used: its CPU per second and its peak memory.
    let exported = read_json(&timings);
    let long_id = "learning::durations takes_a_while";
    assert!(exported["cpu"][long_id].is_u64(), "{exported}");
    assert_eq!(exported["peak_kb"][long_id], long["peak_kb"], "{exported}");
    assert!(long["peak_kb"].as_u64().unwrap() > 0, "{long}");
    // Imported, they are that machine's history.
    let import = with_history(&elsewhere, &["timings", "import", timings.to_str().unwrap()]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert_eq!([shard(&elsewhere, &[], 1), shard(&elsewhere, &[], 2)], ones);
    let list = with_history(&elsewhere, &["list", "--format", "json", "-p", "learning"]);
    let imported = events(&list).find(|test| test["name"] == "takes_a_while").unwrap();
    assert_eq!(imported["peak_kb"], long["peak_kb"], "{imported}");
    assert!(imported["cpu_per_second"].is_f64(), "{imported}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_plain_binarys_long_tests_share_a_process_a_thread_apart_from_the_quick_ones() {
    let dir = tempfile_dir("long-share");
    let long = ["long_a", "long_b", "long_c", "long_d", "long_e", "long_f"];
    let quick: Vec<String> = (0..16).map(|i| format!("quick_{i:02}")).collect();
    // A history of imported runs: each long test `long_ms` in each, every quick one 0 ms.
    let import = |history: &Path, long_ms: &[u64]| {
        for (i, ms) in long_ms.iter().enumerate() {
            let id = |name: &str| format!("plain-many::first_in_process {name}");
            let mut tests: BTreeMap<String, u64> = long.iter().map(|n| (id(n), *ms)).collect();
            tests.extend(quick.iter().map(|n| (id(n), 0)));
            let timings = dir.join(format!("timings-{i}.json"));
            let json = serde_json::json!({ "version": 1, "tests": tests });
            std::fs::write(&timings, json.to_string()).unwrap();
            let run = with_history(history, &["timings", "import", timings.to_str().unwrap()]);
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
    };
    let run = |history: &Path| {
        let ran = ran_in("first_in_process", history, &[]);
        assert_eq!(ran.len(), 22, "{ran:?}");
        ran
    };
    // Long every time (300 ms each): two processes for the six, one a thread, not six.
    let history = dir.join("long");
    import(&history, &[300, 300, 300]);
    let ran = run(&history);
    assert_eq!(ran.len(), 22);
    let long_ones = processes(&ran, "long_");
    assert_eq!(long_ones.len(), 2, "{ran:?}");
    assert!(processes(&ran, "quick_").is_disjoint(&long_ones), "{ran:?}");
    // Long in one run of the last five, quick in the others, as a test is that pays for its
    // process's first panic (RUST_BACKTRACE=1): still with the long ones, not among the quick.
    let history = dir.join("once");
    import(&history, &[0, 300, 0, 0, 0]);
    let ran = run(&history);
    let long_ones = processes(&ran, "long_");
    assert_eq!(long_ones.len(), 2, "{ran:?}");
    assert!(processes(&ran, "quick_").is_disjoint(&long_ones), "{ran:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Which process ran each test of a run of `plain-many`'s `binary` (tests that pass and note
/// their process) on two threads with `history`, and `env`.
fn ran_in(binary: &str, history: &Path, env: &[(&str, &OsStr)]) -> BTreeMap<String, String> {
    let pids = history.join("pids");
    let _ = std::fs::remove_dir_all(&pids);
    std::fs::create_dir_all(&pids).unwrap();
    let args = ["-p", "plain-many", "--test", binary, "-j", "2"];
    let mut env = env.to_vec();
    env.extend([
        ("PRUN_HISTORY_DIR", history.as_os_str()),
        ("PRUN_FIXTURE_PIDS", pids.as_os_str()),
    ]);
    let run = common::cargo_prun_with(&args, &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(" passed, 0 failed"), "{}", run.stdout);
    let read = |entry: std::fs::DirEntry| {
        let pid = std::fs::read_to_string(entry.path()).unwrap();
        (entry.file_name().into_string().unwrap(), pid)
    };
    std::fs::read_dir(&pids).unwrap().map(|entry| read(entry.unwrap())).collect()
}

/// The processes of `ran` (see [`ran_in`]) that ran a test whose name starts with `prefix`.
fn processes(ran: &BTreeMap<String, String>, prefix: &str) -> BTreeSet<String> {
    ran.iter().filter(|(name, _)| name.starts_with(prefix)).map(|(_, pid)| pid.clone()).collect()
}

#[test]
fn where_panics_print_backtraces_a_plain_binarys_panicking_tests_share_few_processes() {
    let dir = tempfile_dir("panics-share");
    let panics_in_process = |history: &Path, backtrace: &str| {
        ran_in("panics_in_process", history, &[("RUST_BACKTRACE", OsStr::new(backtrace))])
    };
    // A run of the panicking tests alone, where panics print backtraces: the history learns
    // which tests libtest says should panic, and what the quick tests took stays what was
    // imported (on a busy machine a quick test may stall 100 ms, and count as long after).
    let learn_panics = |history: &Path| {
        let args = ["-p", "plain-many", "--test", "panics_in_process", "-j", "2", "panics_"];
        let env = [("PRUN_HISTORY_DIR", history.as_os_str()), ("RUST_BACKTRACE", OsStr::new("1"))];
        let run = common::cargo_prun_with(&args, &env);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("6 passed, 0 failed"), "{}", run.stdout);
    };
    // A history of the quick tests taking `quick_ms` each, `ballast` `ballast_ms`, the
    // panicking ones none.
    let import = |history: &Path, quick_ms: u64, ballast_ms: u64| {
        let id = |name: &str| format!("plain-many::panics_in_process {name}");
        let mut tests: BTreeMap<String, u64> =
            (0..48).map(|i| (id(&format!("quick_{i:02}")), quick_ms)).collect();
        tests.extend(["a", "b", "c", "d", "e", "f"].map(|n| (id(&format!("panics_{n}")), 0)));
        tests.insert(id("ballast"), ballast_ms);
        let timings = dir.join(format!("timings-{quick_ms}-{ballast_ms}.json"));
        let json = serde_json::json!({ "version": 1, "tests": tests });
        std::fs::write(&timings, json.to_string()).unwrap();
        let import = with_history(history, &["timings", "import", timings.to_str().unwrap()]);
        assert_eq!(import.code, 0, "{}", import.stderr);
    };
    // Quick tests of 50 ms, more than a batch's share (a quick test would have to stall 100
    // ms to count as long): the first run learns which tests libtest says should panic, and
    // the next one deals the six to as many processes as run at once (two threads), apart
    // from the quick ones' batches. Each panic's symbols are read once in each of those, not
    // in every batch that holds a panicking test.
    let history = dir.join("quick-50ms");
    import(&history, 50, 50);
    learn_panics(&history);
    let ran = panics_in_process(&history, "1");
    assert_eq!(ran.len(), 55);
    let panicking = processes(&ran, "panics_");
    assert_eq!(panicking.len(), 2, "{ran:?}");
    assert!(processes(&ran, "quick_").is_disjoint(&panicking), "{ran:?}");
    // Quick tests of no time beside a long one (`ballast`, 20 s in the history, so that a
    // batch's share is 2.5 s: the quick tests' measured times, however slow a busy machine
    // makes them, are a batch's work or less, and a quick test would have to stall 100 ms to
    // count as long): the whole binary runs in two processes, each paying once at most,
    // whichever test panics first in it.
    let history = dir.join("quick-0ms");
    import(&history, 0, 20_000);
    learn_panics(&history);
    let ran = panics_in_process(&history, "1");
    assert_eq!(ran.len(), 55);
    assert_eq!(processes(&ran, "").len(), 2, "{ran:?}");
    // Without backtraces a panic costs nothing: the quick tests are one batch, and a
    // panicking one that never paid (the last by name) is one of it. (A history of its own:
    // the run above measured the quick tests, as slow as the machine made them.)
    let history = dir.join("quick-0ms-no-backtraces");
    import(&history, 0, 20_000);
    learn_panics(&history);
    let ran = panics_in_process(&history, "0");
    assert_eq!(processes(&ran, "quick_").len(), 1, "{ran:?}");
    assert_eq!(ran["panics_f"], ran["quick_00"], "{ran:?}");
    // A first run (no history) does not know which tests panic: with backtraces its 55 tests
    // are one round of as many batches as run at once (two), each paying once at most; without
    // them, rounds that halve (three batches of 16 tests or more). Either way, with nothing
    // known, the tests are dealt to the batches in turn: tests named alike are not all one
    // batch's.
    let first = |backtrace: &str| {
        let ran = panics_in_process(&dir.join(format!("first-{backtrace}")), backtrace);
        assert_eq!(ran.len(), 55, "{ran:?}");
        for pair in [["quick_00", "quick_01"], ["panics_a", "panics_b"]] {
            assert_ne!(ran[pair[0]], ran[pair[1]], "{ran:?}");
        }
        processes(&ran, "").len()
    };
    assert_eq!(first("1"), 2);
    assert_eq!(first("0"), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_corrupt_history_is_a_warning_and_a_fresh_start() {
    let dir = tempfile_dir("history-corrupt");
    std::fs::write(dir.join("history.bin"), "{ this is not a history").unwrap();
    let run = with_history(&dir, &["-p", "learning", "--test", "durations"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning: ignoring the test history"), "{}", run.stderr);
    // A fresh history of this run's five tests took its place.
    let list =
        with_history(&dir, &["list", "-p", "learning", "--test", "durations", "--format", "json"]);
    let runs: Vec<Value> = events(&list).map(|line| line["runs"].clone()).collect();
    assert_eq!(runs, vec![Value::from(1); 5], "{}", list.stdout);
    // Not world-writable (nor readable): the file is the user's.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("history.bin")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A `LEARNING_COUNTER_DIR` for one run of `every_third`, starting from zero.
fn counter(name: &str) -> std::path::PathBuf {
    let dir = tempfile_dir(name);
    let _ = std::fs::remove_file(dir.join("every_third"));
    dir
}

#[test]
fn a_test_failing_every_third_run_is_flaky_with_retries_and_fails_without() {
    let args = ["-p", "learning", "--test", "every_third", "--message-format", "json"];
    let dir = counter("every-third-retries");
    let env = [("LEARNING_COUNTER_DIR", dir.as_os_str())];
    let junit = dir.join("junit.xml");
    let retries = ["--retries", "2", "--junit", junit.to_str().unwrap()];
    let run = cargo_prun_with(&[&args[..], &retries[..]].concat(), &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let test = &outcomes(&run)["fails_every_third_run"];
    assert_eq!(test["attempt"], 2);
    assert!(run.stderr.contains("FLAKY"), "{}", run.stderr);
    let summary: Value = serde_json::from_str(last_line(&run.stdout)).unwrap();
    assert_eq!(summary["flaky"][0][1], "fails_every_third_run");
    // In JUnit, a passing case with its failed attempt as a flakyFailure.
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let flaky: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("flakyFailure")).collect();
    assert_eq!(flaky.len(), 1, "{xml}");

    let dir = counter("every-third-once");
    let run = cargo_prun_with(&args, &[("LEARNING_COUNTER_DIR", dir.as_os_str())]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    // It failed alone (nothing beside it, nothing before it in its process): it is not run
    // again to find out whether it fails alone.
    assert_eq!(std::fs::read_to_string(dir.join("every_third")).unwrap(), "1");
    assert!(parallel_only(&run).is_empty());

    // Quarantined, its failure is reported but does not fail the run.
    let dir = counter("every-third-quarantine");
    let config = dir.join("prun.toml");
    std::fs::write(&config, "quarantine = [\"every_third fails_every_third\"]\n").unwrap();
    let env = [("LEARNING_COUNTER_DIR", dir.as_os_str()), ("PRUN_CONFIG", config.as_os_str())];
    let run = cargo_prun_with(&args, &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let test = &outcomes(&run)["fails_every_third_run"];
    assert_eq!(
        (test["passed"].as_bool(), test["quarantined"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(run.stderr.contains("QUARANTINED"), "{}", run.stderr);

    // With a retry delay in the config, the retry starts no sooner than the delay after the
    // failed attempt ended (a lower bound the clock guarantees: no timing is assumed).
    let dir = counter("every-third-delay");
    let config = dir.join("prun.toml");
    std::fs::write(&config, "[retry]\ndelay = \"300ms\"\nbackoff = 2.0\n").unwrap();
    let env = [("LEARNING_COUNTER_DIR", dir.as_os_str()), ("PRUN_CONFIG", config.as_os_str())];
    let run = cargo_prun_with(&[&args[..], &["--retries", "1"]].concat(), &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let attempts: Vec<Value> =
        events(&run).filter(|event| event["type"] == "test-finished").collect();
    let ms = |event: &Value, key: &str| event[key].as_u64().unwrap();
    let first_ended = ms(&attempts[0], "started_at_ms") + ms(&attempts[0], "duration_ms");
    assert!(ms(&attempts[1], "started_at_ms") + 1 >= first_ended + 300, "{attempts:?}");

    // Repeated six times, it fails on runs 1 and 4: a third of them.
    let dir = counter("every-third-repeat");
    let repeat = ["-p", "learning", "--test", "every_third", "--repeat", "6"];
    let run = cargo_prun_with(&repeat, &[("LEARNING_COUNTER_DIR", dir.as_os_str())]);
    assert_eq!(run.code, 101, "{}", run.stdout);
    assert!(run.stdout.contains("failed 2 of 6 runs (33%)"), "{}", run.stdout);
    assert_eq!(last_line(&run.stdout), "4 passed, 2 failed");

    // Under stress, rounds go on until the time is up (one at least), with the same report.
    let dir = counter("every-third-stress");
    let stress = ["-p", "learning", "--test", "every_third", "--stress", "200ms"];
    let run = cargo_prun_with(&stress, &[("LEARNING_COUNTER_DIR", dir.as_os_str())]);
    assert_eq!(run.code, 101, "run 1 fails: {}", run.stdout);
    assert!(run.stdout.contains("repeated: 1 tests"), "{}", run.stdout);
}

#[test]
fn a_test_polluted_by_another_is_parallel_only_and_bisect_names_the_polluter() {
    let args = ["-p", "learning", "--test", "polluted", "-j", "1", "--message-format", "json"];
    let dir = tempfile_dir("bisect");
    let history = dir.join("history");
    let run = with_history(&history, &[&args[..], &["--bisect"]].concat());
    assert_eq!(run.code, 101, "{}", run.stderr);
    assert_eq!(outcomes(&run)["a_expects_a_clean_flag"]["outcome"]["kind"], "failed");
    let found: BTreeMap<String, Value> = parallel_only(&run)
        .into_iter()
        .map(|found| (found["name"].as_str().unwrap().to_owned(), found))
        .collect();
    assert_eq!(found.len(), 2, "{}", run.stdout);
    let static_one = &found["a_expects_a_clean_flag"];
    assert_eq!(static_one["shared_process"], true);
    assert_eq!(static_one["culprits"], serde_json::json!(["learning::polluted b_sets_the_flag"]));
    // State left behind, and the fix: a process of its own.
    assert_eq!(static_one["collision"], "left-behind");
    assert_eq!(static_one["fix"]["kind"], "isolate");
    assert_eq!(static_one["fix"]["test"]["name"], "a_expects_a_clean_flag");
    assert!(run.stderr.contains("fix: on a_expects_a_clean_flag: #[prun::test(isolate)]"));
    // The same through an environment variable.
    let env_one = &found["f_expects_no_proxy"];
    assert_eq!(env_one["culprits"], serde_json::json!(["learning::polluted g_sets_a_proxy"]));
    assert!(run.stderr.contains("reproduce: cargo prun bisect"), "{}", run.stderr);

    // `cargo prun bisect` starts from the neighbours the run recorded.
    let bisect = with_history(&history, &["bisect", "-p", "learning", "a_expects_a_clean_flag"]);
    assert_eq!(bisect.code, 0, "{}", bisect.stderr);
    assert!(
        bisect.stdout.contains("fails when run after: learning::polluted b_sets_the_flag"),
        "{}",
        bisect.stdout
    );
    let reproduce = bisect.stdout.lines().find_map(|l| l.strip_prefix("reproduce: ")).unwrap();
    assert!(reproduce.contains("--with 'learning::polluted b_sets_the_flag'"), "{reproduce}");
    // The replay reproduces it; an innocent neighbour does not.
    let replay = ["bisect", "-p", "learning", "a_expects_a_clean_flag", "--with"];
    let guilty = with_history(&history, &[&replay[..], &["b_sets_the_flag"]].concat());
    assert_eq!(guilty.code, 101, "{}", guilty.stdout);
    let innocent = with_history(&history, &[&replay[..], &["c_innocent"]].concat());
    assert_eq!(innocent.code, 0, "{}", innocent.stdout);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn four_shards_merged_are_the_unsharded_run() {
    let dir = tempfile_dir("merge");
    let packages = ["-p", "plain", "-p", "shared-db", "--no-fail-fast"];
    let whole = dir.join("whole.json");
    let run = cargo_prun_with(&[&packages[..], &["--json", whole.to_str().unwrap()]].concat(), &[]);
    assert_eq!(run.code, 101, "the plain crate fails on purpose: {}", run.stderr);
    let whole = report_outcomes(&read_json(&whole));

    let shards: Vec<std::path::PathBuf> = (1..=4)
        .map(|k| {
            let path = dir.join(format!("shard-{k}.json"));
            let partition = format!("hash:{k}/4");
            let args = ["--partition", &partition, "--json", path.to_str().unwrap()];
            cargo_prun_with(&[&packages[..], &args[..]].concat(), &[]);
            path
        })
        .collect();
    let merged = dir.join("merged.json");
    let (junit, html) = (dir.join("merged.xml"), dir.join("merged.html"));
    let mut args: Vec<&str> = vec!["merge"];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    let outputs = [
        "--json",
        merged.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ];
    let run = cargo_prun_with(&[&args[..], &outputs[..]].concat(), &[]);
    assert_eq!(run.code, 101, "merged, the failures still fail: {}", run.stderr);
    let merged = read_json(&merged);
    assert_eq!(report_outcomes(&merged), whole, "every test once, with the same outcome");
    assert_eq!(junit_cases(&junit), whole.len());
    // The merge writes the timings the next CI run balances by: every test that ran.
    let timings = dir.join("merged-timings.json");
    let mut with_timings = args.clone();
    with_timings.extend(["--timings", timings.to_str().unwrap()]);
    let run = cargo_prun_with(&with_timings, &[]);
    assert!(run.stderr.contains("wrote the timings of"), "{}", run.stderr);
    let written = read_json(&timings);
    let ran = whole.values().filter(|kind| kind.as_str() != "skipped").count();
    assert_eq!(written["tests"].as_object().unwrap().len(), ran, "{written}");
    // And what they used, where measured (a plain test under a millisecond is not): each
    // test with its CPU has its peak memory too.
    let peaks = written["peak_kb"].as_object().unwrap();
    assert!(peaks.len() >= 10, "{written}");
    assert!(written["cpu"].as_object().unwrap().keys().all(|id| peaks.contains_key(id)));
    // The merged report feeds the next run's timings, as the CI recipes do it.
    let history = dir.join("history");
    let import = cargo_prun_with(
        &["timings", "import", dir.join("merged.json").to_str().unwrap()],
        &[("PRUN_HISTORY_DIR", history.as_os_str())],
    );
    assert_eq!(import.code, 0, "{}", import.stderr);
    // Every test that ran has a time (the ignored one has none), and what it used.
    let ran = whole.values().filter(|kind| kind.as_str() != "skipped").count();
    assert!(import.stderr.contains(&format!("the timings of {ran} tests")), "{}", import.stderr);
    let list = cargo_prun_with(
        &["list", "--format", "json", "-p", "shared-db", "-p", "plain"],
        &[("PRUN_HISTORY_DIR", history.as_os_str())],
    );
    let measured = events(&list).filter(|test| test["peak_kb"].as_u64().is_some_and(|kb| kb > 0));
    assert_eq!(measured.count(), written["cpu"].as_object().unwrap().len(), "{}", list.stdout);

    // A shard left out, or given twice, is an error that names the problem.
    let missing = cargo_prun_with(&[&args[..4], &["--json", "/dev/null"]].concat(), &[]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("tests are in no report"), "{}", missing.stderr);
    // args[..4] is `merge` and shards 1 to 3: the fourth is named.
    assert!(missing.stderr.contains("shard hash:4/4 sent no report"), "{}", missing.stderr);
    // What ran was written to /dev/null, which is still the device, not a file put in its place.
    use std::os::unix::fs::FileTypeExt;
    let null = std::fs::metadata("/dev/null").unwrap().file_type();
    assert!(null.is_char_device(), "/dev/null was replaced by the report");
    let mut twice = args.clone();
    twice.push(shards[0].to_str().unwrap());
    let twice = cargo_prun_with(&twice, &[]);
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    assert!(twice.stderr.contains("are both shard hash:1/4"), "{}", twice.stderr);
    assert!(twice.stderr.contains("tests are in two reports"), "{}", twice.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Debian's Chromium, if it is installed (`.ci/run` installs it).
fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| Path::new(path).exists())
}

#[test]
fn the_html_report_renders_its_timeline_in_chromium() {
    let dir = tempfile_dir("html");
    let (html, trace) = (dir.join("run.html"), dir.join("run.trace.json"));
    let args = ["-p", "shared-db", "-p", "learning", "--no-fail-fast", "--bisect"];
    let outputs = ["--html", html.to_str().unwrap(), "--trace", trace.to_str().unwrap()];
    // `every_third` passes on its second run.
    std::fs::write(dir.join("every_third"), "1").unwrap();
    let env = [("LEARNING_COUNTER_DIR", dir.as_os_str())];
    let run = cargo_prun_with(&[&args[..], &outputs[..]].concat(), &env);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    for fetch in ["<link", " src=", "url(", "fetch(", "XMLHttpRequest", "@import"] {
        assert!(!page.contains(fetch), "the page fetches nothing, but has {fetch}");
    }
    assert!(page.contains("Fails only in parallel (2)"), "the polluted tests are listed");
    // The timeline first, then the failures; a section with nothing in it is left out.
    let at = |text: &str| page.find(text).unwrap_or_else(|| panic!("no {text}"));
    assert!(at("<h2>Timeline</h2>") < at("<h2>Failures"), "the page opens on the timeline");
    assert!(!page.contains("(0)</h2>"), "empty sections are left out");

    // The trace: Chrome's format, a span per attempt.
    let trace = read_json(&trace);
    let spans = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X");
    assert!(spans.count() >= 12 + 7);

    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI must have Chromium: .ci/run installs it");
        eprintln!("skipped: Chromium is not installed (apt-get install chromium)");
        return;
    };
    let browser = |extra: &[&str]| {
        let profile = tempfile::TempDir::with_prefix_in("chromium-", &dir).unwrap();
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
            ])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("chromium runs")
    };
    // The DOM after the page's script ran: a span in the timeline for each test of the run.
    let dom = String::from_utf8(browser(&["--dump-dom"]).stdout).unwrap();
    assert!(dom.contains("attempts on"), "the timeline was drawn: {dom}");
    for test in ["shared-db::alpha alpha_1", "learning::polluted b_sets_the_flag"] {
        assert!(dom.contains(&format!("data-test=\"{test}\"")), "{test} is on the timeline");
    }
    // Bars shaded by the CPU each test used, and the line of how many ran at once.
    assert!(dom.contains("fill-opacity=\"0."), "a bar shaded by its CPU use: {dom}");
    assert!(dom.contains("class=\"at-once\""), "the tests-at-once line: {dom}");
    assert!(dom.contains("at once (max "), "{dom}");
    // Names on the bars, ticks at round values, the rerun-alone phase drawn and explained.
    assert!(dom.contains("class=\"bar-name\""), "a bar carries its test's name: {dom}");
    let ticks: Vec<&str> =
        dom.split("class=\"tick\">").skip(1).map(|rest| &rest[..rest.find('<').unwrap()]).collect();
    assert!(ticks.len() >= 3 && ticks[0] == "0ms", "{ticks:?}");
    let ms = |tick: &str| -> f64 {
        let (number, unit) = tick.split_at(tick.find(|c: char| c.is_ascii_alphabetic()).unwrap());
        number.parse::<f64>().unwrap()
            * [("ms", 1.0), ("s", 1e3), ("m", 6e4)].iter().find(|(u, _)| *u == unit).unwrap().1
    };
    // Evenly spaced by 1, 2 or 5 times a power of ten.
    let step = ms(ticks[1]);
    let mantissa = step / 10f64.powf(step.log10().floor());
    assert!([1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9), "{ticks:?}");
    for (i, tick) in ticks.iter().enumerate() {
        assert!((ms(tick) - i as f64 * step).abs() < 1e-6, "round tick values: {ticks:?}");
    }
    assert!(dom.contains("class=\"rerun-phase\""), "the rerun-alone phase is drawn: {dom}");
    assert!(dom.contains("the failed tests rerun alone)"), "and said: {dom}");
    let screenshot = dir.join("report.png");
    let shot = browser(&[
        &format!("--screenshot={}", screenshot.display()),
        "--window-size=1280,1600",
        "--hide-scrollbars",
    ]);
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    // Kept next to the fixtures' build for a person to look at.
    let _ = std::fs::copy(&screenshot, prun_e2e::fixtures_target_dir().join("report.png"));
    std::fs::remove_dir_all(dir).unwrap();
}
