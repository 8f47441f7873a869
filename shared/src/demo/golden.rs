//! The demo's golden queries: question → SQL pairs over Chinook that ask shows the model as
//! examples. Written for teaching the schema's joins and conventions (money in `total` and
//! `unit_price * quantity`, dates in `invoice_date`); none is a question of `eval/sql` or a
//! paraphrase of one (a test keeps every pair below 0.80 cosine similarity), so the evaluation
//! measures generalisation, not recall.

use tokio_postgres::Client;

use super::DemoError;

/// The pairs, `(question, sql)`.
pub const GOLDEN: &[(&str, &str)] = &[
    (
        "How many albums does each artist have? Show the artist name and album count.",
        "SELECT ar.name AS artist, count(*) AS albums FROM artist ar JOIN album al ON al.artist_id = ar.artist_id GROUP BY ar.name",
    ),
    (
        "What was the total amount invoiced per billing country?",
        "SELECT billing_country, round(sum(total), 2) AS invoiced FROM invoice GROUP BY billing_country",
    ),
    (
        "What is the average unit price of a track in each genre?",
        "SELECT g.name AS genre, round(avg(t.unit_price), 2) AS avg_price FROM genre g JOIN track t ON t.genre_id = g.genre_id GROUP BY g.name",
    ),
    (
        "How much did tracks by each composer earn from invoice lines?",
        "SELECT t.composer, round(sum(il.unit_price * il.quantity), 2) AS revenue FROM invoice_line il JOIN track t ON t.track_id = il.track_id WHERE t.composer IS NOT NULL GROUP BY t.composer",
    ),
    (
        "What was the revenue in each quarter of 2008?",
        "SELECT extract(quarter FROM invoice_date) AS quarter, round(sum(total), 2) AS revenue FROM invoice WHERE invoice_date >= '2008-01-01' AND invoice_date < '2009-01-01' GROUP BY 1 ORDER BY 1",
    ),
    (
        "Show the email address of every customer in Brazil.",
        "SELECT first_name, last_name, email FROM customer WHERE country = 'Brazil'",
    ),
    (
        "What is the average track length in minutes per album for albums by Led Zeppelin?",
        "SELECT al.title, round(avg(t.milliseconds) / 60000.0, 2) AS avg_minutes FROM album al JOIN artist ar ON ar.artist_id = al.artist_id JOIN track t ON t.album_id = al.album_id WHERE ar.name = 'Led Zeppelin' GROUP BY al.title",
    ),
    (
        "How many different artists appear on each playlist, with 0 for an empty playlist?",
        "SELECT p.name AS playlist, count(DISTINCT al.artist_id) AS artists FROM playlist p LEFT JOIN playlist_track pt ON pt.playlist_id = p.playlist_id LEFT JOIN track t ON t.track_id = pt.track_id LEFT JOIN album al ON al.album_id = t.album_id GROUP BY p.playlist_id, p.name",
    ),
    (
        "Which customers bought nothing in 2011?",
        "SELECT c.first_name, c.last_name FROM customer c WHERE NOT EXISTS (SELECT 1 FROM invoice i WHERE i.customer_id = c.customer_id AND i.invoice_date >= '2011-01-01' AND i.invoice_date < '2012-01-01')",
    ),
    (
        "How many different customers bought something in each year?",
        "SELECT extract(year FROM i.invoice_date) AS year, count(DISTINCT i.customer_id) AS customers FROM invoice i GROUP BY 1 ORDER BY 1",
    ),
    (
        "Which tracks did customers from Norway buy?",
        "SELECT DISTINCT t.name AS track FROM customer c JOIN invoice i ON i.customer_id = c.customer_id JOIN invoice_line il ON il.invoice_id = i.invoice_id JOIN track t ON t.track_id = il.track_id WHERE c.country = 'Norway'",
    ),
    (
        "How many units of each artist's tracks were sold?",
        "SELECT ar.name AS artist, sum(il.quantity) AS units FROM artist ar JOIN album al ON al.artist_id = ar.artist_id JOIN track t ON t.album_id = al.album_id JOIN invoice_line il ON il.track_id = t.track_id GROUP BY ar.name",
    ),
    (
        "In how many different countries do each support agent's customers live?",
        "SELECT e.first_name, e.last_name, count(DISTINCT c.country) AS countries FROM employee e JOIN customer c ON c.support_rep_id = e.employee_id GROUP BY e.employee_id, e.first_name, e.last_name",
    ),
    (
        "What is the average delay of departures per origin airport?",
        "SELECT origin, round(avg(dep_delay), 2) AS avg_dep_delay FROM flights.flights GROUP BY origin",
    ),
    (
        "How many flights did each carrier operate? Show the airline name.",
        "SELECT a.name AS airline, count(*) AS flights FROM flights.flights f JOIN flights.airlines a ON a.carrier = f.carrier GROUP BY a.name",
    ),
    // The constructs a small model does not reach for unprompted: the previous period (lag), a
    // comparison with an overall average, a conditional share, HAVING on a distinct count,
    // durations in milliseconds, "never" as NOT EXISTS, several aggregates at once, and the
    // single top row.
    (
        "Compared with the previous month, how did the invoice count move through 2009?",
        "WITH m AS (SELECT extract(month FROM invoice_date)::int AS invoice_month, count(*) AS invoices FROM invoice WHERE invoice_date >= '2009-01-01' AND invoice_date < '2010-01-01' GROUP BY 1) SELECT invoice_month, invoices, invoices - lag(invoices) OVER (ORDER BY invoice_month) AS change FROM m ORDER BY invoice_month",
    ),
    (
        "Which genres have a higher average track price than the overall average?",
        "SELECT g.name AS genre, round(avg(t.unit_price), 2) AS avg_price FROM genre g JOIN track t ON t.genre_id = g.genre_id GROUP BY g.genre_id, g.name HAVING avg(t.unit_price) > (SELECT avg(unit_price) FROM track)",
    ),
    (
        "What percentage of each genre's tracks cost more than 0.99?",
        "SELECT g.name AS genre, round(100.0 * count(*) FILTER (WHERE t.unit_price > 0.99) / count(*), 2) AS pct_above FROM genre g JOIN track t ON t.genre_id = g.genre_id GROUP BY g.genre_id, g.name",
    ),
    (
        "Which artists cover 3 or more genres?",
        "SELECT ar.name AS artist, count(DISTINCT t.genre_id) AS genres FROM artist ar JOIN album al ON al.artist_id = ar.artist_id JOIN track t ON t.album_id = al.album_id GROUP BY ar.artist_id, ar.name HAVING count(DISTINCT t.genre_id) >= 3",
    ),
    (
        "Which albums contain a track lasting under 30 seconds?",
        "SELECT DISTINCT al.title FROM album al JOIN track t ON t.album_id = al.album_id WHERE t.milliseconds < 30000",
    ),
    (
        "Which artists have earned nothing from sales?",
        "SELECT ar.name AS artist FROM artist ar WHERE NOT EXISTS (SELECT 1 FROM invoice_line il JOIN track t ON t.track_id = il.track_id JOIN album al ON al.album_id = t.album_id WHERE al.artist_id = ar.artist_id)",
    ),
    (
        "For each media type, what are the cheapest, dearest and mean track prices?",
        "SELECT m.name AS media_type, min(t.unit_price) AS cheapest, max(t.unit_price) AS dearest, round(avg(t.unit_price), 2) AS mean_price FROM media_type m JOIN track t ON t.media_type_id = m.media_type_id GROUP BY m.media_type_id, m.name",
    ),
    (
        "Which artist's tracks earned the most from invoice lines?",
        "SELECT ar.name AS artist, sum(il.unit_price * il.quantity) AS revenue FROM invoice_line il JOIN track t ON t.track_id = il.track_id JOIN album al ON al.album_id = t.album_id JOIN artist ar ON ar.artist_id = al.artist_id GROUP BY ar.artist_id, ar.name ORDER BY revenue DESC LIMIT 1",
    ),
];

