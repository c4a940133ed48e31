//! Builds the fixture workspace once per test binary and runs its binaries the way a user would.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use cargo_metadata::Message;

/// A test binary built from the fixture workspace.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    /// The directory of its package: cargo runs test binaries there, so prun finds its config.
    pub package_dir: PathBuf,
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Where the fixtures are built: apart from the main target dir, whose lock the outer
/// `cargo test` may hold.
pub fn fixtures_target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures")
}

/// The temp dir the fixture binaries run with: failed tests keep their temp dirs on purpose,
/// and they should not pile up in the machine's /tmp. Made on first use; no `..` in it.
pub fn fixtures_tmp_dir() -> PathBuf {
    let tmp = fixtures_target_dir().join("tmp");
    std::fs::create_dir_all(&tmp).expect("the fixtures' temp dir can be made");
    tmp.canonicalize().expect("the fixtures' temp dir exists")
}

/// The fixture workspace's test binaries by target name, built on first use.
pub fn binary(name: &str) -> Binary {
    static BUILT: OnceLock<HashMap<String, Binary>> = OnceLock::new();
    let built = BUILT.get_or_init(build_fixtures);
    built.get(name).unwrap_or_else(|| panic!("no fixture test target named {name}")).clone()
}

fn build_fixtures() -> HashMap<String, Binary> {
    let mut child = Command::new(env!("CARGO"))
        .args(["build", "--tests", "--message-format=json-render-diagnostics"])
        .current_dir(fixtures_dir())
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run cargo");
    let mut binaries = HashMap::new();
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    for message in Message::parse_stream(stdout) {
        if let Message::CompilerArtifact(artifact) = message.expect("cargo's JSON") {
            let is_test_target = artifact.target.kind.iter().any(|k| k.to_string() == "test");
            if let (true, Some(path)) = (is_test_target, artifact.executable) {
                let package_dir =
                    artifact.manifest_path.parent().expect("a manifest has a directory");
                binaries.insert(
                    artifact.target.name.clone(),
                    Binary { path: path.into(), package_dir: package_dir.into() },
                );
            }
        }
    }
    assert!(child.wait().expect("cargo ran").success(), "the fixture crates failed to build");
    binaries
}

/// What a finished run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    /// The `---- NAME stdout ----` section of a failed (or, with `--show-output`, passed) test.
    pub fn section(&self, name: &str) -> &str {
        let header = format!("---- {name} stdout ----\n");
        let start = self
            .stdout
            .find(&header)
            .unwrap_or_else(|| panic!("no section for {name} in:\n{}", self.stdout))
            + header.len();
        let rest = &self.stdout[start..];
        let end = ["\n---- ", "\nfailures:\n", "\nsuccesses:\n"]
            .iter()
            .filter_map(|m| rest.find(m))
            .min()
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// The line `test NAME ... STATUS`, for the last attempt of the test.
    pub fn status(&self, name: &str) -> &str {
        let prefix = format!("test {name} ... ");
        self.stdout
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no status line for {name} in:\n{}", self.stdout))
    }

    /// The closing `test result: ...` line.
    pub fn result_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("test result:"))
            .unwrap_or_else(|| panic!("no result line in:\n{}", self.stdout))
    }
}

/// Runs a fixture binary in its package directory, with no colours and no backtraces, so its
/// output is the same on every machine.
pub fn run(binary: &Binary, args: &[&str], env: &[(&str, &str)]) -> Run {
    let tmp = fixtures_tmp_dir();
    let mut command = Command::new(&binary.path);
    command
        .args(args)
        .current_dir(&binary.package_dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("PRUN_TEST_THREADS")
        .env_remove("NEXTEST_TEST_THREADS")
        .env_remove("RUST_TEST_THREADS")
        .env_remove("PRUN_PROFILE")
        .env_remove("PRUN_CONFIG")
        .env("NO_COLOR", "1")
        .env("TMPDIR", tmp);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the fixture binary runs");
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code().unwrap_or(-1),
    }
}

/// The PostgreSQL server the example's tests may use (`PRUN_PG_URL`, as `.ci/run` sets it), or
/// `None` with a line saying the test is skipped. On CI a server is required.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PRUN_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have a PostgreSQL server: .ci/run starts one and sets PRUN_PG_URL"
            );
            eprintln!(
                "skipped: no PRUN_PG_URL (examples/postgres/throwaway-server.sh starts a server)"
            );
            None
        }
    }
}

/// The databases on the server whose names start with `prefix`.
pub fn databases(url: &str, prefix: &str) -> Vec<String> {
    let mut client = url
        .parse::<postgres::Config>()
        .expect("a libpq connection string")
        .connect(postgres::NoTls)
        .expect("the server is up");
    let pattern = format!("{prefix}%");
    client
        .query("SELECT datname FROM pg_database WHERE datname LIKE $1", &[&pattern])
        .expect("pg_database can be read")
        .into_iter()
        .map(|row| row.get(0))
        .collect()
}
