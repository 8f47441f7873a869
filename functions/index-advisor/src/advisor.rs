//! One advisor run: workload from `pg_stat_statements`, candidates from each statement's tree,
//! costs with hypothetical indexes (hypopg), a greedy pick, and upserted advice rows.
//!
//! The run uses a connection of its own (owner role: it reads every user's statements and creates
//! hypothetical indexes), so its session settings and hypothetical indexes never reach a pooled
//! connection; it calls `hypopg_reset()` before and after.
//!
//! Normalised statements carry `$n` parameters without values. Rather than guessing one value per
//! parameter, each statement is `PREPARE`d and explained as a *generic* plan
//! (`plan_cache_mode = force_generic_plan`, executed with NULLs): the planner then estimates every
//! `$n` from the column's statistics (`1/n_distinct` for equality, default selectivities for ranges),
//! which is the cost of a representative value rather than of one lucky or unlucky one. A generic
//! plan is cached on its prepared statement and hypothetical indexes do not invalidate it, so every
//! measurement prepares the statement afresh.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use crate::candidates::{self, Candidate, Catalog, TableKey, Usage};

/// Knobs of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Statements read from `pg_stat_statements`, by total execution time.
    pub top: i64,
    /// Statements called fewer times are ignored.
    pub min_calls: i64,
    /// Wall-clock budget; the run stops choosing when it is spent.
    pub budget: Duration,
    /// Most indexes proposed per run.
    pub max_indexes: usize,
    /// A statement counts as helped when its cost drops by at least this fraction.
    pub min_improvement: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            top: 20,
            min_calls: 2,
            budget: Duration::from_secs(60),
            max_indexes: 5,
            min_improvement: 0.10,
        }
    }
}

/// A statement of the workload.
#[derive(Debug, Clone)]
struct Workload {
    queryid: i64,
    query: String,
    calls: i64,
    params: usize,
    usages: HashMap<TableKey, Usage>,
}

/// One proposed index.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Advice {
    /// Schema of the table.
    pub table_schema: String,
    /// Table.
    pub table_name: String,
    /// Key columns in order.
    pub columns: Vec<String>,
    /// The statement to create it.
    pub create_statement: String,
    /// Summed generic-plan cost of the helped statements before the index.
    pub cost_before: f64,
    /// The same with the (hypothetical) index.
    pub cost_after: f64,
    /// `100 × (1 − after / before)`.
    pub improvement_pct: f64,
    /// Statements helped (pg_stat_statements queryids).
    pub queryids: Vec<i64>,
    /// hypopg's estimate of the index size, bytes.
    pub estimated_size_bytes: i64,
}

/// A statement that could not be judged.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    /// Its queryid.
    pub queryid: i64,
    /// Why (the parser's or PostgreSQL's message).
    pub reason: String,
}

/// What a run found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Statements considered.
    pub statements: usize,
    /// Proposed indexes, best first.
    pub advice: Vec<Advice>,
    /// Statements that could not be parsed or explained.
    pub skipped: Vec<Skipped>,
    /// Whether the time budget ran out before the search ended.
    pub budget_exhausted: bool,
    /// Wall-clock time of the run, milliseconds.
    pub elapsed_ms: f64,
}

