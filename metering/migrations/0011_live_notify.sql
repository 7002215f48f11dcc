-- Live dashboards (api.live, docs/dashboard.md): a conversation that settles is announced
-- once, after its transaction commits, on the NOTIFY channel `voicegw_live`. The payload
-- is the tenant id followed by the settled conversation ids, space separated (only the
-- tenant id when one statement settles more than 100 of its conversations: the page then
-- reloads its list). Statement-level triggers with transition tables: a bulk insert of a
-- million settled rows sends one notification per tenant, not a million. Each gateway
-- process LISTENs on one pooled connection and fans out to its own SSE clients.

CREATE FUNCTION conversations_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('voicegw_live', payload)
        FROM (SELECT n.tenant_id::text || CASE WHEN count(*) <= 100
                         THEN ' ' || string_agg(n.id::text, ' ') ELSE '' END AS payload
              FROM settled_new n
              WHERE n.settled_at IS NOT NULL
              GROUP BY n.tenant_id) AS settled;
    ELSE
        PERFORM pg_notify('voicegw_live', payload)
        FROM (SELECT n.tenant_id::text || CASE WHEN count(*) <= 100
                         THEN ' ' || string_agg(n.id::text, ' ') ELSE '' END AS payload
              FROM settled_new n JOIN settled_old o ON o.id = n.id
              WHERE n.settled_at IS NOT NULL AND o.settled_at IS NULL
              GROUP BY n.tenant_id) AS settled;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER conversations_live_insert AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS settled_new
    FOR EACH STATEMENT EXECUTE FUNCTION conversations_live_notify();
CREATE TRIGGER conversations_live_update AFTER UPDATE ON conversations
    REFERENCING OLD TABLE AS settled_old NEW TABLE AS settled_new
    FOR EACH STATEMENT EXECUTE FUNCTION conversations_live_notify();
