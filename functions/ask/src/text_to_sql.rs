//! Question → SQL → rows, repairing on failure: generate, run through sql-exec (which guards,
//! EXPLAINs and executes as the caller), and on any refusal feed the exact error back to the
//! model for a corrected query — at most `max_attempts` generations, every query recorded. A
//! result that found nothing earns one second look: its text filters are looked up in the data
//! ([`ground`]), and the model, told that nothing came back and which filter names a value its
//! column does not hold (and where that value is), repeats the query (the answer really is
//! empty) or fixes a filter. Slips are mended without asking the model: `FirstName` is written as
//! the schema's `first_name` before the query runs ([`respell`]); after PostgreSQL refuses a
//! query, a column on the wrong table is moved to the right one ([`requalify`]) or read through
//! the foreign key that reaches it ([`bridge`]), a table named outside the CTE that joined it
//! joined again ([`rejoin`]), a one-row CTE named outside `FROM` read as a scalar subquery
//! ([`read_one_row_cte`]), an output alias in `WHERE` written out ([`unalias`]), a `HAVING`
//! that groups nothing made a `WHERE` ([`having_to_where`]), an aggregate in `WHERE` made a
//! `HAVING` ([`where_to_having`]), an aggregate of aggregates split over a grouped subquery
//! ([`unnest_aggregates`]) and `LIKE '2010%'` on a date made a range ([`date_like`]);
//! each such retry is recorded as an attempt but is not a generation. When the question asks for
//! the top rows of each group ([`crate::per_group`]) and the query that ran only sorts, it is
//! run once more keeping those rows ([`top_per_group`]), again without the model.

use std::time::Instant;

use futures::future::BoxFuture;
use quarry_shared::llm::{ChatRequest, LlmError, LlmProvider};
use quarry_shared::sql::bridge::bridge;
use quarry_shared::sql::date_like::{date_like, is_like_on_date};
use quarry_shared::sql::having::{having_to_where, where_to_having};
use quarry_shared::sql::join_check::mismatched_joins;
use quarry_shared::sql::nested_aggregate::unnest_aggregates;
use quarry_shared::sql::one_row_cte::read_one_row_cte;
use quarry_shared::sql::rejoin::rejoin;
use quarry_shared::sql::requalify::requalify;
use quarry_shared::sql::respell::respell;
use quarry_shared::sql::schema::SchemaView;
use quarry_shared::sql::top_per_group::{top_per_group, PerGroup};
use quarry_shared::sql::unalias::unalias;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ground::ground;
use crate::millis;
use crate::peers::{PeerError, SqlResult};
use crate::repair_hint;
use crate::sql_prompt::{add_empty_recheck, add_repair, extract_sql};

/// Runs a query as the caller (sql-exec in production).
pub trait RunSql: Send + Sync {
    /// Runs `sql`, returning at most `max_rows` rows.
    fn run<'a>(
        &'a self,
        sql: &'a str,
        max_rows: u32,
    ) -> BoxFuture<'a, Result<SqlResult, PeerError>>;
}

/// One generated query and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// The query (or the model's text, when it held no query).
    pub sql: String,
    /// Why it failed (the guard's or PostgreSQL's words); absent when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Model time plus execution time, milliseconds.
    pub elapsed_ms: u64,
}

/// A query that ran.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlAnswer {
    /// The query that produced `result`.
    pub sql: String,
    /// Its rows.
    pub result: SqlResult,
    /// Every query tried, the successful one last.
    pub attempts: Vec<Attempt>,
}

/// Why no query ran.
#[derive(Debug, thiserror::Error)]
pub enum TextToSqlError {
    /// The language model failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// sql-exec refused the caller or is down: no rewrite of the query helps.
    #[error(transparent)]
    Peer(PeerError),
    /// Every attempt failed.
    #[error("no working query after {} attempts", attempts.len())]
    GaveUp {
        /// The attempts, in order.
        attempts: Vec<Attempt>,
    },
}

