"""A tenant's recent conversations and usage, written straight into PostgreSQL as the
gateway writes them (migration 0007's semantics: settled rows, `settled_at` = the end),
for the dashboard's screenshot (`python -m benchmarks.screenshot`) and its browser tests.

Deterministic for a seed: the same days, channels, outcomes and transcripts each run, so
a test can compute every card from the rows it was handed.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field

import asyncpg
import orjson

MICRO = 1_000_000
CHANNELS = (("phone", 0.5), ("whatsapp", 0.3), ("sms", 0.15), ("web", 0.05))
KINDS = (("appointment_booked", 0.5), ("ticket_created", 0.3), ("order_placed", 0.2))
WANTS = {
    "appointment_booked": ("book a cleaning", "The customer asked for a dental cleaning next "
                           "week; the agent booked Tuesday at 10:00 and confirmed by SMS."),
    "ticket_created": ("report a broken crown", "The customer reported a loose crown; the "
                       "agent opened a support ticket and promised a call back today."),
    "order_placed": ("order whitening strips", "The customer ordered two packs of whitening "
                     "strips; the agent placed the order for delivery on Friday."),
    None: ("ask about opening hours", "The customer asked about Saturday opening hours; the "
           "agent answered and the customer ended the conversation."),
}


@dataclass(frozen=True)
class SeededConversation:
    id: uuid.UUID
    channel: str
    started_at: dt.datetime
    ended_at: dt.datetime
    disposition: str
    outcomes: tuple[str, ...]
    handoff: bool
    micro_credits: int
    customer_masked: str
    summary: str
    transcript: list[dict[str, object]] = field(default_factory=list)

    @property
    def successes(self) -> int:
        return len(self.outcomes)


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([name for name, _ in weighted], [w for _, w in weighted])[0]


def _at(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _conversation(rng: random.Random, day: dt.date, index: int) -> SeededConversation:
    channel = _pick(rng, CHANNELS)
    started = dt.datetime.combine(day, dt.time(8, 0), dt.UTC) + dt.timedelta(
        minutes=40 * index + rng.randint(0, 30))
    abandoned = channel == "phone" and rng.random() < 0.06
    handoff = not abandoned and rng.random() < 0.07
    kind = None if abandoned or handoff or rng.random() >= 0.62 else _pick(rng, KINDS)
    seconds = rng.randint(5, 15) if abandoned else rng.randint(45, 420)
    ended = started + dt.timedelta(seconds=seconds)
    want, summary = WANTS[kind]
    turns: list[dict[str, object]] = []
    if not abandoned:
        turns = [
            {"role": "agent", "text": "Hello, Acme Dental, how can I help?",
             "started_at": _at(started), "ended_at": _at(started + dt.timedelta(seconds=3)),
             "interrupted": False, "heard_text": None},
            {"role": "customer", "text": f"Hi, I would like to {want}.",
             "started_at": _at(started + dt.timedelta(seconds=4)),
             "ended_at": _at(started + dt.timedelta(seconds=7)),
             "interrupted": False, "heard_text": None},
            {"role": "agent", "text": "Of course. Let me check what we have for you, one "
             "moment please while I look at the calendar.",
             "started_at": _at(started + dt.timedelta(seconds=8)),
             "ended_at": _at(started + dt.timedelta(seconds=12)),
             "interrupted": channel == "phone",
             "heard_text": "Of course. Let me check" if channel == "phone" else None},
            {"role": "customer", "text": "Thank you, that works for me.",
             "started_at": _at(started + dt.timedelta(seconds=13)),
             "ended_at": _at(started + dt.timedelta(seconds=15)),
             "interrupted": False, "heard_text": None},
        ]
    credits = (seconds * 19 // 12 + rng.randint(200, 900)) if channel == "phone" else (
        rng.randint(300, 700) + (5000 if channel == "sms" else 0))
    return SeededConversation(
        id=uuid.UUID(int=rng.getrandbits(128), version=4), channel=channel,
        started_at=started, ended_at=ended,
        disposition="abandoned" if abandoned else "transferred" if handoff else "completed",
        outcomes=(kind,) if kind else (), handoff=handoff, micro_credits=credits * MICRO,
        customer_masked=f"+4917***{rng.randint(1000, 1039)}",
        summary="" if abandoned else summary, transcript=turns)


def conversations(today: dt.date, *, days: int = 14, per_day: int = 9, seed: int = 7,
                  until: dt.datetime | None = None) -> list[SeededConversation]:
    """`per_day` +- 3 conversations on each of the `days` days up to `today`, those that
    would end after `until` left out."""
    rng = random.Random(seed)
    made: list[SeededConversation] = []
    for back in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=back)
        made.extend(_conversation(rng, day, i)
                    for i in range(max(per_day + rng.randint(-3, 3), 1)))
    return [c for c in made if until is None or c.ended_at <= until]


async def insert(pool: asyncpg.Pool, tenant_id: uuid.UUID,
                 rows: list[SeededConversation]) -> None:
    """The conversations, settled, and their usage in the ledger (credits by meter)."""
    records: list[tuple[object, ...]] = []
    usage: list[tuple[object, ...]] = []
    for c in rows:
        customer = c.customer_masked[-4:]
        answered = None if c.disposition == "abandoned" else c.started_at + dt.timedelta(
            milliseconds=400 + (c.micro_credits // MICRO) % 1800)
        outcomes = [{"kind": kind, "record_id": str(uuid.uuid5(c.id, kind)),
                     "at": _at(c.ended_at)} for kind in c.outcomes]
        tools = [{"name": kind.split("_")[0] + "_" + ("book" if kind.startswith("app")
                                                     else "create"),
                  "arguments": {"when": "tomorrow 15:00"}, "result": {"ok": True},
                  "at": _at(c.ended_at)} for kind in c.outcomes]
        records.append((
            c.id, tenant_id, c.channel, "inbound", f"cust{customer}", c.customer_masked,
            f"CA{c.id.hex}" if c.channel == "phone" else None, c.started_at, c.ended_at,
            c.ended_at, answered,
            None if answered is None else int((answered - c.started_at).total_seconds() * 1000),
            c.disposition, orjson.dumps(outcomes).decode(), c.successes, c.handoff,
            bool(c.outcomes), c.micro_credits, orjson.dumps(c.transcript).decode(),
            orjson.dumps(tools).decode(), c.summary or None, c.ended_at))
        seconds = int((c.ended_at - c.started_at).total_seconds())
        if c.channel == "phone":
            split = {"call_seconds": (seconds * 1000, seconds * 95 * MICRO // 60)}
            split["voice_input_tokens"] = (900, 0)
            split["voice_output_tokens"] = (300, 0)
        else:
            prefix = "chat"
            split = {f"{prefix}_input_tokens": (1800, 0), f"{prefix}_output_tokens": (400, 0)}
            if c.channel == "sms":
                split["sms_sent_segments"] = (2, 5000 * MICRO)
        rest = c.micro_credits - sum(micro for _, micro in split.values())
        tokens = [m for m in split if m.endswith("_tokens")]
        for meter in tokens:  # the rest of the cost on the tokens, input 1/3, output 2/3
            share = rest // 3 if "input" in meter else rest - rest // 3
            split[meter] = (split[meter][0], max(share, 0))
        usage.extend((f"{c.id}:{meter}", tenant_id, str(c.id), c.channel, meter, units,
                      micro, c.ended_at) for meter, (units, micro) in split.items())
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            """INSERT INTO conversations (id, tenant_id, channel, direction, customer_hash,
                   customer_masked, call_sid, started_at, last_activity_at, ended_at,
                   answered_at, first_response_ms, disposition, outcomes, successes,
                   handoff, resolved, micro_credits, transcript, tool_calls, summary,
                   settled_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb,
                       $15, $16, $17, $18, $19::jsonb, $20::jsonb, $21, $22)""", records)
        await conn.executemany(
            """INSERT INTO usage_events (event_id, tenant_id, session_id, channel, meter,
                   units, micro_credits, occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""", usage)
