//! Doctests, when prun.toml says `doctests = "run"`: `cargo test --doc` as one job of the
//! schedule (the first), each doctest reported from libtest's own result lines, like every
//! other test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::event::{Finished, Outcome};

/// Why the doctests did not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot run cargo test --doc: {0}")]
    Start(std::io::Error),
    /// cargo's error is on stderr already.
    #[error("cargo test --doc failed ({0})")]
    Failed(std::process::ExitStatus),
}

/// Runs the doctests of the packages the build flags select.
pub(crate) fn run(
    build_args: &[String],
    filters: &[String],
    threads: usize,
) -> Result<Vec<Finished>, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let output = Command::new(cargo)
        .args(["test", "--doc"])
        .args(build_args)
        .arg("--")
        .args(filters)
        .arg(format!("--test-threads={threads}"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(Error::Start)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results = parse(&stdout, started.elapsed());
    if results.is_empty() && !output.status.success() {
        return Err(Error::Failed(output.status));
    }
    Ok(results)
}

/// One result per `test NAME ... STATUS` line; a failure carries its `---- NAME stdout ----`
/// section.
fn parse(stdout: &str, elapsed: Duration) -> Vec<Finished> {
    let mut results = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("test ") else { continue };
        let Some((name, status)) = rest.rsplit_once(" ... ") else { continue };
        let outcome = match status {
            "ok" => Outcome::Passed,
            s if s.starts_with("FAILED") => {
                Outcome::Failed { reason: "the doctest failed".to_owned() }
            }
            _ => continue, // ignored
        };
        let stdout = if outcome.passed() { String::new() } else { section(stdout, name) };
        let finished = Finished::of("doctests".to_owned(), name.to_owned(), outcome);
        results.push(Finished { started_at: elapsed, stdout, ..finished });
    }
    results
}

fn section(stdout: &str, name: &str) -> String {
    let header = format!("---- {name} stdout ----\n");
    let Some(start) = stdout.find(&header).map(|at| at + header.len()) else {
        return String::new();
    };
    let rest = &stdout[start..];
    let end = ["\n---- ", "\nfailures:\n"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_doctest_results_and_failures() {
        let out = "\nrunning 3 tests\ntest src/lib.rs - a (line 3) ... ok\n\
                   test src/lib.rs - b (line 9) ... FAILED\ntest src/lib.rs - c (line 20) ... ignored\n\n\
                   failures:\n\n---- src/lib.rs - b (line 9) stdout ----\nassertion failed\n\n\
                   failures:\n    src/lib.rs - b (line 9)\n";
        let results = parse(out, Duration::ZERO);
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].name, "src/lib.rs - a (line 3)");
        assert!(results[0].passed);
        assert!(!results[1].passed);
        assert_eq!(results[1].stdout, "assertion failed\n");
    }
}