/// A run that could not complete.
#[derive(Debug, thiserror::Error)]
pub enum AdvisorError {
    /// A database call outside a single statement's measurement failed.
    #[error("database error during the advisor run")]
    Db(#[from] tokio_postgres::Error),
}

/// Runs the advisor on `client`'s database and upserts the advice.
///
/// # Errors
/// When the workload or the catalog cannot be read, or the advice cannot be stored.
pub async fn run(client: &mut Client, options: &Options) -> Result<Report, AdvisorError> {
    let started = Instant::now();
    client.batch_execute("SELECT hypopg_reset(); SET plan_cache_mode = force_generic_plan; SET search_path = public").await?;
    let result = search(client, options, started).await;
    // Whatever happened, leave no hypothetical index behind in this session.
    let _ = client
        .batch_execute("SELECT hypopg_reset(); RESET plan_cache_mode")
        .await;
    let mut report = result?;
    store(client, &report.advice).await?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(report)
}

async fn search(
    client: &Client,
    options: &Options,
    started: Instant,
) -> Result<Report, AdvisorError> {
    let catalog = catalog(client).await?;
    let rows = client
        .query(
            "SELECT s.queryid, s.query, s.calls
             FROM pg_stat_statements s
             WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND s.calls >= $1
               AND s.query ~* '^\\s*(select|with)\\M'
               AND s.query !~* '(pg_stat_statements|hypopg|quarry_meta\\.)'
             ORDER BY s.total_exec_time DESC
             LIMIT $2",
            &[&options.min_calls, &options.top],
        )
        .await?;
    let mut workload = Vec::new();
    let mut skipped = Vec::new();
    for row in rows {
        let (queryid, query, calls): (i64, String, i64) = (row.get(0), row.get(1), row.get(2));
        match candidates::usages(&query, &catalog) {
            Ok(usages) if !usages.is_empty() => {
                workload.push(Workload {
                    queryid,
                    params: max_param(&query),
                    query,
                    calls,
                    usages,
                });
            }
            Ok(_) => {}
            Err(reason) => skipped.push(Skipped { queryid, reason }),
        }
    }

    // Baseline costs; a statement that cannot be explained is reported and left out.
    let mut current: HashMap<i64, f64> = HashMap::new();
    let mut measured = Vec::new();
    for w in workload {
        match cost(client, &w).await {
            Ok(c) => {
                current.insert(w.queryid, c);
                measured.push(w);
            }
            Err(reason) => skipped.push(Skipped {
                queryid: w.queryid,
                reason,
            }),
        }
    }
    let workload = measured;

    let mut pool: BTreeSet<Candidate> = BTreeSet::new();
    for w in &workload {
        for (key, usage) in &w.usages {
            pool.extend(candidates::candidates(key, usage, &catalog));
        }
    }

    let baseline = current.clone();
    // Chosen so far, with the oid of its hypothetical index (kept for the following rounds).
    let mut chosen: Vec<(Candidate, tokio_postgres::types::Oid, Advice)> = Vec::new();
    let mut budget_exhausted = false;
    while chosen.len() < options.max_indexes && !pool.is_empty() {
        let mut best: Option<(f64, Candidate, i64, HashMap<i64, f64>)> = None;
        for candidate in &pool {
            if started.elapsed() > options.budget {
                budget_exhausted = true;
                break;
            }
            let relevant: Vec<&Workload> = workload
                .iter()
                .filter(|w| {
                    w.usages
                        .contains_key(&(candidate.schema.clone(), candidate.table.clone()))
                })
                .collect();
            let Ok((oid, size)) = hypothetical(client, candidate).await else {
                continue;
            };
            let mut after = HashMap::new();
            for w in &relevant {
                if let Ok(c) = cost(client, w).await {
                    after.insert(w.queryid, c);
                }
            }
            let _ = client
                .execute("SELECT hypopg_drop_index($1)", &[&oid])
                .await;
            let saving: f64 = relevant
                .iter()
                .filter_map(|w| {
                    let (before, now) = (current.get(&w.queryid)?, after.get(&w.queryid)?);
                    helped(*before, *now, options.min_improvement)
                        .then(|| (before - now) * w.calls as f64)
                })
                .sum();
            let score = saving / size.max(8192) as f64;
            if saving > 0.0 && best.as_ref().is_none_or(|(s, ..)| score > *s) {
                best = Some((score, candidate.clone(), size, after));
            }
        }
        let Some((_, pick, size, after)) = best else {
            break;
        };
        // The pick covers every candidate (and earlier pick) on the same table whose columns are
        // a prefix of its own: those would be redundant beside it.
        let covers = |c: &Candidate| {
            c.schema == pick.schema && c.table == pick.table && pick.columns.starts_with(&c.columns)
        };
        pool.retain(|c| !covers(c));
        let mut kept = Vec::with_capacity(chosen.len());
        for (candidate, oid, advice) in chosen {
            if covers(&candidate) {
                let _ = client
                    .execute("SELECT hypopg_drop_index($1)", &[&oid])
                    .await;
            } else {
                kept.push((candidate, oid, advice));
            }
        }
        chosen = kept;

        let helped_ids: Vec<i64> = workload
            .iter()
            .filter(|w| {
                let (start, now) = (baseline.get(&w.queryid), after.get(&w.queryid));
                matches!((start, now), (Some(b), Some(n)) if helped(*b, *n, options.min_improvement))
                    && after.get(&w.queryid) < current.get(&w.queryid)
            })
            .map(|w| w.queryid)
            .collect();
        // Reported against the workload without any advised index, the state an operator has.
        let cost_before: f64 = helped_ids.iter().filter_map(|q| baseline.get(q)).sum();
        let cost_after: f64 = helped_ids.iter().filter_map(|q| after.get(q)).sum();
        for q in &helped_ids {
            if let Some(c) = after.get(q) {
                current.insert(*q, *c);
            }
        }
        // Keep the pick (hypothetically) for the next rounds: the next pick must add to it.
        let Ok((oid, _)) = hypothetical(client, &pick).await else {
            break;
        };
        let advice = Advice {
            table_schema: pick.schema.clone(),
            table_name: pick.table.clone(),
            create_statement: pick.create_sql(),
            columns: pick.columns.clone(),
            cost_before,
            cost_after,
            improvement_pct: if cost_before > 0.0 {
                100.0 * (1.0 - cost_after / cost_before)
            } else {
                0.0
            },
            queryids: helped_ids,
            estimated_size_bytes: size,
        };
        chosen.push((pick, oid, advice));
        if budget_exhausted {
            break;
        }
    }
    let advice = chosen.into_iter().map(|(_, _, advice)| advice).collect();
    Ok(Report {
        statements: workload.len(),
        advice,
        skipped,
        budget_exhausted,
        elapsed_ms: 0.0,
    })
}

fn helped(before: f64, after: f64, min_improvement: f64) -> bool {
    before > 0.0 && after < before * (1.0 - min_improvement)
}

/// The highest `$n` in a normalised statement.
fn max_param(query: &str) -> usize {
    let bytes = query.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits: String = query[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
            i += 1 + digits.len();
        } else {
            i += 1;
        }
    }
    max
}

