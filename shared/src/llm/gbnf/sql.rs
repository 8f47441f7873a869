//! A token-level SQL grammar in which every bare name must come from the linked schema.
//!
//! It does not parse SQL (the guard and `EXPLAIN` do that); it stops the one failure a small
//! model makes most: naming a table or column that does not exist. A bare word is a keyword or
//! function from [`KEYWORDS`], a name from the caller's list (or its CamelCase spelling,
//! `FirstName` for `first_name`, which `sql::respell` writes back), a number, or a short alias
//! (one or two characters: `c`, `il`, `t1`). Names the query itself defines are allowed where they are
//! defined — after `AS` — and, because a grammar cannot remember them, everywhere after `WITH`
//! (common table expressions), `HAVING` (models filter on an output alias there, which
//! `sql::unalias` writes out) or `ORDER BY` (which may sort by one). Those tails are
//! unconstrained by design; the guard and the repair loop still check them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::literal;
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
/// After `JOIN` comes one of `tables` (as SQL names them, `flights.flights` outside `public`),
/// a subquery or `LATERAL`: a column name there is the model inventing a table after it
/// (`JOIN address AS T2 ON T1.address = T2.address`, measured on three eval questions). With no
/// `tables`, `JOIN` is followed by any name.
pub fn grammar<S: AsRef<str>, T: AsRef<str>>(identifiers: &[S], tables: &[T]) -> String {
    let tables: BTreeSet<String> = tables
        .iter()
        .map(|t| t.as_ref().to_ascii_lowercase())
        .filter(|t| t.split('.').all(is_plain))
        .collect();
    let keywords: BTreeSet<String> = KEYWORDS
        .iter()
        .filter(|k| !matches!(**k, "with" | "as"))
        .filter(|k| tables.is_empty() || **k != "join")
        .map(|k| k.to_ascii_lowercase())
        .collect();
    let names: BTreeSet<String> = identifiers
        .iter()
        .flat_map(|i| i.as_ref().split('.').map(str::to_owned).collect::<Vec<_>>())
        .filter(|n| is_plain(n))
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| !keywords.contains(n))
        .collect();
    let quoted: BTreeSet<String> = identifiers
        .iter()
        .flat_map(|i| i.as_ref().split('.').map(str::to_owned).collect::<Vec<_>>())
        .filter(|n| !n.is_empty() && !n.contains('"'))
        .collect();

    let mut g = String::new();
    // A statement starts with SELECT or WITH (after opening parentheses, if any). A grammar that
    // took any word first let the model, asked to re-check a query, begin the prose it wanted
    // ("The query …") with the nearest keyword and loop on it to the token limit ("Then then
    // then …", 40 s each on three eval questions).
    g.push_str("root ::= ws (\"(\" ws){0,3} statement ws (\";\" ws)?\n");
    let _ = writeln!(
        g,
        "statement ::= {} g-after-word | {} f-after-word",
        spelled_keyword("select"),
        spelled_keyword("with")
    );
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
    if tables.is_empty() {
        g.push_str("g-word ::= keyword | name | alias | number | as-def\n");
    } else {
        g.push_str("g-word ::= keyword | name | alias | number | as-def | join-table\n");
        let _ = writeln!(
            g,
            "join-table ::= {join} (ws1 (table | {lateral}) | ws \"(\")",
            join = spelled_keyword("join"),
            lateral = spelled_keyword("lateral"),
        );
        let spellings = tables.iter().map(|t| {
            let parts: Vec<String> = t.split('.').map(name_spelling).collect();
            parts.join(" \".\" ")
        });
        let _ = writeln!(g, "table ::= {}", alternatives(spellings));
    }
    g.push_str("f-word ::= keyword | free | number | as-def | to-free\n");
    let _ = writeln!(
        g,
        "to-free ::= {} | {} | {} ws1 {}",
        spelled_keyword("with"),
        spelled_keyword("having"),
        spelled_keyword("order"),
        spelled_keyword("by")
    );
    let _ = writeln!(
        g,
        "as-def ::= {} ws1 (free | quoted-free)",
        spelled_keyword("as")
    );
    let _ = writeln!(
        g,
        "keyword ::= {}",
        alternatives(keywords.iter().map(|k| spelled_keyword(k)))
    );
    if names.is_empty() {
        // No schema: only keywords and aliases; a query then cannot name a table, which is right.
        g.push_str("name ::= alias\n");
    } else {
        let _ = writeln!(
            g,
            "name ::= {}",
            alternatives(names.iter().map(|n| name_spelling(n)))
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
        r#"alias ::= [a-zA-Z] [a-zA-Z0-9]?
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

/// `word` (lower case) as a query writes a name: `title` or `Title`. Not any case per letter:
/// a grammar that admits `TItLe` lets a model steered off the name it wanted finish some other
/// word in a mixed case (`HAVING total SpLit_pArt` for `total_spent`), where one that does not
/// ends the word and lets it go on with the query. Written as `[tT] "itle"`, one alternative:
/// the grammar sampler keeps a stack per alternative open at every word start, so each one
/// costs time on every token.
fn spelled(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() => {
            let head = format!(
                "[{}{}]",
                first.to_ascii_lowercase(),
                first.to_ascii_uppercase()
            );
            let rest = chars.as_str();
            if rest.is_empty() {
                head
            } else {
                format!("{head} {}", literal(rest))
            }
        }
        _ => literal(word),
    }
}

/// A keyword as queries write it: [`spelled`], or all in upper case (`SELECT`).
fn spelled_keyword(word: &str) -> String {
    let upper = word.to_ascii_uppercase();
    if upper == word || upper.len() < 2 || spelled(word) == literal(word) {
        return spelled(word);
    }
    format!("({} | {})", spelled(word), literal(&upper))
}

/// A name as [`spelled`], and a snake_case one also squashed or in CamelCase — `first_name`,
/// `firstname`, `FirstName`, `firstName` — as one alternative, `[fF] "irst" ("_name" | "Name" |
/// "name")`. The model writes Chinook's `FirstName` it learned; a grammar that refuses it pushes
/// the model onto some other word halfway through the name, and `sql::respell` writes the
/// schema's spelling back before the query runs.
fn name_spelling(name: &str) -> String {
    if squashed(name).is_none() {
        return spelled(name);
    }
    let mut segments = name.split('_');
    let mut out = spelled(segments.next().unwrap_or_default());
    for segment in segments {
        let mut chars = segment.chars();
        let capitalised = chars.next().map_or_else(String::new, |first| {
            first.to_ascii_uppercase().to_string() + chars.as_str()
        });
        let forms: BTreeSet<String> = [format!("_{segment}"), capitalised, segment.to_owned()]
            .into_iter()
            .filter(|f| !f.is_empty())
            .collect();
        let forms: Vec<String> = forms.iter().map(|f| literal(f)).collect();
        out.push_str(&format!(" ({})", forms.join(" | ")));
    }
    out
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
        let g = grammar(
            &["customer", "invoice_line", "flights.airports"],
            &[] as &[&str],
        );
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        for name in ["customer", "invoice_line", "flights", "airports"] {
            assert!(
                name_rule.contains(&format!("({})", name_spelling(name))),
                "{name}: {name_rule}"
            );
        }
        assert!(
            !name_rule.contains(&format!("({})", spelled("invoice"))),
            "{name_rule}"
        );
    }

    #[test]
    fn camel_case_spellings_of_snake_case_names_are_admitted() {
        assert_eq!(
            name_spelling("first_name"),
            r#"[fF] "irst" ("Name" | "_name" | "name")"#
        );
        assert_eq!(
            name_spelling("invoice_line_id"),
            r#"[iI] "nvoice" ("Line" | "_line" | "line") ("Id" | "_id" | "id")"#
        );
        assert_eq!(name_spelling("title"), spelled("title"));
        let g = grammar(&["customer.first_name"], &[] as &[&str]);
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        assert!(
            name_rule.contains(&name_spelling("first_name")),
            "{name_rule}"
        );
    }

    #[test]
    fn names_that_are_keywords_are_not_listed_twice() {
        let g = grammar(&["date", "total"], &[] as &[&str]);
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        assert_eq!(name_rule, format!("name ::= ({})", spelled("total")));
    }

    #[test]
    fn words_are_spelt_in_one_case_or_capitalised_never_mixed() {
        assert_eq!(spelled("title"), r#"[tT] "itle""#);
        assert_eq!(spelled("t1"), r#"[tT] "1""#);
        assert_eq!(spelled("a"), "[aA]");
        assert_eq!(spelled("1x"), r#""1x""#);
        assert_eq!(spelled_keyword("select"), r#"([sS] "elect" | "SELECT")"#);
        assert_eq!(spelled_keyword("as"), r#"([aA] "s" | "AS")"#);
        let g = grammar(&["album.title"], &["album"]);
        assert!(
            g.contains(r#"alias ::= [a-zA-Z] [a-zA-Z0-9]?"#),
            "T1 is an alias: {g}"
        );
    }

    #[test]
    fn a_statement_starts_with_select_or_with() {
        let g = grammar(&["customer"], &["customer"]);
        let root = g.lines().find(|l| l.starts_with("root ::=")).unwrap();
        assert!(root.contains("statement"), "{root}");
        let statement = g.lines().find(|l| l.starts_with("statement ::=")).unwrap();
        assert_eq!(
            statement,
            format!(
                "statement ::= {} g-after-word | {} f-after-word",
                spelled_keyword("select"),
                spelled_keyword("with")
            )
        );
    }

    #[test]
    fn names_that_need_quotes_are_allowed_only_quoted() {
        let g = grammar(&["Unit Price"], &[] as &[&str]);
        let name_rule = g.lines().find(|l| l.starts_with("name ::=")).unwrap();
        assert_eq!(name_rule, "name ::= alias");
        assert!(g.contains(r#""\"Unit Price\"""#), "{g}");
    }

    #[test]
    fn every_rule_used_is_defined() {
        let g = grammar(
            &["customer", "address"],
            &["customer", "flights.invoice_line"],
        );
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
