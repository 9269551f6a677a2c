//! `SessionStore` for [`RedisSessionStore`]: load, create, save, touch, delete and the
//! per-user operations, each one round trip.

use super::*;

impl SessionStore for RedisSessionStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let ticket = match &self.near {
            Some(near) => {
                if let Some(record) = self.near_hit(near, key, now) {
                    return Ok(Some(record));
                }
                near.reserve(key)
            }
            None => None,
        };
        let record_key = self.record_key(key);
        self.redis
            .bounded(async {
                Ok(match self.fetch_sized(&record_key, now).await? {
                    (Fetched::Live(record), json_len) => {
                        if let (Some(near), Some(ticket)) = (&self.near, ticket) {
                            near.fill(ticket, &record, json_len);
                        }
                        Some(*record)
                    }
                    (Fetched::Missing | Fetched::Expired, _) => None,
                })
            })
            .await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                let Some(user_id) = record.user_id.as_deref() else {
                    self.put(&record_key, record, now).await?;
                    return Ok(CreateOutcome::Created {
                        evicted: Vec::new(),
                    });
                };
                let index = self.index(user_id);
                let limit = limit.map(|limit| Limit {
                    max: limit.max,
                    refuse: limit.policy == LimitPolicy::RefuseNew,
                });
                let entry = entry(&member, record);
                // 1. The index first: a record never exists without its index entry.
                let ask = Cap {
                    bound: 0,
                    ask_when_full: true,
                };
                let mut added = index.add(&self.redis, now, &entry, limit, ask).await?;
                // At the limit, entries of expired or half-written sessions (an entry outlives
                // its record by a margin) must not cost a live session its place: drop them
                // first, then add (evicting if still full), as the memory store counts only
                // live sessions.
                let reaped = match added {
                    Added::Refused | Added::Full => self.reap(&index, now).await?,
                    Added::Inserted { .. } => 0,
                };
                if matches!(added, Added::Full) || (matches!(added, Added::Refused) && reaped > 0) {
                    added = index
                        .add(&self.redis, now, &entry, limit, Cap::default())
                        .await?;
                }
                let (evicted, doomed) = match added {
                    Added::Inserted { evicted, doomed } => (evicted, doomed),
                    Added::Refused => return Ok(CreateOutcome::LimitReached),
                    // Not asked the second time: the script evicts instead.
                    Added::Full => {
                        return Err(StoreError::corrupt("the index script asked twice"));
                    }
                };
                // 2. The record.
                self.put(&record_key, record, now).await?;
                // 3. A logout-all that ran between 1 and 2 removed the entry before the record
                //    existed: finish its job rather than leave an unindexed session.
                if !index.contains(&self.redis, &member).await? {
                    self.delete_record(&record_key, now).await?;
                }
                // 4. Delete the evicted (and any left over) records, then their index entries.
                self.finish(&index, now, &doomed).await?;
                Ok(CreateOutcome::Created {
                    evicted: evicted.into_iter().map(|(_, handle)| handle).collect(),
                })
            })
            .await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                // The index entry covers the new expiry before the record does.
                if let Some(user_id) = record.user_id.as_deref() {
                    self.index(user_id)
                        .bump(&self.redis, now, &entry(&member, record), true)
                        .await?;
                }
                let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
                let mut invocation = SAVE.key(&record_key);
                invocation
                    .arg(now)
                    .arg(expected_version)
                    .arg(json)
                    .arg(record.version)
                    .arg(record.expires_at)
                    .arg(record.absolute_expires_at)
                    .arg(record.last_seen_at);
                user_args(&mut invocation, record.user_id.as_deref());
                invocation.arg(ttl(expiry(record), now));
                self.publish_args(&mut invocation, &record_key);
                let result = self.redis.eval(&invocation).await;
                self.forget_locally(&record_key);
                let (status, previous): (String, String) = result?;
                match status.as_str() {
                    "saved" => {
                        // The session left its previous user: drop it from that index, now
                        // that the record no longer names them.
                        if let Some(previous) = previous.strip_prefix('=')
                            && record.user_id.as_deref() != Some(previous)
                        {
                            self.index(previous)
                                .forget(&self.redis, now, std::slice::from_ref(&member))
                                .await?;
                        }
                        Ok(SaveOutcome::Saved)
                    }
                    "conflict" => Ok(SaveOutcome::Conflict),
                    _ => {
                        // The record is gone (deleted or expired), but the bump above may have
                        // raised its index entry: drop it, or it would count against the
                        // user's session limit until the new expiry passes.
                        if let Some(user_id) = record.user_id.as_deref() {
                            self.index(user_id)
                                .forget(&self.redis, now, std::slice::from_ref(&member))
                                .await?;
                        }
                        Ok(SaveOutcome::Missing)
                    }
                }
            })
            .await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                let fields: Vec<Option<String>> = self
                    .redis
                    .query(redis::cmd("HMGET").arg(&record_key).arg(&["e", "a", "u"]))
                    .await?;
                let mut fields = fields.into_iter();
                let (Some(stored_expiry), Some(absolute)) =
                    (fields.next().flatten(), fields.next().flatten())
                else {
                    return Ok(false);
                };
                let absolute = parse(&absolute)?;
                if parse(&stored_expiry)?.min(absolute) <= now {
                    return Ok(false);
                }
                // Raise the index score before the record's expiry, so the index never lets go
                // of a live session.
                if let Some(user_id) = fields.next().flatten() {
                    let entry = Entry {
                        member: &member,
                        expires_at: expires_at.min(absolute),
                        created_at: 0,
                        handle: "",
                    };
                    match self
                        .index(&user_id)
                        .bump(&self.redis, now, &entry, false)
                        .await?
                    {
                        Bumped::Held => {}
                        // A logout-all, revoke or eviction is deleting it: never extend it.
                        Bumped::Doomed => return Ok(false),
                        // Live but unindexed (an index write lost in a failover): index it
                        // again before extending it, or logout-all could never reach it.
                        Bumped::Absent => {
                            if !self.reindex(&user_id, &record_key, now, &entry).await? {
                                return Ok(false);
                            }
                        }
                    }
                }
                let mut invocation = TOUCH.key(&record_key);
                invocation.arg(now).arg(expires_at).arg(last_seen_at);
                self.publish_args(&mut invocation, &record_key);
                let result = self.redis.eval(&invocation).await;
                self.forget_locally(&record_key);
                let touched: i64 = result?;
                Ok(touched == 1)
            })
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                // The record first: once it is gone, a leftover index entry is harmless.
                let (_, user) = self.delete_record(&record_key, now).await?;
                if let Some(user_id) = user {
                    self.index(&user_id)
                        .forget(&self.redis, now, std::slice::from_ref(&member))
                        .await?;
                }
                Ok(())
            })
            .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        self.redis
            .bounded(async {
                let (live, doomed) = index.list(&self.redis, now).await?;
                self.finish(&index, now, &doomed).await?;
                let fetched = try_join_all(live.iter().map(|(member, _)| async move {
                    self.fetch(&self.member_key(member), now).await
                }))
                .await?;
                let mut records = Vec::with_capacity(live.len());
                let mut gone = Vec::new();
                for ((member, created), fetched) in live.into_iter().zip(fetched) {
                    match fetched {
                        // A session that changed hands is listed under its new user only.
                        Fetched::Live(record) if record.user_id.as_deref() == Some(user_id) => {
                            records.push(*record);
                        }
                        Fetched::Missing if created.saturating_add(REAP_GRACE_SECS) <= now => {
                            gone.push(member);
                        }
                        _ => {}
                    }
                }
                index.forget(&self.redis, now, &gone).await?;
                records.sort_by(|a, b| (a.created_at, &a.handle).cmp(&(b.created_at, &b.handle)));
                Ok(records)
            })
            .await
    }

    async fn delete_by_handle(&self, user_id: &str, handle: &str) -> Result<bool, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        self.redis
            .bounded(async {
                let (found, doomed) = index.take_handle(&self.redis, now, handle).await?;
                let live = self.finish(&index, now, &doomed).await?;
                Ok(found.is_some_and(|found| {
                    doomed
                        .iter()
                        .zip(live)
                        .any(|(member, live)| live && *member == found)
                }))
            })
            .await
    }

    /// Each session is rewritten by the same compare-and-set as a save (so the index and
    /// expiry rules hold), retried when a concurrent save wins.
    async fn replace_user(&self, user_id: &str, user: &UserJson) -> Result<u64, StoreError> {
        const MAX_ATTEMPTS: usize = 8;
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        let (live, _) = self.redis.bounded(index.list(&self.redis, now)).await?;
        let mut rewritten = 0;
        for (member, _) in live {
            let Some(key) = StoreKey::from_hex(&member) else {
                continue;
            };
            let mut attempts = 0;
            loop {
                let Some(mut record) = self.load(&key).await? else {
                    break;
                };
                // A session that changed hands belongs to its new user now.
                if record.user_id.as_deref() != Some(user_id) {
                    break;
                }
                let expected = record.version;
                record.user = Some(user.clone());
                record.version = expected.wrapping_add(1);
                match self.save(&key, &record, expected).await? {
                    SaveOutcome::Saved => {
                        rewritten += 1;
                        break;
                    }
                    SaveOutcome::Missing => break,
                    SaveOutcome::Conflict => {
                        attempts += 1;
                        if attempts == MAX_ATTEMPTS {
                            // Fail closed: the caller must not report a change half made.
                            return Err(StoreError::unavailable(
                                "concurrent saves kept winning over a user replacement",
                            ));
                        }
                    }
                }
            }
        }
        Ok(rewritten)
    }

    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&StoreKey>,
    ) -> Result<u64, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        let keep = keep.map(StoreKey::to_hex);
        self.redis
            .bounded(async {
                let doomed = index.take_all(&self.redis, now, keep.as_deref()).await?;
                let live = self.finish(&index, now, &doomed).await?;
                Ok(live.into_iter().filter(|live| *live).count() as u64)
            })
            .await
    }
}
