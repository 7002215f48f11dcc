-- WhatsApp and SMS: every message in and out, keyed by the vendor's id (the wamid, the
-- Twilio MessageSid). The primary key is the dedupe: a webhook delivered twice, to one
-- gateway process or to two, inserts its message once and only the inserting process
-- answers it. See docs/messaging.md.

CREATE TABLE messages (
    channel          text NOT NULL CHECK (channel IN ('whatsapp', 'sms')),
    vendor_id        text NOT NULL CHECK (length(vendor_id) BETWEEN 1 AND 200),
    direction        text NOT NULL CHECK (direction IN ('in', 'out')),
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    business         text NOT NULL,          -- phone_number_id (WhatsApp) or our number (SMS)
    customer         text NOT NULL,          -- the end customer's wa_id or number
    kind             text NOT NULL,          -- in: text, image, reaction, ...; out: reply, api, notice
    body             text,
    segments         integer CHECK (segments >= 0),      -- SMS only
    vendor_time      timestamptz,            -- when the vendor says the message was sent
    -- Inbound processing: received -> sending -> replied, or one of the end states
    -- paused, unsupported, expired, refused, failed, unknown (a crash while sending).
    -- Outbound: sent.
    state            text NOT NULL,
    attempt          integer NOT NULL DEFAULT 1,  -- fencing token of the worker holding it
    lease_until      timestamptz,                 -- another worker may take it after this
    session_id       text,                        -- the credit session of the exchange
    reply_to         text,                        -- out: the inbound vendor id it answers
    reply_id         text,                        -- in: the vendor id of our reply
    charge_pending   boolean NOT NULL DEFAULT false,  -- a one-shot charge waits for credit
    error            jsonb,
    payload          jsonb,                       -- the inbound item as the vendor sent it
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, vendor_id)
);
CREATE INDEX messages_unfinished ON messages (lease_until)
    WHERE direction = 'in' AND state IN ('received', 'sending');
CREATE INDEX messages_charge_pending ON messages (created_at) WHERE charge_pending;
CREATE INDEX messages_conversation ON messages (tenant_id, channel, customer, created_at);

-- Delivery statuses (sent, delivered, read, failed...), once per (message, status): the
-- vendors retry their callbacks.
CREATE TABLE message_statuses (
    channel      text NOT NULL CHECK (channel IN ('whatsapp', 'sms')),
    vendor_id    text NOT NULL,
    status       text NOT NULL,
    tenant_id    uuid REFERENCES tenants(id),
    occurred_at  timestamptz NOT NULL,
    errors       jsonb NOT NULL DEFAULT '[]',   -- [{"code": 131047, "title": ...}]
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, vendor_id, status)
);

-- Meta's pricing (and conversation) object, once per message id.
CREATE TABLE message_pricing (
    vendor_id            text PRIMARY KEY,
    tenant_id            uuid REFERENCES tenants(id),
    billable             boolean,
    pricing_model        text,
    category             text,
    conversation_id      text,
    conversation_origin  text,
    payload              jsonb NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now()
);

-- The notice a paused tenant configured, sent once per customer per pause: `episode` is
-- the tenant's topped-up total when it went out, so a top-up starts a new episode.
CREATE TABLE paused_notices (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    channel      text NOT NULL,
    customer     text NOT NULL,
    episode      bigint NOT NULL,
    vendor_id    text,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel, customer, episode)
);

-- Signed webhook content we could not use (an envelope that is not a webhook, an item
-- missing its id, a change we do not handle, a number nobody holds): kept for an
-- operator, never silently dropped. Once per (reason, content): vendors redeliver.
CREATE TABLE webhook_rejects (
    id              bigserial PRIMARY KEY,
    channel         text NOT NULL,
    reason          text NOT NULL,
    payload         text NOT NULL,
    payload_sha256  text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, reason, payload_sha256)
);
