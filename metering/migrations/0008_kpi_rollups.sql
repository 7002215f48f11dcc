-- KPI rollups (docs/kpis.md): what `GET /v1/kpis`, the commentary and the weekly report
-- read instead of scanning `conversations`. They are maintained by triggers on
-- `conversations` as rows settle (`settled_at` set once, 0007), so whoever writes the
-- conversations needs to know nothing about KPIs, and `kpi_rebuild(tenant)` recomputes a
-- tenant's rollups from its conversations (on a change of its time zone or service-level
-- threshold, and after a bulk load with the triggers off).
--
-- Days are the tenant's local days (`tenants.timezone`) of the conversation's start.
-- Concurrency: every trigger takes the tenant row FOR SHARE (a settings change, which
-- rebuilds, waits for settlements in flight and they wait for it); starting and settling
-- also take a transaction advisory lock per tenant and customer (two conversations of one
-- customer settling at once are linked in order, and a customer coming back while a
-- resolved conversation settles withdraws its first-contact resolution either way);
-- customer rollup rows are written in key order. The writer settles a conversation in one
-- statement of its own transaction, so these locks are held for milliseconds.

-- A settled, resolved conversation whose customer has not come back within 7 days (yet).
ALTER TABLE conversations ADD COLUMN kpi_fcr boolean NOT NULL DEFAULT false;

-- A time zone PostgreSQL does not know would fail every settlement of the tenant: refuse
-- it where it is written instead.
ALTER TABLE tenants ADD CONSTRAINT tenants_timezone_known
    CHECK (('2000-01-01 00:00+00'::timestamptz AT TIME ZONE timezone) IS NOT NULL);

-- Additive counters per tenant, local day, channel and direction.
CREATE TABLE kpi_days (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    day            date NOT NULL,
    channel        text NOT NULL,
    direction      text NOT NULL,
    conversations  integer NOT NULL DEFAULT 0,
    converted      integer NOT NULL DEFAULT 0,  -- conversations with at least one success
    successes      integer NOT NULL DEFAULT 0,
    appointments   integer NOT NULL DEFAULT 0,
    tickets        integer NOT NULL DEFAULT 0,
    orders         integer NOT NULL DEFAULT 0,
    handoffs       integer NOT NULL DEFAULT 0,
    calls          integer NOT NULL DEFAULT 0,  -- phone conversations
    abandoned      integer NOT NULL DEFAULT 0,  -- calls ended before the agent's first audio
    answered_calls integer NOT NULL DEFAULT 0,
    handle_ms      bigint NOT NULL DEFAULT 0,   -- durations of the answered calls
    answered       integer NOT NULL DEFAULT 0,  -- conversations with a first response
    response_ms    bigint NOT NULL DEFAULT 0,   -- their first-response times
    within_sl      integer NOT NULL DEFAULT 0,  -- answered within service_level_s
    resolved       integer NOT NULL DEFAULT 0,
    fcr            integer NOT NULL DEFAULT 0,
    rating_sum     integer NOT NULL DEFAULT 0,
    rating_count   integer NOT NULL DEFAULT 0,
    micro_credits  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, channel, direction)
);

CREATE TABLE kpi_disposition_days (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    day            date NOT NULL,
    channel        text NOT NULL,
    direction      text NOT NULL,
    disposition    text NOT NULL,
    conversations  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, channel, direction, disposition)
);

-- Distinct customers, exactly, for any range of days: each settled conversation is counted
-- under (its day, the day of the same customer's previous settled conversation, or
-- -infinity). The customers of days [a, b] are the conversations of those days whose
-- previous one is before a. One set of rows per filter scope: channel '' and direction ''
-- mean "any", so a filtered question reads the links made within its own filter.
CREATE TABLE kpi_customer_days (
    tenant_id  uuid NOT NULL REFERENCES tenants(id),
    channel    text NOT NULL,
    direction  text NOT NULL,
    day        date NOT NULL,
    prev_day   date NOT NULL,
    customers  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, channel, direction, day, prev_day)
);

