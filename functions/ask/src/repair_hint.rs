//! What to add to PostgreSQL's "does not exist", or to its refusal of a misplaced aggregate, when
//! a refused query goes back to the model.
//!
//! Measured: with greedy decoding, a small model shown only `column t.title does not exist`
//! usually writes the same query again — three identical attempts. The DDL is in the prompt,
//! but far above; a short, specific reminder next to the error (which table has `title`, which
//! columns the query's tables do have, which tables exist) is what changes the next answer.
//! Pure: the schema comes in.

use std::collections::BTreeSet;

use quarry_shared::sql::schema::{SchemaView, TableView};

/// Most tables whose columns a hint lists.
const MAX_TABLES: usize = 6;

/// The hint for `detail` (the refusal of `sql`), or `None` when it is not a missing column or
/// relation PostgreSQL named, nor an aggregate where none is allowed.
pub fn hint(detail: &str, sql: &str, schema: &SchemaView) -> Option<String> {
    if let Some(hint) = aggregate_hint(detail) {
        return Some(hint.to_owned());
    }
    if let Some(name) = missing(detail, "column ") {
        return Some(column_hint(&name, sql, schema));
    }
    let name = missing(detail, "relation ")?;
    Some(relation_hint(&name, sql, schema))
}

/// How to restructure a query PostgreSQL refused for where it put an aggregate. Shown the bare
/// error, the 1.5B model wrote the same query on every attempt (c54, c65 of the eval). With
/// these, c54 moved its nested aggregate into a CTE; c65 still repeats `WHERE sum(…)`.
fn aggregate_hint(detail: &str) -> Option<&'static str> {
    if detail.contains("aggregate functions are not allowed in WHERE") {
        Some(
            "A condition on an aggregate goes in HAVING, after GROUP BY, never in WHERE. To \
             count or list the groups that pass it, write the GROUP BY … HAVING query as a \
             subquery in FROM and count or select its rows.",
        )
    } else if detail.contains("aggregate function calls cannot be nested") {
        Some(
            "An aggregate cannot contain another (avg(sum(…))). Compute the inner aggregate per \
             group in a CTE or a subquery in FROM, then aggregate that column.",
        )
    } else if detail.contains("must appear in the GROUP BY clause") {
        Some(
            "Every selected column that is not inside an aggregate must be listed in GROUP BY, \
             or the query must aggregate it.",
        )
    } else {
        None
    }
}

/// The column PostgreSQL said does not exist (`column "x" …` or `column t.x …`), bare.
pub fn missing_column(detail: &str) -> Option<String> {
    missing(detail, "column ")
}

/// The bare name in `<kind>"name" does not exist` / `<kind>t.name does not exist`.
fn missing(detail: &str, kind: &str) -> Option<String> {
    let start = detail.find(kind)? + kind.len();
    let rest = &detail[start..];
    let end = rest.find(" does not exist")?;
    let name = rest[..end].rsplit('.').next()?.trim_matches('"');
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == ' ');
    plain.then(|| name.to_owned())
}

/// The tables of `schema` that `sql` names (by their bare name, as a word), in schema order.
fn named_tables<'s>(sql: &str, schema: &'s SchemaView) -> Vec<&'s TableView> {
    let words: BTreeSet<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    schema
        .tables
        .iter()
        .filter(|t| words.contains(&t.name))
        .take(MAX_TABLES)
        .collect()
}

fn columns(table: &TableView) -> String {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    format!("{}({})", table.name, names.join(", "))
}