/// Runs the loop for `request` (from [`crate::sql_prompt::generation_request`]); `top` is what
/// the question asks for when it asks for the top rows of each group.
///
/// # Errors
/// [`TextToSqlError`].
pub async fn run(
    llm: &dyn LlmProvider,
    runner: &dyn RunSql,
    schema: &SchemaView,
    mut request: ChatRequest,
    top: Option<&PerGroup>,
    max_attempts: u32,
    max_rows: u32,
) -> Result<SqlAnswer, TextToSqlError> {
    let mut attempts: Vec<Attempt> = Vec::new();
    for _ in 0..max_attempts {
        let started = Instant::now();
        let completion = llm.complete(&request).await?;
        let Some(sql) = extract_sql(&completion.text) else {
            let error = "the answer contained no SQL query".to_owned();
            add_repair(&mut request, completion.text.trim(), &error);
            attempts.push(Attempt {
                sql: completion.text.trim().to_owned(),
                error: Some(error),
                elapsed_ms: millis(started),
            });
            continue;
        };
        let mut sql = respell(&sql, schema).unwrap_or(sql);
        if repeats(&sql, &attempts) {
            if let Some(other) = resample(llm, &request, schema, &attempts).await? {
                sql = other;
            }
        }
        match execute(runner, schema, sql, max_rows, started, &mut attempts).await? {
            Executed::Ran { sql, result } => {
                let (sql, result) = match top {
                    Some(top) => {
                        let ran = (sql, result);
                        keep_top(runner, schema, top, ran, max_rows, started, &mut attempts).await
                    }
                    None => (sql, result),
                };
                // Every path from here returns, so the second look happens at most once.
                if found_nothing(&result) {
                    let cx = Context {
                        llm,
                        runner,
                        schema,
                        max_rows,
                    };
                    return second_look(&cx, &mut request, sql, result, attempts).await;
                }
                return Ok(SqlAnswer {
                    sql,
                    result,
                    attempts,
                });
            }
            Executed::Refused { sql, detail } => {
                // The attempt keeps PostgreSQL's words; the model also gets the reminder.
                let told = match repair_hint::hint(&detail, &sql, schema) {
                    Some(hint) => format!("{detail}\n{hint}"),
                    None => detail,
                };
                add_repair(&mut request, &sql, &told);
            }
        }
    }
    Err(TextToSqlError::GaveUp { attempts })
}

/// Mechanical mends of one generated query at most (a query may need a requalify and an
/// unalias; each is one more run).
const MAX_MENDS: usize = 2;

/// Sampling temperature of the second try when a repair repeats an earlier query.
const RESAMPLE_TEMPERATURE: f32 = 0.7;

/// Whether `sql` is (but for spacing and case) a query already tried.
fn repeats(sql: &str, attempts: &[Attempt]) -> bool {
    let sql = normalise(sql);
    attempts.iter().any(|a| normalise(&a.sql) == sql)
}

/// A sampled answer to `request` when greedy decoding gave back a query already refused:
/// measured with the 1.5B model, a repair turn at temperature 0 mostly returns the failed query
/// unchanged, three times over. One sampled try within the same attempt; `None` when it holds
/// no query or repeats one too.
async fn resample(
    llm: &dyn LlmProvider,
    request: &ChatRequest,
    schema: &SchemaView,
    attempts: &[Attempt],
) -> Result<Option<String>, TextToSqlError> {
    let mut sampled = request.clone();
    sampled.temperature = RESAMPLE_TEMPERATURE;
    let completion = llm.complete(&sampled).await?;
    Ok(extract_sql(&completion.text)
        .map(|sql| respell(&sql, schema).unwrap_or(sql))
        .filter(|sql| !repeats(sql, attempts)))
}

/// `sql`'s rows narrowed to the top rows of each group the question asks about
/// ([`top_per_group`]), run as one more attempt; `sql` and `result` as they were when the query
/// has another shape or the narrowed one does not run (logged: the rows that ran are still an
/// answer). Done after the query ran, so the model's repair turns only ever show it its own
/// queries.
async fn keep_top(
    runner: &dyn RunSql,
    schema: &SchemaView,
    top: &PerGroup,
    ran: (String, SqlResult),
    max_rows: u32,
    started: Instant,
    attempts: &mut Vec<Attempt>,
) -> (String, SqlResult) {
    let Some(ranked) = top_per_group(&ran.0, top, schema) else {
        return ran;
    };
    match runner.run(&ranked, max_rows).await {
        Ok(result) => {
            tracing::debug!(%ranked, "kept the top rows of each group");
            attempts.push(Attempt {
                sql: ranked.clone(),
                error: None,
                elapsed_ms: millis(started),
            });
            (ranked, result)
        }
        Err(error) => {
            // A refusal is a gap in the rewrite; a peer that failed just now may be back for
            // the next question. Either way the rows in hand are an answer.
            tracing::warn!(%error, "the top rows of each group could not be kept");
            ran
        }
    }
}

