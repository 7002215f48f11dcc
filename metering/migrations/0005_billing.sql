-- Billing in money: plans (immutable versions), subscriptions, plan credits granted and
-- expired (ledger rows beside top-ups), successes from the tenant's own systems, and
-- invoices numbered without gaps. Money is integer minor units of the plan's currency
-- (ISO 4217 exponent); credits are micro-credits. See docs/billing.md.

-- A plan version never changes once written: a change is a new version, and each billing
-- cycle pins the version it was opened with.
CREATE TABLE plans (
    id                text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    version           integer NOT NULL CHECK (version >= 1),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    setup_fee         bigint NOT NULL CHECK (setup_fee >= 0),
    monthly_fee       bigint NOT NULL CHECK (monthly_fee >= 0),
    success_fee       bigint NOT NULL CHECK (success_fee >= 0),
    included_credits  bigint NOT NULL CHECK (included_credits >= 0),
    credit_rollover   boolean NOT NULL,
    rate_card         jsonb,                 -- NULL: the tenant's own card or the default
    request_hash      text NOT NULL,         -- the definition, to tell a replay from a change
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (id, version)
);

-- One row per subscribed tenant: its plan now, and the change waiting for the next cycle.
-- The row is the lock that serializes concurrent plan changes of a tenant.
CREATE TABLE subscriptions (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants(id),
    plan_id          text NOT NULL,
    current_from     date NOT NULL,          -- the first day the current plan applies
    started_on       date NOT NULL,          -- the first subscription's first day
    pending_plan_id  text,
    pending_from     date,                   -- the first day of the cycle it takes effect
    updated_at       timestamptz NOT NULL,
    CHECK ((pending_plan_id IS NULL) = (pending_from IS NULL))
);

-- One invoice per tenant and cycle, opened (as a draft) when the cycle starts; its lines
-- are computed on read until it is finalized, then frozen here.
CREATE TABLE invoices (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants(id),
    period            date NOT NULL CHECK (extract(day FROM period) = 1),
    plan_id           text NOT NULL,
    plan_version      integer NOT NULL,
    starts_on         date NOT NULL,         -- the first day billed (pro rata when not the 1st)
    first_cycle       boolean NOT NULL,      -- the first subscription's cycle: the setup fee
    currency          text NOT NULL,
    status            text NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'finalized', 'paid', 'void')),
    number            text UNIQUE,
    lines             jsonb,
    total             bigint CHECK (total >= 0),
    successes         integer CHECK (successes >= 0),
    cost_per_success  numeric(24, 2),
    credits_used      jsonb,
    finalized_at      timestamptz,
    paid_at           timestamptz,
    voided_at         timestamptz,
    created_at        timestamptz NOT NULL,
    UNIQUE (tenant_id, period),
    FOREIGN KEY (plan_id, plan_version) REFERENCES plans (id, version),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK (status = 'draft' OR (lines IS NOT NULL AND total IS NOT NULL))
);
CREATE INDEX invoices_drafts ON invoices (period) WHERE status = 'draft';

-- The last number given per issuer and year; locked by the finalizing transaction, so a
-- rolled-back finalization gives its number back and numbers have no gaps.
CREATE TABLE invoice_counters (
    issuer       text NOT NULL,
    year         integer NOT NULL,
    last_number  bigint NOT NULL CHECK (last_number >= 0),
    PRIMARY KEY (issuer, year)
);

-- Plan credits in the ledger: granted once per tenant and cycle, and the unused plan
-- credits of a cycle without rollover expired once. Conservation per tenant:
-- topped up + granted = available + reserved + billed + expired.
CREATE TABLE plan_credits (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    period         date NOT NULL CHECK (extract(day FROM period) = 1),
    kind           text NOT NULL CHECK (kind IN ('grant', 'expiry')),
    plan_id        text NOT NULL,
    plan_version   integer NOT NULL,
    micro_credits  bigint NOT NULL CHECK (micro_credits >= 0),
    applied_at     timestamptz,              -- grants: when the live balance got it
    created_at     timestamptz NOT NULL,
    UNIQUE (tenant_id, period, kind)
);
CREATE INDEX plan_credits_unapplied ON plan_credits (tenant_id)
    WHERE kind = 'grant' AND applied_at IS NULL;

-- Successes come from the agent's tools (source agent) or the tenant's systems (api).
-- An invoice claims a success once (invoice_id); recorded_at decides which invoice.
ALTER TABLE success_events
    ALTER COLUMN session_id DROP NOT NULL,
    ADD COLUMN source text NOT NULL DEFAULT 'agent' CHECK (source IN ('agent', 'api')),
    ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN reference text,
    ADD COLUMN customer text,
    ADD COLUMN idempotency_key text,
    ADD COLUMN request_hash text,
    ADD COLUMN invoice_id uuid REFERENCES invoices(id),
    ADD CONSTRAINT success_events_api_key CHECK ((source = 'api') = (idempotency_key IS NOT NULL));
CREATE UNIQUE INDEX success_events_idempotency ON success_events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX success_events_unclaimed ON success_events (tenant_id, recorded_at)
    WHERE invoice_id IS NULL;
CREATE INDEX success_events_tenant_recorded ON success_events (tenant_id, recorded_at, event_id);
