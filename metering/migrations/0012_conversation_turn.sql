-- A customer's WhatsApp or SMS message grouped into their conversation in one round trip
-- (metering.conversations.store.customer_turn): the same steps the gateway ran as six
-- statements in a transaction (lock, find the open conversation, check the turn's key,
-- insert or update), now one function call. The per-customer advisory lock is the same
-- key as before, so processes of either version group one customer's messages one at a
-- time. PL/pgSQL takes a new snapshot for each statement (READ COMMITTED), so the search
-- after the lock sees a conversation another process committed while this one waited.

CREATE FUNCTION conversation_customer_turn(
    p_tenant uuid, p_channel text, p_customer_hash text, p_customer_masked text,
    p_at timestamptz, p_idle_minutes integer, p_session_id text, p_item jsonb,
    p_key jsonb, p_micro_credits bigint, p_new_id uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    open_id uuid;
    open_last timestamptz;
BEGIN
    -- One customer's messages are grouped one at a time, whichever process has them.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        p_tenant::text || ':' || p_channel || ':' || p_customer_hash, 12));
    SELECT id, last_activity_at INTO open_id, open_last FROM conversations
     WHERE tenant_id = p_tenant AND channel = p_channel AND customer_hash = p_customer_hash
       AND ended_at IS NULL ORDER BY started_at DESC LIMIT 1;
    IF open_id IS NOT NULL AND p_key IS NOT NULL
       AND (SELECT transcript @> p_key FROM conversations WHERE id = open_id) THEN
        RETURN open_id;  -- this message was grouped before (a retry)
    END IF;
    IF open_id IS NULL OR p_at - open_last > make_interval(mins => p_idle_minutes) THEN
        INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash,
                customer_masked, started_at, last_activity_at, session_ids, transcript,
                tool_calls, micro_credits)
        VALUES (p_new_id, p_tenant, p_channel, 'inbound', p_customer_hash,
                p_customer_masked, p_at, p_at, ARRAY[p_session_id], jsonb_build_array(p_item),
                '[]', p_micro_credits);
        RETURN p_new_id;
    END IF;
    UPDATE conversations SET last_activity_at = greatest(last_activity_at, p_at),
           transcript = COALESCE(transcript, '[]'::jsonb) || jsonb_build_array(p_item),
           session_ids = CASE WHEN p_session_id = ANY(session_ids) THEN session_ids
                              ELSE session_ids || p_session_id END,
           micro_credits = micro_credits + p_micro_credits
     WHERE id = open_id;
    RETURN open_id;
END
$$;
