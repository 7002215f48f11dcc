"""Admission of phone calls by this process's live load, not only by a fixed count.

A call admitted into a full process does not just fail itself: every live call's audio
shares the one event loop, so each admitted call past capacity makes all of them late.
So `POST /twilio/voice` answers "all lines busy" when, measured live:

- the event loop runs late: a timer set every `SAMPLE_S` fires, on average over the last
  `WINDOW_S`, more than `VOICEGW_CALL_LAG_LIMIT_MS` late (the calls' audio is queued
  behind other work already); or
- the process's CPU over the last `WINDOW_S` (`time.process_time`: every thread, ONNX
  Runtime's included; or the live calls at the per-call estimate, if more), plus what the
  calls admitted but not yet streaming will add, plus one more call, would exceed
  `VOICEGW_CALL_CPU_LIMIT` cores. The per-call estimate is the live calls' average, held
  at its peak and let down slowly with time (`HALF_LIFE_S`): calls listen cheaply and
  answer dearly. By time, not per decision: a flood of refused redials is hundreds of
  decisions a second, and a per-decision decay had let the peak go within seconds and
  admitted 28 calls where 16 fit (`make bench-calls`, 100 calls offered); or
- `VOICEGW_MAX_CALLS` calls are live or admitted already (the upper bound it always was).

With no call live, the process's CPU and lag are not the calls' doing (a start, a
sign-in, a report): the calls starting are judged at the per-call estimate alone.

Admitted-but-not-streaming calls count from the webhook's answer until their stream
starts (or their token expires), so a burst of webhooks cannot all pass the same reading.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SAMPLE_S = 0.1
WINDOW_S = 2.0
PENDING_TTL_S = 60.0  # the stream token's validity: a call not streaming by then never will
FIRST_CALL_CORES = 0.03  # what a call is assumed to cost before any call was measured
ESTIMATE_MIN_LIVE = 4  # live calls before their average is taken as the per-call cost
HALF_LIFE_S = 30.0  # the per-call estimate halves over this much time; it rises at once


@dataclass(frozen=True)
class Load:
    cores: float  # the process's CPU over the window
    lag_ms: float  # the event loop's mean lateness over the window
    live: int
    pending: int


class CallCapacity:
    def __init__(self, max_calls: int, cpu_limit: float, lag_limit_ms: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # lets the estimate's decay by time be tested
        self.max_calls = max_calls
        self.cpu_limit = cpu_limit
        self.lag_limit_ms = lag_limit_ms
        self._samples: deque[tuple[float, float, float]] = deque()  # (at, cpu s, lag s)
        self._pending: dict[str, float] = {}  # call sid -> admitted at
        self._per_call = FIRST_CALL_CORES
        self._estimated_at = clock()

    # -- measuring -----------------------------------------------------------------------
    def sample(self, lag_s: float) -> None:
        now = time.monotonic()
        self._samples.append((now, time.process_time(), lag_s))
        while self._samples and self._samples[0][0] < now - WINDOW_S:
            self._samples.popleft()

    async def run(self) -> None:
        """Samples the loop's lateness and the process's CPU until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + SAMPLE_S
            await asyncio.sleep(SAMPLE_S)
            self.sample(max(0.0, loop.time() - planned))

    def load(self, live: int) -> Load:
        self._expire()
        samples = self._samples
        cores = 0.0
        if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
            cores = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        lag = sum(s[2] for s in samples) / len(samples) if samples else 0.0
        return Load(cores, lag * 1000, live, len(self._pending))

    # -- deciding ------------------------------------------------------------------------
    def refusal(self, live: int) -> tuple[str, str] | None:
        """Why one more call may not be admitted now, as (reason, detail): reason is
        `max_calls`, `lag` or `cpu`; None admits it (then call `admitted`)."""
        load = self.load(live)
        if live + load.pending >= self.max_calls:
            return "max_calls", f"{live} live and {load.pending} starting calls"
        if live == 0:
            # No live call to protect, and what used the CPU lately was not calls (a start,
            # a sign-in, a report): the calls starting are judged at the estimate alone.
            if (load.pending + 1) * self._per_call > self.cpu_limit:
                return "cpu", (f"{load.pending} starting calls and this one at "
                               f"{self._per_call:.3f} cores each (limit {self.cpu_limit:g})")
            return None
        if load.lag_ms > self.lag_limit_ms:
            return "lag", f"event loop {load.lag_ms:.0f} ms late (limit {self.lag_limit_ms:g})"
        if live >= ESTIMATE_MIN_LIVE:  # fewer: the reading is mostly not the calls' cost
            self._per_call = self._estimate(load.cores / live)
        # Calls that are listening cost less than calls that are answering, and a burst of
        # new calls is measured in its cheap first seconds: the live calls are projected at
        # the estimate (which holds its peak), not only at what they use this instant.
        used = max(load.cores, live * self._per_call)
        projected = used + (load.pending + 1) * self._per_call
        if projected > self.cpu_limit:
            return "cpu", (f"{load.cores:.2f} cores used, {projected:.2f} with the starting "
                           f"calls and this one (limit {self.cpu_limit:g})")
        return None

    def _estimate(self, measured: float) -> float:
        """A call's cost: up at once to what is measured, down slowly with time (halved
        every `HALF_LIFE_S`), so the cheap phases of calls do not open the door to more
        than their busy phases can carry."""
        now = self._clock()
        elapsed = max(0.0, now - self._estimated_at)
        decayed: float = self._per_call * 0.5 ** (elapsed / HALF_LIFE_S)
        self._estimated_at = now
        return max(measured, decayed, 0.001)

    def admitted(self, call_sid: str) -> None:
        self._pending[call_sid] = time.monotonic()

    def started(self, call_sid: str) -> None:
        """The call's media stream started: it is live now, counted by the caller."""
        self._pending.pop(call_sid, None)

    def _expire(self) -> None:
        cutoff = time.monotonic() - PENDING_TTL_S
        for sid in [sid for sid, at in self._pending.items() if at < cutoff]:
            del self._pending[sid]
