//! The per-user index shared by the session and refresh stores: which records a user has, kept
//! on the user's own cluster slot and updated only by Lua scripts on that slot.
//!
//! Three keys share the hash tag `{<prefix>:<kind>:<user>}`:
//!
//! - `…:live`: sorted set of record members scored by the record's expiry (never lower than
//!   the record's own: the score moves up *before* the record's expiry does);
//! - `…:doomed`: sorted set of members being deleted (a log of deletions in progress, replayed
//!   by the next operation on the user if a node dies half-way);
//! - `…:info`: hash member → `<created_at>:<handle>`, for eviction order and lookup by handle.
//!
//! Every script first prunes members whose score has passed, and sets each key to expire with
//! its last member, so the index never outlives the records it points to.

// Some helpers serve only the session store or only the hybrid stores.
#![cfg_attr(not(all(feature = "session", feature = "hybrid")), allow(dead_code))]

use std::sync::LazyLock;

use portcullis_core::StoreError;
use redis::Script;

use crate::connection::RedisConnection;

/// Removes members whose score (expiry) has passed and keeps each key alive exactly as long as
/// its last member. ARGV[1] is the caller's clock, ARGV[2] the margin in seconds.
///
/// Expiry is judged by Redis' own clock (`TIME`), never the caller's: with one node's clock
/// ahead, pruning by that clock dropped entries of sessions still live for every other node,
/// which then escaped logout-all. A score is the record's expiry moved onto Redis' clock (Redis
/// now + seconds the caller gives the record + a margin covering the time until the record
/// itself is written), so the entry lasts as long as the record's Redis TTL, whoever's clock
/// is wrong. Redis 7 replicates scripts by their effects, so `TIME` is allowed here.
const PRELUDE: &str = r"
local live, info, doomed = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(redis.call('TIME')[1])
local offset = now - tonumber(ARGV[1]) + tonumber(ARGV[2])
local function score_of(expires_at)
  return tonumber(expires_at) + offset
end
local function forget_info(m)
  if not redis.call('ZSCORE', live, m) and not redis.call('ZSCORE', doomed, m) then
    redis.call('HDEL', info, m)
  end
end
local function prune()
  for _, key in ipairs({live, doomed}) do
    local stale = redis.call('ZRANGEBYSCORE', key, '-inf', now)
    if #stale > 0 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      for _, m in ipairs(stale) do forget_info(m) end
    end
  end
end
local function expire_all()
  local latest = 0
  for _, key in ipairs({live, doomed}) do
    local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    if top[2] then
      local score = tonumber(top[2])
      if score > latest then latest = score end
      redis.call('EXPIRE', key, math.max(1, math.floor(score - now) + 1))
    end
  end
  if latest == 0 then
    redis.call('DEL', info)
  else
    redis.call('EXPIRE', info, math.max(1, math.floor(latest - now) + 1))
  end
end
local function doom(m)
  redis.call('ZADD', doomed, redis.call('ZSCORE', live, m), m)
  redis.call('ZREM', live, m)
end
local function created_of(m)
  local meta = redis.call('HGET', info, m)
  if not meta then return 0 end
  return tonumber(string.match(meta, '^(%d+):')) or 0
end
local function handle_of(m)
  local meta = redis.call('HGET', info, m)
  if not meta then return '' end
  return string.match(meta, '^%d+:(.*)$') or ''
end
prune()
";

