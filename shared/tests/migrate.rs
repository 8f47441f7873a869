//! The migrator against a real PostgreSQL: applies once, records, refuses edited history, and
//! leaves the database as it was when a migration fails.

use quarry_shared::db::migrate::{self, MigrateError, Migration};
use quarry_shared::testing::TestDb;

fn migration(version: i64, name: &str, sql: &str) -> Migration {
    Migration {
        version,
        name: name.to_owned(),
        sql: sql.to_owned(),
    }
}

async fn table_exists(client: &tokio_postgres::Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn embedded_migrations_apply_once_and_load_the_extensions() {
    let db = TestDb::empty().await;
    let mut client = db.connect().await;
    let all = migrate::embedded().unwrap();

    let first = migrate::run(&mut client, &all).await.unwrap();
    assert_eq!(
        first.applied,
        all.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let second = migrate::run(&mut client, &all).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied.len(), all.len());

    let recorded: i64 = client
        .query_one("SELECT count(*) FROM quarry_meta.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, all.len() as i64);

    let rows = client
        .query("SELECT extname, extversion FROM pg_extension", &[])
        .await
        .unwrap();
    let version = |ext: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == ext)
            .map(|r| r.get::<_, String>(1))
    };
    let vector = version("vector").expect("pgvector installed");
    let mut parts = vector.split('.').map(|p| p.parse::<u32>().unwrap());
    assert!(
        (parts.next().unwrap(), parts.next().unwrap()) >= (0, 8),
        "pgvector {vector} is older than 0.8"
    );
    assert!(version("hypopg").is_some());
    assert!(version("pg_stat_statements").is_some());
    // pg_stat_statements only works when preloaded; querying it proves that.
    client
        .query("SELECT count(*) FROM pg_stat_statements", &[])
        .await
        .expect("pg_stat_statements is preloaded");
}

#[tokio::test]
async fn a_failed_migration_leaves_the_database_as_it_was() {
    let db = TestDb::empty().await;
    let mut client = db.connect().await;
    let good = migration(1, "good", "CREATE TABLE kept (id int)");
    let bad = migration(
        2,
        "bad",
        "CREATE TABLE half_done (id int); INSERT INTO kept VALUES (1); SELECT * FROM no_such_table",
    );

    let err = migrate::run(&mut client, &[good.clone(), bad])
        .await
        .unwrap_err();
    match err {
        MigrateError::Failed {
            version, message, ..
        } => {
            assert_eq!(version, 2);
            assert!(message.contains("no_such_table"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(
        table_exists(&client, "kept").await,
        "the migration before the failure stays applied"
    );
    assert!(
        !table_exists(&client, "half_done").await,
        "the failed migration left a table behind"
    );
    let rows: i64 = client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "the failed migration's insert survived");
    let versions: Vec<i64> = client
        .query("SELECT version FROM quarry_meta.schema_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1]);

    // Fixed, it applies; the first one is not re-run.
    let fixed = migration(2, "bad", "CREATE TABLE half_done (id int)");
    let report = migrate::run(&mut client, &[good, fixed]).await.unwrap();
    assert_eq!(report.applied, vec![2]);
    assert_eq!(report.already_applied, vec![1]);
}

#[tokio::test]
async fn edited_or_unknown_history_is_refused() {
    let db = TestDb::empty().await;
    let mut client = db.connect().await;
    migrate::run(&mut client, &[migration(1, "a", "CREATE TABLE a (id int)")])
        .await
        .unwrap();

    let edited = migrate::run(
        &mut client,
        &[migration(1, "a", "CREATE TABLE a (id bigint)")],
    )
    .await;
    assert!(
        matches!(edited, Err(MigrateError::Changed { version: 1, .. })),
        "{edited:?}"
    );

    let unknown = migrate::run(&mut client, &[]).await;
    assert!(
        matches!(unknown, Err(MigrateError::Unknown(1))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn concurrent_migrators_take_turns() {
    let db = TestDb::empty().await;
    let all = migrate::embedded().unwrap();
    let (mut a, mut b) = (db.connect().await, db.connect().await);
    let (ra, rb) = tokio::join!(migrate::run(&mut a, &all), migrate::run(&mut b, &all));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // Exactly one of them applied everything; the other found it done.
    assert_eq!(ra.applied.len() + rb.applied.len(), all.len());
    assert!(ra.applied.is_empty() || rb.applied.is_empty());
}
