-- Credit a committed plan-credit grant to the live balance, once per grant id
-- ("grant:YYYY-MM": one per tenant and cycle).
-- KEYS: acct, plan credits (hash: grant or expiry id -> micro-credits), outbox (balance
-- alerts). ARGV: grant_id, micro.
-- Returns applied, replay (applied before: nothing changes), balance_limit (the balance
-- would pass MAX_BALANCE) or out_of_bounds (a lifetime total would pass MAX_LIFETIME).
-- Every check comes before the first write: a refused grant leaves no trace.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'replay' end
local micro = num(ARGV[2])
local a = redis.call('HMGET', KEYS[1], 'granted', 'available', 'reserved')
if micro <= 0 or micro > MAX_BALANCE or num(a[1]) + micro > MAX_LIFETIME then
  return 'out_of_bounds'
end
if num(a[2]) + num(a[3]) + micro > MAX_BALANCE then return 'balance_limit' end
redis.call('HSET', KEYS[2], ARGV[1], int(micro))
redis.call('HINCRBY', KEYS[1], 'granted', int(micro))
redis.call('HINCRBY', KEYS[1], 'available', int(micro))
alerts(KEYS[1], KEYS[3])
return 'applied'
