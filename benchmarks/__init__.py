"""Benchmarks (`make bench`): credit-control throughput and ledger sink throughput against
real Redis and PostgreSQL; `make bench-webhooks` (webhook deliveries per worker core) and
`make bench-invoices` (finalizing 10,000 tenants' invoices) each write their own section.
They print figures and write BENCHMARKS.md; nothing here is a test, and no test asserts a
speed (tests/benchmarks runs each in a tiny configuration for its checks only).

May import: `metering`, `gateway.embedded` (to find or start servers), third-party libraries.
"""
