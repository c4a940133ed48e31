//! Build once, run on many machines: `cargo prun archive` makes one file, and CI jobs run its
//! shards in fresh directories holding only that file and a checkout of the sources, with no
//! cargo or rustc on `PATH` and the variables their CI sets; `cargo prun merge` joins them,
//! and names what a lost job did not run, which `--rerun-failed` then runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use prun_e2e::fixtures_dir;
use serde_json::Value;

/// What the archive holds: plain tests that pass, fail and crash, a prun harness's, a package
/// with a build script and a program its tests run, and a proc-macro crate (whose tests load
/// the toolchain's libstd).
const PACKAGES: [&str; 8] =
    ["-p", "plain", "-p", "shared-db", "-p", "archived", "-p", "archived-macro"];

/// `PATH` without the directories that hold cargo or rustc.
fn path_without_cargo() -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .filter(|dir| !dir.join("cargo").exists() && !dir.join("rustc").exists());
    std::env::join_paths(dirs).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A fresh CI machine: the archive and a checkout of the sources, nothing else.
fn machine(dir: &Path, name: &str, archive: &Path) -> PathBuf {
    let machine = dir.join(name);
    copy_dir(&fixtures_dir(), &machine.join("src"));
    std::fs::copy(archive, machine.join("tests.tar.zst")).unwrap();
    machine
}

