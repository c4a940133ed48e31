#[prun::test]
async fn needs_a_runtime() {}

prun::main!();
