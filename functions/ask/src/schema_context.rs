//! The model's view of the database: the caller's readable schema ([`SchemaView`], from
//! `GET /v1/schema`) rendered as compact DDL, and — when the schema is large — linked to the
//! question first, so only the relevant tables reach the prompt.
//!
//! Pure: similarity scores come in from the caller (embeddings are I/O-free but heavy, and
//! belong to the embedder), so linking is unit-tested with made-up scores.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write as _;

use quarry_shared::sql::quote_literal;
use quarry_shared::sql::schema::{SchemaView, TableView};

/// The name a table goes by in SQL: unqualified in `public` (the executor's `search_path`),
/// `schema.table` elsewhere.
pub fn sql_name(table: &TableView) -> String {
    if table.schema == "public" {
        table.name.clone()
    } else {
        table.qualified_name()
    }
}

/// One line describing a table for similarity search: its name, comment and columns (with
/// their comments), words split at `_` so `invoice_line` matches "invoice lines".
pub fn describe(table: &TableView) -> String {
    let mut text = format!("{} table", words(&table.name));
    if let Some(comment) = &table.comment {
        let _ = write!(text, ": {comment}");
    }
    text.push_str(". Columns: ");
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| match &c.comment {
            Some(comment) => format!("{} ({comment})", words(&c.name)),
            None => words(&c.name),
        })
        .collect();
    text.push_str(&columns.join(", "));
    text
}

fn words(identifier: &str) -> String {
    identifier.replace('_', " ")
}

/// Renders `tables` (indices into `view.tables`, in the order given) as `CREATE TABLE`
/// statements with keys, foreign keys, comments and sample values: what the model needs to
/// write correct joins and filters, in as few tokens as it can be said.
pub fn render(view: &SchemaView, tables: &[usize]) -> String {
    let mut out = String::new();
    for &i in tables {
        let Some(table) = view.tables.get(i) else {
            continue;
        };
        let _ = write!(out, "CREATE TABLE {} (", sql_name(table));
        if let Some(comment) = &table.comment {
            let _ = write!(out, " -- {}", one_line(comment));
        }
        out.push('\n');
        let single_pk = (table.primary_key.len() == 1).then(|| table.primary_key[0].as_str());
        for (n, column) in table.columns.iter().enumerate() {
            let _ = write!(out, "  {} {}", column.name, column.ty);
            if single_pk == Some(column.name.as_str()) {
                out.push_str(" PRIMARY KEY");
            }
            if let Some(fk) = table
                .foreign_keys
                .iter()
                .find(|fk| fk.columns.len() == 1 && fk.columns[0] == column.name)
            {
                let _ = write!(
                    out,
                    " REFERENCES {}({})",
                    unqualify(&fk.references),
                    fk.referenced_columns.join(", ")
                );
            }
            let last = n + 1 == table.columns.len()
                && table.primary_key.len() < 2
                && !table.foreign_keys.iter().any(|fk| fk.columns.len() > 1);
            if !last {
                out.push(',');
            }
            let mut notes = Vec::new();
            if let Some(comment) = &column.comment {
                notes.push(one_line(comment));
            }
            if !column.samples.is_empty() {
                let samples: Vec<String> =
                    column.samples.iter().map(|s| quote_literal(s)).collect();
                notes.push(format!("e.g. {}", samples.join(", ")));
            }
            if !notes.is_empty() {
                let _ = write!(out, " -- {}", notes.join("; "));
            }
            out.push('\n');
        }
        let composite: Vec<String> = table
            .foreign_keys
            .iter()
            .filter(|fk| fk.columns.len() > 1)
            .map(|fk| {
                format!(
                    "  FOREIGN KEY ({}) REFERENCES {}({})",
                    fk.columns.join(", "),
                    unqualify(&fk.references),
                    fk.referenced_columns.join(", ")
                )
            })
            .collect();
        let mut tail = Vec::new();
        if table.primary_key.len() > 1 {
            tail.push(format!("  PRIMARY KEY ({})", table.primary_key.join(", ")));
        }
        tail.extend(composite);
        if !tail.is_empty() {
            out.push_str(&tail.join(",\n"));
            out.push('\n');
        }
        out.push_str(");\n");
    }
    out
}

