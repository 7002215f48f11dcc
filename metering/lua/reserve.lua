-- INITIAL: open a session and reserve its first slice.
-- KEYS: acct, session, live, outbox (balance alerts). ARGV: tenant, session_id, channel, requested, min_grant,
-- validity_ms, overdraft_limit, now_ms, meta_json.
-- Returns {status, held, final, expires_ms, written_off, billed}; status is granted,
-- replay (the session is open: a retried INITIAL, answered with its current grant),
-- closed (the session ended: it is never reopened) or insufficient (nothing created).
-- Neither replay nor closed changes anything; neither lets a caller start a session.
local acct, sess, live = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', sess) == 1 then
  local state = session_state(sess)
  if redis.call('HGET', sess, 'state') == 'open' then
    return {'replay', int(state[1]), state[2], int(state[3]), int(state[4]), int(state[5])}
  end
  return {'closed', '0', 1, int(state[3]), int(state[4]), int(state[5])}
end
local min_grant = num(ARGV[5])
local available = num(redis.call('HGET', acct, 'available'))
if available < min_grant or available <= 0 then
  return {'insufficient', '0', 1, '0', '0', '0'}
end
local now, expires = num(ARGV[8]), num(ARGV[8]) + num(ARGV[6])
redis.call('HSET', sess, 'tenant', ARGV[1], 'channel', ARGV[3], 'held', 0, 'granted_total', 0,
           'charged', 0, 'billed', 0, 'written_off', 0, 'final', 0, 'seq', 0,
           'overdraft_limit', ARGV[7], 'started_ms', int(now), 'expires_ms', int(expires),
           'usage', '{}', 'meta', ARGV[9], 'state', 'open')
top_up_hold(acct, sess, num(ARGV[4]), min_grant)
redis.call('ZADD', live, int(expires), ARGV[2])
alerts(acct, KEYS[4])
local state = session_state(sess)
return {'granted', int(state[1]), state[2], int(state[3]), int(state[4]), int(state[5])}
