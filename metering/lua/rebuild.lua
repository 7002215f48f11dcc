-- Rebuild a tenant's account from the ledger (Redis lost its data, or reconcile --repair).
-- Reservations of live sessions are kept:
-- available = topped_up + granted - billed - expired - reserved.
-- KEYS: acct, applied top-up ids, plan credits (grant/expiry id -> micro), outbox
-- (balance alerts).
-- ARGV: topped_up, billed, balance (topped_up + granted - billed - expired, computed
-- exactly by the caller), granted, expired, number of top-up ids, the top-up ids, then
-- plan-credit id and micro pairs.
-- Returns {status, available}: rebuilt, or out_of_bounds (a value the account cannot
-- hold: nothing is written). The subtraction is done by HINCRBY, in 64-bit integers.
local topped_up, billed, balance = num(ARGV[1]), num(ARGV[2]), num(ARGV[3])
local granted, expired, n_topups = num(ARGV[4]), num(ARGV[5]), num(ARGV[6])
for _, v in ipairs({topped_up, billed, granted, expired}) do
  if v < 0 or v > MAX_LIFETIME then return {'out_of_bounds', '0'} end
end
if balance > MAX_BALANCE or balance < -MAX_BALANCE then return {'out_of_bounds', '0'} end
local reserved = num(redis.call('HGET', KEYS[1], 'reserved'))
redis.call('HSET', KEYS[1], 'topped_up', ARGV[1], 'billed', ARGV[2], 'reserved', int(reserved),
           'available', ARGV[3], 'granted', ARGV[4], 'expired', ARGV[5])
local available = redis.call('HINCRBY', KEYS[1], 'available', int(-reserved))
for i = 7, 6 + n_topups do redis.call('SADD', KEYS[2], ARGV[i]) end
-- The ledger's plan credits replace the applied ones: an expiry taken live but never
-- written to the ledger (a crash in between) is forgotten with its amount, and runs again.
redis.call('DEL', KEYS[3])
for i = 7 + n_topups, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
alerts(KEYS[1], KEYS[4])
return {'rebuilt', int(available)}
