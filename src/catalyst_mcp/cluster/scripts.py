"""The Lua scripts that change shared legacy sessions in Redis, each one atomic.

Keys (``P`` is the deployment's ``{prefix}:``, one hash tag, so one Redis Cluster slot):

* ``P s:<id>``: the session (a hash: who opened it, version, client capabilities and info, log
  level, and ``holder``: the instance whose GET stream relays its messages, while one does);
  ``P s:<id>:subs`` its resource subscriptions (a set); ``P s:<id>:out`` the messages waiting
  for a stream (a list). All three expire after ``gateway.session_idle_seconds`` unused.
* ``P c:<subject>`` and ``P sessions``: the caller's sessions and everyone's, by last use (sorted
  sets, scores in milliseconds of the Redis clock): the caps.
* ``P u:<uri>``: the sessions subscribed to a resource; ``P uris``: the resources anyone is
  subscribed to (every instance subscribes to them upstream).

Times come from the Redis server's clock (``TIME``), never an instance's.
"""

from __future__ import annotations

__all__ = [
    "CLAIM",
    "CREATE",
    "DELETE",
    "DELIVER",
    "LEVEL",
    "NOTIFY",
    "RELEASE",
    "SUBSCRIBE",
    "TOUCH",
    "UNSUBSCRIBE",
]

