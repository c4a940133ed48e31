//! Every mistake `#[prun::test]` catches is a compile error pointing at the offending token.
//! Regenerate the expected errors with `TRYBUILD=overwrite cargo test -p prun-core --test ui`.

#[test]
fn macro_errors_point_at_the_offending_token() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
