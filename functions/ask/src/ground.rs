//! A result that found nothing checked against the data before the model looks again.
//!
//! When a query comes back empty (or counts zero), its text filters are looked up in the data
//! ([`quarry_shared::sql::value_link`]): a value stored in another case (`'paris'` for `Paris`)
//! is corrected without the model, and a value that is not in its column at all is reported
//! with the columns that do hold it ("No row has e.city = 'Paris'. 'Paris' is in customer.city
//! (c.city in your query)."). The model, which knows the question, decides whether to move the
//! filter: a column move is not done mechanically, because "customers in Calgary" is rightly
//! empty even though an employee lives there. The columns are named with the tables others refer
//! to first, and when one is on a table the filter's table reaches through its foreign keys, the
//! query rewritten to filter there ([`refilter`]) is shown too: the joins are the step the small
//! model does not take by itself.

use quarry_shared::sql::quote_literal;
use quarry_shared::sql::refilter::refilter;
use quarry_shared::sql::schema::{SchemaView, TableView};
use quarry_shared::sql::value_link::{filters, probe, respell_value, Filter, Filters, Found};
use serde_json::Value;

use crate::text_to_sql::RunSql;

/// Rows the probe may return: a value found in more columns than this is no clue anyway.
const PROBE_ROWS: u32 = 100;

/// Columns named per value in a hint.
const HINT_COLUMNS: usize = 4;

/// What the data says about an empty result's text filters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grounding {
    /// The query with values stored in another case written as stored; `None` when none was.
    pub mended: Option<String>,
    /// For the model: the filters whose value is not in their column, and where it is.
    pub hint: Option<String>,
}

/// Looks up the text filters of `sql` (which ran and found nothing) in the data, as the
/// caller. A probe that fails (refused as too costly, say) gives no grounding: the re-check
/// goes on without it.
pub async fn ground(runner: &dyn RunSql, schema: &SchemaView, sql: &str) -> Grounding {
    let filters = filters(sql, schema);
    if filters.list.is_empty() {
        return Grounding::default();
    }
    let values: Vec<&str> = filters.list.iter().map(|f| f.value.as_str()).collect();
    let Some(probe) = probe(&values, &search_order(schema, &filters.bound)) else {
        return Grounding::default();
    };
    match runner.run(&probe, PROBE_ROWS).await {
        Ok(result) => decide(sql, schema, &filters, &found(&result.rows)),
        Err(err) => {
            tracing::debug!(error = %err, "value probe failed");
            Grounding::default()
        }
    }
}

/// The tables to search, those the query reads first: the probe searches a bounded number of
/// columns, and the right one is most often on a table already joined.
fn search_order<'s>(schema: &'s SchemaView, bound: &[(String, String)]) -> Vec<&'s TableView> {
    let is_bound = |t: &TableView| bound.iter().any(|(_, table)| t.is(table));
    let (mut first, rest): (Vec<&TableView>, Vec<&TableView>) =
        schema.tables.iter().partition(|t| is_bound(t));
    first.extend(rest);
    first
}

