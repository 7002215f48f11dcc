-- Expire the unused plan credits of an ended cycle, once per expiry id ("expiry:YYYY-MM").
-- KEYS: acct, plan credits (hash), outbox (balance alerts). ARGV: expiry_id, requested (micro-credits: the plan
-- credits left by the ledger's count).
-- Never more than is available now (credits held by open sessions stay), never below 0.
-- Returns {status, micro}: expired (micro taken now), replay (the amount taken before,
-- nothing changes) or out_of_bounds (nothing written).
local done = redis.call('HGET', KEYS[2], ARGV[1])
if done then return {'replay', done} end
local requested = num(ARGV[2])
local a = redis.call('HMGET', KEYS[1], 'available', 'expired')
local micro = math.max(math.min(requested, num(a[1])), 0)
if requested < 0 or requested > MAX_BALANCE or num(a[2]) + micro > MAX_LIFETIME then
  return {'out_of_bounds', '0'}
end
redis.call('HSET', KEYS[2], ARGV[1], int(micro))
if micro > 0 then
  redis.call('HINCRBY', KEYS[1], 'expired', int(micro))
  redis.call('HINCRBY', KEYS[1], 'available', int(-micro))
  alerts(KEYS[1], KEYS[3])
end
return {'expired', int(micro)}
