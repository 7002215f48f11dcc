"""Graceful shutdown: live sessions may finish up to a deadline; the rest are settled."""

from __future__ import annotations

import asyncio

import pytest

from gateway.sessions import LiveSession, SessionRegistry


async def test_drain_waits_for_finishing_sessions_and_closes_the_rest() -> None:
    registry = SessionRegistry()
    closed: list[tuple[str, str]] = []

    async def close_with(session_id: str, reason: str) -> None:
        closed.append((session_id, reason))

    def make(session_id: str) -> LiveSession:
        async def close(reason: str) -> None:
            await close_with(session_id, reason)
        return LiveSession(session_id, "phone", close)

    registry.add(make("quick"))
    registry.add(make("stuck"))
    asyncio.get_running_loop().call_later(0.05, registry.remove, "quick")
    leftovers = await registry.drain(deadline_s=0.3)
    assert leftovers == 1
    assert closed == [("stuck", "shutdown")]
    assert len(registry) == 0
    with pytest.raises(RuntimeError):
        registry.add(make("late"))
