//! `cargo prun` runs the last build's binaries without starting cargo only while nothing that
//! build read has changed: end to end over a crate written here, edited between runs.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Run, last_line, tempfile_dir};

/// `cargo prun ARGS` in `dir`, as cargo starts it (`CARGO` is inherited from the test's cargo),
/// with extra environment variables.
fn prun_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-prun"))
        .arg("prun")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("PRUN_HISTORY_DIR")
        .env_remove("PRUN_TEST_THREADS")
        .env_remove("NEXTEST_TEST_THREADS")
        .env_remove("RUST_TEST_THREADS")
        .envs(env.iter().copied())
        .output()
        .expect("cargo-prun runs");
    Run::from(output)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const UNCHANGED: &str = "Unchanged";

#[test]
fn cargo_is_skipped_only_while_nothing_the_build_read_changed() {
    let dir = tempfile_dir("unchanged-build");
    let _ = std::fs::remove_dir_all(dir.join("target"));
    write(
        &dir.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    write(
        &dir.join("src/lib.rs"),
        "pub fn answer() -> u32 { 42 }\n\n#[test]\nfn unit() { assert_eq!(answer(), 42); }\n",
    );
    write(&dir.join("src/bin/tool.rs"), "fn main() { print!(\"42\"); }\n");
    // An integration test of the package's binary: it must be rebuilt when its source changes.
    write(
        &dir.join("tests/first.rs"),
        "#[test]\nfn first() { assert_eq!(probe::answer(), 42); }\n\n#[test]\nfn tool() {\n    \
         let out = std::process::Command::new(env!(\"CARGO_BIN_EXE_tool\")).output().unwrap();\n    \
         assert_eq!(out.stdout, b\"42\");\n}\n",
    );
    let run = |env: &[(&str, &str)]| {
        let run = prun_in(&dir, &["--no-fail-fast"], env);
        (run.stderr.contains(UNCHANGED), last_line(&run.stdout).to_owned(), run)
    };

    let (skipped, summary, first) = run(&[]);
    assert!(!skipped && first.stderr.contains("Compiling probe"), "{}", first.stderr);
    assert!(summary.starts_with("3 passed, 0 failed"), "{}\n{}", first.stdout, first.stderr);

    // The first build wrote Cargo.lock, which the build reads: no stamp is written while a file
    // it reads changes, so the next run asks cargo once more.
    let (skipped, _, second) = run(&[]);
    assert!(!skipped && second.stderr.contains("Finished"), "{}", second.stderr);

    let (skipped, summary, second) = run(&[]);
    assert!(skipped, "nothing changed: cargo is not asked\n{}", second.stderr);
    assert!(!second.stderr.contains("Finished"), "{}", second.stderr);
    assert!(summary.starts_with("3 passed, 0 failed"), "{summary}");

    let always = prun_in(&dir, &["--always-build"], &[]);
    assert!(!always.stderr.contains(UNCHANGED) && always.stderr.contains("Finished"));
    assert!(last_line(&always.stdout).starts_with("3 passed, 0 failed"));

    // An edit of the same size: only its modification time tells.
    write(
        &dir.join("src/lib.rs"),
        "pub fn answer() -> u32 { 41 }\n\n#[test]\nfn unit() { assert_eq!(answer(), 42); }\n",
    );
    let (skipped, summary, edited) = run(&[]);
    assert!(!skipped && edited.stderr.contains("Compiling probe"), "{}", edited.stderr);
    assert!(summary.starts_with("1 passed, 2 failed"), "the edit is built: {summary}");

    // A new integration test: no file the last build read changed, but its directory did.
    write(&dir.join("tests/second.rs"), "#[test]\nfn second() {}\n");
    let (skipped, summary, added) = run(&[]);
    assert!(!skipped, "{}", added.stderr);
    assert!(summary.starts_with("2 passed, 2 failed"), "the new test runs: {summary}");

    // The binary an integration test runs: its source is in the binary's own dep-info.
    write(&dir.join("src/bin/tool.rs"), "fn main() { print!(\"41\"); }\n");
    let (skipped, summary, bin) = run(&[]);
    assert!(!skipped && bin.stderr.contains("Compiling probe"), "{}", bin.stderr);
    assert!(summary.starts_with("1 passed, 3 failed"), "the binary is rebuilt: {summary}");

    // Another environment may build differently (a build script or `env!` reads it).
    let (skipped, _, other_env) = run(&[("PROBE_SETTING", "1")]);
    assert!(!skipped, "{}", other_env.stderr);

    // The binaries are gone (`cargo clean`).
    std::fs::remove_dir_all(dir.join("target/debug/deps")).unwrap();
    let (skipped, summary, cleaned) = run(&[]);
    assert!(!skipped && cleaned.stderr.contains("Compiling probe"), "{}", cleaned.stderr);
    assert!(summary.starts_with("1 passed, 3 failed"), "{summary}");

    let (skipped, summary, again) = run(&[]);
    assert!(skipped, "a rebuild writes a new stamp\n{}", again.stderr);
    assert!(summary.starts_with("1 passed, 3 failed"), "{summary}");
}
