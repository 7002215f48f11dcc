-- Rebuild a tenant's account from the ledger (Redis lost its data, or reconcile --repair).
-- Reservations of live sessions are kept: available = topped_up - billed - reserved.
-- KEYS: acct, applied top-up ids. ARGV: topped_up, billed, topup ids...
local reserved = num(redis.call('HGET', KEYS[1], 'reserved'))
redis.call('HSET', KEYS[1], 'topped_up', ARGV[1], 'billed', ARGV[2], 'reserved', int(reserved),
           'available', int(num(ARGV[1]) - num(ARGV[2]) - reserved))
for i = 3, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
return int(num(ARGV[1]) - num(ARGV[2]) - reserved)