fn column_hint(name: &str, sql: &str, schema: &SchemaView) -> String {
    let used = named_tables(sql, schema);
    let mut hint = String::new();
    let owners: Vec<&str> = used
        .iter()
        .copied()
        .chain(schema.tables.iter())
        .filter(|t| t.columns.iter().any(|c| c.name == name))
        .map(|t| t.name.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(MAX_TABLES)
        .collect();
    if owners.is_empty() {
        hint.push_str(&format!("No table has a column {name}."));
    } else {
        hint.push_str(&format!(
            "Column {name} is in: {} (join it on its REFERENCES if the query does not have it).",
            owners.join(", ")
        ));
    }
    if !used.is_empty() {
        let listed: Vec<String> = used.iter().map(|t| columns(t)).collect();
        hint.push_str(&format!(
            " The query's tables have only these columns: {}.",
            listed.join("; ")
        ));
    }
    hint
}

fn relation_hint(name: &str, sql: &str, schema: &SchemaView) -> String {
    // `FROM flights` for `flights.flights`: outside `public` a table needs its schema.
    if let Some(table) = schema
        .tables
        .iter()
        .find(|t| t.name == name && t.schema != "public")
    {
        return format!(
            "There is no table {name} in public; write it as {}.",
            crate::schema_context::sql_name(table)
        );
    }
    // The tables of the database schemas the query already uses (Chinook's, not the flights'),
    // or every table when it names none correctly.
    let used: BTreeSet<&str> = named_tables(sql, schema)
        .iter()
        .map(|t| t.schema.as_str())
        .collect();
    let tables: Vec<String> = schema
        .tables
        .iter()
        .filter(|t| used.is_empty() || used.contains(t.schema.as_str()))
        .map(crate::schema_context::sql_name)
        .collect();
    format!(
        "There is no table {name}. The tables are: {}.",
        tables.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str, columns: &[&str]) -> TableView {
        let typed: Vec<(&str, &str)> = columns.iter().map(|c| (*c, "text")).collect();
        TableView {
            schema: schema.into(),
            ..TableView::fixture(name, &typed)
        }
    }

    fn chinook() -> SchemaView {
        SchemaView {
            tables: vec![
                table("flights", "flights", &["flight", "dep_time"]),
                table("public", "album", &["album_id", "title", "artist_id"]),
                table(
                    "public",
                    "customer",
                    &["customer_id", "first_name", "state"],
                ),
                table("public", "track", &["track_id", "name", "album_id"]),
            ],
        }
    }

    #[test]
    fn a_missing_column_names_its_table_and_the_querys_columns() {
        let sql = "SELECT t.title FROM track t WHERE t.name = 'x'";
        let h = hint("column t.title does not exist", sql, &chinook()).unwrap();
        assert_eq!(
            h,
            "Column title is in: album (join it on its REFERENCES if the query does not have \
             it). The query's tables have only these columns: track(track_id, name, album_id)."
        );
        let h = hint(
            r#"column "nope" does not exist"#,
            "SELECT nope FROM track",
            &chinook(),
        )
        .unwrap();
        assert!(h.starts_with("No table has a column nope."), "{h}");
    }

    #[test]
    fn a_missing_relation_lists_the_tables_of_the_schemas_in_use() {
        let sql = "SELECT a.state FROM customer c JOIN address a ON true";
        let h = hint(r#"relation "address" does not exist"#, sql, &chinook()).unwrap();
        assert_eq!(
            h,
            "There is no table address. The tables are: album, customer, track."
        );
        let h = hint(
            r#"relation "x" does not exist"#,
            "SELECT 1 FROM x",
            &chinook(),
        )
        .unwrap();
        assert!(h.contains("flights.flights, album"), "{h}");
        let h = hint(
            r#"relation "flights" does not exist"#,
            "SELECT 1 FROM flights",
            &chinook(),
        )
        .unwrap();
        assert_eq!(
            h,
            "There is no table flights in public; write it as flights.flights."
        );
    }

    #[test]
    fn a_misplaced_aggregate_is_told_where_it_belongs() {
        let schema = chinook();
        let where_ = hint(
            "aggregate functions are not allowed in WHERE",
            "SELECT count(*) FROM track WHERE sum(milliseconds) > 1",
            &schema,
        )
        .unwrap();
        assert!(where_.contains("HAVING"), "{where_}");
        let nested = hint(
            "aggregate function calls cannot be nested",
            "SELECT 1",
            &schema,
        )
        .unwrap();
        assert!(nested.contains("CTE"), "{nested}");
        let grouped = hint(
            r#"column "t.name" must appear in the GROUP BY clause or be used in an aggregate function"#,
            "SELECT 1",
            &schema,
        )
        .unwrap();
        assert!(grouped.contains("GROUP BY"), "{grouped}");
    }

    #[test]
    fn other_errors_get_no_hint() {
        for detail in [
            "division by zero",
            "function year(integer) does not exist",
            r#"column "a;b" does not exist"#,
            "column does not exist",
        ] {
            assert_eq!(hint(detail, "SELECT 1", &chinook()), None, "{detail}");
        }
    }
}
