-- A one-shot debit (an SMS segment, a message), idempotent on its event id.
-- KEYS: acct, event marker, outbox. ARGV: tenant, event_id, channel, micro, usage_json,
-- now_ms, marker_ttl_s. Returns {status, micro}: charged, replay (charged before: nothing
-- changes), insufficient (nothing charged, no marker: a retry after a top-up may pass) or
-- out_of_bounds (more than MAX_CHARGE, or the billed total would pass MAX_LIFETIME:
-- nothing written).
local acct, marker, outbox = KEYS[1], KEYS[2], KEYS[3]
local before = redis.call('GET', marker)
if before then return {'replay', before} end
local micro = num(ARGV[4])
if micro < 0 or micro > MAX_CHARGE
   or num(redis.call('HGET', acct, 'billed')) + micro > MAX_LIFETIME then
  return {'out_of_bounds', '0'}
end
if micro > num(redis.call('HGET', acct, 'available')) then return {'insufficient', '0'} end
redis.call('SET', marker, int(micro), 'EX', ARGV[7])
if micro > 0 then
  redis.call('HINCRBY', acct, 'available', int(-micro))
  redis.call('HINCRBY', acct, 'billed', int(micro))
end
redis.call('XADD', outbox, '*', 'id', ARGV[2], 'type', 'charge', 'tenant', ARGV[1],
           'channel', ARGV[3], 'micro', int(micro), 'usage', ARGV[5], 'at', ARGV[6])
alerts(acct, outbox)
return {'charged', int(micro)}
