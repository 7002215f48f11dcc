"""Conversations: what a tenant's agent did, one row per phone call or text conversation
(migration 0007; docs/conversations.md).

`settings`: the tenant settings conversations and KPIs read (time zone, idle window,
retention, masking, CSAT, service level, report e-mails). `masking`: phone numbers and
e-mail addresses hidden in transcript text. `store`: the writes (a call's row at stream
start and its settlement; text messages grouped by the idle window and closed by a job;
ratings; the retention purge). `queries`: the reads of the API (filtered, paginated,
CSV rows).

May import: the rest of `metering` and third-party libraries (like all of `metering`).
"""
