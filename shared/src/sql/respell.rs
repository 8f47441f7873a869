//! Writes a model's CamelCase spelling of a snake_case name the way the schema spells it.
//!
//! Models trained on the original Chinook (and on much SQL Server code) write `FirstName`,
//! `InvoiceDate`, `SupportRepId`; PostgreSQL folds those to `firstname`, which does not exist
//! when the column is `first_name`. A rule in the prompt is not enough for a 1.5B model, and a
//! grammar that refuses the spelling makes it pick some other word mid-name. So the grammar
//! admits the squashed spelling ([`squashed`]) and [`respell`] maps it back before the query
//! runs. Only unquoted words are touched, found with sqlparser's tokenizer, so string literals,
//! quoted identifiers and comments stay as written.

use std::collections::BTreeMap;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::schema::SchemaView;

/// The spelling without underscores (`first_name` → `firstname`) of a lower snake_case name;
/// `None` for names without an underscore or not in lower snake_case.
pub fn squashed(name: &str) -> Option<String> {
    let snake = name.contains('_')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    snake.then(|| name.replace('_', ""))
}

/// The schema's names by squashed spelling; a squashed spelling that is itself a name, or that
/// two names share, is left out (it is not a misspelling, or it is ambiguous).
fn spellings(schema: &SchemaView) -> BTreeMap<String, String> {
    let names: Vec<&str> = schema
        .tables
        .iter()
        .flat_map(|t| {
            [t.schema.as_str(), t.name.as_str()]
                .into_iter()
                .chain(t.columns.iter().map(|c| c.name.as_str()))
        })
        .collect();
    let mut map: BTreeMap<String, Option<String>> = BTreeMap::new();
    for name in &names {
        if let Some(key) = squashed(name) {
            map.entry(key)
                .and_modify(|existing| {
                    if existing.as_deref() != Some(*name) {
                        *existing = None;
                    }
                })
                .or_insert_with(|| Some((*name).to_owned()));
        }
    }
    map.into_iter()
        .filter(|(key, _)| !names.contains(&key.as_str()))
        .filter_map(|(key, name)| name.map(|n| (key, n)))
        .collect()
}

/// `sql` with every unquoted word that is a squashed schema name (in any case) written as the
/// name; `None` when there is none (or `sql` does not tokenize).
pub fn respell(sql: &str, schema: &SchemaView) -> Option<String> {
    let map = spellings(schema);
    if map.is_empty() {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let lines: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for token in &tokens {
        let Token::Word(word) = &token.token else {
            continue;
        };
        if word.quote_style.is_some() || word.keyword != Keyword::NoKeyword {
            continue;
        }
        let Some(name) = map.get(&word.value.to_ascii_lowercase()) else {
            continue;
        };
        let start = offset(sql, &lines, token.span.start)?;
        let end = start + word.value.len();
        if sql.get(start..end) != Some(word.value.as_str()) || start < copied {
            return None;
        }
        out.push_str(&sql[copied..start]);
        out.push_str(name);
        copied = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// The byte offset of a tokenizer location (1-based line and character column).
fn offset(sql: &str, lines: &[usize], at: Location) -> Option<usize> {
    let line_start = *lines.get(usize::try_from(at.line).ok()?.checked_sub(1)?)?;
    let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
    let rest = sql.get(line_start..)?;
    match rest.char_indices().nth(column) {
        Some((i, _)) => Some(line_start + i),
        None => Some(sql.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::schema::TableView;

    /// Tables whose columns are all `text` (types do not matter here).
    fn schema(tables: &[(&str, &[&str])]) -> SchemaView {
        SchemaView {
            tables: tables
                .iter()
                .map(|(name, columns)| {
                    let typed: Vec<(&str, &str)> = columns.iter().map(|c| (*c, "text")).collect();
                    TableView::fixture(name, &typed)
                })
                .collect(),
        }
    }

    fn chinook() -> SchemaView {
        schema(&[
            (
                "customer",
                &["customer_id", "first_name", "last_name", "country"],
            ),
            ("invoice_line", &["invoice_line_id", "unit_price"]),
        ])
    }

    #[test]
    fn camel_case_becomes_the_schema_spelling() {
        let sql = "SELECT c.FirstName, LASTNAME, sum(il.UnitPrice)\nFROM Customer c JOIN InvoiceLine il ON true\nWHERE c.Country = 'Brazil'";
        assert_eq!(
            respell(sql, &chinook()).unwrap(),
            "SELECT c.first_name, last_name, sum(il.unit_price)\nFROM Customer c JOIN invoice_line il ON true\nWHERE c.Country = 'Brazil'"
        );
    }

    #[test]
    fn strings_quoted_names_and_comments_stay_as_written() {
        let sql = "SELECT \"FirstName\", 'FirstName', E'x\\'FirstName' -- FirstName\nFROM customer /* LastName */";
        assert_eq!(respell(sql, &chinook()), None);
        // Non-ASCII before a word: offsets are bytes, columns are characters.
        let sql = "SELECT 'Côte d''Ivoire' AS země, FirstName FROM customer";
        assert_eq!(
            respell(sql, &chinook()).unwrap(),
            "SELECT 'Côte d''Ivoire' AS země, first_name FROM customer"
        );
    }

    #[test]
    fn real_names_and_ambiguous_spellings_are_not_rewritten() {
        // `firstname` is a real column here, and `ab_c`/`a_bc` squash to the same word.
        let s = schema(&[("t", &["first_name", "firstname", "ab_c", "a_bc"])]);
        assert_eq!(respell("SELECT firstname, abc FROM t", &s), None);
        assert_eq!(respell("SELECT first_name FROM t", &chinook()), None);
        assert_eq!(respell("SELECT 'unterminated", &chinook()), None);
    }

    #[test]
    fn squashed_only_for_snake_case() {
        assert_eq!(squashed("first_name").as_deref(), Some("firstname"));
        assert_eq!(
            squashed("invoice_line_id").as_deref(),
            Some("invoicelineid")
        );
        assert_eq!(squashed("total"), None);
        assert_eq!(squashed("First_Name"), None);
        assert_eq!(squashed("Unit Price"), None);
    }
}
