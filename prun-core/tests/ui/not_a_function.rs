#[prun::test]
struct Nope;

prun::main!();
