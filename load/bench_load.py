"""One level of the call benchmark: N simulated callers held on the line for a while,
measured from Twilio's side, with the gateway's CPU and memory read beside them.

Each of the N caller slots starts within the ramp, places a call (a short greeting, then
2-3 utterances, each answered by the agent), and redials when it ends until the level's
time is up: N calls stay on the line for `duration_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from load.bench_procs import Reading, Sampler
from load.caller import FRAME_MS, CallResult, CallScript, Endpoint, SimulatedCall

# Short, tool-free questions: the emulator's script answers each with "This is the
# voicegw emulator. You said: ...", so every turn costs the same single LLM round trip.
PHRASES = (
    "What are your opening hours on Saturday",
    "Is there parking near the entrance",
    "Thanks, that is all for today",
)


MAX_CALL_S = 60.0  # a call lasts about 35 s; one still on the line at 60 s is cut off
CLOSE_GRACE_S = 15.0  # then the hang-up itself may take this long


@dataclass
class Probe:
    """What the callers of one level share: live calls and the callers' own clock lag."""

    live: int = 0
    peak_live: int = 0
    lags_ms: list[float] = field(default_factory=list)
    all_live_at: float | None = None  # when `live` first reached the level's N
    first_drop_at: float | None = None  # when it first fell below N after that
    target: int = 0
    _call_s: float = 0.0  # live calls integrated over time, up to `_since`
    _since: float = field(default_factory=time.monotonic)

    def _integrate(self) -> None:
        now = time.monotonic()
        self._call_s += self.live * (now - self._since)
        self._since = now

    def call_seconds(self) -> float:
        """Call-seconds held so far: what CPU per call-second divides by."""
        self._integrate()
        return self._call_s

    def up(self) -> None:
        self._integrate()
        self.live += 1
        self.peak_live = max(self.peak_live, self.live)
        if self.live >= self.target and self.all_live_at is None:
            self.all_live_at = time.monotonic()

    def down(self) -> None:
        self._integrate()
        self.live -= 1
        if self.all_live_at is not None and self.first_drop_at is None:
            self.first_drop_at = time.monotonic()


class BenchCall(SimulatedCall):
    """A SimulatedCall that also measures its own clock: how late each 20 ms frame went
    out (the load generator's lag), and when the last frame of an utterance really left,
    so a late caller does not show up as gateway latency."""

    def __init__(self, endpoint: Endpoint, to: str, caller: str, script: CallScript,
                 http: aiohttp.ClientSession, probe: Probe) -> None:
        super().__init__(endpoint, to, caller, script, http)
        self.probe = probe
        self.counted = False
        # Wall-clock times, to line turns up with the gateway's log (see bench_report).
        self.utterance_ends: list[float] = []
        self.reply_starts: list[float] = []

    async def _send_frame(self, ws: aiohttp.ClientWebSocketResponse, tick: int) -> None:
        if not self.counted:
            self.counted = True
            self.probe.up()
        lag = time.monotonic() - (self._t0 + tick * FRAME_MS / 1000)
        self.probe.lags_ms.append(lag * 1000)
        last_of_utterance = self._waiting_since is not None and len(self.line.speaking) == 1
        await super()._send_frame(ws, tick)
        if last_of_utterance and self._waiting_since is not None:
            self._waiting_since = time.monotonic()
            self.utterance_ends.append(time.time())

    def _on_agent_audio(self, now: float) -> None:
        if self._waiting_since is not None and now >= self._waiting_since:
            self.reply_starts.append(time.time() - (time.monotonic() - now))
        super()._on_agent_audio(now)


@dataclass
class Outcome:
    result: CallResult | None
    utterances: int
    error: str = ""
    streamed: bool = False  # the media stream opened: the gateway owes a call record
    utterance_ends: list[float] = field(default_factory=list)  # wall clock, per turn
    reply_starts: list[float] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.result is not None and bool(self.result.refused_with)

    @property
    def held(self) -> bool:
        """Every utterance answered, hung up by the caller: the gateway did its job."""
        r = self.result
        return (r is not None and not r.refused_with and not self.error
                and r.ended_by == "caller" and r.first_audio_ms is not None
                and len(r.turn_latencies_ms) >= self.utterances)


