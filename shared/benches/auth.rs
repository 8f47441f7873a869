//! Token verification cost: the part of Quarry's per-request budget (p99 < 50 µs for verification
//! and the policy decision together) that `shared::auth` spends.
//!
//! Criterion measures the mean of `Verifier::verify_cached` for a typical HS256 token and for RS256
//! and ES256 tokens whose key is already cached; a plain loop then times single calls to report
//! p50/p99/p99.9, which criterion does not give.
//!
//! Run: `cargo bench -p quarry-shared --bench auth -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
use criterion::Criterion;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use quarry_shared::auth::{
    bearer_token_from_headers, parse_jwk_set, JwkSet, KeySource, KeySourceError, Verifier,
    VerifierConfig,
};
use quarry_shared::policy::{Policy, Resource, RolePolicy, RowScope, TableGrant};

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";
const RSA_PRIVATE: &[u8] = include_bytes!("../src/auth/testdata/rsa_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../src/auth/testdata/ec_private.pem");
const JWKS: &[u8] = include_bytes!("../src/auth/testdata/jwks.json");

/// Serves the test key set from memory, so the bench measures verification, not I/O.
struct StaticKeys(JwkSet);

impl KeySource for StaticKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, KeySourceError>> {
        let set = self.0.clone();
        Box::pin(async move { Ok(set) })
    }
}

struct Fixture {
    name: &'static str,
    token: String,
    /// Calls timed one by one for the percentiles.
    samples: usize,
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the bench host's clock is after 1970")
        .as_secs();
    // A typical Quarry token: the three governance claims plus the registered ones.
    let claims = serde_json::json!({
        "sub": "user-1234", "role": "analyst", "region": "emea",
        "iss": "https://issuer.example", "aud": "quarry",
        "iat": now, "exp": now + 3600,
    });
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).expect("test keys sign")
}

fn setup() -> (Verifier, Vec<Fixture>) {
    let set = parse_jwk_set(JWKS).expect("the committed JWKS parses");
    let config = VerifierConfig {
        hs256_secret: Some(SECRET.into()),
        issuer: Some("https://issuer.example".into()),
        audience: Some("quarry".into()),
        ..VerifierConfig::default()
    };
    let verifier = Verifier::new(
        config,
        Some(Arc::new(StaticKeys(set)) as Arc<dyn KeySource>),
    )
    .expect("valid bench config");
    // Load the JWKS once, as a warm service would have it; the benchmark then never fetches.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(verifier.refresh_keys())
        .expect("static keys load");

    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("test RSA key");
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE).expect("test EC key");
    let fixtures = vec![
        Fixture {
            name: "hs256",
            token: sign(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            ),
            samples: 100_000,
        },
        Fixture {
            name: "rs256_cached_key",
            token: sign(Algorithm::RS256, Some("rsa-1"), &rsa),
            samples: 100_000,
        },
        Fixture {
            name: "es256_cached_key",
            token: sign(Algorithm::ES256, Some("ec-1"), &ec),
            samples: 20_000,
        },
    ];
    for f in &fixtures {
        // A bench of a failing path would measure the wrong thing.
        if let Err(e) = verifier.verify_cached(&f.token) {
            panic!("{} token does not verify: {e}", f.name);
        }
    }
    (verifier, fixtures)
}

fn criterion_benches(c: &mut Criterion, verifier: &Verifier, fixtures: &[Fixture]) {
    let mut group = c.benchmark_group("verify_cached");
    for f in fixtures {
        group.bench_function(f.name, |b| {
            b.iter(|| verifier.verify_cached(black_box(&f.token)))
        });
    }
    // What a handler does per request: find the token in the headers, then verify it.
    let mut headers = HeaderMap::new();
    let value = format!("Bearer {}", fixtures[0].token);
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&value).expect("a JWT is a valid header value"),
    );
    group.bench_function("hs256_from_headers", |b| {
        b.iter(|| {
            let token = bearer_token_from_headers(black_box(&headers))?;
            verifier.verify_cached(token)
        })
    });
    group.finish();
}

/// The analyst role of the demo policy, with a few other roles around it as in production.
fn demo_policy() -> Policy {
    let grant = |table: &str| TableGrant {
        schema: "public".into(),
        table: table.into(),
        columns: None,
    };
    let mut policy = Policy::default();
    for (name, tables) in [
        (
            "analyst",
            vec![
                "customer",
                "invoice",
                "invoice_line",
                "track",
                "album",
                "artist",
                "genre",
                "media_type",
            ],
        ),
        (
            "catalog",
            vec![
                "track",
                "album",
                "artist",
                "genre",
                "media_type",
                "playlist",
                "playlist_track",
            ],
        ),
        ("finance", vec!["invoice", "invoice_line", "customer"]),
    ] {
        policy.roles.insert(
            name.into(),
            RolePolicy {
                name: name.into(),
                row_scope: RowScope::OwnRegion,
                regions: Some(
                    ["americas", "apac", "emea"]
                        .iter()
                        .map(|r| (*r).to_owned())
                        .collect(),
                ),
                tables: tables.into_iter().map(grant).collect(),
                rate_per_minute: 120,
                burst: 30,
            },
        );
    }
    policy
}

/// What every governed request costs before its handler: the token out of the headers, verified,
/// the caller admitted to the endpoint, and one resource decision.
fn decide(verifier: &Verifier, policy: &Policy, headers: &HeaderMap, resource: &Resource) -> bool {
    let Ok(token) = bearer_token_from_headers(headers) else {
        return false;
    };
    let Ok(principal) = verifier.verify_cached(token) else {
        return false;
    };
    policy
        .admit(&principal.role, &principal.region, "/v1/sql")
        .is_ok()
        && policy
            .authorize(&principal.role, &principal.region, resource)
            .is_ok()
}

/// Times `samples` single calls of `call` and prints the percentiles.
fn percentiles(label: &str, samples: usize, mut call: impl FnMut() -> bool) {
    // Warm caches and branch predictors so the first calls do not count as the tail.
    for _ in 0..1_000 {
        black_box(call());
    }
    let mut times: Vec<Duration> = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        let result = call();
        times.push(start.elapsed());
        assert!(black_box(result), "{label}: the measured path must succeed");
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{:<40} n={:<7} mean={:>9.2?} p50={:>9.2?} p99={:>9.2?} p99.9={:>9.2?} max={:>9.2?}",
        label,
        times.len(),
        mean,
        at(0.50),
        at(0.99),
        at(0.999),
        times[times.len() - 1],
    );
}

fn main() {
    let (verifier, fixtures) = setup();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &verifier, &fixtures);
    c.final_summary();
    // `cargo test --benches` runs each bench once in test mode; skip the long loop there.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!();
    let policy = demo_policy();
    let resource: Resource = "table:public.invoice".parse().expect("a valid resource");
    for f in &fixtures {
        percentiles(&format!("verify_cached/{}", f.name), f.samples, || {
            verifier.verify_cached(black_box(&f.token)).is_ok()
        });
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {}", f.token);
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&value).expect("a JWT is a valid header value"),
        );
        percentiles(&format!("verify+policy/{}", f.name), f.samples, || {
            decide(&verifier, &policy, black_box(&headers), &resource)
        });
    }
}
