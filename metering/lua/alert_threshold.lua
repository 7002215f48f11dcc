-- Sets (threshold > 0) or clears a tenant's low-balance threshold. The low state is
-- recorded as the balance stands now, without an event: only a later crossing raises one.
-- KEYS: acct. ARGV: threshold (micro-credits; 0 clears). Returns set, unchanged or cleared.
local threshold = num(ARGV[1])
within(threshold, MAX_BALANCE, 'threshold')
if threshold <= 0 then
  redis.call('HDEL', KEYS[1], 'alert_low', 'alert_is_low')
  return 'cleared'
end
if num(redis.call('HGET', KEYS[1], 'alert_low')) == threshold then return 'unchanged' end
local a = redis.call('HMGET', KEYS[1], 'available', 'reserved')
redis.call('HSET', KEYS[1], 'alert_low', int(threshold),
           'alert_is_low', num(a[1]) + num(a[2]) < threshold and '1' or '0')
return 'set'
