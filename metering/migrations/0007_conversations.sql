-- Conversations: what the KPIs, the dashboard and the weekly report count (DESIGN.md, "KPIs
-- the dashboard and API compute"; docs/kpis.md). A phone call is one conversation (an
-- abandoned call too); on WhatsApp and SMS the messages with one customer without a pause
-- longer than the tenant's `conversation_idle_minutes` are one, counted from its first
-- message. A conversation is written when it starts and settled once when it ends; the
-- KPI rollups are maintained from the settled rows.

-- Per-tenant settings the conversations and KPIs read.
ALTER TABLE tenants
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC'
        CHECK (length(timezone) BETWEEN 1 AND 64),
    ADD COLUMN conversation_idle_minutes integer NOT NULL DEFAULT 30
        CHECK (conversation_idle_minutes BETWEEN 1 AND 1440),
    ADD COLUMN transcript_retention_days integer NOT NULL DEFAULT 90
        CHECK (transcript_retention_days BETWEEN 1 AND 3650),
    ADD COLUMN mask_transcripts boolean NOT NULL DEFAULT false,  -- numbers, e-mails in text
    ADD COLUMN csat_enabled boolean NOT NULL DEFAULT false,      -- ask for a 1-5 rating
    ADD COLUMN service_level_s integer NOT NULL DEFAULT 20       -- answered within, for KPIs
        CHECK (service_level_s BETWEEN 1 AND 3600),
    ADD COLUMN report_emails text[] NOT NULL DEFAULT '{}'        -- the weekly report's readers
        CHECK (cardinality(report_emails) <= 20);

CREATE TABLE conversations (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants(id),
    channel            text NOT NULL CHECK (channel IN ('phone', 'whatsapp', 'sms', 'web')),
    direction          text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    -- The customer: the per-tenant hash (repeat customers, FCR) and a masked form to show.
    -- The raw address stays with the messages and call records, not here.
    customer_hash      text NOT NULL,
    customer_masked    text NOT NULL,
    -- Phone: the CallSid. Text: NULL (the conversation is found by customer and time).
    call_sid           text UNIQUE,
    started_at         timestamptz NOT NULL,
    last_activity_at   timestamptz NOT NULL,   -- text: the idle window runs from here
    ended_at           timestamptz,            -- NULL while open
    -- Phone: the agent's first audio; text: the first reply sent. NULL: never answered.
    answered_at        timestamptz,
    first_response_ms  integer CHECK (first_response_ms >= 0),
    disposition        text,                   -- completed, abandoned, transferred, ...
    outcomes           jsonb NOT NULL DEFAULT '[]',   -- [{"kind", "record_id", "at"}]
    successes          integer NOT NULL DEFAULT 0 CHECK (successes >= 0),
    handoff            boolean NOT NULL DEFAULT false,
    resolved           boolean NOT NULL DEFAULT false, -- end_call(resolved=true)
    micro_credits      bigint NOT NULL DEFAULT 0 CHECK (micro_credits >= 0),
    session_ids        text[] NOT NULL DEFAULT '{}',   -- the credit sessions it spans
    -- Transcript: [{"role", "text", "started_at", "ended_at", "interrupted", "heard_text"}]
    -- and [{"name", "arguments", "result", "at"}]. NULL after transcript_retention_days.
    transcript         jsonb,
    tool_calls         jsonb,
    transcript_purged_at timestamptz,
    summary            text,
    rating             smallint CHECK (rating BETWEEN 1 AND 5),
    rated_at           timestamptz,
    csat_asked_at      timestamptz,            -- text: when the rating question was sent
    settled_at         timestamptz           -- set once, when the rollups counted it
);
CREATE INDEX conversations_tenant_time ON conversations (tenant_id, started_at DESC, id);
CREATE INDEX conversations_customer ON conversations (tenant_id, customer_hash, started_at);
CREATE INDEX conversations_open_text ON conversations (tenant_id, channel, customer_hash)
    WHERE ended_at IS NULL AND channel <> 'phone';
CREATE INDEX conversations_retention ON conversations (started_at)
    WHERE transcript IS NOT NULL;
