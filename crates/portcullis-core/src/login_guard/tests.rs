use std::{
    net::IpAddr,
    sync::{Arc, mpsc},
};

use bytes::Bytes;
use http::{Response, StatusCode, header};

use super::*;
use crate::ManualClock;

fn guard(clock: &ManualClock) -> LoginGuard {
    let counter = MemoryAttemptCounter::new().with_clock(Arc::new(clock.clone()));
    LoginGuard::new(counter)
        .account_backoff(Backoff::new(3, Duration::from_secs(10)))
        .client_backoff(Backoff::new(5, Duration::from_secs(10)))
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

async fn attempt(
    guard: &LoginGuard,
    account: &str,
    client: Option<IpAddr>,
    right: bool,
) -> Result<&'static str, AuthRejection> {
    let attempt = LoginAttempt::new(account).with_client(client);
    guard
        .verify(attempt, move || {
            if right {
                Ok("signed in")
            } else {
                Err(AuthRejection::invalid_credentials("wrong"))
            }
        })
        .await
}

fn status(result: &Result<&'static str, AuthRejection>) -> u16 {
    result
        .as_ref()
        .map_or_else(|r| r.status().as_u16(), |_| 200)
}

fn retry_after(rejection: &AuthRejection) -> String {
    let response: Response<Bytes> = rejection.to_response();
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_account_locks_after_its_free_failures_even_for_the_right_password() {
    let clock = ManualClock::new();
    let guard = guard(&clock);
    for _ in 0..3 {
        assert_eq!(status(&attempt(&guard, "alice", None, false).await), 401);
    }
    let locked = attempt(&guard, "alice", None, true).await.unwrap_err();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&locked), "10");
    // Case does not open a second counter.
    assert_eq!(status(&attempt(&guard, "ALICE", None, true).await), 429);
    clock.advance(Duration::from_secs(4));
    let later = attempt(&guard, "alice", None, true).await.unwrap_err();
    assert_eq!(retry_after(&later), "6");
    clock.advance(Duration::from_secs(6));
    assert_eq!(status(&attempt(&guard, "alice", None, true).await), 200);
}

#[tokio::test]
async fn back_off_doubles_and_success_resets_the_account() {
    let clock = ManualClock::new();
    let guard = guard(&clock);
    for _ in 0..3 {
        attempt(&guard, "alice", None, false).await.unwrap_err();
    }
    clock.advance(Duration::from_secs(10));
    // The fourth failure locks for twice as long.
    attempt(&guard, "alice", None, false).await.unwrap_err();
    let locked = attempt(&guard, "alice", None, true).await.unwrap_err();
    assert_eq!(retry_after(&locked), "20");
    clock.advance(Duration::from_secs(20));
    assert_eq!(status(&attempt(&guard, "alice", None, true).await), 200);
    // After the success the account has its free failures again.
    for _ in 0..2 {
        assert_eq!(status(&attempt(&guard, "alice", None, false).await), 401);
    }
    assert_eq!(status(&attempt(&guard, "alice", None, true).await), 200);
}

#[tokio::test]
async fn accounts_and_clients_are_limited_independently() {
    let clock = ManualClock::new();
    let guard = guard(&clock);
    let attacker = ip("198.51.100.1");
    // One address spraying many accounts: no account locks, the address does (after 5).
    for n in 0..5 {
        let account = format!("user{n}");
        assert_eq!(
            status(&attempt(&guard, &account, attacker, false).await),
            401
        );
    }
    assert_eq!(status(&attempt(&guard, "user9", attacker, true).await), 429);
    // Another address is not affected, nor are those accounts from elsewhere.
    assert_eq!(
        status(&attempt(&guard, "user0", ip("203.0.113.5"), true).await),
        200
    );
    // One account attacked from many addresses locks; the addresses do not.
    for n in 0..3 {
        let client = ip(&format!("192.0.2.{n}"));
        assert_eq!(status(&attempt(&guard, "bob", client, false).await), 401);
    }
    assert_eq!(
        status(&attempt(&guard, "bob", ip("192.0.2.200"), true).await),
        429
    );
    assert_eq!(
        status(&attempt(&guard, "carol", ip("192.0.2.0"), true).await),
        200
    );
    // A success does not whitewash the address.
    assert_eq!(status(&attempt(&guard, "dave", attacker, true).await), 429);
}

#[tokio::test]
async fn other_rejections_pass_through_uncounted() {
    let clock = ManualClock::new();
    let guard = guard(&clock);
    for _ in 0..10 {
        let result = guard
            .verify(LoginAttempt::new("alice"), || {
                Err::<(), _>(AuthRejection::invalid_request("bad body"))
            })
            .await;
        assert_eq!(result.unwrap_err().status(), StatusCode::BAD_REQUEST);
    }
    assert!(guard.counter().is_empty());
}

#[tokio::test]
async fn saturation_answers_503_with_retry_after_and_a_panic_frees_the_slot() {
    let guard = LoginGuard::default().max_concurrent(1).max_waiting(0);
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel();
    let busy = {
        let guard = guard.clone();
        tokio::spawn(async move {
            guard
                .verify(LoginAttempt::new("alice"), move || {
                    let _ = started.send(());
                    let _ = wait.recv();
                    Ok(())
                })
                .await
        })
    };
    running.await.unwrap();
    let refused = attempt(&guard, "bob", None, true).await.unwrap_err();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&refused), "1");
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
    // A check that panics is a 503, and its slot is free again.
    let panicked = guard
        .verify(LoginAttempt::new("bob"), || -> Result<(), AuthRejection> {
            panic!("the hash library fell over")
        })
        .await
        .unwrap_err();
    assert_eq!(panicked.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(status(&attempt(&guard, "bob", None, true).await), 200);
}

#[tokio::test]
async fn callers_wait_in_a_bounded_queue_for_a_bounded_time() {
    let guard = LoginGuard::default()
        .max_concurrent(1)
        .max_waiting(1)
        .queue_timeout(Duration::from_millis(200));
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel();
    let holder = {
        let guard = guard.clone();
        tokio::spawn(async move {
            guard
                .verify(LoginAttempt::new("a"), move || {
                    let _ = started.send(());
                    let _ = wait.recv();
                    Ok(())
                })
                .await
        })
    };
    running.await.unwrap();
    let waiter = {
        let guard = guard.clone();
        tokio::spawn(async move { attempt(&guard, "b", None, true).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The queue (1) is full: the third caller is refused at once.
    assert_eq!(status(&attempt(&guard, "c", None, true).await), 503);
    // The waiter gives up after the queue timeout.
    assert_eq!(status(&waiter.await.unwrap()), 503);
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(guard.waiting.load(Ordering::SeqCst), 0);
    assert_eq!(status(&attempt(&guard, "c", None, true).await), 200);
}

#[test]
fn guard_and_attempt_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LoginGuard>();
    assert_send_sync::<MemoryAttemptCounter>();
    assert_send_sync::<LoginAttempt<'static>>();
    assert_send_sync::<ClientAddress>();
}

#[test]
fn debug_redacts_the_key_secret() {
    let guard = LoginGuard::default().key_secret(b"hunter2");
    let debug = format!("{guard:?}");
    assert!(debug.contains("REDACTED") && !debug.contains("hunter2"));
}
