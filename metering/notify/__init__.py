"""Telling tenants what happened: signed webhooks (Standard Webhooks) leaving a PostgreSQL
outbox, balance alerts (low, depleted, restored), and e-mail over SMTP.

- `events`: the event types, their ids and bodies; `outbox.emit` writes one delivery per
  subscribed endpoint inside the caller's transaction (nothing leaves for a rollback).
- `endpoints`, `deliveries`: the services behind the webhook API (create, list, delete,
  test, list attempts), each one call for a thin HTTP handler.
- `urls`: the SSRF rule (no loopback, private, link-local, multicast or reserved address,
  checked when an endpoint is created and again for every connection).
- `signing`, `delivery`: the Standard Webhooks signature and the delivery worker (claims
  with FOR UPDATE SKIP LOCKED and a lease, retries on a fixed schedule, disables an
  endpoint failing for 3 days).
- `alerts`: per-tenant alert settings and the balance events the credit scripts raise.
- `mail`: the mail outbox, the SMTP mailer and its worker.

May import: metering (and third-party libraries). Nothing in metering imports it but the
places where the causes commit (outcomes, top-ups, the sink).
"""