_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local pre = ARGV[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# End one session: its keys, its place in the caps' sets and in the resources' subscriber
# sets. ``ended`` lists the sessions ended, ``freed`` the resources nobody follows any more.
_DROP = """
local ended, freed = {}, {}
local function drop(sid)
  local skey = pre .. 's:' .. sid
  for _, uri in ipairs(redis.call('SMEMBERS', skey .. ':subs')) do
    local ukey = pre .. 'u:' .. uri
    redis.call('SREM', ukey, sid)
    if redis.call('SCARD', ukey) == 0 then
      redis.call('SREM', pre .. 'uris', uri)
      table.insert(freed, uri)
    end
  end
  local subject = redis.call('HGET', skey, 'sub')
  redis.call('DEL', skey, skey .. ':subs', skey .. ':out')
  if subject then redis.call('ZREM', pre .. 'c:' .. subject, sid) end
  redis.call('ZREM', pre .. 'sessions', sid)
  table.insert(ended, sid)
end
"""

# ARGV: P, id, subject, idle ms, busy ms, per-caller cap, global cap, then the hash's fields
# and values. A full cap ends its least recently used idle session (no stream open, unused
# for ``busy`` ms); when every one is busy: {'caller' | 'global', count, ended, freed}.
CREATE = (
    _PRELUDE
    + _DROP
    + """
local sid, subject = ARGV[2], ARGV[3]
local idle, busy = tonumber(ARGV[4]), tonumber(ARGV[5])
local ckey, akey = pre .. 'c:' .. subject, pre .. 'sessions'
local function room(zkey, cap)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - idle)
  if redis.call('ZCARD', zkey) < cap then return true end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now - busy)) do
    if redis.call('HEXISTS', pre .. 's:' .. old, 'holder') == 0 then
      drop(old)
      return true
    end
  end
  return false
end
if not room(ckey, tonumber(ARGV[6])) then
  return {'caller', redis.call('ZCARD', ckey), ended, freed}
end
if not room(akey, tonumber(ARGV[7])) then
  return {'global', redis.call('ZCARD', akey), ended, freed}
end
local skey = pre .. 's:' .. sid
redis.call('HSET', skey, unpack(ARGV, 8))
redis.call('PEXPIRE', skey, idle)
redis.call('ZADD', ckey, now, sid)
redis.call('PEXPIRE', ckey, idle)
redis.call('ZADD', akey, now, sid)
return {'ok', 0, ended, freed}
"""
)

# ARGV: P, idle ms, then (id, subject) pairs: sessions in use on this instance. Their keys
# live on; returns the ids of those that no longer exist (ended elsewhere, or expired).
TOUCH = (
    _PRELUDE
    + """
local idle = tonumber(ARGV[2])
local gone = {}
for i = 3, #ARGV, 2 do
  local sid, subject = ARGV[i], ARGV[i + 1]
  local skey = pre .. 's:' .. sid
  if redis.call('PEXPIRE', skey, idle) == 0 then
    table.insert(gone, sid)
  else
    redis.call('PEXPIRE', skey .. ':subs', idle)
    redis.call('PEXPIRE', skey .. ':out', idle)
    redis.call('ZADD', pre .. 'c:' .. subject, now, sid)
    redis.call('PEXPIRE', pre .. 'c:' .. subject, idle)
    redis.call('ZADD', pre .. 'sessions', now, sid)
  end
end
return gone
"""
)

# ARGV: P, id. Returns {1, freed} when the session existed, {0, {}} otherwise.
DELETE = (
    _PRELUDE
    + _DROP
    + """
if redis.call('EXISTS', pre .. 's:' .. ARGV[2]) == 0 then return {0, {}} end
drop(ARGV[2])
return {1, freed}
"""
)

# One message for one session (the body shared by DELIVER and NOTIFY): to the instance that
# holds its stream, if that one still listens; else into the session's list, unless ``dedupe``
# and the same message already waits there (a second "re-read this resource" says nothing
# new). Returns -1: no such session, 1: sent to the stream's instance, 2: already waiting,
# 0: queued.
_SEND = """
local function send(sid, message, limit, dedupe, skip_holder)
  local skey = pre .. 's:' .. sid
  if redis.call('EXISTS', skey) == 0 then return -1 end
  local holder = redis.call('HGET', skey, 'holder')
  if holder and not skip_holder then
    local envelope = '{"k":"deliver","s":"' .. sid .. '","m":' .. message .. '}'
    if redis.call('PUBLISH', pre .. 'i:' .. holder, envelope) > 0 then return 1 end
  end
  local out = skey .. ':out'
  if dedupe and redis.call('LPOS', out, message) then return 2 end
  redis.call('RPUSH', out, message)
  if redis.call('LLEN', out) > limit then redis.call('LPOP', out) end
  redis.call('PEXPIRE', out, math.max(redis.call('PTTL', skey), 1))
  return 0
end
"""

# ARGV: P, id, message (JSON), outbox limit, '1' to go to the outbox whoever holds the stream.
DELIVER = (
    _PRELUDE
    + _SEND
    + """
return send(ARGV[2], ARGV[3], tonumber(ARGV[4]), false, ARGV[5] == '1')
"""
)

# ARGV: P, uri, message, outbox limit. The message for every session subscribed to ``uri``;
# sessions that no longer exist leave the set. Returns {sent, 1 if nobody follows it now}.
NOTIFY = (
    _PRELUDE
    + _SEND
    + """
local ukey = pre .. 'u:' .. ARGV[2]
local sent = 0
for _, sid in ipairs(redis.call('SMEMBERS', ukey)) do
  if send(sid, ARGV[3], tonumber(ARGV[4]), true, false) < 0 then
    redis.call('SREM', ukey, sid)
  else
    sent = sent + 1
  end
end
if redis.call('SCARD', ukey) == 0 then
  redis.call('SREM', pre .. 'uris', ARGV[2])
  return {sent, 1}
end
return {sent, 0}
"""
)

# ARGV: P, id, instance. This instance's stream relays the session's messages from now on:
# returns {1, the messages that waited} ({0, {}}: no such session).
CLAIM = (
    _PRELUDE
    + """
local skey = pre .. 's:' .. ARGV[2]
if redis.call('EXISTS', skey) == 0 then return {0, {}} end
redis.call('HSET', skey, 'holder', ARGV[3])
local out = skey .. ':out'
local waiting = redis.call('LRANGE', out, 0, -1)
if #waiting > 0 then redis.call('DEL', out) end
return {1, waiting}
"""
)

# ARGV: P, id, instance. Its stream closed: no instance relays the session's messages (unless
# another has claimed it since).
RELEASE = (
    _PRELUDE
    + """
local skey = pre .. 's:' .. ARGV[2]
if redis.call('HGET', skey, 'holder') == ARGV[3] then redis.call('HDEL', skey, 'holder') end
return 1
"""
)

# ARGV: P, id, uri, most subscriptions. Returns -1: no such session, -2: too many,
# 0: already subscribed, 1: subscribed, 2: subscribed, and the first to follow ``uri``.
SUBSCRIBE = (
    _PRELUDE
    + """
local skey = pre .. 's:' .. ARGV[2]
if redis.call('EXISTS', skey) == 0 then return -1 end
local subs = skey .. ':subs'
if redis.call('SISMEMBER', subs, ARGV[3]) == 1 then return 0 end
if redis.call('SCARD', subs) >= tonumber(ARGV[4]) then return -2 end
redis.call('SADD', subs, ARGV[3])
redis.call('PEXPIRE', subs, math.max(redis.call('PTTL', skey), 1))
redis.call('SADD', pre .. 'u:' .. ARGV[3], ARGV[2])
if redis.call('SADD', pre .. 'uris', ARGV[3]) == 1 then return 2 end
return 1
"""
)

# ARGV: P, id, uri. Returns 0: was not subscribed, 1: unsubscribed, 2: and nobody follows
# ``uri`` any more.
UNSUBSCRIBE = (
    _PRELUDE
    + """
local skey = pre .. 's:' .. ARGV[2]
if redis.call('SREM', skey .. ':subs', ARGV[3]) == 0 then return 0 end
local ukey = pre .. 'u:' .. ARGV[3]
redis.call('SREM', ukey, ARGV[2])
if redis.call('SCARD', ukey) == 0 then
  redis.call('SREM', pre .. 'uris', ARGV[3])
  return 2
end
return 1
"""
)

# ARGV: P, id, level. The session's log level (nothing, if the session has ended).
LEVEL = (
    _PRELUDE
    + """
local skey = pre .. 's:' .. ARGV[2]
if redis.call('EXISTS', skey) == 1 then redis.call('HSET', skey, 'lvl', ARGV[3]) end
return 1
"""
)
