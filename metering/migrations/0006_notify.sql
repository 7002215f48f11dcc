-- Tenant webhooks (Standard Webhooks): endpoints, the delivery outbox (one message per
-- endpoint and event, written in the transaction that caused it) and every delivery
-- attempt; balance alert settings; the mail outbox (sent after commit, retried).

CREATE TABLE webhook_endpoints (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    url           text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    events        text[] NOT NULL CHECK (cardinality(events) > 0),
    secret        text NOT NULL,          -- whsec_<base64>: signing needs the key itself
    enabled       boolean NOT NULL DEFAULT true,
    failing_since timestamptz,            -- first failure since the last success
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at, id);

CREATE TABLE webhook_messages (
    id              bigserial PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL,
    webhook_id      text NOT NULL,        -- the `webhook-id` header: the same on every retry
    event_type      text NOT NULL,
    body            bytea NOT NULL,       -- exactly the bytes signed and sent
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,          -- claimed by a worker until then (in flight)
    lease_token     uuid,
    created_at      timestamptz NOT NULL,
    UNIQUE (endpoint_id, webhook_id)
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_messages_endpoint_due ON webhook_messages (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_messages_leased ON webhook_messages (endpoint_id)
    WHERE lease_until IS NOT NULL;

CREATE TABLE webhook_attempts (
    id            bigserial PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES webhook_messages(id) ON DELETE CASCADE,
    endpoint_id   uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    status        text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    response_code integer,
    error         text,
    duration_ms   integer NOT NULL,
    attempted_at  timestamptz NOT NULL,
    UNIQUE (message_id, attempt)
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempted_at, id);

CREATE TABLE alert_settings (
    tenant_id         uuid PRIMARY KEY REFERENCES tenants(id),
    low_balance_micro bigint CHECK (low_balance_micro > 0),   -- NULL: no low-balance alert
    emails            text[] NOT NULL DEFAULT '{}',
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mail_outbox (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid REFERENCES tenants(id),
    dedupe_key      text NOT NULL UNIQUE,  -- one mail per cause and recipient
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status = 'pending';
