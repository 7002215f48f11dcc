"""Figures of the call benchmark: latency floors, percentiles, per-level summaries, the
end-of-run integrity checks, and the "Phone calls" section of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import math
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from load.bench_load import PHRASES, LevelRun, Outcome
from load.bench_procs import Reading, cpu_model
from load.caller import FRAME_MS
from load.emulators.openai_stt import SttTiming
from load.emulators.script import decide

MB = 1024 * 1024
RSS_TARGET_MB = 10.0
IN_REPLY_GAP_MS = 500.0  # longer gaps between agent frames are pauses between replies


def emulator_default_stt_ms() -> float:
    return SttTiming().latency_ms


@dataclass(frozen=True)
class Timing:
    """What the emulators and the turn detection make a turn wait, by configuration."""

    stt_latency_ms: float
    llm_ttfb_ms: float
    tokens_per_s: float
    tts_ttfb_ms: float
    vad_stop_s: float
    user_speech_timeout_s: float

    def first_sentence_ms(self, phrase: str) -> float:
        """When the LLM emulator has streamed the first sentence of its reply: it sends
        one word per token, the first at TTFB and each next one 1/tokens_per_s later."""
        reply = decide([{"role": "user", "content": phrase}], set()).text
        words = len(re.split(r"(?<=[.!?])\s", reply, maxsplit=1)[0].split())
        pause = 1000 / self.tokens_per_s if self.tokens_per_s > 0 else 0.0
        return self.llm_ttfb_ms + max(0, words - 1) * pause

    def earliest_reply_ms(self) -> float:
        """No reply can come sooner: turn detection, then the LLM's first token. Audio
        sooner than this after an utterance is the tail of an earlier reply."""
        return (self.vad_stop_s * 1000 + max(self.user_speech_timeout_s * 1000,
                                             self.stt_latency_ms) + self.llm_ttfb_ms)

    def floor_ms(self, phrase: str) -> float:
        detection = self.vad_stop_s * 1000 + max(self.user_speech_timeout_s * 1000,
                                                 self.stt_latency_ms)
        return detection + self.first_sentence_ms(phrase) + self.tts_ttfb_ms

    def describe(self) -> str:
        phrase = PHRASES[0]
        return (f"VAD stop {self.vad_stop_s * 1000:.0f} ms + max(speech timeout "
                f"{self.user_speech_timeout_s * 1000:.0f} ms, STT {self.stt_latency_ms:.0f} ms)"
                f" + LLM first sentence {self.first_sentence_ms(phrase):.0f} ms (TTFB "
                f"{self.llm_ttfb_ms:.0f} ms, {self.tokens_per_s:g} tokens/s) + TTS TTFB "
                f"{self.tts_ttfb_ms:.0f} ms = {self.floor_ms(phrase):.0f} ms")


def playout_stalls(gaps_ms: list[float]) -> tuple[float, int]:
    """Silence a caller hears inside replies, as Twilio plays what arrives: each frame
    adds 20 ms to its buffer, the gap before the next one drains it, and a gap longer
    than what is buffered is a stall (gaps over IN_REPLY_GAP_MS are between replies).
    Returns total stalled ms and the number of stalls."""
    buffered, stalled, stalls = 0.0, 0.0, 0
    for gap in gaps_ms:
        if gap >= IN_REPLY_GAP_MS:
            buffered = 0.0
            continue
        buffered += FRAME_MS - gap
        if buffered < 0:
            stalled, stalls, buffered = stalled - buffered, stalls + 1, 0.0
    return stalled, stalls


TurnLog = dict[str, list[dict[str, float]]]  # call sid -> the gateway's turn timings


def turn_timings(log_path: Path) -> TurnLog:
    """The gateway's "turn timing" lines (agents/voice/timing.py), per call, in order."""
    turns: TurnLog = {}
    with contextlib.suppress(OSError), log_path.open("rb") as log:
        for line in log:
            if not line.startswith(b"{") or b"turn_timing" not in line:
                continue
            try:
                entry = orjson.loads(line)
                stamps = {str(k): float(v) for k, v in entry["timing"].items()}
                call = str(entry["call_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                continue
            turns.setdefault(call, []).append(stamps)
    return turns


# The added latency's parts, in order: (name, from stamp, to stamp); "end" is the end of
# the caller's utterance and "heard" the reply's first audio at the caller, both measured
# by the caller; the rest are the gateway's stamps.
SEGMENTS = (
    ("turn detection", "end", "stt_request"),
    ("STT", "stt_request", "stt_answer"),
    ("turn end", "stt_answer", "llm_request"),
    ("LLM first sentence", "llm_request", "tts_request"),
    ("first TTS byte", "tts_request", "tts_first_byte"),
    ("first audio frame out", "tts_first_byte", "first_frame_out"),
    ("to the caller", "first_frame_out", "heard"),
)


def segment_floors(timing: Timing) -> dict[str, float]:
    """What each part takes by configuration alone (the emulators' latencies, the VAD's
    stop_secs, the speech timeout counted from the VAD's stop)."""
    return {
        "turn detection": timing.vad_stop_s * 1000,
        "STT": timing.stt_latency_ms,
        "turn end": max(0.0, timing.user_speech_timeout_s * 1000 - timing.stt_latency_ms),
        "LLM first sentence": timing.first_sentence_ms(PHRASES[0]),
        "first TTS byte": timing.tts_ttfb_ms,
        "first audio frame out": 0.0,
        "to the caller": 0.0,
    }


def breakdown(outcomes: list[Outcome], turns: TurnLog) -> dict[str, list[float]]:
    """Each part of each answered turn, ms: the caller's utterance end lined up with the
    first gateway turn whose VAD stop came after it."""
    parts: dict[str, list[float]] = {name: [] for name, _, _ in SEGMENTS}
    for outcome in outcomes:
        result = outcome.result
        if result is None or result.call_sid not in turns:
            continue
        timings = turns[result.call_sid]
        for end, heard in zip(outcome.utterance_ends, outcome.reply_starts, strict=False):
            stamps = next((t for t in timings if end < t.get("vad_stop", 0) < end + 5), None)
            if stamps is None:
                continue
            known = {**stamps, "end": end, "heard": heard}
            for name, first, then in SEGMENTS:
                if first in known and then in known:
                    parts[name].append((known[then] - known[first]) * 1000)
    return parts


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: with fewer than 100 values, p99 is the largest."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _delta(readings: list[Reading], attr: str) -> float:
    if len(readings) < 2:
        return math.nan
    return float(getattr(readings[-1], attr)) - float(getattr(readings[0], attr))


def _rate(readings: list[Reading], attr: str) -> float:
    if len(readings) < 2 or readings[-1].at <= readings[0].at:
        return math.nan
    return _delta(readings, attr) / (readings[-1].at - readings[0].at)


P3 = tuple[float, float, float]


@dataclass
class LevelFigures:
    server: str
    calls: int
    run: int
    placed: int
    held: int
    refused: int
    dropped: int
    errors: list[str]
    peak_live: int
    gateway_active_max: int
    turns: int
    misattributed: int  # "replies" sooner than possible: late audio of an earlier reply
    raw_ms: P3
    added_ms: P3
    first_audio_ms: tuple[float, float]
    gap_ms: P3
    stall_ms_per_min: float  # silence inside replies per minute of agent audio
    stalls: int
    parts_ms: dict[str, P3]  # p50 / p95 / p99 of each part of the latency
    gateway_cores: float
    gateway_cores_peak: float
    mean_live: float  # calls on the line on average over the CPU window
    cpu_ms_per_call_s: float
    rss_peak_mb: float
    rss_per_call_mb: float
    load_cores: float  # callers + emulators
    others_cores: float  # every other process on the machine, Redis and PostgreSQL aside
    stores_cores: float  # Redis and PostgreSQL (they serve the gateway; others use them too)
    others_on_gateway_core: float
    caller_lag_ms: tuple[float, float]
    window_s: float
    load_before: tuple[float, float, float]
    others_before: float

    @property
    def calls_per_core(self) -> float:
        cost = self.cpu_ms_per_call_s
        return 1000 / cost if cost > 0 else math.nan

    def reasons(self, target_ms: float, silence_ms: float) -> list[str]:
        """Why the level is not held; empty when it is."""
        out = []
        if self.held < self.placed or self.placed == 0:
            out.append(f"{self.placed - self.held} of {self.placed} calls not completed "
                       f"(refused {self.refused}, dropped {self.dropped})")
        if not self.added_ms[2] <= target_ms:
            out.append(f"p99 added latency {self.added_ms[2]:,.0f} ms > {target_ms:g} ms")
        if not self.stall_ms_per_min <= silence_ms:
            out.append(f"silence inside replies {self.stall_ms_per_min:,.0f} ms per minute of "
                       f"agent speech > {silence_ms:g}")
        return out

    def passes(self, target_ms: float, silence_ms: float = 50.0) -> bool:
        return not self.reasons(target_ms, silence_ms)


def _window(run: LevelRun) -> list[Reading]:
    start, end = run.window
    inside = [r for r in run.readings if start <= r.at <= end]
    return inside if len(inside) >= 2 else run.readings


def figures(run: LevelRun, timing: Timing, turns: TurnLog) -> LevelFigures:
    raw: list[float] = []
    held, misattributed = 0, 0
    added: list[float] = []
    first: list[float] = []
    gaps: list[float] = []
    stalled, stalls, agent_ms = 0.0, 0, 0
    for outcome in run.outcomes:
        result = outcome.result
        if result is None:
            continue
        early = 0
        for phrase, latency in zip(result.said, result.turn_latencies_ms, strict=False):
            if latency < timing.earliest_reply_ms():
                early += 1
                continue
            raw.append(latency)
            added.append(latency - timing.floor_ms(phrase))
        misattributed += early
        held += outcome.held and not early
        if result.first_audio_ms is not None:
            first.append(result.first_audio_ms)
        gaps.extend(g for g in result.frame_gaps_ms if g < IN_REPLY_GAP_MS)
        call_stalled, call_stalls = playout_stalls(result.frame_gaps_ms)
        stalled, stalls = stalled + call_stalled, stalls + call_stalls
        agent_ms += result.agent_audio_ms
    parts = breakdown(run.outcomes, turns)
    window = _window(run)
    seconds = window[-1].at - window[0].at if len(window) >= 2 else math.nan
    cores = _rate(window, "gateway_cpu_s")
    peaks = [_rate(window[i:i + 5], "gateway_cpu_s") for i in range(0, len(window) - 4)]
    call_s = _delta(window, "call_s")
    spent = _delta(window, "gateway_cpu_s") - run.idle_cores * seconds
    rss_peak = max((r.gateway_rss for r in run.readings), default=run.idle_rss)
    load = _rate(window, "emulators_cpu_s") + _rate(window, "self_cpu_s")
    stores = _rate(window, "stores_cpu_s")
    others = _rate(window, "machine_busy_s") - cores - load - stores
    busy = _rate(window, "gateway_core_busy_s")
    lags = run.probe.lags_ms
    errors = sorted({o.error.split(":")[0] for o in run.outcomes if o.error})
    refused = sum(o.refused for o in run.outcomes)
    return LevelFigures(
        server=run.server, calls=run.calls, run=run.run, placed=len(run.outcomes),
        held=held, refused=refused, dropped=len(run.outcomes) - held - refused, errors=errors,
        peak_live=run.probe.peak_live, gateway_active_max=run.active_calls_max,
        turns=len(raw), misattributed=misattributed,
        raw_ms=(percentile(raw, 50), percentile(raw, 95), percentile(raw, 99)),
        added_ms=(percentile(added, 50), percentile(added, 95), percentile(added, 99)),
        first_audio_ms=(percentile(first, 50), percentile(first, 99)),
        gap_ms=(percentile(gaps, 50), percentile(gaps, 99), max(gaps, default=math.nan)),
        stall_ms_per_min=stalled / (agent_ms / 60_000) if agent_ms else math.nan,
        stalls=stalls,
        parts_ms={name: (percentile(v, 50), percentile(v, 95), percentile(v, 99))
                  for name, v in parts.items()},
        gateway_cores=cores, gateway_cores_peak=max(peaks, default=cores),
        mean_live=call_s / seconds if seconds else math.nan,
        cpu_ms_per_call_s=spent * 1000 / call_s if call_s and call_s > 0 else math.nan,
        rss_peak_mb=rss_peak / MB,
        rss_per_call_mb=(rss_peak - run.idle_rss) / MB / run.calls,
        load_cores=load, others_cores=others, stores_cores=stores,
        others_on_gateway_core=busy - cores,
        caller_lag_ms=(percentile(lags, 99), max(lags, default=math.nan)),
        window_s=seconds, load_before=run.load_before, others_before=run.others_before,
    )


def median_figures(runs: list[LevelFigures]) -> LevelFigures:
    """One level's figures over its runs: the median of each number (tuples element by
    element); errors are the union."""
    def med(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, tuple):
            return tuple(med([v[i] for v in values]) for i in range(len(first)))
        if isinstance(first, dict):
            return {k: med([v[k] for v in values]) for k in first}
        if isinstance(first, list):
            return sorted({x for v in values for x in v})
        if isinstance(first, str):
            return first
        numbers = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
        if not numbers:
            return math.nan
        middle = statistics.median_low(numbers) if isinstance(first, int) else \
            statistics.median(numbers)
        return middle
    return LevelFigures(**{f.name: med([getattr(r, f.name) for r in runs])
                           for f in dataclasses.fields(LevelFigures)})


def level_line(run: LevelRun, timing: Timing, log_path: Path, log_tail: str,
               target_ms: float, silence_ms: float) -> str:
    f = figures(run, timing, turn_timings(log_path))
    line = (f"  {f.server} run {f.run}: completed {f.held}/{f.placed} (refused {f.refused}, "
            f"dropped {f.dropped}), peak live {f.peak_live}; turn p50/p99 "
            f"{f.raw_ms[0]:.0f}/{f.raw_ms[2]:.0f} ms, added p50/p99 {f.added_ms[0]:.0f}/"
            f"{f.added_ms[2]:.0f} ms; silence in replies {f.stall_ms_per_min:.0f} ms/min; "
            f"{f.gateway_cores:.2f} cores, {f.cpu_ms_per_call_s:.1f} ms CPU per call-second "
            f"over {f.window_s:.0f} s ({f.mean_live:.1f} calls on average), RSS "
            f"{f.rss_peak_mb:.0f} MB; load side {f.load_cores:.2f} cores, other processes "
            f"{f.others_cores:.2f} (Redis+PostgreSQL {f.stores_cores:.2f})")
    parts = ", ".join(f"{name} {v[0]:.0f}/{v[2]:.0f}" for name, v in f.parts_ms.items()
                      if not math.isnan(v[0]))
    if parts:
        line += f"\n    p50/p99 ms: {parts}"
    reasons = f.reasons(target_ms, silence_ms)
    line += "\n    " + ("held" if not reasons else "not held: " + "; ".join(reasons))
    if f.misattributed:
        line += (f"\n    {f.misattributed} turns answered sooner than possible (late audio of "
                 "an earlier reply): left out of the latencies, their calls not held")
    if f.errors:
        line += f"\n    errors: {', '.join(f.errors)}"
    if f.dropped and log_tail:
        line += "\n    log tail:\n" + log_tail
    return line


@dataclass
class Checks:
    streamed: int
    records: int | None
    reserved_micro_credits: int | None


async def integrity(gateway_url: str, api_key: str, database_url: str,
                    runs: list[LevelRun]) -> Checks:
    """After the run: one call record per stream that opened, nothing left reserved."""
    streamed = sum(o.streamed for run in runs for o in run.outcomes)
    records: int | None = None
    deadline = time.monotonic() + 15
    conn = await asyncpg.connect(database_url)
    try:
        while time.monotonic() < deadline:
            records = await conn.fetchval(
                "SELECT count(*) FROM sessions WHERE channel = 'phone'")
            if records is not None and records >= streamed:
                break
            await asyncio.sleep(1.0)
    finally:
        await conn.close()
    reserved: int | None = None
    async with aiohttp.ClientSession() as http, http.get(
            gateway_url + "/v1/balance", headers={"Authorization": f"Bearer {api_key}"}
    ) as response:
        if response.status == 200:
            reserved = int((await response.json())["reserved_micro_credits"])
    return Checks(streamed, records, reserved)


def _ms(values: tuple[float, ...]) -> str:
    return " / ".join("-" if math.isnan(v) else f"{v:,.0f}" for v in values)


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


OTHERS_LIMIT_CORES = 0.1  # another process using more during a level: not recorded
MIN_WINDOW_S = 30.0
RUNS_RECORDED = 3


@dataclass
class Report:
    args: argparse.Namespace
    timing: Timing
    runs: list[LevelRun]
    skipped: list[int]
    checks: Checks | None
    gateway_log: Path
    elapsed_s: float
    vad_delays: str = ""  # the Silero stop-delay lines (load.vad_delay)
    pipecat_log: Path | None = None

    def _figures(self) -> list[LevelFigures]:
        turns = turn_timings(self.gateway_log)
        return [figures(run, self.timing, turns) for run in self.runs]

    def levels(self) -> dict[tuple[str, int], list[LevelFigures]]:
        by_level: dict[tuple[str, int], list[LevelFigures]] = {}
        for f in self._figures():
            by_level.setdefault((f.server, f.calls), []).append(f)
        return by_level

    def refusals(self) -> list[str]:
        """Why this run may not be recorded in BENCHMARKS.md (empty: it may)."""
        out = []
        for f in self._figures():
            if f.others_cores > OTHERS_LIMIT_CORES:
                out.append(f"other processes used {f.others_cores:.2f} cores during the "
                           f"{f.server} {f.calls}-call level of run {f.run} (limit "
                           f"{OTHERS_LIMIT_CORES:g}): the machine was not quiet, run again")
            if not f.window_s >= MIN_WINDOW_S - 1:
                out.append(f"the {f.server} {f.calls}-call level of run {f.run} measured CPU "
                           f"over {f.window_s:.0f} s (at least {MIN_WINDOW_S:g} s: "
                           "--duration-s)")
        runs = {f.run for f in self._figures()}
        if len(runs) < RUNS_RECORDED:
            out.append(f"{len(runs)} run(s), {RUNS_RECORDED} are recorded (--runs)")
        return out

    def _held(self, runs: list[LevelFigures]) -> bool:
        passed = sum(f.passes(self.args.target_ms, self.args.silence_ms) for f in runs)
        return passed * 2 > len(runs)

    def markdown(self, command: str, command_line: str, now: dt.datetime,
                 python: str) -> str:
        by_level = self.levels()
        target, silence = self.args.target_ms, self.args.silence_ms
        runs = max((r.run for r in self.runs), default=0)
        lines = [
            "## Phone calls", "",
            f"Command: `{command}` (`{command_line}`). Run {now:%Y-%m-%d %H:%M} UTC, "
            f"{self.elapsed_s:.0f} s, {runs} runs of every level (figures: the median of "
            "the runs).",
            f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {python}. The server "
            f"under test (`voicegw serve`, one process, uvloop; or the stock pipecat "
            f"pipeline of `load.pipecat_stock`) is pinned to core {self.args.gateway_core}; "
            "the simulated callers (one Python process) and the vendor emulators (one "
            "process) to the other core. Redis, PostgreSQL and whatever else runs on the "
            "host are not pinned; the load average before each level and the CPU every "
            "other process used during it are in the last table.",
            f"Each call: a greeting, then {self.args.turns} utterances of 2.4-2.8 s, each "
            f"answered (one LLM round trip, about 6 s of speech); {self.args.vad} VAD. N "
            f"callers start within {self.args.ramp_s:g} s and redial for "
            f"{self.args.duration_s:g} s more: CPU is measured over those "
            f"{self.args.duration_s:g} s and divided by the call-seconds held in them. Added "
            f"latency = turn latency minus {self.timing.describe()}. A level is held when "
            f"every call completed, p99 added latency <= {target:g} ms and the silence a "
            f"caller playing at real time hears inside replies <= {silence:g} ms per minute "
            "of agent speech, in the majority of runs.", "",
            "| server | calls | held (runs) | completed (refused, dropped) | added p50 / p95 "
            "/ p99 ms | silence in replies ms/min | cores | CPU ms per call-second | calls "
            "per core | RSS MB (per call) |",
            "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for (server, calls), runs_of in by_level.items():
            f = median_figures(runs_of)
            passed = sum(r.passes(target, silence) for r in runs_of)
            lines.append(
                f"| {server} | {calls} | {'yes' if self._held(runs_of) else 'no'} "
                f"({passed}/{len(runs_of)}) | {f.held}/{f.placed} ({f.refused}, {f.dropped}) "
                f"| {_ms(f.added_ms)} | {_num(f.stall_ms_per_min, 0)} | "
                f"{_num(f.gateway_cores, 2)} | {_num(f.cpu_ms_per_call_s)} | "
                f"{_num(f.calls_per_core, 0)} | {f.rss_peak_mb:.0f} ({f.rss_per_call_mb:.1f}) |")
        floors = segment_floors(self.timing)
        lines += ["", "Where a turn's latency goes (voicegw; p50 / p95 / p99 ms of each part, "
                  "the configured part in brackets; the caller stamps the end of its "
                  "utterance and the reply's first audio, the gateway the rest, "
                  "agents/voice/timing.py):", "",
                  "| calls | " + " | ".join(f"{name} ({floors[name]:.0f})"
                                           for name, _, _ in SEGMENTS) + " |",
                  "| ---: |" + " --- |" * len(SEGMENTS)]
        for (server, calls), runs_of in by_level.items():
            if server != "voicegw":
                continue
            f = median_figures(runs_of)
            lines.append(f"| {calls} | " + " | ".join(_ms(f.parts_ms[name])
                                                     for name, _, _ in SEGMENTS) + " |")
        lines += ["", *self._verdict(by_level), ""]
        if self.vad_delays:
            lines += [self.vad_delays, ""]
        lines += [
            "Each run of each level: the machine before it (load average 1 / 5 / 15 min, "
            "cores other processes used in the 4 s before it), the CPU others used during it "
            "(every process but the server, the callers and the emulators; Redis and "
            "PostgreSQL apart), the load side, and the verdict:", "",
            "| server | calls | run | load before | others before | others during | Redis + "
            "PostgreSQL | load side cores | caller lag p99 / max ms | CPU window s | "
            "verdict |",
            "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
        ]
        for (server, calls), runs_of in by_level.items():
            for f in runs_of:
                reasons = f.reasons(target, silence)
                lines.append(
                    f"| {server} | {calls} | {f.run} | "
                    + " / ".join(f"{v:.2f}" for v in f.load_before)
                    + f" | {f.others_before:.2f} | {f.others_cores:.2f} | "
                    f"{f.stores_cores:.2f} | {f.load_cores:.2f} | {_ms(f.caller_lag_ms)} | "
                    f"{f.window_s:.0f} | {'held' if not reasons else '; '.join(reasons)} |")
        lines += ["", "Notes:", *self._notes(by_level), ""]
        return "\n".join(lines)

    def _verdict(self, by_level: dict[tuple[str, int], list[LevelFigures]]) -> list[str]:
        out = []
        best: dict[str, int] = {}
        for (server, calls), runs_of in by_level.items():
            if self._held(runs_of):
                best[server] = max(best.get(server, 0), calls)
        out.append(f"Largest level held: voicegw **{best.get('voicegw', 0) or 'none'}**"
                   + (f", stock pipecat **{best.get('pipecat', 0) or 'none'}**"
                      if any(s == "pipecat" for s, _ in by_level) else "") + ".")
        ours = [median_figures(r) for (s, _), r in by_level.items() if s == "voicegw"]
        theirs = [median_figures(r) for (s, _), r in by_level.items() if s == "pipecat"]
        pairs = [(o, t) for o in ours for t in theirs if o.calls == t.calls]
        for o, t in pairs:
            out.append(f"At {o.calls} calls: stock pipecat {t.cpu_ms_per_call_s:.1f} ms CPU per "
                       f"call-second, voicegw {o.cpu_ms_per_call_s:.1f}: **"
                       f"{t.cpu_ms_per_call_s / o.cpu_ms_per_call_s:.1f}x** less CPU per "
                       f"call-second, {o.calls_per_core:.0f} against {t.calls_per_core:.0f} "
                       "calls per core.")
        at_100 = next((f for f in ours if f.calls == 100), None)
        if at_100 is not None:
            out.append(
                f"Target at 100 calls: p99 added {at_100.added_ms[2]:,.0f} ms (target <= "
                f"{self.args.target_ms:g}), silence in replies {at_100.stall_ms_per_min:,.0f}"
                f" ms/min (target <= {self.args.silence_ms:g}), "
                f"{at_100.cpu_ms_per_call_s:.1f} ms CPU per call-second (target <= 10), "
                f"{at_100.rss_per_call_mb:.1f} MB RSS per call (target <= "
                f"{RSS_TARGET_MB:g}), completed {at_100.held}/{at_100.placed}.")
        if self.skipped:
            out.append(f"Not run (time budget {self.args.budget_s:g} s): "
                       f"{', '.join(map(str, self.skipped))} calls.")
        return out

    def _notes(self, by_level: dict[tuple[str, int], list[LevelFigures]]) -> list[str]:
        c = self.checks
        streamed = c.streamed if c is not None else sum(
            o.streamed for run in self.runs for o in run.outcomes)
        notes = [
            "- Each level runs on a fresh server process, warmed up by two short calls. "
            "voicegw's idle RSS and CPU then (MB, cores): "
            + ", ".join(f"{r.idle_rss / MB:.0f} / {r.idle_cores:.3f}" for r in self.runs
                        if r.server == "voicegw")
            + ". RSS per call = (peak RSS of the level - idle RSS) / N; CPU per call-second "
            "= (server CPU - idle CPU) over the window / call-seconds held in it.",
            "- Integrity: " + ("not checked (the last level did not run)." if c is None else
                               f"{c.streamed} streams opened, {c.records} call records "
                               f"written; {c.reserved_micro_credits} micro-credits still "
                               "reserved after the run."),
            f"- Gateway log: {_size(self.gateway_log) / 1024:,.0f} KiB over the run "
            f"({_size(self.gateway_log) / 1024 / max(1, streamed):,.1f} KiB per call).",
        ]
        over = [f"{s} {n}" for (s, n), r in by_level.items()
                if median_figures(r).refused and median_figures(r).dropped == 0]
        if over:
            notes.append("- Refused by admission with every admitted call intact: "
                         + ", ".join(over) + " calls.")
        early = [f"{s} {n}: {median_figures(r).misattributed}" for (s, n), r in by_level.items()
                 if median_figures(r).misattributed]
        if early:
            notes.append("- Turns \"answered\" sooner than turn detection and the LLM allow "
                         "(the caller heard late audio of an earlier reply and took it for the "
                         "answer), left out of the latencies, their calls counted as not held: "
                         + ", ".join(early) + ".")
        saturated = [f"{s} {n}" for (s, n), r in by_level.items()
                     if median_figures(r).load_cores > 0.85]
        if saturated:
            notes.append(f"- The load side (callers + emulators) used over 0.85 of its core at "
                         f"{', '.join(saturated)} calls: there the latencies and the "
                         "caller lag include the load generator's own queueing.")
        return notes


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def record(path: Path, section: str, heading: str = "Phone calls") -> None:
    """Writes `section` (starting with `## {heading}`) into BENCHMARKS.md in place of the
    earlier one, keeping the other sections and a hand-written "### Analysis" at the end
    of ours. Every benchmark writes its section through this (`benchmarks.common` too)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n(?P<body>.*?)(?=^## |\Z)", re.M | re.S)
    match = pattern.search(text)
    if match is None:
        path.write_text(text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n")
        return
    kept = re.search(r"^### Analysis.*", match["body"], re.M | re.S)
    new = section.rstrip("\n") + "\n\n" + (kept.group(0).rstrip("\n") + "\n\n" if kept else "")
    text = text[:match.start()] + new + text[match.end():]
    path.write_text(text.rstrip("\n") + "\n")
