-- One circuit breaker's shared state; every decision is this one atomic call.
--
-- KEYS[1]  the breaker's hash; absent = closed, no failures. Fields: state (closed |
--          open | half-open), failures (consecutive transient ones), opened_at,
--          reset_at (a probe is allowed from then), probe (its ticket), probe_until
--          (its lease). Times are ms since the epoch on Redis's clock (TIME), so
--          hosts with skewed clocks agree.
-- ARGV[1]  op: admit | success | failure | release | open | reset | status
-- ARGV[2]  fail_max: consecutive failures that open a closed breaker
-- ARGV[3]  reset_timeout, ms: open -> a probe is allowed
-- ARGV[4]  probe lease, ms: a probe silent that long is presumed dead
-- ARGV[5]  idle TTL, ms: how long the hash outlives the last moment it matters
-- ARGV[6]  ticket: admit -> the one the caller gets if it becomes the probe;
--          success / failure / release -> the admission's ticket ('' if not a probe)
-- ARGV[7]  op open only: ms to stay open
--
-- Reply {verdict, state, changed_from, failures, opened_at, reset_at, probe_until, now}
--   admit: verdict 0 deferred, 1 admitted, 2 admitted as the probe;
--   other ops: 1 applied, 0 ignored (a report that no longer matters).
--   changed_from: the state before, if this call changed it or replaced a probe whose
--   lease ran out, else '' -- so exactly one caller anywhere sees each transition.

local key, op, ticket = KEYS[1], ARGV[1], ARGV[6]
local fail_max, reset_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_ms, idle_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', key, 'state', 'failures', 'opened_at', 'reset_at', 'probe',
  'probe_until')
local state = f[1] or 'closed'
local failures = tonumber(f[2]) or 0
local opened_at = tonumber(f[3]) or 0
-- opened through pybreaker's field-by-field interface: no reset_at stored
local reset_at = tonumber(f[4]) or (opened_at + reset_ms)
local probe = f[5] or ''
local probe_until = tonumber(f[6]) or 0
local verdict, changed = 0, ''
local is_probe = ticket ~= '' and ticket == probe

local function save()
  redis.call('HSET', key, 'state', state, 'failures', failures, 'opened_at', opened_at,
    'reset_at', reset_at, 'probe', probe, 'probe_until', probe_until)
  redis.call('PEXPIRE', key, math.max(reset_at, probe_until, now) - now + idle_ms)
end
local function open_until(until_ms)
  changed, state = state, 'open'
  opened_at, reset_at, probe, probe_until = now, until_ms, '', 0
  save()
end
local function forget()
  changed, state = state, 'closed'
  failures, opened_at, reset_at, probe, probe_until = 0, 0, 0, '', 0
  redis.call('DEL', key)
end
local function grant_probe()
  -- a transition, or a lease that ran out; not a probe given up by release
  if state == 'open' or probe ~= '' then changed = state end
  state = 'half-open'
  probe, probe_until, verdict = ticket, now + lease_ms, 2
  save()
end

if op == 'admit' then
  if state == 'closed' then
    verdict = 1
  elseif state == 'open' then
    if now >= reset_at then grant_probe() end
  elseif now >= probe_until then
    grant_probe()
  end
elseif op == 'success' then
  if state == 'closed' and failures > 0 then
    failures, verdict = 0, 1
    redis.call('DEL', key)
  elseif state == 'half-open' and is_probe then
    forget()
    verdict = 1
  end
elseif op == 'failure' then
  if state == 'closed' then
    failures, verdict = failures + 1, 1
    if failures >= fail_max then
      open_until(now + reset_ms)
    else
      redis.call('HSET', key, 'failures', failures)
      redis.call('PEXPIRE', key, idle_ms)
    end
  elseif state == 'half-open' and is_probe then
    failures, verdict = failures + 1, 1
    open_until(now + reset_ms)
  end
elseif op == 'release' then
  if state == 'half-open' and is_probe then
    probe, probe_until, verdict = '', 0, 1
    save()
  end
elseif op == 'open' then
  open_until(now + tonumber(ARGV[7]))
  verdict = 1
elseif op == 'reset' then
  forget()
  verdict = 1
elseif op == 'status' then
  verdict = 1
else
  return redis.error_reply('unknown breaker op ' .. tostring(op))
end
return {verdict, state, changed, failures, opened_at, reset_at, probe_until, now}
