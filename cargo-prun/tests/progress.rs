//! The live progress line, as a person sees it: `cargo prun` under a pseudo-terminal (util-linux
//! `script`), with a test that waits until the line has named it as running.

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn the_progress_line_on_a_terminal_names_the_test_that_runs() {
    let dir = tempfile::TempDir::with_prefix_in("progress-", prun_e2e::fixtures_tmp_dir()).unwrap();
    let manifest = prun_e2e::fixtures_dir().join("Cargo.toml");
    let command = format!(
        "{} prun --manifest-path {} -p hostile --test slow b_waits_for_release",
        env!("CARGO_BIN_EXE_cargo-prun"),
        manifest.display()
    );
    // `script` gives the run a terminal (stdout and stderr) and copies what it draws to us.
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("CARGO_TARGET_DIR", prun_e2e::fixtures_target_dir())
        .env("TMPDIR", prun_e2e::fixtures_tmp_dir())
        .env("HOSTILE_DIR", dir.path())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        // The line is drawn on terminals, and not in CI logs.
        .env_remove("CI")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    let mut terminal = child.stdout.take().unwrap();
    // Should no frame ever name the test, it is released after a minute, and the assertion
    // below fails, rather than the suite hanging.
    let release = dir.path().join("release");
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = std::fs::write(release, "");
    });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut released = false;
    loop {
        let n = terminal.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        // A frame of the live line: what ran, and the test running now, by name.
        if !released
            && text.contains("1 running: slowest hostile::slow b_waits_for_release")
            && text.contains("0/1: 0 passed, 0 failed")
        {
            std::fs::write(dir.path().join("release"), "").unwrap();
            released = true;
        }
    }
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(released, "no frame named the running test:\n{text}");
    assert!(status.success(), "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");
}
