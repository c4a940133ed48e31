//! `cargo prun merge REPORT...`: joins the `--json` reports of the shards of one run into one
//! report (JSON, JUnit, HTML, trace), and fails loudly when the shards do not add up: a test
//! no shard ran, a test two shards ran, or shards of different selections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::MergeArgs;
use crate::exit;
use crate::partition::Partition;
use crate::report::document::{Document, Meta, ReadError, Writer};
use crate::report::junit::Junit;
use crate::report::{Reporter, Summary};

/// Lists of problems are cut to this many lines.
const SHOWN: usize = 10;

/// What stops a merge before it judges the reports.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Report(#[from] ReadError),
    #[error(transparent)]
    Timings(#[from] crate::timings::Error),
    #[error(transparent)]
    Write(#[from] crate::report::WriteError),
}

pub(crate) fn merge(args: &MergeArgs) -> Result<i32, Error> {
    let documents: Vec<(PathBuf, Document)> = args
        .reports
        .iter()
        .map(|path| Document::read(path).map(|document| (path.clone(), document)))
        .collect::<Result<_, _>>()?;
    let checked = check(&documents);
    for note in &checked.notes {
        eprintln!("note: {note}");
    }
    if !checked.errors.is_empty() {
        eprintln!("error: the reports do not add up to one run:");
        for problem in &checked.errors {
            eprintln!("  {problem}");
        }
        return Ok(exit::USAGE);
    }
    let merged = join(documents);
    let summary = merged.summary.clone().unwrap_or_default();
    if let Some(path) = &args.timings {
        let finals = merged.attempts.iter().filter(|a| !a.will_retry && a.test_ran());
        let tests = finals.map(|a| (a.id(), a.duration));
        let used = crate::timings::Used::of_attempts(merged.attempts.iter());
        let count = crate::timings::write_durations(path, tests, used)?;
        eprintln!("wrote the timings of {count} tests to {}", path.display());
    }
    if let Some(path) = &args.outputs.junit {
        let mut junit = Junit::new(path.clone());
        for attempt in &merged.attempts {
            junit.finished(attempt);
        }
        junit.finish(summary.duration)?;
    }
    let json = args.outputs.json.clone();
    Writer::write_document(merged, args.outputs.clone())?;
    eprintln!(
        "merged {} reports: {} passed, {} failed, {} skipped",
        args.reports.len(),
        summary.passed,
        summary.failed,
        summary.skipped
    );
    if !checked.gaps.is_empty() {
        // What ran is kept; what did not is named, with the way to run it.
        eprintln!("error: the reports are not one whole run:");
        for gap in &checked.gaps {
            eprintln!("  {gap}");
        }
        match json {
            Some(json) => eprintln!(
                "  the report of what ran is {0}: `cargo prun --rerun-failed {0} --json \
                 RERUN.json` runs the missing tests (and the failed ones), and `cargo prun merge \
                 {0} RERUN.json` makes the run whole",
                json.display()
            ),
            None => eprintln!(
                "  give --json MERGED.json to keep what ran: `cargo prun --rerun-failed \
                 MERGED.json` runs the rest"
            ),
        }
        return Ok(exit::USAGE);
    }
    Ok(if summary.failed > 0 { exit::TESTS_FAILED } else { exit::OK })
}

/// What is wrong with the reports as one run.
#[derive(Debug, Default)]
struct Checked {
    /// They cannot be joined: shards of different runs, a test in two of them.
    errors: Vec<String>,
    /// They can, but tests are missing (a shard that never reported): the merge keeps what ran
    /// and fails.
    gaps: Vec<String>,
    notes: Vec<String>,
}

/// Checks that the reports are one run, each test once: the shards of a partition (or whole
/// runs), and reruns (`--rerun-failed`) of what they did not pass, which fill their gaps.
fn check(documents: &[(PathBuf, Document)]) -> Checked {
    let mut checked = Checked::default();
    let (reruns, runs): (Vec<_>, Vec<_>) = documents.iter().partition(|(_, d)| d.meta.rerun);
    let Some((first_path, first)) = runs.first() else {
        checked.errors.push(match reruns.is_empty() {
            true => "no reports given".to_owned(),
            false => "only reruns given: merge them with the reports of the run they reran".into(),
        });
        return checked;
    };
    let problems = &mut checked.errors;
    let mut shards: BTreeMap<&str, &Path> = BTreeMap::new();
    for (path, document) in &runs {
        if document.meta.selected != first.meta.selected {
            problems.push(format!(
                "{} selected {} tests and {} selected {}: shards of one run need the same \
                 filters, packages and build",
                first_path.display(),
                first.meta.selected.len(),
                path.display(),
                document.meta.selected.len()
            ));
        }
        if let Some(partition) = &document.meta.partition
            && let Some(other) = shards.insert(partition, path)
        {
            problems.push(format!(
                "{} and {} are both shard {partition}",
                other.display(),
                path.display()
            ));
        }
    }
    for (path, document) in documents {
        if document.summary.is_none() {
            problems.push(format!("{}: that run did not finish", path.display()));
        }
    }
    let selected: std::collections::BTreeSet<&String> = first.meta.selected.iter().collect();
    // What each rerun ran, which no other rerun may have run too.
    let mut reran: BTreeMap<String, &Path> = BTreeMap::new();
    for (path, document) in &reruns {
        let foreign = document.meta.selected.iter().filter(|id| !selected.contains(id)).count();
        if foreign > 0 {
            problems.push(format!(
                "{} reran {foreign} tests that {} did not select: a rerun of another run",
                path.display(),
                first_path.display()
            ));
        }
        for id in finals(document) {
            if let Some(other) = reran.insert(id.clone(), path) {
                problems.push(format!(
                    "{id} was rerun in {} and in {}",
                    other.display(),
                    path.display()
                ));
            }
        }
    }
    // Which report ran each test (the final attempts; a `--repeat` run has several).
    let mut homes: BTreeMap<String, &Path> = BTreeMap::new();
    let mut twice = Vec::new();
    for (path, document) in &runs {
        for id in finals(document) {
            if let Some(other) = homes.insert(id.clone(), path) {
                twice.push(format!("{id} is in {} and in {}", other.display(), path.display()));
            }
        }
    }
    if !twice.is_empty() {
        problems.push(format!("{} tests are in two reports:", twice.len()));
        problems.extend(twice.iter().take(SHOWN).map(|line| format!("  {line}")));
        if twice.len() > SHOWN {
            problems.push(format!("  and {} more", twice.len() - SHOWN));
        }
    }
    let missing: Vec<&String> = first
        .meta
        .selected
        .iter()
        .filter(|id| !homes.contains_key(*id) && !reran.contains_key(*id))
        .collect();
    // The shards of the partition that sent no report.
    let partitions: Vec<Partition> =
        runs.iter().filter_map(|(_, d)| d.meta.partition.as_deref()?.parse().ok()).collect();
    if let Some(&any) = partitions.first() {
        for shard in 1..=any.of() {
            let expected = any.with_shard(shard);
            if partitions.contains(&expected) {
                continue;
            }
            match missing.is_empty() {
                true => checked
                    .notes
                    .push(format!("shard {expected} sent no report; a rerun ran its tests")),
                false => checked.gaps.push(format!("shard {expected} sent no report")),
            }
        }
    }
    if !missing.is_empty() {
        let gaps = &mut checked.gaps;
        gaps.push(format!("{} tests are in no report:", missing.len()));
        gaps.extend(missing.iter().take(SHOWN).map(|id| format!("  missing: {id}")));
        if missing.len() > SHOWN {
            gaps.push(format!("  and {} more", missing.len() - SHOWN));
        }
    }
    checked
}

/// The tests a report has a final attempt of (`BINARY NAME`), each once.
fn finals(document: &Document) -> Vec<String> {
    let mut ids: Vec<String> =
        document.attempts.iter().filter(|a| !a.will_retry).map(|a| a.id()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// One document of all the shards: every attempt marked with its shard, the summaries added
/// up, the wall time the longest shard's. A rerun's attempts come after the run's: its final
/// attempt of a test is the test's, and the run's becomes an earlier attempt (so a test that
/// failed and then passed on the rerun is flaky, as with `--retries`).
fn join(mut documents: Vec<(PathBuf, Document)>) -> Document {
    documents.sort_by_key(|(_, document)| document.meta.rerun);
    let first = &documents[0].1.meta;
    let meta = Meta {
        version: first.version,
        partition: None,
        selected: first.selected.clone(),
        threads: documents.iter().map(|(_, d)| d.meta.threads).max().unwrap_or(1),
        started_unix_ms: documents.iter().map(|(_, d)| d.meta.started_unix_ms).min().unwrap_or(0),
        rerun: false,
    };
    let reran: std::collections::BTreeSet<String> =
        documents.iter().filter(|(_, d)| d.meta.rerun).flat_map(|(_, d)| finals(d)).collect();
    // How many attempts each rerun test had before its rerun.
    let mut before: BTreeMap<String, u32> = BTreeMap::new();
    let mut summary = Summary::default();
    let mut merged = Document {
        meta,
        attempts: Vec::new(),
        parallel_only: Vec::new(),
        summary: None,
        rerun_started_ms: None,
    };
    let mut skipped = 0;
    for (path, document) in documents {
        let shard = document.meta.partition.clone().unwrap_or_else(|| path.display().to_string());
        for mut attempt in document.attempts {
            attempt.shard.get_or_insert_with(|| shard.clone());
            let id = attempt.id();
            if document.meta.rerun {
                attempt.attempt += before.get(&id).copied().unwrap_or(0);
            } else if reran.contains(&id) {
                attempt.will_retry = true;
                let count = before.entry(id).or_insert(0);
                *count = (*count).max(attempt.attempt);
            }
            summary.record(&attempt);
            merged.attempts.push(attempt);
        }
        merged.parallel_only.extend(document.parallel_only);
        let shard_summary = document.summary.unwrap_or_default();
        skipped += shard_summary.skipped;
        summary.duration = summary.duration.max(shard_summary.duration);
        summary.interrupted |= shard_summary.interrupted;
        summary.doctests_run |= shard_summary.doctests_run;
        for hint in shard_summary.hints {
            if !summary.hints.contains(&hint) {
                summary.hints.push(hint);
            }
        }
    }
    summary.skipped = skipped;
    summary.parallel_only.clone_from(&merged.parallel_only);
    merged.summary = Some(summary);
    merged
}
