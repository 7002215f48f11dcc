-- Tariffs beyond pure usage and the monthly tariff review (docs/tariffs.md, seed 004):
-- postpaid plans with a credit limit and a tariff, the tenant's billing e-mail, the
-- reviews (once per tenant and month), the operator tasks they open, and the editable
-- offer templates.

ALTER TABLE plans
    ADD COLUMN billing text NOT NULL DEFAULT 'prepaid' CHECK (billing IN ('prepaid', 'postpaid')),
    ADD COLUMN tariff  jsonb,                -- postpaid only: usage, cost_cap, flat_rate, per_call
    ADD CONSTRAINT plans_postpaid_tariff CHECK ((billing = 'postpaid') = (tariff IS NOT NULL));

ALTER TABLE tenants ADD COLUMN billing_email text
    CHECK (billing_email IS NULL OR length(billing_email) BETWEEN 3 AND 254);

-- One final review per tenant and month, whichever gateway ran it first.
CREATE TABLE tariff_reviews (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    period       date NOT NULL CHECK (extract(day FROM period) = 1),
    tariff       text NOT NULL,
    flagged      boolean NOT NULL,
    figures      jsonb NOT NULL,
    offer        jsonb,
    reviewed_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, period)
);

CREATE TABLE tariff_tasks (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    kind             text NOT NULL CHECK (kind IN (
                         'cost_cap_offer', 'cost_cap_follow_up', 'flat_rate_offer',
                         'flat_rate_follow_up', 'per_call_offer', 'per_call_follow_up')),
    tariff           text NOT NULL CHECK (tariff IN ('cost_cap', 'flat_rate', 'per_call')),
    period           date NOT NULL CHECK (extract(day FROM period) = 1),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN (
                         'open', 'offer_sent', 'follow_up', 'accepted', 'declined', 'closed')),
    plan_id          text NOT NULL,
    plan_version     integer NOT NULL,
    currency         text NOT NULL,
    figures          jsonb NOT NULL,         -- every figure the templates use
    offer            jsonb NOT NULL,         -- the proposal: price and tariff
    follows_task_id  uuid REFERENCES tariff_tasks(id),
    offer_text       text,                   -- as rendered and sent
    offer_to         text,
    offer_sent_at    timestamptz,
    sending_until    timestamptz,            -- a send in flight holds the task until then
    last_error       text,                   -- the last failed send (SMTP down...)
    outcome_note     text,
    resolved_at      timestamptz,
    applied_plan_id  text,                   -- accepted: the plan the tenant moves to
    created_at       timestamptz NOT NULL,
    FOREIGN KEY (plan_id, plan_version) REFERENCES plans (id, version),
    CHECK ((follows_task_id IS NULL) = (kind LIKE '%\_offer'))
);
-- At most one task per tenant, tariff and period, and one follow-up per task: N gateways
-- reviewing at once open one.
CREATE UNIQUE INDEX tariff_tasks_once ON tariff_tasks (tenant_id, tariff, period)
    WHERE follows_task_id IS NULL;
CREATE UNIQUE INDEX tariff_tasks_follow_up_once ON tariff_tasks (follows_task_id)
    WHERE follows_task_id IS NOT NULL;
CREATE INDEX tariff_tasks_status ON tariff_tasks (status, created_at);
CREATE INDEX tariff_tasks_waiting ON tariff_tasks (offer_sent_at) WHERE status = 'offer_sent';

-- Operator-edited offer templates; a name without a row uses its built-in default.
CREATE TABLE tariff_templates (
    name        text PRIMARY KEY,
    text        text NOT NULL CHECK (length(text) BETWEEN 1 AND 20000),
    updated_at  timestamptz NOT NULL
);