-- One conversation's contribution to its day: every KPI's per-conversation definition,
-- used by the triggers and by the rebuild alike.
CREATE FUNCTION kpi_day_row(c conversations, tz text, sl_s integer) RETURNS kpi_days
LANGUAGE sql STABLE AS $$
    SELECT c.tenant_id, (c.started_at AT TIME ZONE tz)::date, c.channel, c.direction,
           1,
           (c.successes > 0)::int,
           c.successes,
           kinds.appointments, kinds.tickets, kinds.orders,
           c.handoff::int,
           (c.channel = 'phone')::int,
           (c.channel = 'phone' AND c.answered_at IS NULL)::int,
           (c.channel = 'phone' AND c.answered_at IS NOT NULL)::int,
           CASE WHEN c.channel = 'phone' AND c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL
                THEN greatest(0, round(extract(epoch FROM c.ended_at - c.started_at) * 1000))::bigint
                ELSE 0 END,
           (c.answered_at IS NOT NULL)::int,
           CASE WHEN c.answered_at IS NULL THEN 0 ELSE response.ms END,
           (c.answered_at IS NOT NULL AND response.ms <= sl_s::bigint * 1000)::int,
           ((c.successes > 0 OR c.resolved) AND NOT c.handoff)::int,
           c.kpi_fcr::int,
           coalesce(c.rating, 0)::int,
           (c.rating IS NOT NULL)::int,
           c.micro_credits
    FROM (SELECT
            count(*) FILTER (WHERE o->>'kind' = 'appointment_booked')::int AS appointments,
            count(*) FILTER (WHERE o->>'kind' = 'ticket_created')::int AS tickets,
            count(*) FILTER (WHERE o->>'kind' = 'order_placed')::int AS orders
          FROM jsonb_array_elements(CASE WHEN jsonb_typeof(c.outcomes) = 'array'
                                         THEN c.outcomes ELSE '[]'::jsonb END) AS o) AS kinds,
         (SELECT coalesce(c.first_response_ms::bigint,
                          greatest(0, round(extract(epoch FROM c.answered_at - c.started_at)
                                            * 1000))::bigint) AS ms) AS response
$$;

CREATE FUNCTION kpi_add_day(r kpi_days) RETURNS void LANGUAGE sql AS $$
    INSERT INTO kpi_days VALUES (r.*)
    ON CONFLICT (tenant_id, day, channel, direction) DO UPDATE SET
        conversations = kpi_days.conversations + EXCLUDED.conversations,
        converted = kpi_days.converted + EXCLUDED.converted,
        successes = kpi_days.successes + EXCLUDED.successes,
        appointments = kpi_days.appointments + EXCLUDED.appointments,
        tickets = kpi_days.tickets + EXCLUDED.tickets,
        orders = kpi_days.orders + EXCLUDED.orders,
        handoffs = kpi_days.handoffs + EXCLUDED.handoffs,
        calls = kpi_days.calls + EXCLUDED.calls,
        abandoned = kpi_days.abandoned + EXCLUDED.abandoned,
        answered_calls = kpi_days.answered_calls + EXCLUDED.answered_calls,
        handle_ms = kpi_days.handle_ms + EXCLUDED.handle_ms,
        answered = kpi_days.answered + EXCLUDED.answered,
        response_ms = kpi_days.response_ms + EXCLUDED.response_ms,
        within_sl = kpi_days.within_sl + EXCLUDED.within_sl,
        resolved = kpi_days.resolved + EXCLUDED.resolved,
        fcr = kpi_days.fcr + EXCLUDED.fcr,
        rating_sum = kpi_days.rating_sum + EXCLUDED.rating_sum,
        rating_count = kpi_days.rating_count + EXCLUDED.rating_count,
        micro_credits = kpi_days.micro_credits + EXCLUDED.micro_credits
$$;

