//! `cargo prun merge REPORT...`: joins the `--json` reports of the shards of one run into one
//! report (JSON, JUnit, HTML, trace), and fails loudly when the shards do not add up: a test
//! no shard ran, a test two shards ran, or shards of different selections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::MergeArgs;
use crate::exit;
use crate::partition::Partition;
use crate::report::document::{Document, Meta, Writer};
use crate::report::junit::Junit;
use crate::report::{Reporter, Summary};

/// Lists of problems are cut to this many lines.
const SHOWN: usize = 10;

pub(crate) fn merge(args: &MergeArgs) -> Result<i32, String> {
    let documents: Vec<(PathBuf, Document)> = args
        .reports
        .iter()
        .map(|path| Document::read(path).map(|document| (path.clone(), document)))
        .collect::<Result<_, _>>()?;
    let problems = check(&documents);
    if !problems.is_empty() {
        eprintln!("error: the reports do not add up to one run:");
        for problem in &problems {
            eprintln!("  {problem}");
        }
        return Ok(exit::USAGE);
    }
    let merged = join(documents);
    let summary = merged.summary.clone().unwrap_or_default();
    if let Some(path) = &args.timings {
        let finals = merged.attempts.iter().filter(|a| !a.will_retry && a.test_ran());
        let tests = finals.clone().map(|a| (format!("{} {}", a.binary, a.name), a.duration));
        let cpu = finals
            .filter_map(|a| {
                let used = a.usage?;
                let wall = u64::try_from(a.duration.as_millis()).ok().filter(|w| *w > 0)?;
                let millicores = u32::try_from(used.cpu_ms * 1000 / wall).unwrap_or(u32::MAX);
                Some((format!("{} {}", a.binary, a.name), millicores))
            })
            .collect();
        let count = crate::timings::write_durations(path, tests, cpu)?;
        eprintln!("wrote the timings of {count} tests to {}", path.display());
    }
    if let Some(path) = &args.outputs.junit {
        let mut junit = Junit::new(path.clone());
        for attempt in &merged.attempts {
            junit.finished(attempt);
        }
        junit.done(&summary);
        if let Some(error) = junit.error {
            return Err(error);
        }
    }
    Writer::write_document(merged, args.outputs.clone())?;
    eprintln!(
        "merged {} reports: {} passed, {} failed, {} skipped",
        args.reports.len(),
        summary.passed,
        summary.failed,
        summary.skipped
    );
    Ok(if summary.failed > 0 { exit::TESTS_FAILED } else { exit::OK })
}

/// What is wrong with the shards as a whole; empty when they are one run, each test once.
fn check(documents: &[(PathBuf, Document)]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((first_path, first)) = documents.first() else {
        return vec!["no reports given".to_owned()];
    };
    let mut shards: BTreeMap<&str, &Path> = BTreeMap::new();
    for (path, document) in documents {
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
        if document.summary.is_none() {
            problems.push(format!("{}: that run did not finish", path.display()));
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
    // The shards of one partition that sent no report.
    let partitions: Vec<Partition> =
        documents.iter().filter_map(|(_, d)| d.meta.partition.as_deref()?.parse().ok()).collect();
    if let Some(&any) = partitions.first() {
        let of = any.of();
        for shard in 1..=of {
            let expected = any.with_shard(shard);
            if !partitions.contains(&expected) {
                problems.push(format!("shard {expected} sent no report: its tests are missing"));
            }
        }
    }
    // Which report ran each test (the final attempts; a `--repeat` run has several).
    let mut homes: BTreeMap<String, &Path> = BTreeMap::new();
    let mut twice = Vec::new();
    for (path, document) in documents {
        let mut ids: Vec<String> = document
            .attempts
            .iter()
            .filter(|a| !a.will_retry)
            .map(|a| format!("{} {}", a.binary, a.name))
            .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            if let Some(other) = homes.insert(id.clone(), path) {
                twice.push(format!("{id} is in {} and in {}", other.display(), path.display()));
            }
        }
    }
    let missing: Vec<&String> =
        first.meta.selected.iter().filter(|id| !homes.contains_key(*id)).collect();
    if !missing.is_empty() {
        problems.push(format!("{} tests are in no report:", missing.len()));
        problems.extend(missing.iter().take(SHOWN).map(|id| format!("  missing: {id}")));
        if missing.len() > SHOWN {
            problems.push(format!("  and {} more", missing.len() - SHOWN));
        }
    }
    if !twice.is_empty() {
        problems.push(format!("{} tests are in two reports:", twice.len()));
        problems.extend(twice.iter().take(SHOWN).map(|line| format!("  {line}")));
        if twice.len() > SHOWN {
            problems.push(format!("  and {} more", twice.len() - SHOWN));
        }
    }
    problems
}

/// One document of all the shards: every attempt marked with its shard, the summaries added
/// up, the wall time the longest shard's.
fn join(documents: Vec<(PathBuf, Document)>) -> Document {
    let first = &documents[0].1.meta;
    let meta = Meta {
        version: first.version,
        partition: None,
        selected: first.selected.clone(),
        threads: documents.iter().map(|(_, d)| d.meta.threads).max().unwrap_or(1),
        started_unix_ms: documents.iter().map(|(_, d)| d.meta.started_unix_ms).min().unwrap_or(0),
    };
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
            attempt.shard = Some(shard.clone());
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