/// ARGV: now, margin, member, expires_at, created_at, handle, max (the application's limit,
/// 0: none), policy (`refuse`|`evict`), bound (the store's own per-user bound, 0: none), when
/// full (`ask`: answer `{2}` rather than evict, so the caller can first drop leftovers that
/// should not count; `evict`: evict now).
///
/// The policy is `MemoryRefreshStore::create`'s: a member added again replaces itself and does
/// not count against itself; `refuse` refuses only at the application's limit; otherwise the
/// oldest members (by `created_at`, then member) past the smaller of the limit and the bound
/// are evicted. Count, eviction and insert are one script on the user's slot, so the cap is
/// exact however many nodes log one user in at once (single node and Cluster alike).
///
/// Returns `{0}` when refused, `{2}` when full and asked to, else `{1, evicted members, evicted
/// handles, doomed members}`.
static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}
local member, max, bound = ARGV[3], tonumber(ARGV[7]), tonumber(ARGV[9])
local evicted, handles = {{}}, {{}}
local count = redis.call('ZCARD', live)
if redis.call('ZSCORE', live, member) then count = count - 1 end
local cap = bound
if max > 0 then
  if count >= max and ARGV[8] == 'refuse' then return {{0}} end
  if cap == 0 or max < cap then cap = max end
end
if cap > 0 and count >= cap then
  if ARGV[10] == 'ask' then return {{2}} end
  local aged = {{}}
  for _, m in ipairs(redis.call('ZRANGE', live, 0, -1)) do
    if m ~= member then table.insert(aged, {{created_of(m), m}}) end
  end
  table.sort(aged, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  for i = 1, count - cap + 1 do
    local m = aged[i][2]
    table.insert(evicted, m)
    table.insert(handles, handle_of(m))
    doom(m)
  end
end
redis.call('ZADD', live, score_of(ARGV[4]), member)
redis.call('HSET', info, member, ARGV[5] .. ':' .. ARGV[6])
expire_all()
return {{1, evicted, handles, redis.call('ZRANGE', doomed, 0, -1)}}"
    ))
});

/// ARGV: now, margin, member, expires_at, created_at, handle, mode (`add`: add if absent, `xx`:
/// only raise an existing member). Never resurrects a doomed member. Returns 1 if the index holds it, 0
/// if it is doomed, 2 if it is absent (and mode is `xx`).
static BUMP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}
local member = ARGV[3]
if redis.call('ZSCORE', doomed, member) then return 0 end
local present = redis.call('ZSCORE', live, member)
if not present and ARGV[7] ~= 'add' then return 2 end
redis.call('ZADD', live, 'GT', score_of(ARGV[4]), member)
if not present then
  redis.call('HSET', info, member, ARGV[5] .. ':' .. ARGV[6])
end
expire_all()
return 1"
    ))
});

/// ARGV: now, margin, mode (`all`|`handle`), keep member or handle. Moves the matching live
/// members to `doomed`; returns `{found member or '', doomed members}`.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}
local found = ''
for _, m in ipairs(redis.call('ZRANGE', live, 0, -1)) do
  if ARGV[3] == 'all' then
    if m ~= ARGV[4] then doom(m) end
  elseif handle_of(m) == ARGV[4] then
    doom(m)
    found = m
    break
  end
end
expire_all()
return {{found, redis.call('ZRANGE', doomed, 0, -1)}}"
    ))
});

/// ARGV: now, margin. Returns `{live members, their created_at, doomed members}`.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}
local members = redis.call('ZRANGE', live, 0, -1)
local created = {{}}
for _, m in ipairs(members) do table.insert(created, tostring(created_of(m))) end
expire_all()
return {{members, created, redis.call('ZRANGE', doomed, 0, -1)}}"
    ))
});

/// ARGV: now, margin, members… whose records are gone: removes them everywhere.
static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}
for i = 3, #ARGV do
  redis.call('ZREM', live, ARGV[i])
  redis.call('ZREM', doomed, ARGV[i])
  redis.call('HDEL', info, ARGV[i])
end
expire_all()
return 1"
    ))
});

/// What [`UserIndex::add`] decided.
pub(crate) enum Added {
    /// The limit refused the new member.
    Refused,
    /// The user is at the cap and [`Cap::ask_when_full`] was set: nothing changed; drop the
    /// leftovers that should not count, then add again without asking.
    Full,
    /// Added; the members evicted to make room (with their handles), and every member whose
    /// record must now be deleted (the evicted plus any left over by an interrupted operation).
    Inserted {
        evicted: Vec<(String, String)>,
        doomed: Vec<String>,
    },
}