-- Links a settling conversation to the customer's previous settled one in each scope, and
-- re-links the next settled one (a conversation may settle after a later one did).
CREATE FUNCTION kpi_link_customer(c conversations, tz text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    chs text[] := ARRAY[c.channel, c.channel, '', ''];
    dirs text[] := ARRAY[c.direction, '', c.direction, ''];
    d date := (c.started_at AT TIME ZONE tz)::date;
    prev timestamptz;
    next timestamptz;
    pd date;
    sd date;
    out_ch text[] := '{}';
    out_dir text[] := '{}';
    out_day date[] := '{}';
    out_prev date[] := '{}';
    out_n integer[] := '{}';
BEGIN
    FOR i IN 1..4 LOOP
        SELECT o.started_at INTO prev FROM conversations o
        WHERE o.tenant_id = c.tenant_id AND o.customer_hash = c.customer_hash
          AND o.settled_at IS NOT NULL AND o.id <> c.id
          AND (chs[i] = '' OR o.channel = chs[i]) AND (dirs[i] = '' OR o.direction = dirs[i])
          AND (o.started_at, o.id) < (c.started_at, c.id)
        ORDER BY o.started_at DESC, o.id DESC LIMIT 1;
        SELECT o.started_at INTO next FROM conversations o
        WHERE o.tenant_id = c.tenant_id AND o.customer_hash = c.customer_hash
          AND o.settled_at IS NOT NULL AND o.id <> c.id
          AND (chs[i] = '' OR o.channel = chs[i]) AND (dirs[i] = '' OR o.direction = dirs[i])
          AND (o.started_at, o.id) > (c.started_at, c.id)
        ORDER BY o.started_at, o.id LIMIT 1;
        pd := coalesce((prev AT TIME ZONE tz)::date, '-infinity'::date);
        out_ch := out_ch || chs[i]; out_dir := out_dir || dirs[i];
        out_day := out_day || d; out_prev := out_prev || pd; out_n := out_n || 1;
        IF next IS NOT NULL THEN
            sd := (next AT TIME ZONE tz)::date;
            out_ch := out_ch || ARRAY[chs[i], chs[i]];
            out_dir := out_dir || ARRAY[dirs[i], dirs[i]];
            out_day := out_day || ARRAY[sd, sd];
            out_prev := out_prev || ARRAY[pd, d];
            out_n := out_n || ARRAY[-1, 1];
        END IF;
    END LOOP;
    INSERT INTO kpi_customer_days AS k (tenant_id, channel, direction, day, prev_day, customers)
    SELECT c.tenant_id, x.ch, x.dir, x.day, x.prev, sum(x.n)
    FROM unnest(out_ch, out_dir, out_day, out_prev, out_n) AS x(ch, dir, day, prev, n)
    GROUP BY x.ch, x.dir, x.day, x.prev
    ORDER BY x.ch, x.dir, x.day, x.prev
    ON CONFLICT (tenant_id, channel, direction, day, prev_day)
        DO UPDATE SET customers = k.customers + EXCLUDED.customers;
END $$;

-- The tenant's settings, its row held FOR SHARE until commit (a settings change, which
-- rebuilds, waits for the counting in flight, and the counting waits for it).
CREATE FUNCTION kpi_settings(c conversations, OUT tz text, OUT sl_s integer)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT t.timezone, t.service_level_s INTO tz, sl_s FROM tenants t
    WHERE t.id = c.tenant_id FOR SHARE;
END $$;

-- The settings, then the customer's lock until commit: whatever touches a customer's
-- links or first-contact resolution sees the customer's other conversations committed.
CREATE FUNCTION kpi_lock(c conversations, OUT tz text, OUT sl_s integer)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT s.tz, s.sl_s INTO tz, sl_s FROM kpi_settings(c) AS s;
    PERFORM pg_advisory_xact_lock(
        hashtextextended(c.tenant_id::text || ':' || c.customer_hash, 8));
END $$;

-- BEFORE triggers: a row-level BEFORE trigger sees the rows the same statement processed
-- before it (an AFTER trigger would see all of them), so a multi-row insert of settled
-- conversations is counted as if they came one by one.
CREATE FUNCTION kpi_settle() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
    r kpi_days;
