-- Tenants (businesses), their API keys (stored as SHA-256, the key itself is shown once)
-- and the phone numbers they hold.
CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    api_key_hash    bytea NOT NULL UNIQUE,
    rate_card       jsonb,              -- NULL: the default rate card
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE phone_numbers (
    phone_number             text PRIMARY KEY CHECK (phone_number ~ '^\+[1-9][0-9]{6,14}$'),
    tenant_id                uuid NOT NULL REFERENCES tenants(id),
    kind                     text NOT NULL CHECK (kind IN ('local', 'mobile')),
    whatsapp_phone_number_id text UNIQUE,
    operator_number          text CHECK (operator_number ~ '^\+[1-9][0-9]{6,14}$'),
    held_from                timestamptz NOT NULL DEFAULT now(),
    released_at              timestamptz
);
CREATE INDEX phone_numbers_tenant ON phone_numbers (tenant_id);
