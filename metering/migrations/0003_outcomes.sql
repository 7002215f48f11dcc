-- Successful outcomes the agents' tools complete for end customers, the business records
-- they create, handoffs to a human, per-tenant agent configuration, and Twilio call
-- status callbacks. Every tool write is idempotent on its event id
-- (`<session>:<tool call id>`): a retried tool call lands once.

CREATE TABLE success_events (
    event_id     text PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   text NOT NULL,
    channel      text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('appointment_booked', 'ticket_created',
                                               'order_placed')),
    record_id    uuid NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX success_events_tenant_time ON success_events (tenant_id, occurred_at);

-- The business records. `customer` is the end customer's address on the channel (the
-- caller's number, the WhatsApp id): the tenant needs it to follow up.
CREATE TABLE appointments (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   text NOT NULL,
    customer     text NOT NULL,
    name         text NOT NULL,
    requested_for text NOT NULL,          -- as the customer said it ("tomorrow at 3pm")
    service      text NOT NULL,
    notes        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appointments_tenant ON appointments (tenant_id, created_at);

CREATE TABLE support_tickets (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   text NOT NULL,
    customer     text NOT NULL,
    summary      text NOT NULL,
    priority     text NOT NULL CHECK (priority IN ('low', 'normal', 'high')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_tickets_tenant ON support_tickets (tenant_id, created_at);

CREATE TABLE orders (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   text NOT NULL,
    customer     text NOT NULL,
    items        jsonb NOT NULL,          -- [{"name": ..., "quantity": n}]
    notes        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_tenant ON orders (tenant_id, created_at);

-- A conversation handed over to a human (a KPI: escalation rate). Not a success.
CREATE TABLE handoffs (
    event_id     text PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   text NOT NULL,
    channel      text NOT NULL,
    reason       text NOT NULL,
    target       text,                    -- the operator number a call went to
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handoffs_tenant_time ON handoffs (tenant_id, occurred_at);

-- What the agent says and may do, per tenant. No row: the defaults in agents.config.
CREATE TABLE agent_configs (
    tenant_id      uuid PRIMARY KEY REFERENCES tenants(id),
    config         jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Twilio call status callbacks, once per (call, status): Twilio retries them.
CREATE TABLE call_status_events (
    call_sid     text NOT NULL,
    status       text NOT NULL,
    tenant_id    uuid REFERENCES tenants(id),
    duration_s   integer,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_sid, status)
);