BEGIN
    s := kpi_lock(NEW);
    NEW.kpi_fcr := (NEW.successes > 0 OR NEW.resolved) AND NOT NEW.handoff AND NOT EXISTS (
        SELECT 1 FROM conversations o
        WHERE o.tenant_id = NEW.tenant_id AND o.customer_hash = NEW.customer_hash
          AND o.id <> NEW.id AND o.started_at > NEW.started_at
          AND o.started_at <= coalesce(NEW.ended_at, NEW.started_at) + interval '7 days');
    r := kpi_day_row(NEW, s.tz, s.sl_s);
    PERFORM kpi_add_day(r);
    INSERT INTO kpi_disposition_days AS k VALUES
        (NEW.tenant_id, r.day, NEW.channel, NEW.direction, coalesce(NEW.disposition, 'unknown'), 1)
    ON CONFLICT (tenant_id, day, channel, direction, disposition)
        DO UPDATE SET conversations = k.conversations + 1;
    PERFORM kpi_link_customer(NEW, s.tz);
    RETURN NEW;
END $$;

-- Any new conversation: earlier resolved conversations of the customer that ended at most
-- 7 days before it started stop counting as first-contact resolved.
CREATE FUNCTION kpi_came_back() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    -- Locked even when nothing is found: a resolved conversation of the customer settling
    -- at this moment either sees this one after our commit, or is seen by us after its own.
    s := kpi_lock(NEW);
    WITH back AS (
        UPDATE conversations o SET kpi_fcr = false
        WHERE o.tenant_id = NEW.tenant_id AND o.customer_hash = NEW.customer_hash
          AND o.kpi_fcr AND o.id <> NEW.id AND o.started_at < NEW.started_at
          AND coalesce(o.ended_at, o.started_at) + interval '7 days' >= NEW.started_at
        RETURNING (o.started_at AT TIME ZONE s.tz)::date AS day, o.channel, o.direction)
    UPDATE kpi_days k SET fcr = k.fcr - b.n
    FROM (SELECT day, channel, direction, count(*)::int AS n FROM back
          GROUP BY 1, 2, 3) AS b
    WHERE k.tenant_id = NEW.tenant_id AND k.day = b.day AND k.channel = b.channel
      AND k.direction = b.direction;
    RETURN NEW;
END $$;

