-- Rebuild a tenant's account from the ledger (Redis lost its data, or reconcile --repair).
-- Reservations of live sessions are kept: available = topped_up - billed - reserved.
-- KEYS: acct, applied top-up ids, outbox (balance alerts). ARGV: topped_up, billed, balance (topped_up - billed,
-- computed exactly by the caller), topup ids...
-- Returns {status, available}: rebuilt, or out_of_bounds (a value the account cannot
-- hold: nothing is written). The subtraction is done by HINCRBY, in 64-bit integers.
local topped_up, billed, balance = num(ARGV[1]), num(ARGV[2]), num(ARGV[3])
if topped_up < 0 or billed < 0 or topped_up > MAX_LIFETIME or billed > MAX_LIFETIME
   or balance > MAX_BALANCE or balance < -MAX_BALANCE then
  return {'out_of_bounds', '0'}
end
local reserved = num(redis.call('HGET', KEYS[1], 'reserved'))
redis.call('HSET', KEYS[1], 'topped_up', ARGV[1], 'billed', ARGV[2], 'reserved', int(reserved),
           'available', ARGV[3])
local available = redis.call('HINCRBY', KEYS[1], 'available', int(-reserved))
for i = 4, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
alerts(KEYS[1], KEYS[3])
return {'rebuilt', int(available)}
