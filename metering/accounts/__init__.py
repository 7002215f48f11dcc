"""Accounts: the people who sign in (a tenant's users with roles, the operators), their
passwords (argon2id), single-use e-mail links and sessions; a tenant's API keys (many,
scoped, rotated, revoked); and the append-only audit log (docs/accounts.md).

- `passwords`: hashing and the password rule.
- `users`: invite, list, change role, delete (never the last owner), set a password
  from a link, ask for a reset link, check a login.
- `sessions`: a session token per login, looked up on every cookie request.
- `api_keys`: create, list, revoke, rotate with a grace period, look up by key.
- `audit`: `record(...)`, one row per action, and the filtered, paged reading.

May import: metering (and third-party libraries). It never sends mail itself: the links
are queued in the mail outbox (`metering.notify.mail`) in the transaction that makes them.
"""
