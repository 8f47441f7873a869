//! SQL guard cost: the guard's decision (parse, walk, function pass, re-render with the row cap)
//! over the 1034 Spider dev gold queries, against a p99 budget of 100 µs per query.
//!
//! Criterion measures the mean of one pass over the whole corpus and of one typical query; a plain
//! loop then times every query one by one, several rounds, and prints p50/p99/p99.9 per query,
//! which criterion does not give.
//!
//! Run: `cargo bench -p quarry-shared --bench guard -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use quarry_shared::policy::{RolePolicy, RowScope, TableGrant};
use quarry_shared::sql::{check, GuardOptions};

const SPIDER: &str = include_str!("../tests/fixtures/sql/spider_dev_gold.sql");

/// Rounds over the corpus for the percentiles (1034 × 30 ≈ 31,000 samples).
const ROUNDS: usize = 30;

/// Every table of `public`, no column limits: the role the Spider test uses.
fn role() -> RolePolicy {
    RolePolicy {
        name: "bench".into(),
        row_scope: RowScope::All,
        regions: None,
        tables: vec![TableGrant {
            schema: "public".into(),
            table: "*".into(),
            columns: None,
        }],
        rate_per_minute: 1,
        burst: 1,
    }
}

fn criterion_benches(
    c: &mut Criterion,
    queries: &[&str],
    role: &RolePolicy,
    options: &GuardOptions,
) {
    c.bench_function("guard/spider_dev_all_1034", |b| {
        b.iter(|| {
            for sql in queries {
                let _ = black_box(check(black_box(sql), role, options));
            }
        })
    });
    let typical = "SELECT T2.name, count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id \
                   WHERE T1.year >= 2014 GROUP BY T2.name ORDER BY count(*) DESC LIMIT 1";
    c.bench_function("guard/typical_join", |b| {
        b.iter(|| black_box(check(black_box(typical), role, options)))
    });
}

/// Times every query once per round and prints the per-query percentiles.
fn percentiles(queries: &[&str], role: &RolePolicy, options: &GuardOptions) {
    // Warm caches and branch predictors so the first calls do not count as the tail.
    for sql in queries {
        let _ = black_box(check(sql, role, options));
    }
    let mut times: Vec<(Duration, usize)> = Vec::with_capacity(queries.len() * ROUNDS);
    for _ in 0..ROUNDS {
        for (i, sql) in queries.iter().enumerate() {
            let start = Instant::now();
            let result = check(black_box(sql), role, options);
            times.push((start.elapsed(), i));
            assert!(
                black_box(result).is_ok(),
                "the Spider corpus is accepted: {sql}"
            );
        }
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)].0;
    let mean = times.iter().map(|(d, _)| *d).sum::<Duration>() / times.len() as u32;
    let (max, slowest) = times[times.len() - 1];
    println!(
        "{:<28} n={:<7} mean={:>9.2?} p50={:>9.2?} p99={:>9.2?} p99.9={:>9.2?} max={:>9.2?}",
        "guard/spider_dev per query",
        times.len(),
        mean,
        at(0.50),
        at(0.99),
        at(0.999),
        max,
    );
    println!(
        "slowest: {} bytes: {}",
        queries[slowest].len(),
        queries[slowest]
    );
}

fn main() {
    let queries: Vec<&str> = SPIDER.lines().filter(|l| !l.trim().is_empty()).collect();
    let role = role();
    let options = GuardOptions::default();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &queries, &role, &options);
    c.final_summary();
    // `cargo test --benches` runs each bench once in test mode; skip the long loop there.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!();
    percentiles(&queries, &role, &options);
}