/// What [`UserIndex::bump`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bumped {
    /// The member is live in the index, with a score at least the one asked for.
    Held,
    /// The member is being deleted (logout-all, revoke, eviction): its record must not be
    /// extended.
    Doomed,
    /// The member is not in the index and was not added (`add` was false).
    Absent,
}

/// A per-user limit as the add script takes it.
#[derive(Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) max: u32,
    pub(crate) refuse: bool,
}

/// The store's own per-user bound, on top of the application's [`Limit`].
#[derive(Clone, Copy, Default)]
pub(crate) struct Cap {
    /// At most this many members per user (0: no bound); past it, the oldest are evicted.
    pub(crate) bound: u64,
    /// At the cap, answer [`Added::Full`] instead of evicting.
    pub(crate) ask_when_full: bool,
}

/// What a record is to its user's index.
pub(crate) struct Entry<'a> {
    pub(crate) member: &'a str,
    pub(crate) expires_at: u64,
    pub(crate) created_at: u64,
    pub(crate) handle: &'a str,
}

/// The three keys of one user's index.
pub(crate) struct UserIndex {
    keys: [String; 3],
}

impl UserIndex {
    /// `kind` separates the session index (`su`) from the refresh index (`ru`).
    pub(crate) fn new(prefix: &str, kind: &str, user_id: &str) -> Self {
        // The braces make the three keys one hash tag: one cluster slot, one script.
        let tag = format!("{{{prefix}:{kind}:{user_id}}}");
        Self {
            keys: [
                format!("{tag}:live"),
                format!("{tag}:info"),
                format!("{tag}:doomed"),
            ],
        }
    }

