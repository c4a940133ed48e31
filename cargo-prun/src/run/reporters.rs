//! The reporters of a run, from its command line.

use std::io::IsTerminal;

use crate::cli::{self, Cli, Color, MessageFormat};
use crate::report::{self, Reporter, WriteError};

/// Every reporter the command line asks for; a report file that cannot be written stops the run
/// here, before any test starts.
pub(super) fn reporters(
    cli: &Cli,
    junit: Option<std::path::PathBuf>,
    meta: report::document::Meta,
    filtered_out: usize,
) -> Result<Vec<Box<dyn Reporter>>, WriteError> {
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    // A machine format takes stdout; the human output goes to stderr then.
    let json = cli.message_format != MessageFormat::Human;
    let (out, is_terminal): (Box<dyn std::io::Write + Send>, bool) = if json {
        (Box::new(std::io::stderr()), std::io::stderr().is_terminal())
    } else {
        (Box::new(std::io::stdout()), std::io::stdout().is_terminal())
    };
    let choice = match cli.color {
        Color::Always => prun::color::Choice::Always,
        Color::Never => prun::color::Choice::Never,
        Color::Auto => prun::color::Choice::Auto,
    };
    let color = prun::color::enabled(choice, is_terminal);
    // The live progress line goes to a terminal only, drawn on stderr.
    let progress = !json
        && !cli.hide_progress_bar
        && std::io::stderr().is_terminal()
        && std::env::var_os("CI").is_none();
    let shown = report::human::Shown {
        status_level: cli.status_level.unwrap_or(cli::StatusLevel::Pass),
        final_status_level: cli.final_status_level.unwrap_or(cli::StatusLevel::Flaky),
        failure_output: cli.failure_output.unwrap_or(cli::TestOutput::ImmediateFinal),
        success_output: match cli.success_output {
            Some(when) => when,
            None if cli.no_capture => cli::TestOutput::Immediate,
            None => cli::TestOutput::Never,
        },
    };
    reporters.push(Box::new(report::human::Human::new(out, color, shown, progress)));
    match cli.message_format {
        MessageFormat::Human => {}
        MessageFormat::Json => {
            reporters.push(Box::new(report::json::Json::new(Box::new(std::io::stdout()))));
        }
        MessageFormat::LibtestJson => {
            let stdout = Box::new(std::io::stdout());
            reporters.push(Box::new(report::libtest_json::LibtestJson::new(stdout, filtered_out)));
        }
    }
    if let Some(path) = junit {
        reporters.push(Box::new(report::junit::Junit::create(path)?));
    }
    let outputs = &cli.outputs;
    if outputs.json.is_some() || outputs.html.is_some() || outputs.trace.is_some() {
        reporters.push(Box::new(report::document::Writer::create(meta, outputs.clone())?));
    }
    Ok(reporters)
}
