//! `quarry advise`: run the index advisor against DATABASE_URL and print its advice.

use clap::Args;
use quarry_index_advisor::advisor::{self, Options};
use quarry_shared::db;

/// Arguments of `quarry advise`.
#[derive(Args)]
pub struct AdviseArgs {
    /// Create the proposed indexes (CONCURRENTLY, one at a time, each recorded in the audit log).
    #[arg(long)]
    apply: bool,
    /// Statements to consider, by total execution time.
    #[arg(long, default_value_t = 20)]
    top: i64,
    /// Ignore statements called fewer times.
    #[arg(long, default_value_t = 2)]
    min_calls: i64,
}

/// Runs the advisor and prints one line per proposed index.
pub async fn run(args: &AdviseArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=200).contains(&args.top) && args.min_calls >= 1,
        "--top must be 1-200 and --min-calls at least 1"
    );
    let (_, url) = super::settings_with_db()?;
    let mut client = db::connect_once(&url).await?;
    let options = Options {
        top: args.top,
        min_calls: args.min_calls,
        ..Options::default()
    };
    let report = advisor::run(&mut client, &options).await?;
    println!(
        "{} statements considered in {:.0} ms",
        report.statements, report.elapsed_ms
    );
    for skipped in &report.skipped {
        println!("skipped {}: {}", skipped.queryid, skipped.reason);
    }
    if report.advice.is_empty() {
        println!("no index would help the workload");
    }
    for advice in &report.advice {
        println!(
            "{:>5.1}% {:>10} bytes  {}  (cost {:.0} -> {:.0}, {} statements)",
            advice.improvement_pct,
            advice.estimated_size_bytes,
            advice.create_statement,
            advice.cost_before,
            advice.cost_after,
            advice.queryids.len()
        );
        if args.apply {
            advisor::apply(&client, advice).await?;
            client
                .execute(
                    "INSERT INTO quarry_meta.audit_log (sub, role, function, action, resource, allowed, reason)
                     VALUES ('cli', 'operator', 'index-advisor', 'create-index', $1, true, 'created')",
                    &[&format!("index:{}.{}({})", advice.table_schema, advice.table_name, advice.columns.join(","))],
                )
                .await?;
            println!("       created");
        }
    }
    Ok(())
}