/// Pairs earlier versions seeded and this one does not: paraphrases of evaluation questions
/// (`How many tracks are on each playlist?` is c24's question). Seeding deletes them where the
/// SQL is still the one the demo wrote, so a database loaded before keeps no stale example and
/// a pair edited by hand stays.
pub const RETIRED: &[(&str, &str)] = &[
    (
        "Which 3 genres have the most tracks?",
        "SELECT g.name AS genre, count(*) AS tracks FROM genre g JOIN track t ON t.genre_id = g.genre_id GROUP BY g.name ORDER BY tracks DESC LIMIT 3",
    ),
    (
        "How much revenue did each media type bring in from invoice lines?",
        "SELECT m.name AS media_type, round(sum(il.unit_price * il.quantity), 2) AS revenue FROM invoice_line il JOIN track t ON t.track_id = il.track_id JOIN media_type m ON m.media_type_id = t.media_type_id GROUP BY m.name",
    ),
    (
        "How many invoices were there in each month of 2010?",
        "SELECT extract(month FROM invoice_date) AS month, count(*) AS invoices FROM invoice WHERE invoice_date >= '2010-01-01' AND invoice_date < '2011-01-01' GROUP BY 1 ORDER BY 1",
    ),
    (
        "List the customers from Canada with their city.",
        "SELECT first_name, last_name, city FROM customer WHERE country = 'Canada'",
    ),
    (
        "Which employees support the most customers?",
        "SELECT e.first_name, e.last_name, count(*) AS customers FROM employee e JOIN customer c ON c.support_rep_id = e.employee_id GROUP BY e.employee_id, e.first_name, e.last_name ORDER BY customers DESC",
    ),
    (
        "How many tracks are on each playlist?",
        "SELECT p.name AS playlist, count(pt.track_id) AS tracks FROM playlist p LEFT JOIN playlist_track pt ON pt.playlist_id = p.playlist_id GROUP BY p.playlist_id, p.name",
    ),
    (
        "Which customers never bought a Classical track?",
        "SELECT c.first_name, c.last_name FROM customer c WHERE NOT EXISTS (SELECT 1 FROM invoice i JOIN invoice_line il ON il.invoice_id = i.invoice_id JOIN track t ON t.track_id = il.track_id JOIN genre g ON g.genre_id = t.genre_id WHERE i.customer_id = c.customer_id AND g.name = 'Classical')",
    ),
];