    fn invocation<'s>(
        &self,
        script: &'s Script,
        redis: &RedisConnection,
        now: u64,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        // The record is written after its index entry, within one bounded operation: the
        // entry's margin covers that delay, and the rounding of both clocks to whole seconds.
        let margin = redis.command_timeout().as_secs().saturating_add(2);
        invocation.arg(now).arg(margin);
        invocation
    }

    /// Adds a member, enforcing `limit` and `cap` atomically.
    pub(crate) async fn add(
        &self,
        redis: &RedisConnection,
        now: u64,
        entry: &Entry<'_>,
        limit: Option<Limit>,
        cap: Cap,
    ) -> Result<Added, StoreError> {
        let mut invocation = self.invocation(&ADD, redis, now);
        let (max, policy) = limit.map_or((0, "evict"), |limit| {
            (
                limit.max.max(1),
                if limit.refuse { "refuse" } else { "evict" },
            )
        });
        invocation
            .arg(entry.member)
            .arg(entry.expires_at)
            .arg(entry.created_at)
            .arg(entry.handle)
            .arg(max)
            .arg(policy)
            .arg(cap.bound)
            .arg(if cap.ask_when_full { "ask" } else { "evict" });
        let reply: Vec<redis::Value> = redis.eval(&invocation).await?;
        let mut reply = reply.into_iter();
        let status: i64 = decode(reply.next())?;
        match status {
            0 => return Ok(Added::Refused),
            2 => return Ok(Added::Full),
            _ => {}
        }
        let members: Vec<String> = decode(reply.next())?;
        let handles: Vec<String> = decode(reply.next())?;
        let doomed: Vec<String> = decode(reply.next())?;
        Ok(Added::Inserted {
            evicted: members.into_iter().zip(handles).collect(),
            doomed,
        })
    }

    /// Raises a member's score (adding it when `add`); never resurrects a doomed member.
    pub(crate) async fn bump(
        &self,
        redis: &RedisConnection,
        now: u64,
        entry: &Entry<'_>,
        add: bool,
    ) -> Result<Bumped, StoreError> {
        let mut invocation = self.invocation(&BUMP, redis, now);
        invocation
            .arg(entry.member)
            .arg(entry.expires_at)
            .arg(entry.created_at)
            .arg(entry.handle)
            .arg(if add { "add" } else { "xx" });
        let status: i64 = redis.eval(&invocation).await?;
        Ok(match status {
            0 => Bumped::Doomed,
            1 => Bumped::Held,
            _ => Bumped::Absent,
        })
    }

    /// Dooms every live member but `keep`; returns every doomed member.
    pub(crate) async fn take_all(
        &self,
        redis: &RedisConnection,
        now: u64,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut invocation = self.invocation(&TAKE, redis, now);
        invocation.arg("all").arg(keep.unwrap_or(""));
        let (_, doomed): (String, Vec<String>) = redis.eval(&invocation).await?;
        Ok(doomed)
    }

    /// Dooms the live member with this handle; returns it (if any) and every doomed member.
    pub(crate) async fn take_handle(
        &self,
        redis: &RedisConnection,
        now: u64,
        handle: &str,
    ) -> Result<(Option<String>, Vec<String>), StoreError> {
        let mut invocation = self.invocation(&TAKE, redis, now);
        invocation.arg("handle").arg(handle);
        let (found, doomed): (String, Vec<String>) = redis.eval(&invocation).await?;
        Ok(((!found.is_empty()).then_some(found), doomed))
    }

    /// The live members with their creation times, and the doomed members.
    pub(crate) async fn list(
        &self,
        redis: &RedisConnection,
        now: u64,
    ) -> Result<(Vec<(String, u64)>, Vec<String>), StoreError> {
        let invocation = self.invocation(&LIST, redis, now);
        let (members, created, doomed): (Vec<String>, Vec<String>, Vec<String>) =
            redis.eval(&invocation).await?;
        let live = members
            .into_iter()
            .zip(created)
            .map(|(member, created)| (member, created.parse().unwrap_or(0)))
            .collect();
        Ok((live, doomed))
    }

    /// Removes members whose records are gone.
    pub(crate) async fn forget(
        &self,
        redis: &RedisConnection,
        now: u64,
        members: &[String],
    ) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        let mut invocation = self.invocation(&FORGET, redis, now);
        for member in members {
            invocation.arg(member);
        }
        let _: i64 = redis.eval(&invocation).await?;
        Ok(())
    }

    /// Whether `member` is live in the index.
    pub(crate) async fn contains(
        &self,
        redis: &RedisConnection,
        member: &str,
    ) -> Result<bool, StoreError> {
        let score: Option<f64> = redis
            .query(redis::cmd("ZSCORE").arg(&self.keys[0]).arg(member))
            .await?;
        Ok(score.is_some())
    }
}

/// Seconds until `expires_at`, at least one: Redis drops a key about when its record expires.
pub(crate) fn ttl(expires_at: u64, now: u64) -> u64 {
    expires_at.saturating_sub(now).max(1)
}

fn decode<T: redis::FromRedisValue>(value: Option<redis::Value>) -> Result<T, StoreError> {
    let value = value.ok_or_else(|| StoreError::corrupt("short reply from an index script"))?;
    redis::from_redis_value(value).map_err(StoreError::corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_keys_share_one_hash_tag() {
        let index = UserIndex::new("app", "su", "alice");
        assert_eq!(
            index.keys,
            [
                "{app:su:alice}:live",
                "{app:su:alice}:info",
                "{app:su:alice}:doomed"
            ]
        );
        // A user id with braces ends the tag early, but identically for all three keys.
        let odd = UserIndex::new("app", "su", "a}b{c");
        let tags: Vec<_> = odd.keys.iter().map(|key| key.split('}').next()).collect();
        assert!(tags.iter().all(|tag| *tag == tags[0]));
    }
}
