//! The command line of a prun test binary: libtest's (through libtest-mimic), plus prun's own.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "prun test binary",
    about = "Runs this binary's #[prun::test] tests in parallel.",
    disable_version_flag = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) libtest: libtest_mimic::Arguments,

    /// Run only tests of this category (repeatable).
    #[arg(long = "category", value_name = "NAME")]
    pub(crate) categories: Vec<String>,

    /// Run only tests in this group (repeatable).
    #[arg(long = "group", value_name = "NAME")]
    pub(crate) groups: Vec<String>,
}