/// Seeds (or refreshes) the pairs and deletes the retired ones; pairs added by hand are left
/// alone.
pub(super) async fn seed(client: &Client) -> Result<(), DemoError> {
    let retire = client
        .prepare("DELETE FROM quarry_meta.golden_queries WHERE question = $1 AND sql = $2")
        .await?;
    for (question, sql) in RETIRED {
        client.execute(&retire, &[question, sql]).await?;
    }
    let statement = client
        .prepare(
            "INSERT INTO quarry_meta.golden_queries (question, sql) VALUES ($1, $2) \
             ON CONFLICT (question) DO UPDATE SET sql = EXCLUDED.sql",
        )
        .await?;
    for (question, sql) in GOLDEN {
        client.execute(&statement, &[question, sql]).await?;
    }
    Ok(())
}

#[cfg(all(test, feature = "embed"))]
mod tests {
    use std::path::PathBuf;

    use super::GOLDEN;
    use crate::rag::embed::{Embedder, MODEL_FOLDER};

    /// Cosine similarity (the embeddings are unit vectors) at or above which a golden question
    /// counts as a paraphrase of an evaluation question.
    const PARAPHRASE: f32 = 0.80;

    /// The questions of the evaluation and of its hold-out set.
    fn eval_questions() -> Vec<(String, String)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../eval/sql");
        let mut questions = Vec::new();
        for file in ["chinook.jsonl", "chinook-holdout.jsonl"] {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            questions.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_str().unwrap().to_owned(),
                    question_proper(v["question"].as_str().unwrap()).to_owned(),
                )
            }));
        }
        questions
    }

    /// The question without the sentences after it that say what to return ("Return the
    /// year and the revenue."): those make two askings of one question look far apart.
    fn question_proper(text: &str) -> &str {
        let end = ["? ", ". "]
            .iter()
            .filter_map(|p| text.find(p).map(|i| i + 1))
            .min()
            .unwrap_or(text.len());
        &text[..end]
    }

    /// The evaluation measures generalisation only if the examples the model is shown are not
    /// the questions it is asked: no golden question may be a paraphrase of one in `eval/sql`.
    #[test]
    fn no_golden_question_paraphrases_an_evaluation_question() {
        let dir = std::env::var_os("QUARRY_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("QUARRY_MODELS_DIR is not set: run `make test`"));
        let embedder = Embedder::load(&dir.join(MODEL_FOLDER)).unwrap();
        let eval = eval_questions();
        assert!(eval.len() >= 70, "{} evaluation questions", eval.len());
        let eval_texts: Vec<&str> = eval.iter().map(|(_, q)| q.as_str()).collect();
        let golden_texts: Vec<&str> = GOLDEN.iter().map(|(q, _)| *q).collect();
        let eval_vectors = embedder.embed(&eval_texts).unwrap();
        let golden_vectors = embedder.embed(&golden_texts).unwrap();
        let mut close = Vec::new();
        for (golden, g) in golden_texts.iter().zip(&golden_vectors) {
            for ((id, question), e) in eval.iter().zip(&eval_vectors) {
                let similarity: f32 = g.iter().zip(e).map(|(a, b)| a * b).sum();
                if similarity >= PARAPHRASE {
                    close.push(format!("{similarity:.2} {id} {question:?} ~ {golden:?}"));
                }
            }
        }
        assert!(close.is_empty(), "{close:#?}");
    }
}
