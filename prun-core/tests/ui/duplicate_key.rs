#[prun::test(timeout = "1s", timeout = "2s")]
fn twice() {}

prun::main!();
