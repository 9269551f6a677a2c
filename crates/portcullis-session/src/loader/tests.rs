use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_core::revocation::InProcessFeed;

use serde_json::{Value, json};

use super::*;

fn counting_loader(
    role: Arc<RwLock<Option<&'static str>>>,
    calls: Arc<AtomicUsize>,
) -> UserLoaderBuilder {
    UserLoader::builder(move |user_id: String| {
        let role = *role.read().unwrap();
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, StoreError>(role.map(|role| json!({"user": user_id, "role": role}))) }
    })
}

fn role_of(user: Option<UserJson>) -> Option<String> {
    user.map(|user| {
        user.decode::<Value>().unwrap()["role"]
            .as_str()
            .unwrap()
            .to_owned()
    })
}

#[tokio::test]
async fn caches_until_a_change_is_announced_on_any_node() {
    let role = Arc::new(RwLock::new(Some("advertiser")));
    let calls = Arc::new(AtomicUsize::new(0));
    let feed = InProcessFeed::new();
    let node_a = counting_loader(role.clone(), calls.clone())
        .feed(feed.clone())
        .build()
        .await
        .unwrap();
    let node_b = counting_loader(role.clone(), calls.clone())
        .feed(feed)
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            role_of(node_b.load("alice").await.unwrap()).as_deref(),
            Some("advertiser")
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "cached after the first load"
    );
    *role.write().unwrap() = Some("admin");
    node_a.user_changed("alice").await.unwrap();
    assert_eq!(
        role_of(node_b.load("alice").await.unwrap()).as_deref(),
        Some("admin")
    );
    assert_eq!(
        role_of(node_b.load("alice").await.unwrap()).as_deref(),
        Some("admin")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    *role.write().unwrap() = None;
    node_a.user_changed("alice").await.unwrap();
    assert_eq!(node_b.load("alice").await.unwrap(), None, "deleted");
}

#[tokio::test]
async fn bypasses_the_cache_while_the_feed_is_behind_and_stays_bounded() {
    let role = Arc::new(RwLock::new(Some("advertiser")));
    let calls = Arc::new(AtomicUsize::new(0));
    let loader = counting_loader(role, calls.clone())
        .capacity(2)
        .build()
        .await
        .unwrap();
    loader.changes().set_caught_up(false);
    loader.load("alice").await.unwrap();
    loader.load("alice").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(loader.cached(), 0);
    loader.changes().set_caught_up(true);
    for user in ["a", "b", "c", "d"] {
        loader.load(user).await.unwrap();
    }
    assert_eq!(loader.cached(), 2);
}

#[tokio::test]
async fn a_change_during_a_load_makes_that_copy_stale() {
    let feed = InProcessFeed::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let other = RevocationList::new();
    feed.subscribe(other).await.unwrap();
    let announcer = feed.clone();
    let counted = calls.clone();
    let loader = UserLoader::builder(move |user_id: String| {
        let announcer = announcer.clone();
        let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                // Another node announces a change while this read is in flight.
                let change = UserRevocation {
                    user_id: user_id.clone(),
                    not_before_ms: 0,
                    until: u64::MAX,
                };
                RevocationFeed::publish_user(&announcer, &change).await?;
            }
            Ok::<_, StoreError>(Some(user_id))
        }
    })
    .feed(feed)
    .build()
    .await
    .unwrap();
    loader.load("alice").await.unwrap();
    loader.load("alice").await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the racing copy was not trusted"
    );
}
