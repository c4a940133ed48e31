//! The PostgreSQL example (examples/postgres) run as a user runs it, against the server
//! `.ci/run` starts: a database per worker, a transaction per test, and nothing left behind,
//! even when a test fails; with no server, every test skipped with how to start one.

use prun_e2e::{binary, databases, postgres_url, run};

/// A run id of this test's own, so that the databases it checks are its run's.
fn run_id(tag: &str) -> String {
    format!("e2e{tag}{}", std::process::id())
}

#[test]
fn a_failed_run_still_drops_every_database_it_made() {
    let Some(url) = postgres_url() else { return };
    let id = run_id("failed");
    let env =
        [("PRUN_PG_URL", url.as_str()), ("PRUN_RUN_ID", id.as_str()), ("PG_INVENTORY_FAIL", "1")];
    let out = run(&binary("pg_inventory"), &["--test-threads=4"], &env);
    assert_eq!(out.code, 101, "{}", out.stdout);
    assert_eq!(out.status("fails_when_asked"), "FAILED");
    for passed in ["adds_and_reads_an_item", "starts_empty_5", "adds_a_column", "counts_every_item"]
    {
        assert_eq!(out.status(passed), "ok", "{passed}: {}", out.stdout);
    }
    assert_eq!(databases(&url, &format!("prun_{id}")), Vec::<String>::new());
}

#[test]
fn with_no_server_every_test_is_skipped_saying_how_to_start_one() {
    // Nothing listens on port 1.
    let env = [("PRUN_PG_URL", "host=127.0.0.1 port=1 user=postgres")];
    let out = run(&binary("pg_inventory"), &["--test-threads=2"], &env);
    assert_eq!(out.code, 0, "skipped, never failed: {}", out.stdout);
    let status = out.status("adds_and_reads_an_item");
    assert!(
        status.starts_with("ignored, no PostgreSQL server at `host=127.0.0.1 port=1"),
        "{status}"
    );
    assert!(status.contains("examples/postgres/README.md"), "{status}");
    assert!(out.result_line().contains("0 passed; 0 failed; 13 ignored"), "{}", out.result_line());
}