/// The generic-plan total cost of `w`, prepared afresh (see the module docs).
async fn cost(client: &Client, w: &Workload) -> Result<f64, String> {
    let message = |e: tokio_postgres::Error| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
    };
    client
        .batch_execute("DEALLOCATE ALL")
        .await
        .map_err(message)?;
    client
        .batch_execute(&format!("PREPARE quarry_advise AS {}", w.query))
        .await
        .map_err(message)?;
    let nulls = vec!["NULL"; w.params].join(", ");
    let execute = if w.params == 0 {
        "EXECUTE quarry_advise".to_owned()
    } else {
        format!("EXECUTE quarry_advise({nulls})")
    };
    let row = client
        .query_one(&format!("EXPLAIN (FORMAT JSON) {execute}"), &[])
        .await
        .map_err(message)?;
    let plan: serde_json::Value = row.get(0);
    let _ = client.batch_execute("DEALLOCATE quarry_advise").await;
    plan.pointer("/0/Plan/Total Cost")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| "EXPLAIN gave no cost".to_owned())
}

/// Creates a hypothetical index; returns its oid and estimated size.
async fn hypothetical(
    client: &Client,
    candidate: &Candidate,
) -> Result<(tokio_postgres::types::Oid, i64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT h.indexrelid, hypopg_relation_size(h.indexrelid) FROM hypopg_create_index($1) AS h",
            &[&candidate.hypothetical_sql()],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// The user tables' columns, distinct-value estimates and existing indexes.
async fn catalog(client: &Client) -> Result<Catalog, tokio_postgres::Error> {
    let mut catalog = Catalog::default();
    let user_schemas = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'quarry_meta', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'";
    for row in client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, a.attname, c.reltuples::float8
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
                 WHERE c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND {user_schemas}"
            ),
            &[],
        )
        .await?
    {
        catalog.columns.entry((row.get(0), row.get(1))).or_default().insert(row.get(2));
    }
    for row in client
        .query(
            "SELECT s.schemaname::text, s.tablename::text, s.attname::text,
                    CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * greatest(c.reltuples, 0) ELSE s.n_distinct END::float8
             FROM pg_stats s
             JOIN pg_namespace n ON n.nspname = s.schemaname
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename",
            &[],
        )
        .await?
    {
        catalog.n_distinct.insert((row.get(0), row.get(1), row.get(2)), row.get(3));
    }
    for row in client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i
                 JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE i.indisvalid AND {user_schemas}
                 GROUP BY i.indexrelid, n.nspname, c.relname"
            ),
            &[],
        )
        .await?
    {
        catalog.indexes.push(((row.get(0), row.get(1)), row.get(2)));
    }
    Ok(catalog)
}

