#[prun::test]
fn generic<T: Default>() {}

#[prun::test]
unsafe fn not_safe() {}

#[prun::test]
fn takes_a_closure(_f: impl Fn()) {}

prun::main!();
