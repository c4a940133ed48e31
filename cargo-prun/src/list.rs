//! `cargo prun list` (and `--list`): the selected tests with what the scheduler knows of them
//! and what the history says of them.

use crate::cli::{Cli, MessageFormat};
use crate::discover::{Binary, Kind};
use crate::history::History;
use crate::plan::Plan;
use prun::time::pretty as seconds;

pub(crate) fn list(cli: &Cli, format: MessageFormat) -> Result<i32, crate::run::Error> {
    let workspace = crate::prepare::prepare(
        &cli.build,
        cli.prun_profile.as_deref(),
        cli.nextest_profile.as_deref(),
    )?;
    let threads = prun::config::resolve_threads(cli.test_threads, &workspace.config)?;
    let history = workspace.history.load();
    let plan = crate::run::plan(cli, &workspace, &history, threads, None)?;
    print(&workspace.binaries, &plan, &history, format);
    Ok(crate::exit::OK)
}

/// One line per test: `BINARY NAME [category]` and what else is known; with `json`, one object
/// a line.
pub(crate) fn print(binaries: &[Binary], plan: &Plan, history: &History, format: MessageFormat) {
    for test in &plan.tests {
        let binary = &binaries[test.binary];
        let known = history.get(test.id());
        let typical = known.and_then(|k| k.typical());
        let flaky_rate = known.and_then(|k| k.flaky_rate());
        let demand = known.and_then(|k| k.demand());
        let under_load = known.is_some_and(|k| k.under_load);
        if format == MessageFormat::Json {
            let line = serde_json::json!({
                "binary": binary.binary.id,
                "kind": match binary.kind {
                    Kind::Prun => "prun",
                    Kind::Libtest => "libtest",
                    Kind::OneFilter => "one-filter",
                },
                "name": test.name(),
                "category": test.meta.category,
                "groups": test.meta.groups,
                "timeout_ms": test.timeout.map(|t| t.as_millis()),
                "retries": test.job.retries,
                "threads": test.meta.threads,
                "typical_ms": typical.map(|t| t.as_millis()),
                "flaky_rate": flaky_rate,
                "runs": known.map_or(0, |k| k.run_count()),
                "cpu_per_second": demand.map(|(millicores, _)| f64::from(millicores) / 1000.0),
                "peak_kb": demand.map(|(_, peak_kb)| peak_kb),
                "fails_under_load": under_load,
            });
            println!("{line}");
        } else {
            let mut line = format!("{} {} [{}]", binary.binary.id, test.name(), test.meta.category);
            if !test.meta.groups.is_empty() {
                line.push_str(&format!(" groups={}", test.meta.groups.join(",")));
            }
            if let Some(timeout) = test.timeout {
                line.push_str(&format!(" timeout={}", seconds(timeout)));
            }
            if test.job.retries > 0 {
                line.push_str(&format!(" retries={}", test.job.retries));
            }
            if test.meta.threads > 1 {
                line.push_str(&format!(" threads={}", test.meta.threads));
            }
            if let Some(typical) = typical {
                line.push_str(&format!(" typical={}", seconds(typical)));
            }
            if let Some((millicores, peak_kb)) = demand {
                let cores = f64::from(millicores) / 1000.0;
                line.push_str(&format!(
                    " cpu={cores:.2} cores peak={} MiB",
                    peak_kb.div_ceil(1024)
                ));
            }
            if let Some(rate) = flaky_rate.filter(|r| *r > 0.0) {
                line.push_str(&format!(" flaky={:.0}%", rate * 100.0));
            }
            if under_load {
                line.push_str(" fails-under-load (runs with a core of its own)");
            }
            println!("{line}");
        }
    }
}
