struct PerWorker;

impl prun::Fixture for PerWorker {
    const SCOPE: prun::Scope = prun::Scope::Worker;
    fn setup(_ctx: &prun::Ctx) -> Result<Self, prun::BoxError> {
        Ok(PerWorker)
    }
}

#[prun::test]
fn takes_it_by_value(_db: PerWorker) {}

prun::main!();
