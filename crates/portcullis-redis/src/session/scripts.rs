//! The Lua scripts of the session store: each write is one atomic script that also publishes
//! the store key on the near-cache invalidation channel.

use std::sync::LazyLock;

use redis::Script;

/// ARGV: record JSON, version, expires_at, absolute_expires_at, last_seen_at, user flag
/// (`some`|`none`), user id, ttl, invalidation channel, store key hex.
///
/// Every write script publishes the store key on the invalidation channel itself, so no write
/// reaches Redis without the near-caches hearing of it (see `near_cache.rs`).
pub(super) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'v', ARGV[2], 'e', ARGV[3], 'a', ARGV[4], 'l', ARGV[5])
if ARGV[6] == 'some' then redis.call('HSET', KEYS[1], 'u', ARGV[7]) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('PUBLISH', ARGV[9], ARGV[10])
return 1",
    )
});

/// ARGV: now, expected version, then as PUT (channel and key last). Returns `{status, '=' .. old user or ''}`; a
/// record expired by `now` is deleted (`missing`).
pub(super) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'v', 'e', 'a', 'u')
if not current[1] then return {'missing', ''} end
if math.min(tonumber(current[2]), tonumber(current[3])) <= tonumber(ARGV[1]) then
  -- Expired by the caller's clock, maybe not yet by Redis' TTL: end it for every node before
  -- the caller drops its index entry, so no node with a slower clock keeps it unindexed.
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[11], ARGV[12])
  return {'missing', ''}
end
if current[1] ~= ARGV[2] then return {'conflict', ''} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'v', ARGV[4], 'e', ARGV[5], 'a', ARGV[6], 'l', ARGV[7])
if ARGV[8] == 'some' then redis.call('HSET', KEYS[1], 'u', ARGV[9]) end
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('PUBLISH', ARGV[11], ARGV[12])
local previous = ''
if current[4] then previous = '=' .. current[4] end
return {'saved', previous}",
    )
});

/// ARGV: now, expires_at, last_seen_at, invalidation channel, store key hex. Returns 1 if the live session was touched.
pub(super) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'e', 'a')
local now = tonumber(ARGV[1])
if not current[1] or math.min(tonumber(current[1]), tonumber(current[2])) <= now then
  return 0
end
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'l', ARGV[3])
local deadline = math.min(tonumber(ARGV[2]), tonumber(current[2]))
redis.call('EXPIRE', KEYS[1], math.max(1, math.floor(deadline - now)))
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1",
    )
});

/// ARGV: now, invalidation channel, store key hex. Deletes the session; returns `{1 if it was live, '=' .. user or ''}`.
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'e', 'a', 'u')
if not current[1] then return {0, ''} end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
local live = 0
if math.min(tonumber(current[1]), tonumber(current[2])) > tonumber(ARGV[1]) then live = 1 end
local user = ''
if current[3] then user = '=' .. current[3] end
return {live, user}",
    )
});