-- A rating arriving (or changing) after settlement. No customer lock: a rating touches no
-- link, and this row is already locked by its UPDATE (taking the customer's lock after it
-- could deadlock with a new conversation withdrawing this one's first-contact resolution).
CREATE FUNCTION kpi_rate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    s := kpi_settings(NEW);
    UPDATE kpi_days k SET
        rating_sum = k.rating_sum + coalesce(NEW.rating, 0) - coalesce(OLD.rating, 0),
        rating_count = k.rating_count + (NEW.rating IS NOT NULL)::int
                                      - (OLD.rating IS NOT NULL)::int
    WHERE k.tenant_id = NEW.tenant_id AND k.day = (NEW.started_at AT TIME ZONE s.tz)::date
      AND k.channel = NEW.channel AND k.direction = NEW.direction;
    RETURN NEW;
END $$;

CREATE TRIGGER kpi_10_came_back BEFORE INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION kpi_came_back();
CREATE TRIGGER kpi_20_settle_insert BEFORE INSERT ON conversations
    FOR EACH ROW WHEN (NEW.settled_at IS NOT NULL) EXECUTE FUNCTION kpi_settle();
CREATE TRIGGER kpi_20_settle BEFORE UPDATE OF settled_at ON conversations
    FOR EACH ROW WHEN (OLD.settled_at IS NULL AND NEW.settled_at IS NOT NULL)
    EXECUTE FUNCTION kpi_settle();
CREATE TRIGGER kpi_30_rating BEFORE UPDATE OF rating ON conversations
    FOR EACH ROW WHEN (OLD.settled_at IS NOT NULL AND NEW.settled_at IS NOT NULL
                       AND OLD.rating IS DISTINCT FROM NEW.rating)
    EXECUTE FUNCTION kpi_rate();

-- Recomputes one tenant's rollups from its settled conversations (set-based).
CREATE FUNCTION kpi_rebuild(t uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    tz text;
    sl integer;
BEGIN
    SELECT timezone, service_level_s INTO tz, sl FROM tenants WHERE id = t FOR UPDATE;
    UPDATE conversations c SET kpi_fcr = x.fcr
    FROM (SELECT c2.id, ((c2.successes > 0 OR c2.resolved) AND NOT c2.handoff
                         AND NOT EXISTS (
                             SELECT 1 FROM conversations o
                             WHERE o.tenant_id = t AND o.customer_hash = c2.customer_hash
                               AND o.id <> c2.id AND o.started_at > c2.started_at
                               AND o.started_at <= coalesce(c2.ended_at, c2.started_at)
                                                   + interval '7 days')) AS fcr
          FROM conversations c2 WHERE c2.tenant_id = t AND c2.settled_at IS NOT NULL) AS x
    WHERE c.id = x.id AND c.kpi_fcr IS DISTINCT FROM x.fcr;
    DELETE FROM kpi_days WHERE tenant_id = t;
    DELETE FROM kpi_disposition_days WHERE tenant_id = t;
    DELETE FROM kpi_customer_days WHERE tenant_id = t;
    INSERT INTO kpi_days
    SELECT t, r.day, r.channel, r.direction, sum(r.conversations), sum(r.converted),
           sum(r.successes), sum(r.appointments), sum(r.tickets), sum(r.orders),
           sum(r.handoffs), sum(r.calls), sum(r.abandoned), sum(r.answered_calls),
           sum(r.handle_ms), sum(r.answered), sum(r.response_ms), sum(r.within_sl),
           sum(r.resolved), sum(r.fcr), sum(r.rating_sum), sum(r.rating_count),
           sum(r.micro_credits)
    FROM conversations c, LATERAL kpi_day_row(c, tz, sl) AS r
    WHERE c.tenant_id = t AND c.settled_at IS NOT NULL
    GROUP BY r.day, r.channel, r.direction;
    INSERT INTO kpi_disposition_days
    SELECT t, (c.started_at AT TIME ZONE tz)::date, c.channel, c.direction,
           coalesce(c.disposition, 'unknown'), count(*)
    FROM conversations c WHERE c.tenant_id = t AND c.settled_at IS NOT NULL
    GROUP BY 2, 3, 4, 5;
    INSERT INTO kpi_customer_days
    SELECT t, l.ch, l.dir, l.day, l.prev_day, count(*)
    FROM (SELECT sc.ch, sc.dir, (x.started_at AT TIME ZONE tz)::date AS day,
                 coalesce(((lag(x.started_at) OVER w) AT TIME ZONE tz)::date,
                          '-infinity'::date) AS prev_day
          FROM conversations x
          CROSS JOIN LATERAL (VALUES (x.channel, x.direction), (x.channel, ''),
                                     ('', x.direction), ('', '')) AS sc(ch, dir)
          WHERE x.tenant_id = t AND x.settled_at IS NOT NULL
          WINDOW w AS (PARTITION BY x.customer_hash, sc.ch, sc.dir
                       ORDER BY x.started_at, x.id)) AS l
    GROUP BY l.ch, l.dir, l.day, l.prev_day;
END $$;

CREATE FUNCTION kpi_rebuild_on_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kpi_rebuild(NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER kpi_rebuild_on_settings AFTER UPDATE OF timezone, service_level_s ON tenants
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone
                       OR OLD.service_level_s IS DISTINCT FROM NEW.service_level_s)
    EXECUTE FUNCTION kpi_rebuild_on_settings();

-- The commentary on a period's figures, cached per tenant, period and figures: the same
-- figures are written about once; new conversations make new figures and a new text.
CREATE TABLE kpi_commentaries (
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    from_day      date NOT NULL,
    to_day        date NOT NULL,
    figures_hash  text NOT NULL,
    text          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, from_day, to_day, figures_hash)
);

-- The weekly report: sent once per tenant and ISO week, whichever gateway gets there first.
CREATE TABLE weekly_reports (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    week        text NOT NULL CHECK (week ~ '^[0-9]{4}-W[0-9]{2}$'),
    recipients  text[] NOT NULL,
    queued_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, week)
);

-- Mail with an HTML part and one attachment (the weekly report's PDF).
ALTER TABLE mail_outbox
    ADD COLUMN html text,
    ADD COLUMN attachment bytea,
    ADD COLUMN attachment_name text,
    ADD COLUMN attachment_type text,
    ADD CONSTRAINT mail_outbox_attachment_named
        CHECK ((attachment IS NULL) = (attachment_name IS NULL));