/// What became of one generated query.
enum Executed {
    /// It ran (perhaps after [`requalify`]): the query that ran and its rows.
    Ran { sql: String, result: SqlResult },
    /// It was refused: the last query tried and why.
    Refused { sql: String, detail: String },
}

/// Runs one generated query, recording it in `attempts`. A query PostgreSQL refuses for a
/// missing column is first retried with its references moved to the table that has them
/// ([`requalify`]), read through the foreign key that reaches them ([`bridge`]) or with an
/// output alias written out ([`unalias`]) — as is one that names a table it never joined, or
/// joined only inside a CTE ([`rejoin`]), or a one-row CTE it never put in `FROM`
/// ([`read_one_row_cte`]) — one refused for a column outside `GROUP BY` in a query that groups
/// nothing with its `HAVING` made a `WHERE` ([`having_to_where`]), one refused for
/// an aggregate in `WHERE` with it moved to a `HAVING` ([`where_to_having`]), one refused for
/// an aggregate of aggregates with the inner ones computed per group first
/// ([`unnest_aggregates`]), and
/// one refused for `LIKE '2010%'` on a date with the date range written out ([`date_like`]),
/// which saves a round trip to the model for the commonest slips. A query joining a foreign key
/// to the key of a table it does not reference ([`mismatched_joins`]) is refused without running.
async fn execute(
    runner: &dyn RunSql,
    schema: &SchemaView,
    mut sql: String,
    max_rows: u32,
    started: Instant,
    attempts: &mut Vec<Attempt>,
) -> Result<Executed, TextToSqlError> {
    let mut mends = 0;
    loop {
        // A join the schema's keys contradict runs and answers nonsense; it goes back to the
        // model as refused, with the reason, instead.
        let wrong_joins = mismatched_joins(&sql, schema);
        if !wrong_joins.is_empty() {
            let detail = format!(
                "{} Join only tables the question needs, on the REFERENCES shown.",
                wrong_joins.join(" ")
            );
            attempts.push(Attempt {
                sql: sql.clone(),
                error: Some(detail.clone()),
                elapsed_ms: millis(started),
            });
            return Ok(Executed::Refused { sql, detail });
        }
        match runner.run(&sql, max_rows).await {
            Ok(result) => {
                attempts.push(Attempt {
                    sql: sql.clone(),
                    error: None,
                    elapsed_ms: millis(started),
                });
                return Ok(Executed::Ran { sql, result });
            }
            Err(PeerError::Rejected { detail, .. }) => {
                attempts.push(Attempt {
                    sql: sql.clone(),
                    error: Some(detail.clone()),
                    elapsed_ms: millis(started),
                });
                let fixed = if mends < MAX_MENDS {
                    mend(&sql, &detail, schema)
                } else {
                    None
                };
                match fixed {
                    Some(fixed) => {
                        mends += 1;
                        sql = fixed;
                    }
                    None => return Ok(Executed::Refused { sql, detail }),
                }
            }
            Err(other) => return Err(TextToSqlError::Peer(other)),
        }
    }
}

/// The query mechanically mended for PostgreSQL's refusal `detail`, when one of the known slips
/// explains it. A LIKE on a date is told apart first: its "operator does not exist" would
/// otherwise send it to the missing-column mends, which cannot help it.
fn mend(sql: &str, detail: &str, schema: &SchemaView) -> Option<String> {
    if is_like_on_date(detail) {
        date_like(sql)
    } else if detail.contains("must appear in the GROUP BY clause") {
        having_to_where(sql)
    } else if detail.contains("aggregate functions are not allowed in WHERE") {
        where_to_having(sql)
    } else if detail.contains("aggregate function calls cannot be nested") {
        unnest_aggregates(sql)
    } else if detail.contains("does not exist") || detail.contains("missing FROM-clause entry") {
        // A one-row CTE's name first: requalify would move its columns to a table that
        // happens to have the same column name.
        read_one_row_cte(sql, schema)
            .or_else(|| requalify(sql, schema))
            .or_else(|| bridge(sql, schema))
            .or_else(|| rejoin(sql, schema))
            .or_else(|| {
                repair_hint::missing_column(detail).and_then(|column| unalias(sql, &column))
            })
    } else {
        None
    }
}

