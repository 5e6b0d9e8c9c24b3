-- One circuit breaker's shared state: each of pybreaker's storage operations that
-- writes (and each read of the whole state) is this one atomic call.
--
-- KEYS[1]  the breaker's hash; absent = closed, no failures. Fields: state (closed |
--          open | half-open), failures (consecutive transient ones), successes (of the
--          probe), opened_at, reset_at (a probe is allowed from then), probe (its
--          ticket), probe_until (its lease). Times are ms since the epoch on Redis's
--          clock (TIME), so hosts with skewed clocks agree.
-- ARGV[1]  op:
--            read          nothing changes
--            failure       count a failure: while closed, or by the probe
--            reset_counter forget the failures: while closed, or by the probe
--            success       count the probe's success
--            reset_successes
--            trip          open for reset_timeout: from closed, or by the probe
--            probe         claim the one probe: open past reset_at, or half-open with no
--                          probe or one whose lease ran out (verdict 0: someone has it)
--            close         by the probe (a ticket), or unconditionally (no ticket)
--            release       the probe gives its lease up without a verdict
--            open          an operator's: open for ARGV[6] ms, whatever the state
--            reset         an operator's: closed, failures forgotten
-- ARGV[2]  reset_timeout, ms: open -> a probe is allowed
-- ARGV[3]  probe lease, ms: a probe silent that long is presumed dead
-- ARGV[4]  idle TTL, ms: how long the hash outlives the last moment it matters
-- ARGV[5]  ticket of the caller's probe ('' if it holds none; for probe: the one to claim)
-- ARGV[6]  op open only: ms to stay open
--
-- Reply {verdict, state, changed_from, failures, successes, opened_at, reset_at, probe,
--        probe_until, now}: verdict 1 applied, 0 ignored (a report that no longer
--   matters, a probe someone else holds). changed_from: the state before, if this call
--   changed it or replaced a probe whose lease ran out, else '' -- so exactly one caller
--   anywhere sees each transition.

local key, op, ticket = KEYS[1], ARGV[1], ARGV[5]
local reset_ms, lease_ms, idle_ms = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', key, 'state', 'failures', 'successes', 'opened_at', 'reset_at',
  'probe', 'probe_until')
local state = f[1] or 'closed'
local failures, successes = tonumber(f[2]) or 0, tonumber(f[3]) or 0
local opened_at, reset_at = tonumber(f[4]) or 0, tonumber(f[5]) or 0
local probe, probe_until = f[6] or '', tonumber(f[7]) or 0
local verdict, changed = 1, ''
local mine = state == 'half-open' and ticket ~= '' and ticket == probe

local function save()
  redis.call('HSET', key, 'state', state, 'failures', failures, 'successes', successes,
    'opened_at', opened_at, 'reset_at', reset_at, 'probe', probe, 'probe_until', probe_until)
  redis.call('PEXPIRE', key, math.max(reset_at, probe_until, now) - now + idle_ms)
end
local function count_closed()
  -- closed: the count is the whole state; it expires idle_ms after the last failure
  if failures == 0 then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'failures', failures)
    redis.call('PEXPIRE', key, idle_ms)
  end
end
local function open_until(until_ms)
  changed, state = state, 'open'
  opened_at, reset_at, successes, probe, probe_until = now, until_ms, 0, '', 0
  save()
end
local function forget()
  changed, state = state, 'closed'
  failures, successes, opened_at, reset_at, probe, probe_until = 0, 0, 0, 0, '', 0
  redis.call('DEL', key)
end

if op == 'read' then
  verdict = 1
elseif op == 'failure' or op == 'reset_counter' then
  local counted = op == 'failure' and failures + 1 or 0
  if state == 'closed' then
    failures = counted
    count_closed()
  elseif mine then
    failures = counted
    save()
  else
    verdict = 0
  end
elseif op == 'success' then
  if mine then successes = successes + 1; save() else verdict = 0 end
elseif op == 'reset_successes' then
  if successes > 0 and state ~= 'closed' then successes = 0; save() end
elseif op == 'trip' then
  if state == 'closed' or mine then open_until(now + reset_ms) else verdict = 0 end
elseif op == 'probe' then
  if mine then
    verdict = 1
  elseif (state == 'open' and now >= reset_at)
      or (state == 'half-open' and (probe == '' or now >= probe_until)) then
    -- a transition, or a lease that ran out; not a probe given up by release
    if state == 'open' or probe ~= '' then changed = state end
    state, successes, probe, probe_until = 'half-open', 0, ticket, now + lease_ms
    save()
  else
    verdict = 0
  end
elseif op == 'close' then
  if state ~= 'closed' and (ticket == '' or mine) then forget() else verdict = 0 end
elseif op == 'release' then
  if mine then probe, probe_until = '', 0; save() else verdict = 0 end
elseif op == 'open' then
  open_until(now + tonumber(ARGV[6]))
elseif op == 'reset' then
  forget()
else
  return redis.error_reply('unknown breaker op ' .. tostring(op))
end
return {verdict, state, changed, failures, successes, opened_at, reset_at, probe, probe_until,
  now}
