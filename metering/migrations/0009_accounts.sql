-- Accounts (docs/accounts.md): people who sign in (a tenant's users with roles, and the
-- operators), their single-use e-mail links, their sessions; a tenant's many API keys;
-- and the append-only audit log.

-- One person, one account: an e-mail address signs in to one tenant (or is an operator).
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    tenant_id     uuid REFERENCES tenants(id),          -- NULL: an operator
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'billing', 'analyst',
                                                'operator', 'viewer')),
    password_hash text,                                  -- argon2id; NULL until set
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((tenant_id IS NULL) = (role IN ('operator', 'viewer')))
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_tenant ON users (tenant_id, created_at);

-- Invite and password-reset links: only the SHA-256 of the token is kept; used once.
CREATE TABLE user_tokens (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('invite', 'reset')),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_tokens_user ON user_tokens (user_id);

-- Sessions of signed-in users: the SHA-256 of the cookie's token.
CREATE TABLE user_sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address     text,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

-- A tenant's API keys (SHA-256 stored, the key shown once). `expires_at` is set on a
-- rotated key (the end of its grace period); `revoked_at` ends a key at once.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scope         text NOT NULL CHECK (scope IN ('full', 'read')),
    prefix        text NOT NULL,                    -- the first characters, to recognise it
    key_hash      bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    rotated_to    uuid REFERENCES api_keys(id)
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

-- The key each tenant was created with keeps working: it becomes the key named "default".
INSERT INTO api_keys (id, tenant_id, name, scope, prefix, key_hash, created_at)
SELECT gen_random_uuid(), id, 'default', 'full', 'vgw_…', api_key_hash, created_at
FROM tenants;

-- And so does the key of a tenant written by any other path (a fixture, a benchmark, an
-- import): its key is the tenant's "default" key unless the writer added it already.
CREATE FUNCTION tenants_default_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_keys (id, tenant_id, name, scope, prefix, key_hash, created_at)
    VALUES (gen_random_uuid(), NEW.id, 'default', 'full', 'vgw_…', NEW.api_key_hash,
            NEW.created_at)
    ON CONFLICT (key_hash) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_default_key AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_default_key();

-- Who did what: append-only (no UPDATE or DELETE is accepted).
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants(id),        -- NULL: an operator-side action
    at          timestamptz NOT NULL DEFAULT now(),
    actor_kind  text NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'admin_token',
                                                    'system')),
    actor_id    text,                                -- user id or key id
    actor_label text,                                -- e-mail or key name
    address     text,                                -- the client address
    action      text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_.]+$'),
    target      text,
    changes     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_at ON audit_log (at, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
