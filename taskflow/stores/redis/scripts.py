"""The Lua scripts of a Redis store: each runs on the server as one atomic step.

Every script may be sent twice (the client tries a dropped connection again,
see connection.py), so each has the same effect the second time. They start
with a `#!lua` line (Redis 7 or later): a script that writes is then refused
as a whole when the server is out of memory, instead of stopping halfway.
Scripts that only give memory back (`allow-oom`) still run then, so claims
can be released on a full server.
"""
from __future__ import annotations

# A claim's value is "<token> <owner record as JSON>": the scripts know a claim by its token. Its
# key lives for two leases from its last renewal, on the server's clock: for the first lease the
# claim is live; for the second it is stale, visible to be judged and taken over; then the server
# drops it. A claim is stale when its time to live (PTTL) is under one lease.

# Attempts whose worker died: P:holders maps each claimed hash to the claim made last (until its
# release), P:died maps "<hash>:<token of a dead claim>" to what was known of it (see deaths.py).
# A claim replaced by a takeover, or found expired by the next claim while P:holders still names
# it, was never released: its worker died. Counting is part of the script that replaces the claim,
# so one racer counts each dead claim, once.
local_deaths = """
local function mine(value, token)
  return value and string.sub(value, 1, #token + 1) == token .. ' '
end
local function died(dead, hash, reason)
  local token = string.match(dead, '^(%S+)') or 'unreadable'
  redis.call('HSET', KEYS[4], hash .. ':' .. token,
             cjson.encode({claim = dead, reason = reason, time = tonumber(redis.call('TIME')[1])}))
  local n, prefix = 0, hash .. ':'
  for _, f in ipairs(redis.call('HKEYS', KEYS[4])) do
    if string.sub(f, 1, #prefix) == prefix then n = n + 1 end
  end
  return n
end
"""

# KEYS: claim, claims set, holders, died. ARGV: claim value, time to live in ms (two leases), hash,
# token, why a claim found expired counts.
# 0 if another holds the task; else 1 + the dead attempts counted now when the claim before this
# one had expired unreleased (1 when none was: also when this very claim was made by an earlier send).
CLAIM = "#!lua" + local_deaths + """
local held = redis.call('GET', KEYS[1])
if held == false then
  local counted = 0
  local before = redis.call('HGET', KEYS[3], ARGV[3])
  if before and not mine(before, ARGV[4]) then counted = died(before, ARGV[3], ARGV[5]) end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
  return 1 + counted
end
if mine(held, ARGV[4]) then return 1 end
return 0
"""

# KEYS: claim, claims set, result, holders, died. ARGV: token, time to live in ms, claim value to
# make again, hash.
# 1 if renewed; 2 if the claim had vanished (its owner was stopped for two leases, or it was
# deleted) and nobody else claimed the task, so it was made again; -1 if it vanished and the
# task's result is in place (finished elsewhere); 0 if another worker holds the task now: then
# this owner came back, and its attempt, counted as dead by whoever took over, is not.
RENEW = """#!lua flags=allow-oom
local held = redis.call('GET', KEYS[1])
if held == false then
  if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[4])
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[3])
  return 2
end
if string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
redis.call('HDEL', KEYS[5], ARGV[4] .. ':' .. ARGV[1])
return 0
"""

# KEYS: claim, claims set, holders. ARGV: token, hash. 1 if removed, 0 if it was not ours.
RELEASE = """#!lua flags=allow-oom
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
return 0
"""

# Whether the claim in KEYS[1] is still the value judged stale, ARGV[1], and still stale: its
# owner is gone (ARGV[2] = '0': nobody can renew it) or its time to live is under ARGV[2] ms
# (not renewed since it was judged).
local_still_stale = """
local held = redis.call('GET', KEYS[1])
local stale = held == ARGV[1]
if stale and ARGV[2] ~= '0' then stale = redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) end
"""

# KEYS: claim, claims set, holders, died. ARGV: value judged stale, lease in ms of that claim ('0':
# its owner is gone), new value, time to live in ms, hash, why it was stale.
# 1 + the dead attempts counted now if the judged claim was replaced by ours (also on a second
# send), 0 if it changed meanwhile (renewed, released, taken).
TAKE_OVER = "#!lua" + local_still_stale + local_deaths + """
if stale then
  local counted = died(ARGV[1], ARGV[5], ARGV[6])
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  redis.call('SADD', KEYS[2], ARGV[5])
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[3])
  return 1 + counted
end
if held == ARGV[3] then return 1 + died(ARGV[1], ARGV[5], ARGV[6]) end
return 0
"""

# KEYS: claim, claims set, holders. ARGV: value judged stale, its lease in ms ('0': its owner is
# gone), hash. 1 if removed (cleanup's: the attempt does not count, as in a folder store).
REMOVE_STALE = "#!lua flags=allow-oom" + local_still_stale + """
if stale then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
  if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[1] then redis.call('HDEL', KEYS[3], ARGV[3]) end
  return 1
end
return 0
"""

# KEYS: claim. {content or false, ms left}.
INSPECT = """#!lua flags=no-writes
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""

# KEYS: claims set. ARGV: claim key prefix. {hash, content, ms left, ...} of every live claim;
# members whose claim expired are dropped from the set on the way.
LIST_CLAIMS = """#!lua flags=allow-oom
local out = {}
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. h
  local held = redis.call('GET', key)
  if held then
    out[#out + 1] = h
    out[#out + 1] = held
    out[#out + 1] = redis.call('PTTL', key)
  else
    redis.call('SREM', KEYS[1], h)
  end
end
return out
"""

# Make a result visible, with its entry in the finished set, in one step.
# KEYS: result, finished set, claim (any key when unconditional), chunks being written.
# ARGV: claim token ('' for none), hash, then for a result in one piece: header, size, data.
# 1 when in place; 0 when the claim is not ours (nothing written); -1 when the chunks are gone
# (expired: the writer was stopped for longer than their lifetime).
COMMIT = """#!lua
if ARGV[1] ~= '' then
  local held = redis.call('GET', KEYS[3])
  if not held or string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return 0 end
end
if #ARGV > 2 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'h', ARGV[3], 's', ARGV[4], '0', ARGV[5])
elseif redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('RENAME', KEYS[4], KEYS[1])
  redis.call('PERSIST', KEYS[1])
elseif redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then
  return -1
end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS: result, finished set. ARGV: hash. 1 if a result was removed.
REMOVE_RESULT = """#!lua flags=allow-oom
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""

# KEYS: result, finished set, where it goes. ARGV: hash, the header judged damaged.
# 1 if moved aside; 0 if there is no result, or another one (saved again meanwhile) is in its place.
MOVE_ASIDE = """#!lua flags=allow-oom
if redis.call('HGET', KEYS[1], 'h') ~= ARGV[2] then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