@dataclass
class LevelRun:
    calls: int
    ramp_s: float
    duration_s: float
    started: float
    stopped: float
    outcomes: list[Outcome]
    probe: Probe
    active_calls_max: int  # the gateway's own gauge, scraped from /metrics
    readings: list[Reading]
    idle_before: Reading | None
    idle_rss: int = 0  # the gateway's RSS and CPU use once warm and quiet (set by the caller)
    idle_cores: float = 0.0
    run: int = 1  # which of the benchmark's runs
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)  # load average at the start
    others_before: float = 0.0  # cores other processes used just before the level
    server: str = "voicegw"  # or "pipecat": who answered the calls

    @property
    def window(self) -> tuple[float, float]:
        """Where CPU is measured: from the end of the ramp until the callers stop
        redialling (every slot is on the line or redialling all along)."""
        start = self.started + self.ramp_s
        return start, start + self.duration_s


async def _active_calls(http: aiohttp.ClientSession, gateway_url: str) -> int | None:
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with http.get(gateway_url + "/metrics",
                            timeout=aiohttp.ClientTimeout(total=5)) as response:
            match = re.search(r"^voicegw_active_calls (\d+)", await response.text(), re.M)
            return int(match.group(1)) if match else 0
    return None


async def wait_idle(http: aiohttp.ClientSession, gateway_url: str, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if await _active_calls(http, gateway_url) == 0:
            return True
        await asyncio.sleep(0.5)
    return False


async def _one_call(endpoint: Endpoint, to: str, index: int, script: CallScript,
                    http: aiohttp.ClientSession, probe: Probe) -> Outcome:
    call = BenchCall(endpoint, to, f"+1555{index:07d}", script, http, probe)
    error = ""
    try:
        async with asyncio.timeout(script.max_call_s + CLOSE_GRACE_S):
            await call.run()
    except Exception as exc:  # a refused socket, a 5xx, a timeout: counted, not raised
        error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if call.counted:
            probe.down()
    return Outcome(call.result, len(script.utterances), error, call.counted,
                   call.utterance_ends, call.reply_starts)


def script_for(index: int, turns: int) -> CallScript:
    phrases = [PHRASES[(index + k) % len(PHRASES)] for k in range(turns)]
    return CallScript(phrases, agent_silence_s=0.8, max_call_s=MAX_CALL_S)


def warm_up_script(index: int) -> CallScript:
    """One turn, cut off once the reply has started: the pipeline, the VAD model, the
    vendor clients and the token counter are loaded (they load on first use)."""
    return CallScript([PHRASES[index % len(PHRASES)]], hang_up_after_s=9.0, max_call_s=15.0)


async def run_level(endpoint: Endpoint, to: str, calls: int, ramp_s: float,
                    duration_s: float, scripts: Callable[[int], CallScript],
                    sampler: Sampler) -> LevelRun:
    probe = Probe(target=calls)
    sampler.call_seconds = probe.call_seconds
    outcomes: list[Outcome] = []
    connector = aiohttp.TCPConnector(limit=0)  # one socket per call, never queued here
    async with aiohttp.ClientSession(connector=connector) as http:
        idle = sampler.read()
        started = time.monotonic()
        stop_redial = started + ramp_s + duration_s

        async def slot(index: int) -> None:
            await asyncio.sleep(index * ramp_s / calls)
            serial = 0
            while True:
                outcome = await _one_call(endpoint, to, index * 1000 + serial,
                                          scripts(index + serial), http, probe)
                outcomes.append(outcome)
                serial += 1
                if time.monotonic() >= stop_redial:
                    return
                if not outcome.held:  # refused or failed: no tight redial loop
                    await asyncio.sleep(1.0)

        active_max = 0

        async def scrape() -> None:
            nonlocal active_max
            while True:
                active = await _active_calls(http, endpoint.gateway_url)
                active_max = max(active_max, active or 0)
                await asyncio.sleep(1.0)

        scraper = asyncio.create_task(scrape())
        try:
            await asyncio.gather(*(slot(i) for i in range(calls)))
        finally:
            scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scraper
        stopped = time.monotonic()
    return LevelRun(calls, ramp_s, duration_s, started, stopped, outcomes, probe, active_max,
                    sampler.between(started, stopped), idle)
