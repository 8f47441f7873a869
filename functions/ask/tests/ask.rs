//! `POST /v1/ask` end to end: the real sql-exec and retrieve (separate apps, as in production)
//! on a fresh copy of the demo database, real Redis and Chroma, and a scripted server in place
//! of the paid LLM API (OpenAI's wire format). Covers repair, routing, citations, SSE, memory,
//! the semantic cache, degraded dependencies, the fast 503 and bad input.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quarry_ingest::pipeline::{IngestRequest, Ingestor, Trigger};
use quarry_shared::docs::acl::Acl;
use quarry_shared::docs::chroma::{ChromaIndex, VectorIndex};
use quarry_shared::testing::llm_server::{Recorded, Reply, ScriptedLlm};
use quarry_shared::testing::{self, spawn_app, token, TestApp, TestDb};
use serde_json::{json, Value};

const POLICY_DOC: &str = "Data retention policy. Customer invoices are kept for ten years. \
    Web server logs are deleted after ninety days. Backups are kept for thirty-five days.";

struct Stack {
    db: TestDb,
    _peers: TestApp,
    ask: TestApp,
    llm: ScriptedLlm,
}

/// The peers (sql-exec + retrieve) and `ask` as two apps on one fresh database; `ask` talks to
/// the scripted LLM. `extra` overrides `ask`'s settings.
async fn stack(extra: &[(&str, &str)]) -> Stack {
    let db = TestDb::from_template().await;
    let peers = spawn_app(
        testing::settings_for(&db, &[]),
        vec![quarry_sql_exec::service(), quarry_retrieve::service()],
    )
    .await;
    let llm = ScriptedLlm::start().await;
    let llm_base = format!("{}v1", llm.url());
    let mut vars: Vec<(&str, &str)> = vec![
        ("OPENAI_BASE_URL", &llm_base),
        ("OPENAI_MODEL", "scripted"),
        ("SQL_EXEC_URL", &peers.base_url),
        ("RETRIEVE_URL", &peers.base_url),
        ("LLM_MAX_RETRIES", "0"),
        ("LLM_TIMEOUT_MS", "5000"),
    ];
    vars.extend_from_slice(extra);
    let ask = spawn_app(
        testing::settings_for(&db, &vars),
        vec![quarry_ask::service()],
    )
    .await;
    Stack {
        db,
        _peers: peers,
        ask,
        llm,
    }
}

impl Stack {
    /// How many times `ask` asked the model for SQL (repairs and re-checks included).
    fn sql_requests(&self) -> usize {
        self.llm
            .requests()
            .iter()
            .filter(|r| is_sql_request(r))
            .count()
    }
}

