//! The demo's golden queries: question → SQL pairs over Chinook that ask shows the model as
//! examples. Written for teaching the schema's joins and conventions (money in `total` and
//! `unit_price * quantity`, dates in `invoice_date`); none is a question of `eval/sql`, so the
//! evaluation measures generalisation, not recall.

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
        "What is the average track length in minutes per album for albums by Led Zeppelin?",
        "SELECT al.title, round(avg(t.milliseconds) / 60000.0, 2) AS avg_minutes FROM album al JOIN artist ar ON ar.artist_id = al.artist_id JOIN track t ON t.album_id = al.album_id WHERE ar.name = 'Led Zeppelin' GROUP BY al.title",
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
];

/// Seeds (or refreshes) the pairs; pairs added by hand are left alone.
pub(super) async fn seed(client: &Client) -> Result<(), DemoError> {
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