fn unqualify(reference: &str) -> &str {
    reference.strip_prefix("public.").unwrap_or(reference)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Narrows a schema that spans several database schemas (Chinook in `public`, nycflights13 in
/// `flights`) to the ones the question is about. Each database schema is scored by its best
/// table (`scores`, one per table of `view`), and every schema within `margin` of the best one
/// is kept, so a question that resembles two keeps both. Without it a small model shown two
/// unrelated databases borrows names across them (`FROM flights` for a question about
/// customers). Schema order is kept; a single-schema view, or scores that are not all finite,
/// keep every table.
pub fn scope(view: &SchemaView, scores: &[f32], margin: f32) -> Vec<usize> {
    let all = || (0..view.tables.len()).collect::<Vec<_>>();
    if scores.len() != view.tables.len() || scores.iter().any(|s| !s.is_finite()) {
        return all();
    }
    let mut best: Vec<(&str, f32)> = Vec::new();
    for (table, &score) in view.tables.iter().zip(scores) {
        match best.iter_mut().find(|(schema, _)| *schema == table.schema) {
            Some((_, top)) => *top = top.max(score),
            None => best.push((table.schema.as_str(), score)),
        }
    }
    let Some(top) = best.iter().map(|(_, s)| *s).reduce(f32::max) else {
        return all();
    };
    if best.len() < 2 {
        return all();
    }
    let kept: Vec<&str> = best
        .iter()
        .filter(|(_, s)| *s >= top - margin)
        .map(|(schema, _)| *schema)
        .collect();
    view.tables
        .iter()
        .enumerate()
        .filter(|(_, t)| kept.contains(&t.schema.as_str()))
        .map(|(i, _)| i)
        .collect()
}

/// Picks the tables a question needs: the `max_tables` best by `scores` (one per table of
/// `view`, higher = more relevant), then every table on the shortest foreign-key path between
/// two picked ones (a join through a bridge table such as `invoice_line` must stay possible,
/// whatever it costs in prompt), then the tables the picked ones reference directly while the
/// total stays under twice `max_tables`. Schema order is kept, which keeps prompts stable and so cacheable.
pub fn link(view: &SchemaView, scores: &[f32], max_tables: usize) -> Vec<usize> {
    let n = view.tables.len();
    if n <= max_tables {
        return (0..n).collect();
    }
    let mut ranked: Vec<usize> = (0..n).collect();
    ranked.sort_by(|&a, &b| {
        let (sa, sb) = (score(scores, a), score(scores, b));
        sb.total_cmp(&sa).then(a.cmp(&b))
    });
    let picked: Vec<usize> = ranked.into_iter().take(max_tables.max(1)).collect();
    let graph = adjacency(view);
    let limit = max_tables.max(1) * 2;
    let mut chosen: BTreeSet<usize> = picked.iter().copied().collect();
    for (k, &a) in picked.iter().enumerate() {
        for &b in &picked[k + 1..] {
            if let Some(path) = shortest_path(&graph, a, b) {
                chosen.extend(path);
            }
        }
    }
    for &a in &picked {
        for t in references(view, a) {
            if chosen.len() >= limit {
                break;
            }
            chosen.insert(t);
        }
    }
    chosen.into_iter().collect()
}

fn score(scores: &[f32], i: usize) -> f32 {
    scores
        .get(i)
        .copied()
        .filter(|s| s.is_finite())
        .unwrap_or(f32::MIN)
}

fn index_of(view: &SchemaView, reference: &str) -> Option<usize> {
    view.tables.iter().position(|t| t.is(reference))
}

fn references(view: &SchemaView, table: usize) -> Vec<usize> {
    view.tables[table]
        .foreign_keys
        .iter()
        .filter_map(|fk| index_of(view, &fk.references))
        .collect()
}

/// Foreign keys as an undirected graph (a join works either way).
fn adjacency(view: &SchemaView) -> Vec<BTreeSet<usize>> {
    let mut graph = vec![BTreeSet::new(); view.tables.len()];
    for i in 0..view.tables.len() {
        for j in references(view, i) {
            if i != j {
                graph[i].insert(j);
                graph[j].insert(i);
            }
        }
    }
    graph
}

/// The tables strictly between `from` and `to` on a shortest path, or `None` if unconnected.
fn shortest_path(graph: &[BTreeSet<usize>], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut previous = vec![usize::MAX; graph.len()];
    let mut queue = VecDeque::from([from]);
    previous[from] = from;
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = Vec::new();
            let mut at = previous[to];
            while at != from {
                path.push(at);
                at = previous[at];
            }
            return Some(path);
        }
        for &next in &graph[node] {
            if previous[next] == usize::MAX {
                previous[next] = node;
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_shared::sql::schema::{ColumnView, ForeignKey};

    fn column(name: &str, ty: &str) -> ColumnView {
        ColumnView {
            name: name.into(),
            ty: ty.into(),
            nullable: true,
            comment: None,
            samples: Vec::new(),
        }
    }

    fn table(name: &str, columns: &[&str], fks: &[(&str, &str, &str)]) -> TableView {
        TableView {
            schema: "public".into(),
            name: name.into(),
            comment: None,
            columns: columns.iter().map(|c| column(c, "integer")).collect(),
            primary_key: vec![columns[0].to_owned()],
            foreign_keys: fks
                .iter()
                .map(|(col, table, rcol)| ForeignKey {
                    columns: vec![(*col).to_owned()],
                    references: format!("public.{table}"),
                    referenced_columns: vec![(*rcol).to_owned()],
                })
                .collect(),
        }
    }

    /// A chain: customer ← invoice ← invoice_line → track → genre, plus unrelated tables.
    fn chinookish() -> SchemaView {
        SchemaView {
            tables: vec![
                table("customer", &["customer_id", "country"], &[]),
                table(
                    "invoice",
                    &["invoice_id", "customer_id"],
                    &[("customer_id", "customer", "customer_id")],
                ),
                table(
                    "invoice_line",
                    &["invoice_line_id", "invoice_id", "track_id"],
                    &[
                        ("invoice_id", "invoice", "invoice_id"),
                        ("track_id", "track", "track_id"),
                    ],
                ),
                table(
                    "track",
                    &["track_id", "genre_id"],
                    &[("genre_id", "genre", "genre_id")],
                ),
                table("genre", &["genre_id", "name"], &[]),
                table("playlist", &["playlist_id"], &[]),
                table("employee", &["employee_id"], &[]),
            ],
        }
    }

    #[test]
    fn renders_compact_ddl_with_keys_and_samples() {
        let mut view = chinookish();
        view.tables[0].columns[1].ty = "character varying(40)".into();
        view.tables[0].columns[1].samples = vec!["USA".into(), "Côte d'Ivoire".into()];
        view.tables[0].comment = Some("People who\nbuy music".into());
        let ddl = render(&view, &[0, 1]);
        assert_eq!(
            ddl,
            "CREATE TABLE customer ( -- People who buy music\n  customer_id integer PRIMARY KEY,\n  country character varying(40) -- e.g. 'USA', 'Côte d''Ivoire'\n);\n\
             CREATE TABLE invoice (\n  invoice_id integer PRIMARY KEY,\n  customer_id integer REFERENCES customer(customer_id)\n);\n"
        );
    }

    #[test]
    fn composite_keys_go_at_the_end_and_other_schemas_stay_qualified() {
        let mut t = table("route", &["origin", "dest"], &[]);
        t.schema = "flights".into();
        t.primary_key = vec!["origin".into(), "dest".into()];
        let view = SchemaView { tables: vec![t] };
        let ddl = render(&view, &[0, 7]);
        assert!(ddl.starts_with("CREATE TABLE flights.route (\n  origin integer,\n  dest integer,\n  PRIMARY KEY (origin, dest)\n);"), "{ddl}");
    }

    #[test]
    fn small_schemas_are_not_linked() {
        let view = chinookish();
        assert_eq!(link(&view, &[0.0; 7], 10), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn linking_adds_bridge_tables_between_picked_ones() {
        let view = chinookish();
        // Customers and genres matter; the path between them runs through three tables.
        let scores = [0.9, 0.1, 0.1, 0.2, 0.8, 0.3, 0.0];
        assert_eq!(link(&view, &scores, 2), vec![0, 1, 2, 3, 4]);
        let scores = [0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.8];
        // track + employee are unconnected; track's own reference (genre) is added.
        assert_eq!(link(&view, &scores, 2), vec![3, 4, 6]);
    }

    #[test]
    fn non_finite_scores_rank_last() {
        let view = chinookish();
        let scores = [f32::NAN, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let linked = link(&view, &scores, 1);
        assert_eq!(linked, vec![6]);
    }

    #[test]
    fn scoping_keeps_the_database_schemas_near_the_best() {
        let mut view = chinookish();
        for t in &mut view.tables[5..] {
            t.schema = "flights".into();
        }
        // customer scores best; flights' best (0.30) is 0.40 behind: dropped.
        let scores = [0.7, 0.2, 0.1, 0.1, 0.1, 0.3, 0.0];
        assert_eq!(scope(&view, &scores, 0.1), vec![0, 1, 2, 3, 4]);
        // Within the margin, both stay.
        let scores = [0.35, 0.2, 0.1, 0.1, 0.1, 0.3, 0.0];
        assert_eq!(scope(&view, &scores, 0.1), (0..7).collect::<Vec<_>>());
        // The other way round.
        let scores = [0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6];
        assert_eq!(scope(&view, &scores, 0.1), vec![5, 6]);
        // A margin of 2 (cosine spans [-1, 1]) keeps everything.
        assert_eq!(scope(&view, &scores, 2.0).len(), 7);
    }

    #[test]
    fn scoping_keeps_everything_it_cannot_judge() {
        let view = chinookish();
        let scores = [0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(scope(&view, &scores, 0.0).len(), 7, "one database schema");
        let mut two = chinookish();
        two.tables[6].schema = "hr".into();
        assert_eq!(scope(&two, &[0.5; 3], 0.0).len(), 7, "scores missing");
        let nan = [0.9, 0.0, 0.0, 0.0, 0.0, 0.0, f32::NAN];
        assert_eq!(scope(&two, &nan, 0.0).len(), 7, "a score not finite");
        assert_eq!(scope(&two, &scores, 0.0), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn descriptions_use_words() {
        let mut view = chinookish();
        view.tables[2].columns[2].comment = Some("the song".into());
        assert_eq!(
            describe(&view.tables[2]),
            "invoice line table. Columns: invoice line id, invoice id, track id (the song)"
        );
    }
}
