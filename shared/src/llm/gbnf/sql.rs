//! A token-level SQL grammar in which every bare name must come from the linked schema.
//!
//! It does not parse SQL (the guard and `EXPLAIN` do that); it stops the one failure a small
//! model makes most: naming a table or column that does not exist. A bare word is a keyword or
//! function from [`KEYWORDS`], a name from the caller's list (or its CamelCase spelling,
//! `FirstName` for `first_name`, which `sql::respell` writes back), a number, or a short alias
//! (one or two characters: `c`, `il`, `t1`). Names the query itself defines are allowed where they are
//! defined — after `AS` — and, because a grammar cannot remember them, everywhere after `WITH`
//! (common table expressions) or `ORDER BY` (which may sort by an output alias). Those two
//! tails are unconstrained by design; the guard and the repair loop still check them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{caseless, literal};
use crate::sql::respell::squashed;

/// Keywords, functions and type names a read-only query over PostgreSQL uses. Matched in any
/// case. Not a list of what the guard allows: the guard decides that; this only keeps the
/// grammar from rejecting a valid query.
pub const KEYWORDS: &[&str] = &[
    // clauses and operators
    "select",
    "distinct",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "on",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "outer",
    "cross",
    "natural",
    "using",
    "group",
    "by",
    "having",
    "limit",
    "offset",
    "fetch",
    "first",
    "next",
    "rows",
    "row",
    "only",
    "case",
    "when",
    "then",
    "else",
    "end",
    "asc",
    "desc",
    "nulls",
    "last",
    "between",
    "like",
    "ilike",
    "similar",
    "to",
    "exists",
    "union",
    "all",
    "intersect",
    "except",
    "any",
    "some",
    "true",
    "false",
    "lateral",
    "filter",
    "over",
    "partition",
    "window",
    "range",
    "unbounded",
    "preceding",
    "following",
    "current",
    "escape",
    "at",
    "time",
    "zone",
    "interval",
    "cast",
    "array",
    "values",
    "recursive",
    "of",
    "for",
    // aggregates and functions
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "round",
    "floor",
    "ceil",
    "ceiling",
    "abs",
    "trunc",
    "mod",
    "power",
    "sqrt",
    "extract",
    "date_part",
    "date_trunc",
    "to_char",
    "to_date",
    "now",
    "current_date",
    "current_timestamp",
    "age",
    "lower",
    "upper",
    "length",
    "char_length",
    "substring",
    "substr",
    "position",
    "trim",
    "ltrim",
    "rtrim",
    "concat",
    "concat_ws",
    "replace",
    "split_part",
    "left",
    "right",
    "initcap",
    "string_agg",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "variance",
    "percentile_cont",
    "percentile_disc",
    "within",
    "mode",
    "row_number",
    "rank",
    "dense_rank",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "generate_series",
    "make_date",
    // date parts and types
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "week",
    "quarter",
    "dow",
    "doy",
    "epoch",
    "numeric",
    "decimal",
    "integer",
    "int",
    "bigint",
    "smallint",
    "real",
    "double",
    "precision",
    "float",
    "text",
    "varchar",
    "char",
    "character",
    "varying",
    "boolean",
    "bool",
    "date",
    "timestamp",
    "timestamptz",
    "with",
    "without",
];