fn system(r: &Recorded) -> String {
    r.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn last_user(r: &Recorded) -> String {
    r.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn is_sql_request(r: &Recorded) -> bool {
    system(r).starts_with("You write PostgreSQL")
}

fn is_answer_request(r: &Recorded) -> bool {
    system(r).starts_with("You answer questions for employees")
}

/// A model that writes a broken query first, then a correct one after seeing the error, and
/// answers from the rows it is shown.
fn chinook_model(r: &Recorded) -> Reply {
    if is_sql_request(r) {
        let user = last_user(r);
        if user.contains("That query failed") {
            return Reply::openai("```sql\nSELECT country, count(*) AS customers FROM customer GROUP BY country ORDER BY customers DESC, country;\n```");
        }
        if user.contains("2010") {
            return Reply::openai("SELECT count(*) AS invoices FROM invoice WHERE extract(year FROM invoice_date) = 2010");
        }
        if user.contains("invoices") {
            return Reply::openai("SELECT count(*) AS invoices FROM invoice WHERE extract(year FROM invoice_date) = 2009");
        }
        return Reply::openai(
            "SELECT country, count(*) AS customers FROM customer GROUP BY nation",
        );
    }
    if is_answer_request(r) {
        let user = last_user(r);
        if user.contains("Passages:") {
            return Reply::openai("Web server logs are deleted after ninety days [1]. Invoices stay ten years [1][4].");
        }
        return Reply::openai("The USA has the most customers (13).");
    }
    Reply::openai("{\"route\": \"sql\"}")
}

async fn post(
    app: &TestApp,
    bearer: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(app.url("/v1/ask"))
        .bearer_auth(bearer)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn admin() -> String {
    token("alice", "admin", "emea")
}

#[tokio::test]
async fn a_failed_query_is_repaired_with_the_exact_error() {
    let s = stack(&[]).await;
    s.llm.respond_with(chinook_model);
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers do we have in each country?"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["route"], "sql");
    assert_eq!(body["answer"], "The USA has the most customers (13).");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    let first_error = attempts[0]["error"].as_str().unwrap();
    assert!(first_error.contains("nation"), "{first_error}");
    assert!(attempts[1].get("error").is_none());
    assert_eq!(body["columns"][0]["name"], "country");
    assert_eq!(body["rows"][0], json!(["USA", 13]));
    assert_eq!(body["cached"], false);
    for stage in ["schema", "route", "sql", "answer", "total"] {
        assert!(body["timings_ms"].get(stage).is_some(), "{stage} in {body}");
    }

    let requests = s.llm.requests();
    let sql_requests: Vec<&Recorded> = requests.iter().filter(|r| is_sql_request(r)).collect();
    assert_eq!(sql_requests.len(), 2);
    // The repair turn carries PostgreSQL's own words and the failed query.
    assert!(last_user(sql_requests[1]).contains(first_error));
    let schema = system(sql_requests[0]);
    assert!(schema.contains("CREATE TABLE customer ("), "{schema}");
    // The answer is written from the rows the model was shown.
    let answer_request = requests.iter().find(|r| is_answer_request(r)).unwrap();
    assert!(last_user(answer_request).contains("| USA | 13 |"));
}

#[tokio::test]
async fn misspelt_and_misplaced_columns_are_mended_without_asking_the_model_again() {
    let s = stack(&[]).await;
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            // `LastName` is spelt `last_name`; `support_rep_id` is customer's, not employee's.
            return Reply::openai(
                "SELECT e.LastName, count(*) AS customers FROM employee e \
                 JOIN customer c ON e.SupportRepId = e.EmployeeId \
                 GROUP BY e.LastName ORDER BY customers DESC, e.LastName",
            );
        }
        if is_answer_request(r) {
            return Reply::openai("Peacock looks after the most customers (21).");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers does each support agent look after?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(error.contains("support_rep_id"), "{error}");
    let respelt = attempts[0]["sql"].as_str().unwrap();
    assert!(respelt.starts_with("SELECT e.last_name,"), "{respelt}");
    let fixed = attempts[1]["sql"].as_str().unwrap();
    assert!(
        fixed.contains("c.support_rep_id = e.employee_id"),
        "{fixed}"
    );
    assert!(attempts[1].get("error").is_none(), "{body}");
    assert_eq!(body["sql"], fixed);
    assert_eq!(body["rows"][0], json!(["Peacock", 21]), "{body}");
    assert_eq!(s.sql_requests(), 1, "the model wrote one query");
}

#[tokio::test]
async fn a_skipped_middle_table_is_joined_through_its_foreign_key_without_the_model() {
    let s = stack(&[]).await;
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            // The media type is the track's: invoice_line has no media_type_id.
            return Reply::openai(
                "SELECT m.name, sum(il.unit_price * il.quantity) AS revenue FROM invoice_line il \
                 JOIN media_type m ON il.media_type_id = m.media_type_id \
                 GROUP BY m.name ORDER BY revenue DESC LIMIT 1",
            );
        }
        if is_answer_request(r) {
            return Reply::openai("MPEG audio files brought in the most.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let body = ask_mended_once(
        &s,
        "Which media type brought in the most revenue?",
        "media_type_id",
        "JOIN track AS track ON track.track_id = il.track_id",
    )
    .await;
    assert!(body["attempts"][1].get("error").is_none(), "{body}");
    // The gold answer, from the joins written out by hand.
    let gold =
        s.db.connect()
            .await
            .query_one(
                "SELECT m.name, sum(il.unit_price * il.quantity)::text FROM invoice_line il \
             JOIN track t ON t.track_id = il.track_id \
             JOIN media_type m ON m.media_type_id = t.media_type_id \
             GROUP BY m.name ORDER BY sum(il.unit_price * il.quantity) DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(
        body["rows"][0][0],
        json!(gold.get::<_, String>(0)),
        "{body}"
    );
    assert_eq!(
        body["rows"][0][1].to_string().trim_matches('"'),
        gold.get::<_, String>(1)
    );
    assert_eq!(s.sql_requests(), 1, "the model wrote one query");
}

/// A scripted model that writes `sql` for every SQL request and answers "Done.".
fn writes(sql: &'static str) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |r: &Recorded| {
        if is_sql_request(r) {
            return Reply::openai(sql);
        }
        if is_answer_request(r) {
            return Reply::openai("Done.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    }
}

/// Asks `question` in `sql` mode and checks one mend without the model: two attempts, the first
/// refused with `refused` in its error, the second the mended query holding `mended`, and one
/// SQL request to the model. Returns the answer's body.
async fn ask_mended_once(s: &Stack, question: &str, refused: &str, mended: &str) -> Value {
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": question, "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(error.contains(refused), "{error}");
    let fixed = attempts[1]["sql"].as_str().unwrap();
    assert!(fixed.contains(mended), "{fixed}");
    body
}

#[tokio::test]
async fn a_table_named_outside_the_cte_that_joined_it_is_joined_again_without_the_model() {
    let s = stack(&[]).await;
    // c19 of the eval, as the 1.5B model wrote it on every repair turn.
    s.llm.respond_with(writes(
        "WITH customer_support AS (SELECT employee_id, count(*) AS customer_count \
         FROM customer JOIN employee ON customer.support_rep_id = employee.employee_id \
         GROUP BY employee_id) SELECT employee.first_name, employee.last_name, customer_count \
         FROM customer_support ORDER BY customer_count DESC LIMIT 1",
    ));
    let body = ask_mended_once(
        &s,
        "Which employee supports the most customers?",
        "missing FROM-clause entry",
        "JOIN employee AS employee ON employee.employee_id = customer_support.employee_id",
    )
    .await;
    let gold =
        s.db.connect()
            .await
            .query_one(
                "SELECT e.first_name, e.last_name, count(*) FROM employee e \
                 JOIN customer c ON c.support_rep_id = e.employee_id \
                 GROUP BY e.employee_id ORDER BY count(*) DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(
        body["rows"][0],
        json!([
            gold.get::<_, String>(0),
            gold.get::<_, String>(1),
            gold.get::<_, i64>(2)
        ]),
        "{body}"
    );
}

#[tokio::test]
async fn a_having_that_groups_nothing_runs_as_a_where_without_the_model() {
    let s = stack(&[]).await;
    // c54 of the eval: a row filter on a CTE's totals written as HAVING.
    s.llm.respond_with(writes(
        "WITH t AS (SELECT c.customer_id, sum(i.total) AS total_spent FROM customer c \
         JOIN invoice i ON i.customer_id = c.customer_id GROUP BY c.customer_id) \
         SELECT customer_id, total_spent FROM t \
         HAVING total_spent > (SELECT avg(total_spent) FROM t)",
    ));
    let body = ask_mended_once(
        &s,
        "Which customers spent more than the average customer?",
        "must appear in the GROUP BY clause",
        "FROM t WHERE total_spent > (SELECT avg(total_spent) FROM t)",
    )
    .await;
    let gold: i64 =
        s.db.connect()
            .await
            .query_one(
                "WITH t AS (SELECT customer_id, sum(total) AS s FROM invoice GROUP BY 1) \
                 SELECT count(*) FROM t WHERE s > (SELECT avg(s) FROM t)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert!(gold > 0);
    assert_eq!(
        body["rows"].as_array().map(Vec::len),
        Some(gold as usize),
        "{body}"
    );
}

#[tokio::test]
async fn an_aggregate_condition_in_where_counts_the_passing_groups_without_the_model() {
    let s = stack(&[]).await;
    // c65 of the eval, as the 1.5B model wrote it on every repair turn.
    s.llm.respond_with(writes(
        "SELECT COUNT(DISTINCT a.album_id) AS albums FROM album a \
         JOIN track t ON t.album_id = a.album_id WHERE SUM(t.milliseconds) > 3600000",
    ));
    let body = ask_mended_once(
        &s,
        "How many albums run for more than an hour?",
        "aggregate functions are not allowed in WHERE",
        "GROUP BY a.album_id HAVING SUM(t.milliseconds) > 3600000",
    )
    .await;
    let gold: i64 =
        s.db.connect()
            .await
            .query_one(
                "SELECT count(*) FROM (SELECT album_id FROM track GROUP BY album_id \
                 HAVING sum(milliseconds) > 3600000) x",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert!(gold > 0);
    assert_eq!(body["rows"], json!([[gold]]), "{body}");
}

#[tokio::test]
async fn an_aggregate_of_aggregates_is_run_over_the_groups_without_the_model() {
    let s = stack(&[]).await;
    // h07 of the eval's hold-out set, as the 1.5B model wrote it on every turn.
    s.llm.respond_with(writes(
        "SELECT ROUND(AVG(COUNT(*)), 2) AS avg_tracks FROM track GROUP BY album_id",
    ));
    let body = ask_mended_once(
        &s,
        "On average, how many tracks does an album have? Round to 2 decimals.",
        "aggregate function calls cannot be nested",
        "(SELECT COUNT(*) AS quarry_n1 FROM track GROUP BY album_id) AS quarry_inner",
    )
    .await;
    assert_eq!(s.sql_requests(), 1, "{body}");
    let gold: String =
        s.db.connect()
            .await
            .query_one(
                "SELECT round(avg(n), 2)::text FROM \
                 (SELECT count(*) AS n FROM track GROUP BY album_id) x",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(body["columns"][0]["name"], "avg_tracks", "{body}");
    // A numeric comes back as its exact decimal text.
    assert_eq!(body["rows"], json!([[gold]]), "{body}");
}

#[tokio::test]
async fn a_one_row_cte_named_but_not_read_is_read_as_a_scalar_without_the_model() {
    let s = stack(&[]).await;
    // c49 of the eval, 2026-12-07, as the 1.5B model wrote it on two turns.
    s.llm.respond_with(writes(
        "WITH total_revenue AS (SELECT sum(total) AS total FROM invoice) \
         SELECT region, round(sum(total) * 100 / total_revenue.total, 2) AS percentage \
         FROM invoice GROUP BY region",
    ));
    let body = ask_mended_once(
        &s,
        "What share of revenue comes from each region?",
        "missing FROM-clause entry for table \"total_revenue\"",
        "/ (SELECT total_revenue.total FROM total_revenue)",
    )
    .await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{body}");
    let shares: f64 = rows
        .iter()
        .map(|row| {
            row[1]
                .as_str()
                .map_or_else(|| row[1].as_f64().unwrap(), |s| s.parse().unwrap())
        })
        .sum();
    assert!((shares - 100.0).abs() < 0.05, "{body}");
}

#[tokio::test]
async fn a_question_for_the_top_of_each_group_keeps_those_rows_without_the_model() {
    let s = stack(&[]).await;
    // c51 of the eval, 2026-12-07, as the 1.5B model wrote it: every customer's amount in every
    // year, sorted, where the question asks for the top customer of each year.
    s.llm.respond_with(writes(
        "WITH yearly_spent AS (SELECT extract(year FROM i.invoice_date) AS year, c.first_name, \
         c.last_name, SUM(i.total) AS total_spent FROM invoice i JOIN customer c ON \
         i.customer_id = c.customer_id GROUP BY 1, 2, 3) SELECT year, first_name, last_name, \
         total_spent FROM yearly_spent ORDER BY total_spent DESC",
    ));
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({
            "question": "For each year, which customer spent the most? Return the year, the \
                         customer's first and last name and the amount spent.",
            "mode": "sql"
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.sql_requests(), 1, "{body}");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    assert!(attempts.iter().all(|a| a.get("error").is_none()), "{body}");
    let ranked = attempts[1]["sql"].as_str().unwrap();
    assert!(ranked.contains("rank() OVER (PARTITION BY"), "{ranked}");
    assert_eq!(body["sql"].as_str(), Some(ranked), "{body}");

    let gold: BTreeSet<(String, String)> =
        s.db.connect()
            .await
            .query(
                "SELECT first_name, last_name FROM (SELECT c.first_name, c.last_name, \
                 rank() OVER (PARTITION BY extract(year FROM i.invoice_date) \
                 ORDER BY sum(i.total) DESC) AS rk FROM invoice i JOIN customer c \
                 ON c.customer_id = i.customer_id \
                 GROUP BY extract(year FROM i.invoice_date), c.customer_id) x WHERE rk = 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
    let rows = body["rows"].as_array().unwrap();
    let answered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|row| {
            let name = |i: usize| row[i].as_str().unwrap().to_owned();
            (name(1), name(2))
        })
        .collect();
    assert!(!gold.is_empty());
    assert_eq!(answered, gold, "{body}");
    assert!(rows.len() < 10, "one row per year and ties only: {body}");
}

#[tokio::test]
async fn a_question_with_no_working_query_is_a_422_that_shows_every_attempt() {
    let s = stack(&[("ASK_MAX_ATTEMPTS", "2")]).await;
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            // Every attempt names a table the schema does not have.
            return Reply::openai("SELECT count(*) FROM passengers");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, headers, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many passengers flew from JFK?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "urn:quarry:problem:sql-generation-failed");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    for attempt in attempts {
        assert_eq!(attempt["sql"], "SELECT count(*) FROM passengers", "{body}");
        let error = attempt["error"].as_str().unwrap();
        assert!(error.contains("passengers"), "{error}");
        assert!(attempt["elapsed_ms"].is_u64(), "{body}");
    }
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("after 2 attempts"), "{detail}");
    // The repair repeated the refused query, so it was asked once more with sampling; the
    // repair turn carried a reminder of the tables there are.
    let requests = s.llm.requests();
    let sql_requests: Vec<&Recorded> = requests.iter().filter(|r| is_sql_request(r)).collect();
    assert_eq!(sql_requests.len(), 3);
    let temperatures: Vec<f64> = sql_requests
        .iter()
        .map(|r| r.body["temperature"].as_f64().unwrap())
        .collect();
    assert_eq!(temperatures[..2], [0.0, 0.0]);
    assert!(temperatures[2] > 0.0, "{temperatures:?}");
    let repair = last_user(sql_requests[1]);
    assert!(
        repair.contains("There is no table passengers. The tables are: ")
            && repair.contains("customer"),
        "{repair}"
    );
}

#[tokio::test]
async fn a_join_the_keys_contradict_goes_back_to_the_model_without_running() {
    let s = stack(&[]).await;
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            if last_user(r).contains("REFERENCES employee(employee_id)") {
                return Reply::openai(
                    "SELECT first_name, last_name FROM customer WHERE city = 'Paris' \
                     ORDER BY last_name",
                );
            }
            // A self-join on support_rep_id, which holds employee ids: it would run (and
            // return nothing) if it were not checked.
            return Reply::openai(
                "SELECT T1.first_name, T1.last_name FROM customer AS T1 JOIN customer AS T2 \
                 ON T1.customer_id = T2.support_rep_id WHERE T2.city = 'Paris'",
            );
        }
        if is_answer_request(r) {
            return Reply::openai("Two customers live in Paris.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "Which customers live in Paris?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("The join T1.customer_id = T2.support_rep_id is wrong"),
        "{error}"
    );
    assert!(attempts[1].get("error").is_none(), "{body}");
    assert_eq!(
        body["rows"],
        json!([["Camille", "Bernard"], ["Dominique", "Lefebvre"]]),
        "{body}"
    );
}

#[tokio::test]
async fn like_on_a_date_is_run_again_as_a_date_range_without_the_model() {
    let s = stack(&[]).await;
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            if last_user(r).contains("does not exist") {
                // A repair turn must not be needed: answering it with the same query fails.
                return Reply::openai(
                    "SELECT count(*) FROM invoice WHERE invoice_date LIKE '2010%'",
                );
            }
            return Reply::openai("SELECT count(*) FROM invoice WHERE invoice_date LIKE '2010%'");
        }
        if is_answer_request(r) {
            return Reply::openai("There were 82 invoices in 2010.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many invoices were issued in 2010?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{body}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("operator does not exist"),
        "{body}"
    );
    assert!(
        body["sql"]
            .as_str()
            .unwrap()
            .contains("invoice_date >= '2010-01-01' AND invoice_date < '2011-01-01'"),
        "{body}"
    );
    assert_eq!(body["rows"], json!([[82]]), "{body}");
}

#[tokio::test]
async fn an_empty_result_names_the_column_that_holds_the_filtered_value() {
    let s = stack(&[]).await;
    const WRONG: &str = "SELECT c.first_name, c.last_name FROM customer c JOIN employee e \
                         ON e.employee_id = c.support_rep_id WHERE e.city = 'Paris'";
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            let told = last_user(r);
            // Only a re-check that says where 'Paris' is gets the right query.
            if told.contains("No row has e.city = 'Paris'")
                && told.contains("customer.city (c.city in your query)")
            {
                return Reply::openai(&WRONG.replace("e.city", "c.city"));
            }
            return Reply::openai(WRONG);
        }
        if is_answer_request(r) {
            return Reply::openai("Two customers live in Paris.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "Which customers live in Paris?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"].as_array().unwrap().len(), 2, "{body}");
    assert!(
        body["sql"].as_str().unwrap().contains("c.city = 'Paris'"),
        "{body}"
    );
    assert_eq!(body["rows"].as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn a_zero_count_on_a_value_found_elsewhere_is_checked_again() {
    let s = stack(&[]).await;
    const COMPOSER: &str = "SELECT count(*) FROM track WHERE composer = 'Iron Maiden'";
    const OFFERED: &str = "The query filtering artist.name instead: ";
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            let told = last_user(r);
            // Also a track and an album are called Iron Maiden: the hint names them all, the
            // artist (which the album and so the track refer to) first, and offers the query
            // that reaches it through the keys, which this model takes.
            if told.contains(
                "No row has track.composer = 'Iron Maiden'. 'Iron Maiden' is in artist.name, \
                 album.title, track.name.",
            ) {
                if let Some((_, offered)) = told.split_once(OFFERED) {
                    let sql = offered
                        .split(" Write the query again")
                        .next()
                        .unwrap_or(offered);
                    return Reply::openai(sql);
                }
            }
            return Reply::openai(COMPOSER);
        }
        if is_answer_request(r) {
            return Reply::openai("The catalog has 213 Iron Maiden tracks.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many tracks by Iron Maiden are in the catalog?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[213]]), "{body}");
    assert_eq!(body["attempts"].as_array().unwrap().len(), 2, "{body}");
    assert!(
        body["sql"]
            .as_str()
            .unwrap()
            .contains("WHERE track.album_id IN (SELECT q1.album_id FROM album AS q1"),
        "{body}"
    );
}

#[tokio::test]
async fn a_zero_count_whose_values_are_where_it_looked_is_an_answer() {
    let s = stack(&[]).await;
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            return Reply::openai(
                "SELECT count(*) FROM customer WHERE city = 'Paris' AND country = 'USA'",
            );
        }
        if is_answer_request(r) {
            return Reply::openai("No customers.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers in Paris, USA?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[0]]), "{body}");
    assert_eq!(s.sql_requests(), 1, "zero is the answer; no re-check");
}

#[tokio::test]
async fn a_filter_value_in_the_wrong_case_is_corrected_without_the_model() {
    let s = stack(&[]).await;
    s.llm.respond_with(|r: &Recorded| {
        if is_sql_request(r) {
            return Reply::openai("SELECT count(*) FROM customer WHERE city = 'paris'");
        }
        if is_answer_request(r) {
            return Reply::openai("Two customers live in Paris.");
        }
        Reply::openai("{\"route\": \"sql\"}")
    });
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers live in Paris?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[2]]), "{body}");
    assert!(body["sql"].as_str().unwrap().contains("'Paris'"), "{body}");
    assert_eq!(body["attempts"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(s.sql_requests(), 1, "no re-check was needed");
}

#[tokio::test]
async fn no_rows_reach_the_model_when_configured() {
    let s = stack(&[("ASK_ROWS_TO_LLM", "0")]).await;
    s.llm.respond_with(chinook_model);
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers do we have in each country?", "mode": "sql"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["answer"].as_str().unwrap().contains("rows"), "{body}");
    assert_eq!(
        body["rows"][0],
        json!(["USA", 13]),
        "the caller still gets the rows"
    );
    // The model wrote the query (it saw sample values in the schema) but no result row, and no
    // answer was asked of it.
    let requests = s.llm.requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| !r.body.to_string().contains("| USA |")));
    assert!(!requests.iter().any(is_answer_request));
}

#[tokio::test]
async fn documents_are_cited_and_uncited_numbers_dropped() {
    let s = stack(&[]).await;
    let settings = &s.ask.state.settings;
    let index: Option<Arc<dyn VectorIndex>> = match &settings.chroma_url {
        Some(url) => ChromaIndex::connect(
            reqwest::Client::new(),
            url,
            &settings.docs.chroma_collection,
            settings.docs.chroma_timeout,
        )
        .await
        .ok()
        .map(|i| Arc::new(i) as Arc<dyn VectorIndex>),
        None => None,
    };
    let ingestor = Ingestor::new(s.ask.state.db.clone(), index, &settings.docs);
    ingestor
        .ingest(IngestRequest {
            source: "file:///policies/retention.txt".to_owned(),
            bytes: Bytes::from_static(POLICY_DOC.as_bytes()),
            file_name: Some("retention.txt".to_owned()),
            declared_type: Some("text/plain".to_owned()),
            acl: Some(Acl::parse("admin,analyst", "*").unwrap()),
            trigger: Trigger::Cli,
        })
        .await
        .unwrap();
    s.llm.respond_with(chinook_model);
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "What is our data-retention policy for logs?"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["route"], "docs");
    assert_eq!(
        body["answer"],
        "Web server logs are deleted after ninety days [1]. Invoices stay ten years [1]."
    );
    let citations = body["citations"].as_array().unwrap();
    assert_eq!(citations.len(), 1, "{body}");
    assert_eq!(citations[0]["n"], 1);
    assert_eq!(citations[0]["source"], "file:///policies/retention.txt");
    assert!(body["sql"].is_null());

    // The catalog role may not see the document: nothing to cite, and no model call for it.
    let before = s.llm.hits();
    let (status, _, body) = post(
        &s.ask,
        &token("carl", "catalog", "emea"),
        json!({"question": "What is our data-retention policy for logs?", "mode": "docs"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["citations"].as_array().unwrap().is_empty(), "{body}");
    assert_eq!(s.llm.hits(), before);
}

#[tokio::test]
async fn streams_route_sql_rows_tokens_and_done() {
    let s = stack(&[]).await;
    s.llm.respond_with(|r| {
        if is_answer_request(r) {
            return Reply::openai_stream(&["The USA ", "has 13."]);
        }
        chinook_model(r)
    });
    let response = reqwest::Client::new()
        .post(s.ask.url("/v1/ask"))
        .bearer_auth(admin())
        .header("accept", "text/event-stream")
        .json(&json!({"question": "How many customers do we have in each country?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        ["route", "sql", "rows", "token", "token", "done"],
        "{text}"
    );
    let done = text
        .split("event: done\ndata: ")
        .nth(1)
        .and_then(|d| d.lines().next())
        .unwrap();
    let done: Value = serde_json::from_str(done).unwrap();
    assert_eq!(done["answer"], "The USA has 13.");
    assert_eq!(done["rows"][0], json!(["USA", 13]));
}

#[tokio::test]
async fn follow_ups_see_the_session_and_memory_is_per_user() {
    let s = stack(&[]).await;
    s.llm.respond_with(chinook_model);
    let alice = admin();
    let (status, _, first) = post(
        &s.ask,
        &alice,
        json!({"question": "How many invoices were there in 2009?", "session_id": "s1"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let (status, _, second) = post(
        &s.ask,
        &alice,
        json!({"question": "and in 2010?", "session_id": "s1"}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert!(second["sql"].as_str().unwrap().contains("2010"));
    // The follow-up's SQL request carried the earlier question and its SQL as turns.
    let follow_up = s
        .llm
        .requests()
        .into_iter()
        .filter(is_sql_request)
        .last()
        .unwrap();
    let messages = follow_up.body["messages"].as_array().unwrap();
    assert_eq!(
        messages[1]["content"],
        "How many invoices were there in 2009?"
    );
    assert!(messages[2]["content"].as_str().unwrap().contains("2009"));
    assert_eq!(messages[3]["content"], "and in 2010?");

    // Bob's session of the same name is his own.
    let bob = token("bob", "admin", "emea");
    let (_, _, _) = post(
        &s.ask,
        &bob,
        json!({"question": "and in 2010?", "session_id": "s1"}),
    )
    .await;
    let bobs = s
        .llm
        .requests()
        .into_iter()
        .filter(is_sql_request)
        .last()
        .unwrap();
    assert_eq!(
        bobs.body["messages"].as_array().unwrap().len(),
        2,
        "{}",
        bobs.body
    );

    // Facts: remembered, listed, invisible to Bob, deleted.
    let (status, _, body) = post(
        &s.ask,
        &alice,
        json!({"question": "Remember that I manage the EMEA accounts"}),
    )
    .await;
    assert_eq!(
        (status, body["answer"].as_str()),
        (200, Some("I will remember that."))
    );
    let http = reqwest::Client::new();
    let facts: Value = http
        .get(s.ask.url("/v1/memory/facts"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(facts["facts"][0]["text"], "I manage the EMEA accounts");
    let theirs: Value = http
        .get(s.ask.url("/v1/memory/facts"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["facts"], json!([]));
    let id = facts["facts"][0]["id"].as_str().unwrap();
    let gone = http
        .delete(s.ask.url(&format!("/v1/memory/facts/{id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let gone = http
        .delete(s.ask.url(&format!("/v1/memory/facts/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let bad = http
        .delete(s.ask.url("/v1/memory/facts/not-a-uuid"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_cache_answers_repeats_but_not_negations_or_other_roles() {
    let s = stack(&[]).await;
    s.llm.respond_with(chinook_model);
    let q = "How many customers do we have in each country?";
    let (_, _, first) = post(&s.ask, &admin(), json!({"question": q})).await;
    assert_eq!(first["cached"], false, "{first}");
    let hits = s.llm.hits();
    let started = Instant::now();
    let (status, _, again) = post(
        &s.ask,
        &admin(),
        json!({"question": "how many customers do we have in each country"}),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["answer"], first["answer"]);
    assert_eq!(s.llm.hits(), hits, "a hit calls no model");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // Not the same words (so not the by-text path): found by the embedding's similarity.
    let (_, _, similar) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers do we have per country?"}),
    )
    .await;
    assert_eq!(similar["cached"], true, "{similar}");
    assert_eq!(similar["answer"], first["answer"]);
    assert_eq!(s.llm.hits(), hits);

    // Another region is another scope; a negated question is another question.
    let (_, _, other_region) = post(
        &s.ask,
        &token("alice", "admin", "americas"),
        json!({"question": q}),
    )
    .await;
    assert_eq!(other_region["cached"], false);
    let (_, _, negated) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers do we not have in each country?"}),
    )
    .await;
    assert_eq!(negated["cached"], false, "{negated}");
}

#[tokio::test]
async fn a_data_change_ends_the_cached_answers() {
    let s = stack(&[]).await;
    s.llm.respond_with(chinook_model);
    let q = json!({"question": "How many customers do we have in each country?"});
    let (_, _, first) = post(&s.ask, &admin(), q.clone()).await;
    assert_eq!(first["cached"], false, "{first}");
    let (_, _, again) = post(&s.ask, &admin(), q.clone()).await;
    assert_eq!(again["cached"], true, "{again}");

    s.db.connect()
        .await
        .execute(
            "INSERT INTO genre (genre_id, name) VALUES (9001, 'Test genre')",
            &[],
        )
        .await
        .unwrap();
    // PostgreSQL's change counters and the process's copy of the version each lag by up to
    // about a second; the answer must be recomputed well within ten.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let (status, _, body) = post(&s.ask, &admin(), q.clone()).await;
        assert_eq!(status, 200, "{body}");
        if body["cached"] == false || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        after["cached"], false,
        "still cached after the change: {after}"
    );
    // And the recomputed answer is cached again, under the new version.
    let (_, _, later) = post(&s.ask, &admin(), q).await;
    assert_eq!(later["cached"], true, "{later}");
}

#[tokio::test]
async fn without_redis_answers_still_come_marked_degraded() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/", closed.local_addr().unwrap().port());
    drop(closed);
    let s = stack(&[("REDIS_URL", &url)]).await;
    s.llm.respond_with(chinook_model);
    let (status, _, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers do we have in each country?", "session_id": "s2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let degraded: Vec<&str> = body["degraded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        degraded.contains(&"memory") && degraded.contains(&"cache"),
        "{body}"
    );
    assert_eq!(body["answer"], "The USA has the most customers (13).");
}

#[tokio::test]
async fn a_failing_model_is_a_fast_503_with_retry_after() {
    let s = stack(&[
        ("LLM_BREAKER_FAILURES", "1"),
        ("LLM_BREAKER_COOLDOWN_SECS", "30"),
    ])
    .await;
    s.llm.respond_with(|_| Reply::error(500, "model crashed"));
    let (status, headers, body) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many customers do we have in each country?"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:quarry:problem:llm-unavailable");
    assert!(headers.contains_key("retry-after"));
    let hits = s.llm.hits();
    let started = Instant::now();
    let (status, headers, _) = post(
        &s.ask,
        &admin(),
        json!({"question": "How many tracks are there?"}),
    )
    .await;
    assert_eq!(status, 503);
    // Fast: well under the 5 s a provider attempt may take (the margin is for a loaded CI box).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((25..=30).contains(&retry), "{retry}");
    assert_eq!(s.llm.hits(), hits, "an open breaker sends nothing");
    assert!(
        !body.to_string().contains("model crashed"),
        "the provider's words stay in the logs"
    );
}

#[tokio::test]
async fn bad_input_gets_problems() {
    let s = stack(&[]).await;
    for (body, expected, kind) in [
        (json!({"question": "   "}), 400, "invalid-question"),
        (
            json!({"question": "x".repeat(2001)}),
            400,
            "invalid-question",
        ),
        (
            json!({"question": "hi", "session_id": "a b"}),
            400,
            "invalid-session-id",
        ),
        (
            json!({"question": "hi", "mode": "telepathy"}),
            422,
            "invalid-body",
        ),
        (
            json!({"question": "hi", "sql": "DROP TABLE customer"}),
            422,
            "invalid-body",
        ),
        (json!({"session_id": "s"}), 422, "invalid-body"),
    ] {
        let (status, _, problem) = post(&s.ask, &admin(), body.clone()).await;
        assert_eq!(status, expected, "{body} -> {problem}");
        assert!(
            problem["type"].as_str().unwrap().ends_with(kind),
            "{body} -> {problem}"
        );
    }
    let response = reqwest::Client::new()
        .post(s.ask.url("/v1/ask"))
        .json(&json!({"question": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(s.llm.hits(), 0);
}