/// `cargo prun --archive-file tests.tar.zst --workspace-remap src ARGS` on `machine`, in an
/// environment of only `HOME`, `TMPDIR`, a `PATH` with no cargo or rustc, and `ci`. The
/// fixtures check that their files come from the unpacked archive and the checkout.
fn run_on(machine: &Path, args: &[&str], ci: &[(&str, &str)]) -> Run {
    let tmp = machine.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-prun"))
        .arg("prun")
        .args(["--archive-file", "tests.tar.zst", "--workspace-remap", "src"])
        .args(args)
        .current_dir(machine)
        .env_clear()
        .env("PATH", path_without_cargo())
        .env("HOME", machine)
        .env("TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .env("ARCHIVED_EXPECT_UNDER", &tmp)
        .env("ARCHIVED_SOURCES", machine.join("src"))
        .envs(ci.iter().copied())
        .output()
        .unwrap();
    Run::from(output)
}

/// A shard job's run: every test to its end, the JSON report in `report.json`.
fn shard(machine: &Path, partition: &str, ci: &[(&str, &str)]) -> (Run, PathBuf) {
    let args = ["--partition", partition, "--no-fail-fast", "--json", "report.json"];
    let run = run_on(machine, &args, ci);
    assert!(run.code == 0 || run.code == 101, "{}", run.stderr);
    assert!(!run.stderr.contains("Finished"), "a shard builds nothing: {}", run.stderr);
    (run, machine.join("report.json"))
}

fn merge(reports: &[&Path], json: &Path) -> Run {
    let mut args = vec!["merge"];
    args.extend(reports.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--json", json.to_str().unwrap()]);
    cargo_prun(&args)
}

/// `cargo prun archive` of `packages` into `dir/tests.tar.zst`: the archive, and what it said.
fn make_archive(dir: &Path, packages: &[&str]) -> (PathBuf, Run) {
    let archive = dir.join("tests.tar.zst");
    let archive_arg = ["--archive-file", archive.to_str().unwrap()];
    let made = cargo_prun(&[&["archive"][..], packages, &archive_arg].concat());
    assert_eq!(made.code, 0, "{}", made.stderr);
    (archive, made)
}

/// The archived packages' tests on one machine, built and run as usual: the verdicts a run
/// from the archive must match.
fn one_machine_run(dir: &Path) -> BTreeMap<String, String> {
    let whole = dir.join("whole.json");
    let args = ["--no-fail-fast", "--json", whole.to_str().unwrap()];
    let one = cargo_prun(&[&PACKAGES[..], &args].concat());
    assert_eq!(one.code, 101, "the plain crate fails on purpose: {}", one.stderr);
    report_outcomes(&read_json(&whole))
}

#[test]
fn shards_of_one_archive_run_without_cargo_and_merge_into_the_whole_run() {
    let dir = tempfile_dir("archive");
    let (archive, made) = make_archive(&dir, &PACKAGES);
    assert!(made.stderr.contains("1 shared libraries"), "libstd, for the proc-macro's tests");
    assert!(made.stderr.contains("1 build script outputs"), "{}", made.stderr);
    let whole = one_machine_run(&dir);
    for test in [
        "archived::archived_files reads_its_build_scripts_output",
        "archived::archived_files runs_a_program_of_the_workspace",
        "archived-macro tests::is_a_proc_macro_crate",
    ] {
        assert_eq!(whole.get(test).map(String::as_str), Some("passed"), "{test}: {whole:?}");
    }

    // Four GitLab jobs (`parallel: 4`), each on a machine of its own.
    let mut reports = Vec::new();
    for k in 1..=4 {
        let machine = machine(&dir, &format!("gitlab-{k}"), &archive);
        let index = k.to_string();
        let ci = [("GITLAB_CI", "true"), ("CI_NODE_INDEX", index.as_str()), ("CI_NODE_TOTAL", "4")];
        let (run, report) = shard(&machine, "count:auto", &ci);
        assert!(run.stderr.contains("GitLab"), "which CI's variables: {}", run.stderr);
        reports.push(report);
    }
    let merged = dir.join("merged.json");
    let refs: Vec<&Path> = reports.iter().map(PathBuf::as_path).collect();
    let run = merge(&refs, &merged);
    assert_eq!(run.code, 101, "merged, the failures still fail: {}", run.stderr);
    assert_eq!(report_outcomes(&read_json(&merged)), whole, "every test once, as on one machine");

    // A job the CI retries (same shard, same inputs) runs the same tests.
    let again = machine(&dir, "gitlab-2-retried", &archive);
    let (_, retried) =
        shard(&again, "count:auto", &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "4")]);
    let tests = |path: &Path| report_outcomes(&read_json(path)).into_keys().collect::<Vec<_>>();
    assert_eq!(tests(&retried), tests(&reports[1]));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_lost_shard_is_named_and_its_tests_rerun_make_the_run_whole() {
    let dir = tempfile_dir("archive-lost");
    let (archive, _) = make_archive(&dir, &PACKAGES);
    let whole = one_machine_run(&dir);

    // A Kubernetes Indexed Job of 4 completions; the pod of index 3 is lost.
    let mut reports = Vec::new();
    for index in ["0", "1", "2"] {
        let machine = machine(&dir, &format!("pod-{index}"), &archive);
        let ci = [("JOB_COMPLETION_INDEX", index), ("PRUN_SHARD_TOTAL", "4")];
        let (run, report) = shard(&machine, "hash:auto", &ci);
        assert!(run.stderr.contains("Kubernetes"), "{}", run.stderr);
        reports.push(report);
    }
    let merged = dir.join("merged.json");
    let refs: Vec<&Path> = reports.iter().map(PathBuf::as_path).collect();
    let run = merge(&refs, &merged);
    assert_eq!(run.code, 2, "an incomplete run fails the merge: {}", run.stderr);
    assert!(run.stderr.contains("shard hash:4/4 sent no report"), "{}", run.stderr);
    assert!(run.stderr.contains("--rerun-failed"), "says how to fill it: {}", run.stderr);
    let ran = report_outcomes(&read_json(&merged));
    let missing: BTreeSet<&String> = whole.keys().filter(|id| !ran.contains_key(*id)).collect();
    assert!(!missing.is_empty(), "the lost shard had tests");

    // One machine reruns what did not pass: the missing tests and the failed ones, exactly.
    let rescue = machine(&dir, "rescue", &archive);
    std::fs::copy(&merged, rescue.join("merged.json")).unwrap();
    let args = ["--rerun-failed", "merged.json", "--no-fail-fast", "--json", "rerun.json"];
    let rerun = run_on(&rescue, &args, &[]);
    assert_eq!(rerun.code, 101, "the failures fail again: {}", rerun.stderr);
    let reran = report_outcomes(&read_json(&rescue.join("rerun.json")));
    let not_passed: BTreeSet<&String> = whole
        .iter()
        .filter(|(id, kind)| {
            !ran.contains_key(*id) || (kind.as_str() != "passed" && kind.as_str() != "skipped")
        })
        .map(|(id, _)| id)
        .filter(|id| whole[*id] != "skipped")
        .collect();
    assert_eq!(reran.keys().collect::<BTreeSet<_>>(), not_passed, "{}", rerun.stderr);

    // The second merge, of the shards' merge and the rerun, is the whole run; so is the merge
    // of the shards' own reports and the rerun.
    let complete = dir.join("complete.json");
    let rerun_report = rescue.join("rerun.json");
    let run = merge(&[&merged, &rerun_report], &complete);
    assert_eq!(run.code, 101, "{}", run.stderr);
    assert!(!run.stderr.contains("no report"), "{}", run.stderr);
    assert_eq!(report_outcomes(&read_json(&complete)), whole);
    let mut parts = refs.clone();
    parts.push(&rerun_report);
    let run = merge(&parts, &complete);
    assert_eq!(run.code, 101, "{}", run.stderr);
    assert!(run.stderr.contains("a rerun ran its tests"), "{}", run.stderr);
    assert_eq!(report_outcomes(&read_json(&complete)), whole);
    std::fs::remove_dir_all(dir).unwrap();
}

/// `archive` with its manifest changed by `change`, written to `to`.
fn rewrite_manifest(archive: &Path, to: &Path, change: impl Fn(&mut Value)) {
    let decoder = zstd::stream::read::Decoder::new(std::fs::File::open(archive).unwrap()).unwrap();
    let mut entries = tar::Archive::new(decoder);
    let encoder = zstd::stream::write::Encoder::new(std::fs::File::create(to).unwrap(), 1).unwrap();
    let mut out = tar::Builder::new(encoder);
    for entry in entries.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        if entry.path().unwrap() == Path::new("prun-archive.json") {
            let mut manifest: Value = serde_json::from_slice(&bytes).unwrap();
            change(&mut manifest);
            bytes = serde_json::to_vec(&manifest).unwrap();
            header.set_size(bytes.len() as u64);
            header.set_cksum();
        }
        out.append(&header, bytes.as_slice()).unwrap();
    }
    out.into_inner().unwrap().finish().unwrap();
}