/// What the second look at a result that found nothing works with.
struct Context<'a> {
    llm: &'a dyn LlmProvider,
    runner: &'a dyn RunSql,
    schema: &'a SchemaView,
    max_rows: u32,
}

/// Whether `result` found nothing: no rows, or one row of zeros and NULLs (what `count(*)` or
/// `sum(…)` over no rows gives).
fn found_nothing(result: &SqlResult) -> bool {
    match result.rows.as_slice() {
        [] => true,
        [row] => row.iter().all(|cell| match cell {
            Value::Null => true,
            Value::Number(n) => n.as_f64() == Some(0.0),
            _ => false,
        }),
        _ => false,
    }
}

/// The second look at `sql`, which ran and found nothing: its text filters are looked up in the
/// data ([`ground`]); a value stored in another case is corrected and run again; then the model
/// re-checks the query once, told what the data said — always for an empty result, and for a
/// zero or NULL aggregate only when a filter's value is not in its column (zero is otherwise a
/// plain answer). The first of these that finds something is the answer; else `sql`'s own.
async fn second_look(
    cx: &Context<'_>,
    request: &mut ChatRequest,
    sql: String,
    result: SqlResult,
    mut attempts: Vec<Attempt>,
) -> Result<SqlAnswer, TextToSqlError> {
    let started = Instant::now();
    let grounding = ground(cx.runner, cx.schema, &sql).await;
    tracing::debug!(hint = ?grounding.hint, mended = ?grounding.mended, "found nothing; grounded");
    if let Some(mended) = grounding.mended {
        let executed = execute(
            cx.runner,
            cx.schema,
            mended,
            cx.max_rows,
            started,
            &mut attempts,
        )
        .await?;
        if let Executed::Ran { sql, result } = executed {
            if !found_nothing(&result) {
                return Ok(SqlAnswer {
                    sql,
                    result,
                    attempts,
                });
            }
        }
    }
    if result.rows.is_empty() || grounding.hint.is_some() {
        let told = grounding.hint.as_deref();
        if let Some((sql, result)) = recheck(cx, request, &sql, told, &mut attempts).await? {
            return Ok(SqlAnswer {
                sql,
                result,
                attempts,
            });
        }
    }
    Ok(SqlAnswer {
        sql,
        result,
        attempts,
    })
}

/// The one re-check of `sql`, which found nothing, with what the data said about its filters:
/// `Some` when the model wrote a different query that ran and found something; `None` to keep
/// the first answer. A model told that a filter's value is elsewhere and still repeating its
/// query (greedy decoding mostly does) is sampled once more.
async fn recheck(
    cx: &Context<'_>,
    request: &mut ChatRequest,
    sql: &str,
    grounding: Option<&str>,
    attempts: &mut Vec<Attempt>,
) -> Result<Option<(String, SqlResult)>, TextToSqlError> {
    let started = Instant::now();
    add_empty_recheck(request, sql, grounding);
    let completion = cx.llm.complete(request).await?;
    tracing::debug!(reply = %completion.text, "re-check");
    let Some(second) = extract_sql(&completion.text) else {
        return Ok(None);
    };
    let mut second = respell(&second, cx.schema).unwrap_or(second);
    if repeats(&second, attempts) {
        if grounding.is_none() {
            return Ok(None);
        }
        let sampled = resample(cx.llm, request, cx.schema, attempts).await?;
        tracing::debug!(?sampled, "re-check repeated the query; sampled again");
        match sampled {
            Some(other) => second = other,
            None => return Ok(None),
        }
    }
    match execute(cx.runner, cx.schema, second, cx.max_rows, started, attempts).await? {
        Executed::Ran { sql, result } if !found_nothing(&result) => Ok(Some((sql, result))),
        _ => Ok(None),
    }
}

fn normalise(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}
