"""The registry of live sessions (calls) in this process, for admission and shutdown.

On shutdown the gateway stops taking new sessions, lets live ones finish up to a
deadline, then asks the rest to settle (each session's `close` settles its credit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("voicegw.sessions")


@dataclass
class LiveSession:
    session_id: str
    channel: str
    close: Callable[[str], Awaitable[None]]  # settle and end, with the reason given
    done: asyncio.Event = field(default_factory=asyncio.Event)


class SessionRegistry:
    def __init__(self) -> None:
        self._live: dict[str, LiveSession] = {}
        self.draining = False

    def __len__(self) -> int:
        return len(self._live)

    def count(self, channel: str | None = None) -> int:
        if channel is None:
            return len(self._live)
        return sum(1 for s in self._live.values() if s.channel == channel)

    def add(self, session: LiveSession) -> None:
        if self.draining:
            raise RuntimeError("the gateway is shutting down")
        self._live[session.session_id] = session

    def remove(self, session_id: str) -> None:
        session = self._live.pop(session_id, None)
        if session is not None:
            session.done.set()

    async def drain(self, deadline_s: float) -> int:
        """Waits for live sessions up to the deadline, then closes the rest; returns how many
        had to be closed."""
        self.draining = True
        waiting = [s.done.wait() for s in self._live.values()]
        if waiting:
            await asyncio.wait(
                [asyncio.ensure_future(w) for w in waiting], timeout=max(deadline_s, 0)
            )
        leftovers = list(self._live.values())
        for session in leftovers:
            try:
                await session.close("shutdown")
            except Exception:
                log.exception("session %s failed to settle on shutdown", session.session_id)
            self.remove(session.session_id)
        return len(leftovers)
