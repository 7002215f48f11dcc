"""Rate cards and rating, the Redis credit store (Lua), credit control (reserve / update /
terminate), meters, the outbox stream and its sink into PostgreSQL, the ledger schema and
migrations, and reconciliation. Every channel's prices and credit policies and the one
rule of "paused" (`channels`), and one function per billing operation with a typed
result (`messages`, `number_fees`). `metering.billing`: plans, subscriptions, plan
credits and invoices in money. `metering.accounts`: users and roles, passwords, sessions,
API keys and the audit log.

May import: third-party libraries only. It is the bottom of the dependency graph:
`gateway -> agents -> metering`, `api -> metering`.
"""
