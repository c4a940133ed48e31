//! Bisection names the test another collides with, at the same moment as well as through state
//! left behind, and says how to fix it: end to end over the `collide` fixture (files in a
//! directory of the test's own) and `learning`'s polluted tests.

mod common;

use std::path::Path;

use common::{Run, cargo_prun_with};

/// `cargo prun bisect ARGS` with a fresh collision directory.
fn bisect(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["bisect", "-p", "collide"];
    all.extend_from_slice(args);
    cargo_prun_with(&all, &[("COLLIDE_DIR", dir.as_os_str())])
}

fn collide_dir() -> tempfile::TempDir {
    tempfile::TempDir::with_prefix_in("collide-", prun_e2e::fixtures_tmp_dir()).unwrap()
}

/// The line of `run`'s stdout that starts with `prefix`, without it.
fn said<'a>(run: &'a Run, prefix: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{}\n{}", run.stdout, run.stderr))
}

/// The arguments of a printed `cargo prun bisect ...` command, after `bisect`, less the
/// manifest path (the test helper gives it).
fn words_after_bisect(command: &str) -> Vec<String> {
    let words = shlex::split(command).unwrap();
    let at = words.iter().position(|w| w == "bisect").unwrap();
    let mut words = words[at + 1..].to_vec();
    if let Some(at) = words.iter().position(|w| w == "--manifest-path") {
        words.drain(at..at + 2);
    }
    words
}

#[test]
fn a_collision_at_the_same_moment_is_found_named_reproduced_and_given_a_group() {
    let dir = collide_dir();
    let run = bisect(dir.path(), &["a_sees_marker"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        said(&run, "collide::moment a_sees_marker fails while they run at the same moment: "),
        "collide::moment b_writes_marker"
    );
    assert_eq!(said(&run, "kind: "), "at the same moment: it fails while they run");
    assert!(said(&run, "trials: ").contains("runs of it beside the suspects"));
    assert_eq!(said(&run, "fix: on a_sees_marker: "), "#[prun::test(group = \"marker\")]");
    assert_eq!(said(&run, "fix: on b_writes_marker: "), "#[prun::test(group = \"marker\")]");
    assert!(
        said(&run, "or: ").contains("--exact a_sees_marker b_writes_marker -j 2 --repeat 30"),
        "{}",
        run.stdout
    );

    // The printed command reproduces it; the same replay with an innocent test does not.
    let replay = words_after_bisect(said(&run, "reproduce: "));
    assert!(replay.contains(&"--beside".to_owned()), "{replay:?}");
    let replay: Vec<&str> = replay.iter().map(String::as_str).collect();
    let again = cargo_prun_with(
        &[&["bisect"][..], &replay[..]].concat(),
        &[("COLLIDE_DIR", dir.path().as_os_str())],
    );
    assert_eq!(again.code, 101, "{}\n{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("fails while they run at the same moment"), "{}", again.stdout);
    let innocent = bisect(dir.path(), &["a_sees_marker", "--with", "c_innocent", "--beside"]);
    assert_eq!(innocent.code, 0, "{}", innocent.stdout);
}

#[test]
fn a_collision_across_two_binaries_through_a_shared_file_is_found() {
    let dir = collide_dir();
    let run = bisect(dir.path(), &["reads_shared"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        said(&run, "collide::reader reads_shared fails while they run at the same moment: "),
        "collide::writer writes_shared"
    );
    // Plain tests: a nextest.toml test group (prun reads it), or serial_test across processes.
    let fix = said(&run, "fix: in .config/nextest.toml");
    assert!(fix.contains("[test-groups.shared] max-threads = 1"), "{fix}");
    assert!(fix.contains("filter = 'test(=reads_shared) | test(=writes_shared)'"), "{fix}");
}

#[test]
fn a_collision_that_shows_in_one_of_five_runs_is_found_by_repeating() {
    let dir = collide_dir();
    let run = bisect(dir.path(), &["p_sees_rare_marker"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        said(&run, "collide::moment p_sees_rare_marker fails while they run at the same moment: "),
        "collide::moment q_writes_rare_marker"
    );
    assert_eq!(
        said(&run, "fix: on q_writes_rare_marker: "),
        "#[prun::test(group = \"rare-marker\")]"
    );
}

#[test]
fn a_test_that_fails_by_itself_now_and_then_has_no_culprit() {
    let dir = collide_dir();
    // Its first run is over: it passes from now on, beside anything.
    std::fs::write(dir.path().join("s-count"), "1").unwrap();
    let run = bisect(dir.path(), &["s_fails_on_its_first_run"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let said = said(&run, "collide::moment s_fails_on_its_first_run has no culprit: ");
    assert!(said.contains("runs beside them at the same moment"), "{said}");
    assert!(said.contains("would have shown with probability"), "{said}");
}