/// Upserts this run's advice; advice whose index now exists is marked applied.
async fn store(client: &mut Client, advice: &[Advice]) -> Result<(), AdvisorError> {
    let tx = client.transaction().await?;
    for a in advice {
        tx.execute(
            "INSERT INTO quarry_meta.index_advice (table_schema, table_name, columns, create_statement, cost_before, cost_after,
                                                   improvement_pct, queryids, estimated_size_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (table_schema, table_name, columns) DO UPDATE SET
                 create_statement = EXCLUDED.create_statement, cost_before = EXCLUDED.cost_before,
                 cost_after = EXCLUDED.cost_after, improvement_pct = EXCLUDED.improvement_pct,
                 queryids = EXCLUDED.queryids, estimated_size_bytes = EXCLUDED.estimated_size_bytes,
                 last_seen = now()",
            &[
                &a.table_schema, &a.table_name, &a.columns, &a.create_statement, &a.cost_before, &a.cost_after,
                &a.improvement_pct, &a.queryids, &a.estimated_size_bytes,
            ],
        )
        .await?;
    }
    // An index created since (by `apply` or by hand) turns its advice into history.
    tx.batch_execute(
        "UPDATE quarry_meta.index_advice a SET status = 'applied', applied_at = coalesce(a.applied_at, now())
         WHERE a.status = 'proposed' AND EXISTS (
             SELECT 1 FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = a.table_schema AND c.relname = a.table_name AND i.indisvalid
               AND (SELECT array_agg(att.attname::text ORDER BY k.ord)
                    FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum = k.attnum)[1:cardinality(a.columns)] = a.columns)",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates one advised index, `CONCURRENTLY` (outside any transaction, as PostgreSQL requires).
///
/// # Errors
/// PostgreSQL's refusal.
pub async fn apply(client: &Client, advice: &Advice) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(&advice.create_statement).await?;
    client
        .execute(
            "UPDATE quarry_meta.index_advice SET status = 'applied', applied_at = now()
             WHERE table_schema = $1 AND table_name = $2 AND columns = $3",
            &[&advice.table_schema, &advice.table_name, &advice.columns],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_counted() {
        assert_eq!(max_param("SELECT 1"), 0);
        assert_eq!(
            max_param("SELECT * FROM t WHERE a = $1 AND b = $12 LIMIT $3"),
            12
        );
        assert_eq!(max_param("SELECT '$' || $2"), 2);
    }

    #[test]
    fn a_statement_is_helped_only_by_a_real_drop() {
        assert!(helped(100.0, 80.0, 0.1));
        assert!(!helped(100.0, 95.0, 0.1));
        assert!(!helped(0.0, 0.0, 0.1));
    }
}
