"""Billing in money: plans, subscriptions, plan credits (grants and expiry), successes from
the tenant's own systems, invoices (drafts, finalization, numbering, PDF) and the cycle job.

One module per concern, one service function per operation, each with typed inputs and a
typed result; errors come from `metering.billing.errors`. Time is always passed in (`now`),
so scenario tests move the clock. Rules and rounding are written in docs/billing.md.

May import: `metering` and third-party libraries only (never `api`, `agents`, `gateway`).
"""
