--[[
Herald's global rate limiter: an exact sliding log per scope, several windows per
scope, several scopes per call, decided atomically (see worker/resilience/ratelimit.py).

KEYS, two per scope, scopes in the caller's order:
  KEYS[2i-1]  the scope's admission log: a sorted set, score = admission time in µs
              (Redis TIME), member = "<µs>:<caller tag>"; TTL = its longest window
  KEYS[2i]    the scope's penalty: a string holding "blocked until" in µs; TTL = the block

ARGV:
  ARGV[1]  mode: 'acquire'  admit (record the request in every scope) or refuse
                            (change nothing at all);
                 'peek'     say what 'acquire' would, change nothing;
                 'penalize' block every given scope for ARGV[2] µs from now
                            (a longer block already in place stays)
  ARGV[2]  acquire: a tag unique to this call (keeps log members distinct);
           peek: ignored; penalize: the block's length in µs
  ARGV[3..] acquire/peek: per scope, its number of windows w, then w pairs
           (limit, window length in µs)

Returns:
  acquire/peek: {allowed 1|0, remaining, retry_after µs, now µs}
    remaining: the smallest number of further admissions any window allows
    (after this one, when it is admitted); 0 when refused.
    retry_after: 0 when allowed; else the µs until every window of every scope
    admits and every block has ended.
  penalize: {blocked until µs (the longest block in place), now µs}

A window (limit L, length W) admits at time t iff fewer than L entries have
t - W < score <= t; then no half-open interval of length W ever holds more than L
admissions. Entries older than the longest window are trimmed on admission.
]]

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local mode = ARGV[1]
local scopes = #KEYS / 2

local function int(x)
  return string.format('%.0f', x)
end

if mode == 'penalize' then
  local wanted = now + tonumber(ARGV[2])
  local longest = wanted
  for i = 1, scopes do
    local block = KEYS[2 * i]
    local current = tonumber(redis.call('GET', block) or 0)
    if wanted > current then
      redis.call('SET', block, int(wanted), 'PX', math.ceil((wanted - now) / 1000))
    else
      longest = math.max(longest, current)
    end
  end
  return {longest, now}
end

local remaining = -1
local wait = 0
local arg = 3
local widest = {}
for i = 1, scopes do
  local log = KEYS[2 * i - 1]
  local blocked = tonumber(redis.call('GET', KEYS[2 * i]) or 0)
  if blocked > now then
    wait = math.max(wait, blocked - now)
  end
  widest[i] = 0
  for _ = 1, tonumber(ARGV[arg]) do
    local limit, width = tonumber(ARGV[arg + 1]), tonumber(ARGV[arg + 2])
    arg = arg + 2
    widest[i] = math.max(widest[i], width)
    local since = '(' .. int(now - width)
    local used = redis.call('ZCOUNT', log, since, '+inf')
    local left = limit - used
    if left <= 0 then
      -- The entry whose expiry leaves limit - 1 in this window.
      local frees = redis.call('ZRANGEBYSCORE', log, since, '+inf',
        'WITHSCORES', 'LIMIT', used - limit, 1)
      wait = math.max(wait, tonumber(frees[2]) + width - now)
      left = 0
    end
    if remaining < 0 or left < remaining then
      remaining = left
    end
  end
  arg = arg + 1
end

if wait > 0 then
  return {0, 0, wait, now}
end
if mode == 'acquire' then
  local member = int(now) .. ':' .. ARGV[2]
  for i = 1, scopes do
    local log = KEYS[2 * i - 1]
    redis.call('ZREMRANGEBYSCORE', log, '-inf', int(now - widest[i]))
    redis.call('ZADD', log, int(now), member)
    redis.call('PEXPIRE', log, math.ceil(widest[i] / 1000))
  end
  remaining = remaining - 1
end
return {1, remaining, 0, now}
