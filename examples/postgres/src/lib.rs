//! A small inventory kept in PostgreSQL: the code under test of prun's PostgreSQL example.

use postgres::GenericClient;

/// The schema, applied once to each fresh database.
pub const MIGRATIONS: &str = "
    CREATE TABLE items (
        sku      text PRIMARY KEY,
        name     text NOT NULL,
        quantity integer NOT NULL CHECK (quantity >= 0)
    );
    CREATE TABLE reservations (
        id       serial PRIMARY KEY,
        sku      text NOT NULL REFERENCES items (sku),
        quantity integer NOT NULL CHECK (quantity > 0)
    );
";

pub fn migrate(db: &mut impl GenericClient) -> Result<(), postgres::Error> {
    db.batch_execute(MIGRATIONS)
}

pub fn add_item(
    db: &mut impl GenericClient,
    sku: &str,
    name: &str,
    quantity: i32,
) -> Result<(), postgres::Error> {
    db.execute(
        "INSERT INTO items (sku, name, quantity) VALUES ($1, $2, $3)",
        &[&sku, &name, &quantity],
    )?;
    Ok(())
}

pub fn stock(db: &mut impl GenericClient, sku: &str) -> Result<Option<i32>, postgres::Error> {
    let row = db.query_opt("SELECT quantity FROM items WHERE sku = $1", &[&sku])?;
    Ok(row.map(|row| row.get(0)))
}

pub fn count_items(db: &mut impl GenericClient) -> Result<i64, postgres::Error> {
    Ok(db.query_one("SELECT count(*) FROM items", &[])?.get(0))
}

/// Takes `quantity` of an item out of stock; `Ok(false)` when there is not enough.
pub fn reserve(
    db: &mut impl GenericClient,
    sku: &str,
    quantity: i32,
) -> Result<bool, postgres::Error> {
    let taken = db.execute(
        "UPDATE items SET quantity = quantity - $2 WHERE sku = $1 AND quantity >= $2",
        &[&sku, &quantity],
    )?;
    if taken == 1 {
        db.execute("INSERT INTO reservations (sku, quantity) VALUES ($1, $2)", &[&sku, &quantity])?;
    }
    Ok(taken == 1)
}
