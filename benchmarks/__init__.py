"""Benchmarks (`make bench`): credit-control throughput and ledger sink throughput against
real Redis and PostgreSQL. They print figures and write BENCHMARKS.md; nothing here is a
test, and no test asserts a speed.

May import: `metering`, `gateway.embedded` (to find or start servers), third-party libraries.
"""
