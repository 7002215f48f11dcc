-- UPDATE: debit the cost reported so far, then top the reservation up to the target.
-- KEYS: acct, session, live, outbox. ARGV: session_id, charged_total, usage_json,
-- target_held, min_grant, validity_ms, now_ms, details_json (optional; '' or absent keeps
-- them: the details a swept record carries).
-- Returns {status, held, final, expires_ms, written_off, billed}; status is granted,
-- final (the last slice), exhausted (final and nothing left held) or unknown.
local acct, sess, live, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', sess, 'state') ~= 'open' then return {'unknown', '0', 1, '0', '0', '0'} end
local sid, now = ARGV[1], num(ARGV[7])
debit(acct, sess, outbox, sid, num(ARGV[2]), ARGV[3], now)
if ARGV[8] and ARGV[8] ~= '' then redis.call('HSET', sess, 'meta', ARGV[8]) end
redis.call('HSET', sess, 'reported_ms', int(now))
local final = top_up_hold(acct, sess, num(ARGV[4]), num(ARGV[5]))
local expires = now + num(ARGV[6])
redis.call('HSET', sess, 'expires_ms', int(expires))
redis.call('ZADD', live, int(expires), sid)
alerts(acct, outbox)
local state = session_state(sess)
local status = 'granted'
if final == 1 then status = state[1] > 0 and 'final' or 'exhausted' end
return {status, int(state[1]), state[2], int(state[3]), int(state[4]), int(state[5])}
