// Every bad value is reported, not only the first.
#[prun::test(timeout = "soon", threads = 0, retries = -1, category = "fast lane")]
fn bad_values() {}

#[prun::test(timeout = "0s", group = 3)]
fn more_bad_values() {}

prun::main!();
