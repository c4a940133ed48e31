#[prun::test]
fn returns_a_number() -> i32 {
    1
}

prun::main!();
