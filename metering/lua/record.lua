-- RECORD: debit the cost reported so far and keep the usage, WITHOUT renewing the hold
-- (no top-up, no new expiry): a light report a session makes every few seconds, so that
-- the sweeper closing it after its gateway died charges nearly everything it used.
-- KEYS: acct, session, outbox. ARGV: session_id, charged_total, usage_json, now_ms,
-- details_json ('' keeps them: the details a swept record carries, set at INITIAL).
-- Also notes when it was made (`reported_ms`: a swept record ends there).
-- Returns {status, held, final, expires_ms, written_off, billed}; status is recorded or
-- unknown (the session is not open: nothing changes).
local acct, sess, outbox = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', sess, 'state') ~= 'open' then return {'unknown', '0', 1, '0', '0', '0'} end
debit(acct, sess, outbox, ARGV[1], num(ARGV[2]), ARGV[3], num(ARGV[4]))
redis.call('HSET', sess, 'reported_ms', int(num(ARGV[4])))
if ARGV[5] ~= '' then redis.call('HSET', sess, 'meta', ARGV[5]) end
alerts(acct, outbox)
local state = session_state(sess)
return {'recorded', int(state[1]), state[2], int(state[3]), int(state[4]), int(state[5])}
