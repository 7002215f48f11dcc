-- Shared helpers, prepended to every credit-control script (after the MAX_* bounds of
-- metering/bounds.py). Amounts are integer micro-credits. Lua numbers are doubles: exact
-- up to 2^53; the bounds keep every sum a script forms far below it. tostring() would
-- print large numbers as 1e+15, so every number written back goes through int().
local function int(n) return string.format('%d', n) end
local function num(v) return tonumber(v) or 0 end

-- Refuses a value beyond a bound with an OUT_OF_BOUNDS error reply. Only call it before
-- the script's first write: Redis does not roll a script back.
local function within(value, bound, what)
  if value > bound then
    error({err = 'OUT_OF_BOUNDS ' .. what .. ' would pass its maximum ' .. int(bound)})
  end
end

-- Debits a session's newly reported cost. Cost comes out of the session's held
-- reservation first, then out of the available balance, but a session is never debited
-- more than it was granted plus its overdraft limit: the rest is written off (counted,
-- not billed). Returns the amount debited now.
local function debit(acct, sess, outbox, sid, charged_total, usage_json, now)
  local s = redis.call('HMGET', sess, 'charged', 'held', 'granted_total', 'billed',
                       'overdraft_limit', 'tenant', 'channel', 'seq')
  local charged, held, granted, billed, limit = num(s[1]), num(s[2]), num(s[3]), num(s[4]), num(s[5])
  within(charged_total, MAX_CHARGE, 'charged_total')
  local totals = redis.call('HMGET', acct, 'billed', 'written_off')
  within(math.max(num(totals[1]), num(totals[2])) + charged_total - charged, MAX_LIFETIME,
         'the billed total')
  if usage_json ~= '' then redis.call('HSET', sess, 'usage', usage_json) end
  local delta = charged_total - charged
  if delta <= 0 then return 0 end
  local from_held = math.min(delta, held)
  local rest = delta - from_held
  local room = math.max(granted + limit - billed - from_held, 0)
  local over = math.min(rest, room)
  local written_off = rest - over
  local debited = from_held + over
  redis.call('HSET', sess, 'charged', int(charged_total), 'held', int(held - from_held),
             'billed', int(billed + debited))
  if written_off > 0 then
    redis.call('HINCRBY', sess, 'written_off', int(written_off))
    redis.call('HINCRBY', acct, 'written_off', int(written_off))
  end
  if debited > 0 then
    redis.call('HINCRBY', acct, 'reserved', int(-from_held))
    redis.call('HINCRBY', acct, 'available', int(-over))
    redis.call('HINCRBY', acct, 'billed', int(debited))
    local seq = num(s[8]) + 1
    redis.call('HSET', sess, 'seq', int(seq))
    redis.call('XADD', outbox, '*', 'id', sid .. ':' .. int(seq), 'type', 'debit',
               'tenant', s[6], 'session', sid, 'channel', s[7], 'micro', int(debited),
               'usage', usage_json ~= '' and usage_json or '{}', 'at', int(now))
  end
  return debited
end

-- Tops the session's held reservation up to `target` from the available balance. When the
-- balance cannot cover it all (or less than `min_grant` is left), what is granted is FINAL.
local function top_up_hold(acct, sess, target, min_grant)
  local s = redis.call('HMGET', sess, 'held', 'final', 'granted_total')
  local held, final = num(s[1]), num(s[2])
  if final == 1 or held >= target then return final end
  local available = num(redis.call('HGET', acct, 'available'))
  local wanted = target - held
  -- A session can cost at most MAX_CHARGE, so it is never granted more in all.
  local room = math.max(MAX_CHARGE - num(s[3]), 0)
  local grant = 0
  if available >= min_grant and available > 0 then grant = math.min(wanted, available, room) end
  if grant < wanted then final = 1 end
  if grant > 0 then
    redis.call('HINCRBY', acct, 'available', int(-grant))
    redis.call('HINCRBY', acct, 'reserved', int(grant))
    redis.call('HINCRBY', sess, 'held', int(grant))
    redis.call('HINCRBY', sess, 'granted_total', int(grant))
  end
  redis.call('HSET', sess, 'final', final)
  return final
end

local function session_state(sess)
  local s = redis.call('HMGET', sess, 'held', 'final', 'expires_ms', 'written_off', 'billed')
  return {num(s[1]), num(s[2]), num(s[3]), num(s[4]), num(s[5])}
end

-- Live dashboards (api.live): every script that changes a balance or a session ends in
-- alerts(), which says so here with one PUBLISH of the tenant id on one channel per key
-- prefix (metering.keys.live_channel). Each gateway process holds one subscriber to it.
local function changed(acct)
  local prefix, tenant = string.match(acct, '^(.*){t:(.-)}')
  redis.call('PUBLISH', prefix .. 'live-changes', tenant)
end

-- Balance alerts, exact and once across every gateway: after a script changed the
-- balance, compare it with the alert state kept in the account hash; on a change, record
-- the new state and put one `alert` event on the outbox (the sink turns it into webhooks
-- and mails). Paused (depleted): available < PAUSED_BELOW, the one rule of
-- CreditStore.balance(). Low: the balance (available + reserved) below the tenant's
-- `alert_low`, once per downward crossing. A state seen for the first time is recorded
-- without an event.
local function alerts(acct, outbox)
  changed(acct)
  local a = redis.call('HMGET', acct, 'available', 'reserved', 'alert_low', 'alert_is_low',
                       'alert_paused')
  local available, reserved, threshold = num(a[1]), num(a[2]), num(a[3])
  local raised = {}
  local paused = available < PAUSED_BELOW and '1' or '0'
  if a[5] ~= paused then
    redis.call('HSET', acct, 'alert_paused', paused)
    if a[5] then raised[#raised + 1] = paused == '1' and 'balance.depleted' or 'balance.restored' end
  end
  if threshold > 0 then
    local low = available + reserved < threshold and '1' or '0'
    if a[4] ~= low then
      redis.call('HSET', acct, 'alert_is_low', low)
      if low == '1' and a[4] then raised[#raised + 1] = 'balance.low' end
    end
  end
  for _, alert in ipairs(raised) do
    redis.call('XADD', outbox, '*', 'type', 'alert', 'alert', alert,
               'tenant', string.match(acct, '{t:(.-)}'), 'available', int(available),
               'reserved', int(reserved), 'threshold', int(threshold))
  end
end
