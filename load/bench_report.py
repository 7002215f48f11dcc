"""Figures of the call benchmark: latency floors, percentiles, per-level summaries, the
end-of-run integrity checks, and the "Phone calls" section of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from load.bench_load import PHRASES, LevelRun, Outcome
from load.bench_procs import Child, Reading, cpu_model
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


VendorEvents = dict[str, list[tuple[float, str]]]  # call sid -> (wall time, "stt" | "llm")


def vendor_events(log_path: Path) -> VendorEvents:
    """When the gateway got each STT answer and each LLM stream's headers, per call, from
    its JSON log (the HTTP client logs one line per request, with the call's id)."""
    events: VendorEvents = {}
    with contextlib.suppress(OSError), log_path.open("rb") as log:
        for line in log:
            if not line.startswith(b"{") or b"HTTP Request" not in line:
                continue
            try:
                entry = orjson.loads(line)
                kind = ("stt" if "/audio/transcriptions" in entry["msg"] else
                        "llm" if "/chat/completions" in entry["msg"] else None)
                at = dt.datetime.fromisoformat(entry["ts"]).timestamp()
                call = str(entry["call_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if kind is not None:
                events.setdefault(call, []).append((at, kind))
    return events


@dataclass
class Breakdown:
    """Added latency split at the LLM request: before it (turn detection, STT, the user
    aggregator) and after it (LLM stream, sentence aggregation, TTS, output transport)."""

    before_llm_ms: list[float]
    after_llm_ms: list[float]
    stt_answer_ms: list[float]  # utterance end -> STT answer, minus VAD stop + STT latency


def breakdown(outcomes: list[Outcome], events: VendorEvents, timing: Timing) -> Breakdown:
    out = Breakdown([], [], [])
    detection = timing.vad_stop_s * 1000 + max(timing.user_speech_timeout_s * 1000,
                                               timing.stt_latency_ms)
    for outcome in outcomes:
        result = outcome.result
        if result is None or result.call_sid not in events:
            continue
        stream = sorted(events[result.call_sid])
        for index, (end, reply) in enumerate(zip(outcome.utterance_ends, outcome.reply_starts,
                                                 strict=False)):
            stt = next((t for t, kind in stream if kind == "stt" and t > end), None)
            llm = next((t for t, kind in stream if kind == "llm" and stt and t >= stt), None)
            if stt is None or llm is None or not llm <= reply:
                continue
            phrase = result.said[index] if index < len(result.said) else PHRASES[0]
            out.stt_answer_ms.append((stt - end) * 1000 - timing.vad_stop_s * 1000
                                     - timing.stt_latency_ms)
            out.before_llm_ms.append((llm - end) * 1000 - detection)
            out.after_llm_ms.append((reply - llm) * 1000 - timing.first_sentence_ms(phrase)
                                    - timing.tts_ttfb_ms)
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: with fewer than 100 values, p99 is the largest."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _rate(readings: list[Reading], attr: str) -> float:
    if len(readings) < 2 or readings[-1].at <= readings[0].at:
        return math.nan
    spent = float(getattr(readings[-1], attr)) - float(getattr(readings[0], attr))
    return spent / (readings[-1].at - readings[0].at)


@dataclass
class LevelFigures:
    calls: int
    placed: int
    held: int
    refused: int
    dropped: int
    errors: list[str]
    peak_live: int
    gateway_active_max: int
    turns: int
    misattributed: int  # "replies" sooner than possible: late audio of an earlier reply
    raw_ms: tuple[float, float, float]
    added_ms: tuple[float, float, float]
    first_audio_ms: tuple[float, float]
    gap_ms: tuple[float, float, float]
    stall_ms_per_min: float  # silence inside replies per minute of agent audio
    stalls: int
    before_llm_ms: tuple[float, float]  # p50, p99 of the added latency's two parts
    after_llm_ms: tuple[float, float]
    stt_answer_ms: tuple[float, float]
    gateway_cores: float
    gateway_cores_peak: float
    cpu_ms_per_call_s: float
    rss_peak_mb: float
    rss_per_call_mb: float
    load_cores: float
    others_on_gateway_core: float
    caller_lag_ms: tuple[float, float]
    window_s: float

    def passes(self, target_ms: float) -> bool:
        return self.held == self.placed and self.added_ms[2] <= target_ms


def _steady(run: LevelRun) -> list[Reading]:
    """Readings while all N calls were live (else the whole level)."""
    start, end = run.probe.all_live_at, run.probe.first_drop_at or run.stopped
    steady = [r for r in run.readings if start is not None and start <= r.at <= end]
    return steady if len(steady) >= 4 else run.readings


def figures(run: LevelRun, timing: Timing, events: VendorEvents) -> LevelFigures:
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
    split = breakdown(run.outcomes, events, timing)
    steady = _steady(run)
    cores = _rate(steady, "gateway_cpu_s")
    peaks = [_rate(steady[i:i + 5], "gateway_cpu_s") for i in range(0, len(steady) - 4)]
    rss_peak = max((r.gateway_rss for r in run.readings), default=run.idle_rss)
    load = _rate(steady, "emulators_cpu_s") + _rate(steady, "self_cpu_s")
    busy = _rate(steady, "gateway_core_busy_s")
    lags = run.probe.lags_ms
    errors = sorted({o.error.split(":")[0] for o in run.outcomes if o.error})
    return LevelFigures(
        calls=run.calls, placed=len(run.outcomes),
        held=held, refused=sum(o.refused for o in run.outcomes),
        dropped=len(run.outcomes) - held - sum(o.refused for o in run.outcomes), errors=errors,
        peak_live=run.probe.peak_live, gateway_active_max=run.active_calls_max,
        turns=len(raw), misattributed=misattributed,
        raw_ms=(percentile(raw, 50), percentile(raw, 95), percentile(raw, 99)),
        added_ms=(percentile(added, 50), percentile(added, 95), percentile(added, 99)),
        first_audio_ms=(percentile(first, 50), percentile(first, 99)),
        gap_ms=(percentile(gaps, 50), percentile(gaps, 99), max(gaps, default=math.nan)),
        stall_ms_per_min=stalled / (agent_ms / 60_000) if agent_ms else math.nan,
        stalls=stalls,
        before_llm_ms=(percentile(split.before_llm_ms, 50), percentile(split.before_llm_ms, 99)),
        after_llm_ms=(percentile(split.after_llm_ms, 50), percentile(split.after_llm_ms, 99)),
        stt_answer_ms=(percentile(split.stt_answer_ms, 50), percentile(split.stt_answer_ms, 99)),
        gateway_cores=cores, gateway_cores_peak=max(peaks, default=cores),
        cpu_ms_per_call_s=(cores - run.idle_cores) * 1000 / run.calls,
        rss_peak_mb=rss_peak / MB,
        rss_per_call_mb=(rss_peak - run.idle_rss) / MB / run.calls,
        load_cores=load, others_on_gateway_core=busy - cores,
        caller_lag_ms=(percentile(lags, 99), max(lags, default=math.nan)),
        window_s=(steady[-1].at - steady[0].at) if steady else 0.0,
    )


def level_line(run: LevelRun, timing: Timing, gateway: Child) -> str:
    f = figures(run, timing, vendor_events(gateway.log_path))
    line = (f"  held {f.held}/{f.placed} (refused {f.refused}, dropped {f.dropped}), peak live "
            f"{f.peak_live}; turn p50/p99 {f.raw_ms[0]:.0f}/{f.raw_ms[2]:.0f} ms, added "
            f"p50/p99 {f.added_ms[0]:.0f}/{f.added_ms[2]:.0f} ms (before the LLM "
            f"{f.before_llm_ms[0]:.0f}/{f.before_llm_ms[1]:.0f}, after "
            f"{f.after_llm_ms[0]:.0f}/{f.after_llm_ms[1]:.0f}); stalls {f.stalls} "
            f"({f.stall_ms_per_min:.0f} ms/min); gateway "
            f"{f.gateway_cores:.2f} cores, RSS {f.rss_peak_mb:.0f} MB "
            f"({f.rss_per_call_mb:.1f} MB/call); load side {f.load_cores:.2f} cores, "
            f"caller lag p99 {f.caller_lag_ms[0]:.0f} ms")
    if f.misattributed:
        line += (f"\n  {f.misattributed} turns answered sooner than possible (late audio of an "
                 "earlier reply): left out of the latencies, their calls not held")
    if f.errors:
        line += f"\n  errors: {', '.join(f.errors)}"
    if f.held < f.placed:
        line += "\n  gateway log tail:\n" + gateway.log_tail(8)
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


@dataclass
class Report:
    args: argparse.Namespace
    timing: Timing
    runs: list[LevelRun]
    skipped: list[int]
    checks: Checks | None
    gateway_log: Path
    elapsed_s: float

    def markdown(self, command: str, command_line: str, now: dt.datetime,
                 python: str) -> str:
        events = vendor_events(self.gateway_log)
        levels = [figures(run, self.timing, events) for run in self.runs]
        target = self.args.target_ms
        lines = [
            "## Phone calls", "",
            f"Command: `{command}` (`{command_line}`). Run {now:%Y-%m-%d %H:%M} UTC, "
            f"{self.elapsed_s:.0f} s.",
            f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {python}. The gateway "
            f"(`voicegw serve`, one process, uvloop) is pinned to core "
            f"{self.args.gateway_core}; the simulated callers (one Python process) and the "
            "vendor emulators (one process) to the other core. Redis, PostgreSQL and "
            "whatever else runs on the host are not pinned.",
            f"Each call: a greeting, then {self.args.turns} utterances of 2.4-2.8 s, each "
            f"answered (one LLM round trip, about 6 s of speech); {self.args.vad} VAD. N "
            f"callers start within {self.args.ramp_s:g} s and redial for "
            f"{self.args.duration_s:g} s. Added latency = turn latency minus "
            f"{self.timing.describe()}.", "",
            "| calls | held | turn latency p50 / p95 / p99 ms | added p50 / p95 / p99 ms "
            "| first audio p50 / p99 ms | gateway cores (peak 2 s) | CPU ms per call-second "
            "| RSS MB (per call) |",
            "| ---: | --- | --- | --- | --- | --- | ---: | --- |",
        ]
        for f in levels:
            lines.append(
                f"| {f.calls} | {f.held}/{f.placed} | {_ms(f.raw_ms)} | {_ms(f.added_ms)} "
                f"| {_ms(f.first_audio_ms)} | {f.gateway_cores:.2f} "
                f"({f.gateway_cores_peak:.2f}) | {f.cpu_ms_per_call_s:.1f} | "
                f"{f.rss_peak_mb:.0f} ({f.rss_per_call_mb:.1f}) |")
        lines += [
            "", "Where the added latency goes (p50 / p99 ms; split at the moment the gateway "
            "got the LLM stream's headers, from its log), how the agent's audio arrived "
            "(gaps between 20 ms frames within a reply; a stall is silence the caller hears "
            "because the buffer ran dry), and the load side's own state:", "",
            "| calls | before the LLM | after the LLM | STT answer late by | frame gap p50 / "
            "p99 / max ms | stalls (ms per minute of speech) | load side cores | caller "
            "clock lag p99 / max ms |",
            "| ---: | --- | --- | --- | --- | --- | ---: | --- |",
        ]
        for f in levels:
            lines.append(
                f"| {f.calls} | {_ms(f.before_llm_ms)} | {_ms(f.after_llm_ms)} | "
                f"{_ms(f.stt_answer_ms)} | {_ms(f.gap_ms)} | {f.stalls} "
                f"({f.stall_ms_per_min:.0f}) | {f.load_cores:.2f} | {_ms(f.caller_lag_ms)} |")
        lines += ["", *self._verdict(levels, target), "", "Notes:", *self._notes(levels), ""]
        return "\n".join(lines)

    def _verdict(self, levels: list[LevelFigures], target: float) -> list[str]:
        passing = [f.calls for f in levels if f.passes(target)]
        best = max(passing, default=0)
        out = [f"Largest level with every call held and p99 added latency <= {target:g} ms: "
               + (f"**{best} calls** on one core." if best else "**none**.")]
        if levels and levels[0].held == levels[0].placed:
            base = levels[0]
            within = [f.calls for f in levels if f.held == f.placed
                      and f.added_ms[2] - base.added_ms[2] <= target]
            out.append(f"Largest level whose p99 added latency stays within {target:g} ms of "
                       f"the {base.calls}-call level's ({base.added_ms[2]:,.0f} ms), i.e. what "
                       f"load itself adds: **{max(within, default=0)} calls**.")
        at_100 = next((f for f in levels if f.calls == 100), None)
        if at_100 is not None:
            out.append(
                f"Target at 100 calls: p99 added {at_100.added_ms[2]:,.0f} ms (target <= "
                f"{target:g}), {at_100.rss_per_call_mb:.1f} MB RSS per call (target <= "
                f"{RSS_TARGET_MB:g}), held {at_100.held}/{at_100.placed}.")
        if self.skipped:
            out.append(f"Not run (time budget {self.args.budget_s:g} s): "
                       f"{', '.join(map(str, self.skipped))} calls.")
        return out

    def _notes(self, levels: list[LevelFigures]) -> list[str]:
        c = self.checks
        streamed = c.streamed if c is not None else sum(
            o.streamed for run in self.runs for o in run.outcomes)
        notes = [
            "- Each level runs on a fresh gateway process, warmed up by two short calls. Its "
            "idle RSS and CPU then (MB, cores): "
            + ", ".join(f"{r.idle_rss / MB:.0f} / {r.idle_cores:.3f}" for r in self.runs)
            + ". RSS per call = (peak RSS of the level - idle RSS) / N; CPU per call-second "
            "= (gateway cores - idle cores) / N.",
            f"- CPU figures are over the window where all N calls were live "
            f"({', '.join(f'{f.window_s:.0f} s' for f in levels)}); peak is the busiest 2 s.",
            "- Integrity: " + ("not checked (the last level did not run)." if c is None else
                               f"{c.streamed} streams opened, {c.records} call records "
                               f"written; {c.reserved_micro_credits} micro-credits still "
                               "reserved after the run."),
            f"- Gateway log: {_size(self.gateway_log) / 1024:,.0f} KiB over the run "
            f"({_size(self.gateway_log) / 1024 / max(1, streamed):,.1f} KiB per call).",
        ]
        early = [f"{f.calls}: {f.misattributed}" for f in levels if f.misattributed]
        if early:
            notes.append("- Turns \"answered\" sooner than turn detection and the LLM allow "
                         "(the caller heard late audio of an earlier reply and took it for the "
                         "answer), left out of the latencies, their calls counted as not held: "
                         + ", ".join(early) + ".")
        saturated = [f.calls for f in levels if f.load_cores > 0.85]
        if saturated:
            notes.append(f"- The load side (callers + emulators) used over 0.85 of its core at "
                         f"{', '.join(map(str, saturated))} calls: there the latencies and the "
                         "caller lag include the load generator's own queueing.")
        busy = [f"{f.calls}: {f.others_on_gateway_core:.2f}" for f in levels
                if f.others_on_gateway_core > 0.1]
        if busy:
            notes.append("- Other processes also ran on the gateway's core (cores, by level): "
                         + ", ".join(busy) + ".")
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
