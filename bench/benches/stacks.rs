//! In-process cost of one authenticated request on every stack, through `oneshot` on a
//! current-thread runtime (no socket): `cargo bench -p portcullis-bench --bench stacks`.
//! `PORTCULLIS_BENCH_QUICK=1` shortens every measurement (about a minute in all);
//! `bench/report.py` turns the results into the tables of docs/BENCHMARKS.md.
//!
//! Groups: `me/<stack>` (GET /me, the handler asks for the user), `public/<stack>` (GET
//! /public with the same credential, nobody asks), `decode/<alg>` (a raw
//! `jsonwebtoken::decode` of the same token with the same checks, and portcullis'
//! `TokenVerifier::verify_now`), `scale/session-memory/<live sessions>`.

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use portcullis_bench::{
    AUDIENCE, App, HS256_SECRET, ISSUER, RedisTarget, Stack, User, alice, build, check, fill,
    hs256_issuer, jsonwebtoken_validation, session_app_over, validation,
};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, TokenVerifier};
use portcullis_session::{MemoryStore, MemoryStoreConfig};
use tokio::runtime::Runtime;
use tower::ServiceExt;

fn quick() -> bool {
    std::env::var_os("PORTCULLIS_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    if quick() {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
    } else {
        group
            .sample_size(40)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    }
}

fn bench_request(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    id: &str,
    app: &App,
    path: &str,
) {
    group.bench_function(id, |b| {
        b.to_async(runtime).iter(|| async {
            let response = app.router.clone().oneshot(app.request(path)).await.unwrap();
            debug_assert!(response.status().is_success());
            black_box(response)
        });
    });
}

fn stacks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisTarget::from_env();
    let mut apps = Vec::new();
    for stack in Stack::ALL {
        match runtime.block_on(async {
            let app = build(stack, &redis).await?;
            check(&app).await?;
            Ok::<_, portcullis_bench::BuildError>(app)
        }) {
            Ok(app) => apps.push((stack, app)),
            // A Redis stack without a Redis is left out, loudly; anything else is a bug.
            Err(e) if stack.needs_redis() => eprintln!("skipping {stack}: {e}"),
            Err(e) => panic!("{stack}: {e}"),
        }
    }
    for path in ["/me", "/public"] {
        let mut group = c.benchmark_group(path.trim_start_matches('/'));
        configure(&mut group);
        for (stack, app) in &apps {
            bench_request(&mut group, &runtime, stack.name(), app, path);
        }
        group.finish();
    }
}

/// What portcullis does per token against what `jsonwebtoken::decode` alone does.
fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    configure(&mut group);
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
        let issuer = match alg {
            Algorithm::HS256 => hs256_issuer(),
            _ => TokenIssuer::new(SigningKey::generate(alg).unwrap())
                .issuer(ISSUER)
                .audience(AUDIENCE),
        };
        let token = issuer.issue("alice", &alice()).unwrap().token;
        let key = match issuer.current_key().public_jwk() {
            Some(jwk) => {
                jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap())
                    .unwrap()
            }
            None => jsonwebtoken::DecodingKey::from_secret(HS256_SECRET),
        };
        let jwt_alg = match alg {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            _ => jsonwebtoken::Algorithm::EdDSA,
        };
        let jwt_validation = jsonwebtoken_validation(jwt_alg);
        let name = alg.to_string().to_lowercase();
        group.bench_function(format!("jsonwebtoken-{name}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<User>(black_box(&token), &key, &jwt_validation).unwrap()
            });
        });
        let verifier = TokenVerifier::new(issuer.key_set(), validation());
        group.bench_function(format!("portcullis-verify-{name}"), |b| {
            b.iter(|| verifier.verify_now(black_box(&token)).unwrap());
        });
    }
    group.finish();
}

/// GET /me on the session stack as the memory store holds more sessions: must stay flat.
fn scale(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("scale");
    configure(&mut group);
    for (label, live) in [("1k", 1_000), ("100k", 100_000), ("1m", 1_000_000)] {
        let store = MemoryStore::with_config(MemoryStoreConfig::default().max_sessions(2 * live));
        let app = runtime.block_on(async {
            fill(&store, live - 1).await;
            let app = session_app_over(store.clone()).await.unwrap();
            check(&app).await.unwrap();
            app
        });
        assert_eq!(store.len(), live);
        bench_request(
            &mut group,
            &runtime,
            &format!("session-memory/{label}"),
            &app,
            "/me",
        );
        drop(app);
        drop(store);
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    stacks(&mut criterion);
    decode(&mut criterion);
    scale(&mut criterion);
    criterion.final_summary();
}