/// The probe's rows as [`Found`]s; rows of another shape are skipped.
fn found(rows: &[Vec<Value>]) -> Vec<Found> {
    rows.iter()
        .filter_map(|row| match row.as_slice() {
            [Value::String(table), Value::String(column), Value::String(value)] => Some(Found {
                table: table.clone(),
                column: column.clone(),
                value: value.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The grounding of `filters` (of `sql`) given where their values were `found`.
pub fn decide(sql: &str, schema: &SchemaView, filters: &Filters, found: &[Found]) -> Grounding {
    let mut mended: Option<String> = None;
    let mut hints = Vec::new();
    let mut suggested = false;
    for filter in &filters.list {
        let holders: Vec<&Found> = found
            .iter()
            .filter(|f| f.value.to_lowercase() == filter.value.to_lowercase())
            .collect();
        let in_place: Vec<&Found> = holders
            .iter()
            .copied()
            .filter(|f| f.table == filter.table && f.column == filter.column)
            .collect();
        if in_place.iter().any(|f| f.value == filter.value) {
            continue;
        }
        if let [stored] = in_place.as_slice() {
            let current = mended.as_deref().unwrap_or(sql);
            if let Some(next) = respell_value(current, schema, filter, &stored.value) {
                mended = Some(next);
                continue;
            }
        }
        let holders = referenced_first(schema, holders);
        let mut hint = sentence(filter, &holders, &filters.bound);
        if !suggested {
            // One rewritten query per grounding: the first column named that the filter's table
            // reaches through its keys.
            let current = mended.as_deref().unwrap_or(sql);
            if let Some((holder, rewritten)) = holders
                .iter()
                .find_map(|h| refilter(current, schema, filter, h).map(|r| (h, r)))
            {
                hint.push_str(&format!(
                    " The query filtering {}.{} instead: {rewritten}",
                    short(&holder.table),
                    holder.column
                ));
                suggested = true;
            }
        }
        hints.push(hint);
    }
    Grounding {
        mended,
        hint: (!hints.is_empty()).then(|| hints.join(" ")),
    }
}

/// `holders` with the tables the others refer to first: `artist.name` before `album.title`
/// before `track.name`. A name in a question more often names the row others point at (the
/// artist of the album of a track) than a row that bears the same text (a song called
/// "Iron Maiden"), and the model takes the first column a hint names (c30, c61 of the eval).
/// Holders no other holder refers to keep the probe's order.
fn referenced_first<'f>(schema: &SchemaView, holders: Vec<&'f Found>) -> Vec<&'f Found> {
    let mut ranked: Vec<(usize, &Found)> = holders
        .iter()
        .map(|h| {
            let reaches = reachable(schema, &h.table);
            let referenced = holders
                .iter()
                .filter(|other| other.table != h.table && reaches.contains(&other.table))
                .count();
            (referenced, *h)
        })
        .collect();
    ranked.sort_by_key(|(referenced, _)| *referenced);
    ranked.into_iter().map(|(_, h)| h).collect()
}

/// The tables (`schema.name`) `table` refers to through one or more foreign keys.
fn reachable(schema: &SchemaView, table: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut next = vec![table.to_owned()];
    while let Some(current) = next.pop() {
        let Some(view) = schema.table(&current) else {
            continue;
        };
        for key in &view.foreign_keys {
            if key.references != table && !seen.contains(&key.references) {
                seen.push(key.references.clone());
                next.push(key.references.clone());
            }
        }
    }
    seen
}

/// One hint: the filter's value is not in its column; where it is.
fn sentence(filter: &Filter, holders: &[&Found], bound: &[(String, String)]) -> String {
    let value = quote_literal(&filter.value);
    let missing = format!("No row has {}.{} = {value}.", filter.binding, filter.column);
    if holders.is_empty() {
        return format!(
            "{missing} {value} is in no text column of the tables searched (ignoring case)."
        );
    }
    let places: Vec<String> = holders
        .iter()
        .take(HINT_COLUMNS)
        .map(|f| {
            let name = format!("{}.{}", short(&f.table), f.column);
            let spelled = if f.value == filter.value {
                String::new()
            } else {
                format!(" as {}", quote_literal(&f.value))
            };
            // Only an alias needs saying: `track.name` is written the same in the query.
            match bound
                .iter()
                .find(|(b, table)| *table == f.table && b != short(table))
            {
                Some((binding, _)) => {
                    format!("{name}{spelled} ({binding}.{} in your query)", f.column)
                }
                None => format!("{name}{spelled}"),
            }
        })
        .collect();
    format!("{missing} {value} is in {}.", places.join(", "))
}

/// `public.customer` as `customer`: the prompt's DDL names `public` tables bare.
fn short(table: &str) -> &str {
    table.strip_prefix("public.").unwrap_or(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_shared::sql::schema::ForeignKey;

    fn table(name: &str, columns: &[&str]) -> TableView {
        let typed: Vec<(&str, &str)> = columns
            .iter()
            .map(|c| {
                (
                    *c,
                    if c.ends_with("_id") {
                        "integer"
                    } else {
                        "text"
                    },
                )
            })
            .collect();
        TableView::fixture(name, &typed)
    }

    fn chinook() -> SchemaView {
        SchemaView {
            tables: vec![
                table("customer", &["customer_id", "city", "support_rep_id"]),
                table("employee", &["employee_id", "city"]),
                table("invoice", &["invoice_id", "billing_city"]),
            ],
        }
    }

    fn at(table: &str, column: &str, value: &str) -> Found {
        Found {
            table: format!("public.{table}"),
            column: column.into(),
            value: value.into(),
        }
    }

    fn grounding(sql: &str, found: &[Found]) -> Grounding {
        let schema = chinook();
        decide(sql, &schema, &filters(sql, &schema), found)
    }

    const WRONG_TABLE: &str = "SELECT c.customer_id FROM customer c JOIN employee e \
                               ON e.employee_id = c.support_rep_id WHERE e.city = 'Paris'";

    #[test]
    fn a_value_in_another_column_is_named_with_the_alias_that_reads_it() {
        let found = [
            at("customer", "city", "Paris"),
            at("invoice", "billing_city", "Paris"),
        ];
        assert_eq!(
            grounding(WRONG_TABLE, &found),
            Grounding {
                mended: None,
                hint: Some(
                    "No row has e.city = 'Paris'. 'Paris' is in customer.city (c.city in your \
                     query), invoice.billing_city."
                        .into()
                ),
            }
        );
    }

    #[test]
    fn a_table_read_under_its_own_name_needs_no_alias_said() {
        let sql = "SELECT count(*) FROM customer JOIN employee e \
                   ON e.employee_id = customer.support_rep_id WHERE e.city = 'Paris'";
        let hint = grounding(sql, &[at("customer", "city", "Paris")]).hint;
        assert_eq!(
            hint.as_deref(),
            Some("No row has e.city = 'Paris'. 'Paris' is in customer.city.")
        );
    }

    #[test]
    fn a_value_stored_in_another_case_is_corrected_without_a_hint() {
        let sql = "SELECT count(*) FROM customer WHERE city = 'paris'";
        let found = [
            at("customer", "city", "Paris"),
            at("employee", "city", "PARIS"),
        ];
        assert_eq!(
            grounding(sql, &found),
            Grounding {
                mended: Some("SELECT count(*) FROM customer WHERE city = 'Paris'".into()),
                hint: None,
            }
        );
    }

    #[test]
    fn a_value_found_where_it_was_asked_for_says_nothing() {
        let found = [at("employee", "city", "Paris")];
        assert_eq!(grounding(WRONG_TABLE, &found), Grounding::default());
    }

    #[test]
    fn the_table_others_refer_to_is_named_first() {
        let key = |columns: &str, references: &str| ForeignKey {
            columns: vec![columns.into()],
            references: references.into(),
            referenced_columns: vec![columns.into()],
        };
        let mut track = table("track", &["track_id", "name", "composer", "album_id"]);
        track.foreign_keys = vec![key("album_id", "public.album")];
        let mut album = table("album", &["album_id", "title", "artist_id"]);
        album.foreign_keys = vec![key("artist_id", "public.artist")];
        let artist = table("artist", &["artist_id", "name"]);
        let genre = table("genre", &["genre_id", "name"]);
        let schema = SchemaView {
            tables: vec![track, album, artist, genre],
        };
        let sql = "SELECT count(*) FROM track t WHERE t.composer = 'Iron Maiden'";
        let found = [
            at("track", "name", "Iron Maiden"),
            at("genre", "name", "Iron Maiden"),
            at("album", "title", "Iron Maiden"),
            at("artist", "name", "Iron Maiden"),
        ];
        let hint = decide(sql, &schema, &filters(sql, &schema), &found).hint;
        assert_eq!(
            hint.as_deref(),
            Some(
                "No row has t.composer = 'Iron Maiden'. 'Iron Maiden' is in genre.name, \
                 artist.name, album.title, track.name (t.name in your query). The query \
                 filtering artist.name instead: SELECT count(*) FROM track t WHERE t.album_id \
                 IN (SELECT q1.album_id FROM album AS q1 JOIN artist AS q2 \
                 ON q2.artist_id = q1.artist_id WHERE q2.name = 'Iron Maiden')"
            )
        );
    }

    #[test]
    fn a_value_found_nowhere_is_said_so() {
        let hint = grounding(WRONG_TABLE, &[]).hint.unwrap();
        assert!(hint.contains("'Paris' is in no text column"), "{hint}");
    }

    #[test]
    fn the_tables_of_the_query_are_searched_first() {
        let schema = chinook();
        let bound = vec![("i".to_owned(), "public.invoice".to_owned())];
        let order: Vec<&str> = search_order(&schema, &bound)
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(order, ["invoice", "customer", "employee"]);
    }

    #[test]
    fn probe_rows_of_another_shape_are_skipped() {
        let rows = vec![
            vec![
                Value::from("public.customer"),
                Value::from("city"),
                Value::from("Paris"),
            ],
            vec![
                Value::from("public.customer"),
                Value::Null,
                Value::from("x"),
            ],
        ];
        assert_eq!(found(&rows), vec![at("customer", "city", "Paris")]);
    }
}
