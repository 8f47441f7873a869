//! Per-request cost of the `auth` component under wasmtime: a fresh instance from the
//! pre-instantiated component ([`Host::instantiate`]), and a whole request (instance, settings and
//! policy parsed, token verified, decision, response collected), with the on-demand and the
//! pooling instance allocator. Prints the component's size and the percentiles.
//!
//! ```sh
//! cargo build -p quarry-auth --target wasm32-wasip2 --release --no-default-features --features wasm
//! cargo run --release -p quarry-auth-wasm-test --example instantiate -- 2000
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use quarry_auth_wasm_test::{build_component, Allocation, Host};
use quarry_shared::auth::{mint_hs256, TokenClaims};

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";
/// The demo policy as `quarry policy export` prints it (four roles, 23 grants).
const POLICY: &str = r#"{"version": 1, "roles": {
  "admin": {"row_scope": "all", "regions": ["*"], "tables": [
    {"schema": "flights", "table": "*"}, {"schema": "public", "table": "*"}]},
  "analyst": {"row_scope": "own_region", "regions": ["americas", "apac", "emea"], "tables": [
    {"schema": "public", "table": "album"}, {"schema": "public", "table": "artist"},
    {"schema": "public", "table": "customer"}, {"schema": "public", "table": "genre"},
    {"schema": "public", "table": "invoice"}, {"schema": "public", "table": "invoice_line"},
    {"schema": "public", "table": "media_type"}, {"schema": "public", "table": "track"}]},
  "catalog": {"row_scope": "all", "regions": ["*"], "tables": [
    {"schema": "public", "table": "album"}, {"schema": "public", "table": "artist"},
    {"schema": "public", "table": "genre"}, {"schema": "public", "table": "media_type"},
    {"schema": "public", "table": "playlist"}, {"schema": "public", "table": "playlist_track"},
    {"schema": "public", "table": "track"}]},
  "finance": {"row_scope": "own_region", "regions": ["americas", "apac", "emea"], "tables": [
    {"schema": "public", "table": "customer", "columns": ["city", "company", "country",
      "customer_id", "first_name", "last_name", "postal_code", "region", "state", "support_rep_id"]},
    {"schema": "public", "table": "invoice"}, {"schema": "public", "table": "invoice_line"}]}
}}"#;

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e6 / samples.len() as f64;
    println!(
        "{label:<44} mean {mean:>7.1} µs  p50 {:>7.1}  p99 {:>7.1}  max {:>8.1}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let wasm = build_component()?;
    println!(
        "component {} : {} bytes ({:.2} MiB)",
        wasm.display(),
        std::fs::metadata(&wasm)?.len(),
        std::fs::metadata(&wasm)?.len() as f64 / (1024.0 * 1024.0)
    );
    let env: Vec<(String, String)> = [("JWT_SECRET", SECRET), ("QUARRY_POLICY_JSON", POLICY)]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let token = mint_hs256(
        SECRET.as_bytes(),
        &TokenClaims {
            sub: "bench".into(),
            role: "finance".into(),
            region: "emea".into(),
            exp: now + 3600,
            iat: now,
            nbf: None,
            iss: None,
            aud: None,
        },
    )?;
    let request = || {
        http::Request::builder()
            .method("POST")
            .uri("http://localhost/v1/authorize")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Bytes::from_static(
                br#"{"action": "read", "resource": "column:public.customer.email"}"#,
            ))
    };
    for allocation in [Allocation::OnDemand, Allocation::Pooling] {
        let started = Instant::now();
        let host = Host::new(&wasm, allocation)?;
        if allocation == Allocation::OnDemand {
            println!("imports: {}", host.imports().join(", "));
        }
        println!(
            "{allocation:?}: compile + link + pre-instantiate {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        // Warm-up: first instances fault in memory and code pages.
        for _ in 0..50 {
            host.instantiate(&env).await?;
            host.call(&env, request()?).await?;
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            host.instantiate(&env).await?;
            samples.push(t.elapsed());
        }
        percentiles(&format!("{allocation:?}: instantiate"), samples);
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let answer = host.call(&env, request()?).await?;
            samples.push(t.elapsed());
            anyhow::ensure!(answer.parts.status == 200, "{:?}", answer.body);
        }
        percentiles(
            &format!("{allocation:?}: whole /v1/authorize request"),
            samples,
        );
    }
    Ok(())
}
