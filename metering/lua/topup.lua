-- Credit a committed top-up to the live balance, once per top-up id.
-- KEYS: acct, applied top-up ids. ARGV: topup_id, micro. Returns 1 if applied now.
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'topped_up', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'available', ARGV[2])
return 1