/// The grammar (root rule `root`) of statements whose bare names are `identifiers` (table,
/// schema and column names, matched in any case as PostgreSQL folds them) or the words above.
pub fn grammar<S: AsRef<str>>(identifiers: &[S]) -> String {
    let keywords: BTreeSet<String> = KEYWORDS
        .iter()
        .filter(|k| !matches!(**k, "with" | "as"))
        .map(|k| k.to_ascii_lowercase())
        .collect();
    let mut names: BTreeSet<String> = identifiers
        .iter()
        .flat_map(|i| i.as_ref().split('.').map(str::to_owned).collect::<Vec<_>>())
        .filter(|n| is_plain(n))
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| !keywords.contains(n))
        .collect();
    // `FirstName` for `first_name`: admitted, and written back by `sql::respell` before the
    // query runs, so the model is not pushed onto some other word halfway through a name.
    let camel: Vec<String> = names
        .iter()
        .filter_map(|n| squashed(n))
        .filter(|n| !keywords.contains(n))
        .collect();
    names.extend(camel);
    let quoted: BTreeSet<String> = identifiers
        .iter()
        .flat_map(|i| i.as_ref().split('.').map(str::to_owned).collect::<Vec<_>>())
        .filter(|n| !n.is_empty() && !n.contains('"'))
        .collect();

    let mut g = String::new();
    g.push_str("root ::= ws (g-word-seq | g-sym-seq) ws (\";\" ws)?\n");
    // Mode g (guarded): bare words are from the lists. Mode f (free): after WITH or ORDER BY.
    for mode in ["g", "f"] {
        let _ = writeln!(
            g,
            "{mode}-after-word ::= \"\" | ws1 {mode}-word-seq | ws {mode}-sym-seq"
        );
        let _ = writeln!(
            g,
            "{mode}-after-sym ::= \"\" | ws {mode}-word-seq | ws {mode}-sym-seq"
        );
        let _ = writeln!(g, "{mode}-sym-seq ::= sym {mode}-after-sym");
    }
    g.push_str("g-word-seq ::= g-word g-after-word | to-free f-after-word\n");
    g.push_str("f-word-seq ::= f-word f-after-word\n");
    g.push_str("g-word ::= keyword | name | alias | number | as-def\n");
    g.push_str("f-word ::= keyword | free | number | as-def | to-free\n");
    let _ = writeln!(
        g,
        "to-free ::= {} | {} ws1 {}",
        caseless("with"),
        caseless("order"),
        caseless("by")
    );
    let _ = writeln!(g, "as-def ::= {} ws1 (free | quoted-free)", caseless("as"));
    let _ = writeln!(
        g,
        "keyword ::= {}",
        alternatives(keywords.iter().map(|k| caseless(k)))
    );
    if names.is_empty() {
        // No schema: only keywords and aliases; a query then cannot name a table, which is right.
        g.push_str("name ::= alias\n");
    } else {
        let _ = writeln!(
            g,
            "name ::= {}",
            alternatives(names.iter().map(|n| caseless(n)))
        );
    }
    let quoted_names = quoted
        .iter()
        .map(|n| literal(&format!("\"{n}\"")))
        .collect::<Vec<_>>();
    g.push_str(
        "sym ::= \"(\" | \")\" | \",\" | \".\" | \"*\" | \"+\" | \"-\" | \"/\" | \"%\" | \"=\" \
         | \"<\" | \">\" | \"<=\" | \">=\" | \"<>\" | \"!=\" | \"||\" | \"::\" | string",
    );
    for q in &quoted_names {
        let _ = write!(g, " | {q}");
    }
    g.push('\n');
    g.push_str(
        r#"alias ::= [a-z] [a-z0-9]?
free ::= [a-zA-Z_] [a-zA-Z0-9_]{0,62}
quoted-free ::= "\"" [^"\n]{1,63} "\""
number ::= [0-9]{1,18} ("." [0-9]{1,18})?
string ::= "'" ([^'\n] | "''"){0,200} "'"
ws ::= [ \t\n]{0,12}
ws1 ::= [ \t\n]{1,12}
"#,
    );
    g
}

/// Whether `name` can be written bare (a letter or `_`, then letters, digits and `_`).
fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn alternatives(items: impl Iterator<Item = String>) -> String {
    items
        .map(|i| format!("({i})"))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_of_the_schema_become_the_name_rule() {
        let g = grammar(&["customer", "invoice_line", "flights.airports"]);
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        for name in ["customer", "invoice_line", "flights", "airports"] {
            assert!(
                name_rule.contains(&format!("({})", caseless(name))),
                "{name}: {name_rule}"
            );
        }
        assert!(
            !name_rule.contains(&format!("({})", caseless("invoice"))),
            "{name_rule}"
        );
    }

    #[test]
    fn camel_case_spellings_of_snake_case_names_are_admitted() {
        let g = grammar(&["customer.first_name", "invoice_line"]);
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        for name in ["first_name", "firstname", "invoice_line", "invoiceline"] {
            assert!(
                name_rule.contains(&format!("({})", caseless(name))),
                "{name}: {name_rule}"
            );
        }
    }

    #[test]
    fn names_that_are_keywords_are_not_listed_twice() {
        let g = grammar(&["date", "total"]);
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        assert_eq!(name_rule, format!("name ::= ({})", caseless("total")));
    }

    #[test]
    fn names_that_need_quotes_are_allowed_only_quoted() {
        let g = grammar(&["Unit Price"]);
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        assert_eq!(name_rule, "name ::= alias");
        assert!(g.contains(r#""\"Unit Price\"""#), "{g}");
    }

    #[test]
    fn every_rule_used_is_defined() {
        let g = grammar(&["customer"]);
        let defined: BTreeSet<&str> = g
            .lines()
            .filter_map(|l| l.split_once(" ::= ").map(|(n, _)| n))
            .collect();
        for line in g.lines() {
            let Some((_, body)) = line.split_once(" ::= ") else {
                continue;
            };
            // Rule references are the bare lowercase words outside literals and classes.
            let mut outside = String::new();
            let (mut in_lit, mut in_class, mut escaped) = (false, false, false);
            for c in body.chars() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' if !in_class => in_lit = !in_lit,
                    '[' if !in_lit => in_class = true,
                    ']' if !in_lit => in_class = false,
                    c if !in_lit && !in_class => outside.push(c),
                    _ => {}
                }
            }
            for word in outside.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if word.is_empty() || word.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                assert!(
                    defined.contains(word),
                    "`{word}` is used but not defined in: {line}"
                );
            }
        }
    }
}
