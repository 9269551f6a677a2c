//! Where the session+Redis stacks spend a round trip: `cargo run --release -p portcullis-bench
//! --bin redis-probe` (Redis at `REDIS_URL`, default 127.0.0.1:6379, under a unique prefix).
//!
//! Reads the same ~400-byte session payload with: portcullis' `RedisSessionStore::load`; a raw
//! redis-rs `HMGET` through a `ConnectionManager` configured as portcullis-redis configures it,
//! and through a plain `MultiplexedConnection`; and a raw fred `GET` (what tower-sessions'
//! Redis store sends). Each one request at a time and 32 in flight, on a current-thread runtime.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use portcullis_bench::{RedisTarget, session_record};
use portcullis_redis::{RedisConfig, RedisSessionStore};
use portcullis_session::SessionStore;
use redis::{AsyncCommands, aio::ConnectionManagerConfig};
use tower_sessions_redis_store::fred::{
    interfaces::HashesInterface,
    prelude::{ClientLike, Config, KeysInterface, Pool},
};

const SEQUENTIAL: u32 = 5_000;
const CONCURRENT: u32 = 32;
const BATCHES: u32 = 300;

async fn time<F, Fut>(op: F) -> (f64, f64)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..200 {
        op().await;
    }
    let start = Instant::now();
    for _ in 0..SEQUENTIAL {
        op().await;
    }
    let sequential = start.elapsed().as_secs_f64() * 1e6 / f64::from(SEQUENTIAL);
    let start = Instant::now();
    for _ in 0..BATCHES {
        futures_join((0..CONCURRENT).map(|_| op())).await;
    }
    let concurrent = start.elapsed().as_secs_f64() * 1e6 / f64::from(BATCHES * CONCURRENT);
    (sequential, concurrent)
}

async fn futures_join<Fut: Future<Output = ()>>(futures: impl Iterator<Item = Fut>) {
    let mut set: Vec<_> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let target = RedisTarget::from_env();
    let mut out = std::io::stdout().lock();
    runtime.block_on(async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let record = session_record(1, now);
        let json = serde_json::to_string(&record)?;

        let store = RedisSessionStore::new(
            RedisConfig::new(target.url.clone())
                .key_prefix(target.prefix.clone())
                .build()?,
        );
        let key = portcullis_core::SecretToken::generate().store_key();
        store.create(&key, &record, None).await?;

        let client = redis::Client::open(target.url.as_str())?;
        let manager = redis::aio::ConnectionManager::new_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(2),
        )
        .await?;
        let multiplexed = client.get_multiplexed_async_connection().await?;
        let hash = format!("{}:probe-hash", target.prefix);
        let string = format!("{}:probe-string", target.prefix);
        let mut c = multiplexed.clone();
        let _: () = c
            .hset_multiple(
                &hash,
                &[("r", json.as_str()), ("v", "0"), ("e", "1"), ("l", "1")],
            )
            .await?;
        let _: () = c.set_ex(&string, json.as_str(), 600).await?;
        let _: () = c.expire(&hash, 600).await?;

        let pool = Pool::new(Config::from_url(&target.url)?, None, None, None, 1)?;
        pool.init().await?;

        writeln!(
            out,
            "| read | µs/op, one at a time | µs/op, 32 in flight |\n|---|---:|---:|"
        )?;
        let (a, b) = time(|| async {
            assert!(store.load(&key).await.unwrap().is_some());
        })
        .await;
        writeln!(
            out,
            "| portcullis RedisSessionStore::load | {a:.1} | {b:.1} |"
        )?;
        let (a, b) = time(|| async {
            let mut c = manager.clone();
            let v: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&hash)
                .arg(&["r", "v", "e", "l"])
                .query_async(&mut c)
                .await
                .unwrap();
            assert!(v[0].is_some());
        })
        .await;
        writeln!(
            out,
            "| redis-rs ConnectionManager HMGET | {a:.1} | {b:.1} |"
        )?;
        let (a, b) = time(|| async {
            let mut c = multiplexed.clone();
            let v: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&hash)
                .arg(&["r", "v", "e", "l"])
                .query_async(&mut c)
                .await
                .unwrap();
            assert!(v[0].is_some());
        })
        .await;
        writeln!(
            out,
            "| redis-rs MultiplexedConnection HMGET | {a:.1} | {b:.1} |"
        )?;
        let (a, b) = time(|| async {
            let v: Option<String> = pool.get(&string).await.unwrap();
            assert!(v.is_some());
        })
        .await;
        writeln!(
            out,
            "| fred GET (tower-sessions' client) | {a:.1} | {b:.1} |"
        )?;
        let (a, b) = time(|| async {
            let v: Option<String> = pool.hget(&hash, "r").await.unwrap();
            assert!(v.is_some());
        })
        .await;
        writeln!(out, "| fred HGET | {a:.1} | {b:.1} |")?;

        let _: () = c.del(&[&hash, &string]).await?;
        store.delete(&key).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
