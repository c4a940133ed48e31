struct NotAFixture;

#[prun::test]
fn takes_a_string(_name: String, _other: &NotAFixture) {}

prun::main!();
