"""What a tenant's agent says and may do: prompt, greeting, goodbye, voice, language,
tools, turn detection, and the notice sent once when credits run out.

Stored as one JSON document per tenant (`agent_configs`); a tenant without one gets the
defaults. It lives here, beside the tenants, because both the admin API (which may not
import `agents`) and the agents read it; the agents decide what the fields mean.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

import asyncpg
import orjson

TOOL_NAMES = ("book_appointment", "create_support_ticket", "place_order",
              "transfer_to_human", "end_call")
TURN_DETECTION = ("silero", "energy")

DEFAULT_PROMPT = (
    "You are the phone and messaging assistant of a small business. Be brief and warm: "
    "one or two short sentences per turn, no lists, no markdown. Book appointments, take "
    "support tickets and orders with the tools you have; confirm details before you call a "
    "tool. If the customer asks for a person, transfer them. Never invent prices or times."
)


class AgentConfigError(ValueError):
    """A field of an agent configuration is missing, of the wrong type or out of range."""

    def __init__(self, field_name: str, detail: str) -> None:
        super().__init__(f"{field_name}: {detail}")
        self.field = field_name


@dataclass(frozen=True)
class AgentConfig:
    system_prompt: str = DEFAULT_PROMPT
    greeting: str = "Hello, thanks for calling. How can I help you today?"
    goodbye: str = "I'm sorry, I have to end the call now. Goodbye."
    voice: str = "21m00Tcm4TlvDq8ikWAM"  # an ElevenLabs stock voice
    language: str = "en-US"
    tools: tuple[str, ...] = TOOL_NAMES
    turn_detection: str = "silero"
    paused_notice: str | None = None  # sent once to a messaging customer while paused

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["tools"] = list(self.tools)
        return doc


_LIMITS = {"system_prompt": 8000, "greeting": 500, "goodbye": 500, "voice": 64,
           "language": 16, "paused_notice": 500}


def parse_agent_config(doc: dict[str, Any], base: AgentConfig | None = None) -> AgentConfig:
    """Validates a (partial) configuration document over `base` (default: the defaults)."""
    values = asdict(base or AgentConfig())
    known = {f.name for f in fields(AgentConfig)}
    for name, value in doc.items():
        if name not in known:
            raise AgentConfigError(name, "is not a configuration field")
        values[name] = _checked(name, value)
    values["tools"] = tuple(values["tools"])
    return AgentConfig(**values)


def _checked(name: str, value: Any) -> Any:
    if name == "tools":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AgentConfigError(name, "must be a list of tool names")
        unknown = sorted(set(value) - set(TOOL_NAMES))
        if unknown:
            raise AgentConfigError(name, f"unknown tools {unknown}; known: {list(TOOL_NAMES)}")
        return tuple(dict.fromkeys(value))
    if name == "turn_detection":
        if value not in TURN_DETECTION:
            raise AgentConfigError(name, f"must be one of {list(TURN_DETECTION)}")
        return value
    if value is None and name == "paused_notice":
        return None
    if not isinstance(value, str) or not value.strip():
        raise AgentConfigError(name, "must be a non-empty string")
    if len(value) > _LIMITS[name]:
        raise AgentConfigError(name, f"must be at most {_LIMITS[name]} characters")
    return value


async def agent_config_for(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> AgentConfig:
    raw = await pool.fetchval("SELECT config FROM agent_configs WHERE tenant_id = $1",
                              tenant_id)
    return AgentConfig() if raw is None else parse_agent_config(orjson.loads(raw))


async def save_agent_config(pool: asyncpg.Pool, tenant_id: uuid.UUID,
                            config: AgentConfig) -> None:
    await pool.execute(
        """INSERT INTO agent_configs (tenant_id, config) VALUES ($1, $2::jsonb)
           ON CONFLICT (tenant_id) DO UPDATE SET config = EXCLUDED.config, updated_at = now()""",
        tenant_id, orjson.dumps(config.to_json()).decode())