#[test]
fn an_archive_of_other_sources_or_another_target_is_refused_by_name() {
    let dir = tempfile_dir("archive-refused");
    let (archive, _) = make_archive(&dir, &["-p", "archived"]);

    // Its sources changed since it was built: which file, and what to do.
    let stale = machine(&dir, "stale", &archive);
    let lib = stale.join("src/archived/src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, text.replace("x * 2", "x + x")).unwrap();
    let run = run_on(&stale, &[], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("built from other sources"), "{}", run.stderr);
    assert!(run.stderr.contains("changed: archived/src/lib.rs"), "{}", run.stderr);

    // Built for a target this machine does not run, and no runner set for it.
    let foreign = dir.join("foreign.tar.zst");
    rewrite_manifest(&archive, &foreign, |manifest| {
        manifest["target"] = "riscv64gc-unknown-linux-gnu".into();
    });
    let elsewhere = machine(&dir, "elsewhere", &foreign);
    let run = run_on(&elsewhere, &[], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("built for riscv64gc-unknown-linux-gnu"), "{}", run.stderr);
    assert!(run.stderr.contains("target.riscv64gc-unknown-linux-gnu.runner"), "{}", run.stderr);

    // The archive's own machine runs it; build flags have no meaning there and are refused.
    let fine = machine(&dir, "fine", &archive);
    let run = run_on(&fine, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(last_line(&run.stdout).starts_with("5 passed"), "{}", run.stdout);
    let run = run_on(&fine, &["-p", "archived", "--release"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--release, --package"), "{}", run.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}
