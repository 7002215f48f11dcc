-- TERMINATE: debit the final cost, release what is still held, emit the session record.
-- Also the sweeper's tool (mode 'sweep'): a session whose reservation expired is closed
-- with the cost it last reported, and nothing more; its record ends when it last reported
-- (the last moment its gateway was known alive), or at its start if it never did.
-- KEYS: acct, session, live, outbox, month-to-date usage. ARGV: session_id, charged_total (-1: the last
-- reported), usage_json ('' keeps the last reported), now_ms, end_status, details_json
-- ('' uses the metadata given at INITIAL), mode ('stop' or 'sweep').
-- Returns {status, billed, written_off, started_ms, usage, held_released}; status is
-- settled, swept, replay (already closed: nothing changes), alive (sweep of a session
-- that renewed meanwhile) or unknown.
local acct, sess, live, outbox, month = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, now, mode = ARGV[1], num(ARGV[4]), ARGV[7]
local state = redis.call('HGET', sess, 'state')
if not state then return {'unknown', '0', '0', '0', '{}', '0'} end
if state == 'closed' then
  local r = redis.call('HMGET', sess, 'billed', 'written_off', 'started_ms', 'usage')
  return {'replay', r[1], r[2], r[3], r[4], '0'}
end
if mode == 'sweep' and num(redis.call('HGET', sess, 'expires_ms')) > now then
  return {'alive', '0', '0', '0', '{}', '0'}
end
local charged_total = num(ARGV[2])
if charged_total < 0 then charged_total = num(redis.call('HGET', sess, 'charged')) end
debit(acct, sess, outbox, sid, charged_total, ARGV[3], now)
local s = redis.call('HMGET', sess, 'held', 'billed', 'written_off', 'started_ms', 'usage',
                     'tenant', 'channel', 'meta')
local held = num(s[1])
if held > 0 then
  redis.call('HINCRBY', acct, 'reserved', int(-held))
  redis.call('HINCRBY', acct, 'available', int(held))
end
local details = ARGV[6] ~= '' and ARGV[6] or s[8]
local ended = now
if mode == 'sweep' then ended = math.max(num(redis.call('HGET', sess, 'reported_ms')), num(s[4])) end
redis.call('HSET', sess, 'held', 0, 'state', 'closed', 'end_status', ARGV[5], 'ended_ms', int(ended))
redis.call('ZREM', live, sid)
-- The tenant's usage this month, for free allowances and volume tiers of later sessions.
for meter, units in pairs(cjson.decode(s[5])) do
  if type(units) == 'number' and units > 0 then redis.call('HINCRBY', month, meter, int(units)) end
end
redis.call('EXPIRE', month, 40 * 86400)
redis.call('EXPIRE', sess, 86400)
alerts(acct, outbox)
redis.call('XADD', outbox, '*', 'id', sid .. ':end', 'type', 'session', 'tenant', s[6],
           'session', sid, 'channel', s[7], 'started_ms', s[4], 'ended_ms', int(ended),
           'usage', s[5], 'micro', s[2], 'written_off', s[3], 'status', ARGV[5],
           'details', details)
return {ARGV[5], s[2], s[3], s[4], s[5], int(held)}
