-- The ledger of record. Every row is written idempotently: a top-up on the tenant's
-- Idempotency-Key, everything that comes through the outbox on its event id.
-- Amounts are integer micro-credits (1 credit = 1,000,000).

CREATE TABLE topups (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash     text NOT NULL,      -- the body the key was first used with
    credits          bigint NOT NULL CHECK (credits > 0),
    micro_credits    bigint NOT NULL CHECK (micro_credits = credits * 1000000),
    reference        text,
    response         jsonb,              -- the first answer, replayed verbatim on a retry
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key)
);

-- A debit of a tenant's credits: a slice of a session's usage settled, or a one-shot charge.
CREATE TABLE ledger_entries (
    event_id       text PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    session_id     text,
    kind           text NOT NULL CHECK (kind IN ('session_debit', 'charge', 'number_fee')),
    channel        text NOT NULL,
    micro_credits  bigint NOT NULL CHECK (micro_credits >= 0),
    usage          jsonb NOT NULL DEFAULT '{}',   -- raw units per meter debited by this entry
    occurred_at    timestamptz NOT NULL
);
CREATE INDEX ledger_entries_tenant_time ON ledger_entries (tenant_id, occurred_at);

-- One row per settled session (a call, a chat exchange): the call record.
CREATE TABLE sessions (
    session_id      text PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    channel         text NOT NULL,
    status          text NOT NULL,               -- settled | swept
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz NOT NULL,
    usage           jsonb NOT NULL DEFAULT '{}', -- cumulative raw units per meter
    micro_credits   bigint NOT NULL CHECK (micro_credits >= 0),
    written_off     bigint NOT NULL DEFAULT 0 CHECK (written_off >= 0),
    details         jsonb NOT NULL DEFAULT '{}'  -- channel specific: disposition, numbers...
);
CREATE INDEX sessions_tenant_time ON sessions (tenant_id, started_at);

-- Raw usage per meter per settled session, for usage reports grouped by meter/day/channel.
CREATE TABLE usage_events (
    event_id       text PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    session_id     text,
    channel        text NOT NULL,
    meter          text NOT NULL,
    units          bigint NOT NULL CHECK (units >= 0),
    micro_credits  bigint NOT NULL CHECK (micro_credits >= 0),
    occurred_at    timestamptz NOT NULL
);
CREATE INDEX usage_events_tenant_time ON usage_events (tenant_id, occurred_at);

-- Outbox entries the sink could not read: kept for an operator, never silently dropped.
CREATE TABLE outbox_rejects (
    entry_id     text PRIMARY KEY,
    fields       jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
