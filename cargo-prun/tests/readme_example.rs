//! The README's minimal example, as a new user copies it: its `Cargo.toml` and `tests/api.rs`
//! in a crate of their own, the path dependency pointed at this checkout, run with `cargo test`
//! and with `cargo prun`.

use std::path::Path;
use std::process::Command;

const START: &str = "<!-- minimal example: checked by tests/readme_example.rs -->";
const END: &str = "<!-- end of minimal example -->";

/// The fenced code blocks between the README's markers, in order.
fn blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme.find(START).expect("the README marks its minimal example");
    let end = readme.find(END).expect("the README marks the example's end");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme[start..end].lines() {
        match (&mut current, line.starts_with("```")) {
            (None, true) => current = Some(String::new()),
            (Some(_), true) => blocks.push(current.take().unwrap()),
            (Some(block), false) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, false) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_example_builds_and_passes_under_cargo_test_and_cargo_prun() {
    let blocks = blocks();
    let [manifest, api] = &blocks[..] else {
        panic!("a Cargo.toml and a tests/api.rs: {blocks:?}")
    };
    let prun_core =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../prun-core").canonicalize().unwrap();
    let manifest = manifest.replace("../prun/prun-core", prun_core.to_str().unwrap());
    assert!(manifest.contains(prun_core.to_str().unwrap()), "the path dependency: {manifest}");
    let root = tempfile::TempDir::with_prefix_in("readme-", prun_e2e::fixtures_tmp_dir()).unwrap();
    // A workspace of its own: the temp dir lies inside this repository's.
    std::fs::write(root.path().join("Cargo.toml"), format!("{manifest}\n[workspace]\n")).unwrap();
    std::fs::create_dir_all(root.path().join("src")).unwrap();
    std::fs::write(root.path().join("src/lib.rs"), "").unwrap();
    std::fs::create_dir_all(root.path().join("tests")).unwrap();
    std::fs::write(root.path().join("tests/api.rs"), api).unwrap();
    let target = prun_e2e::fixtures_target_dir();

    let out = Command::new(env!("CARGO"))
        .args(["test", "--test", "api"])
        .current_dir(root.path())
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUST_TEST_THREADS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("test result: ok. 4 passed; 0 failed"), "{stdout}");

    let out = Command::new(env!("CARGO_BIN_EXE_cargo-prun"))
        .args(["prun", "--test", "api"])
        .current_dir(root.path())
        .env("CARGO_TARGET_DIR", &target)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.trim_end().ends_with("4 passed, 0 failed"), "{stdout}");
}
