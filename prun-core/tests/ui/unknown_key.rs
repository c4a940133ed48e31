#[prun::test(categroy = "unit")]
fn misspelled() {}

prun::main!();
