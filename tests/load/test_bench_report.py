"""The call benchmark's verdicts (load/bench_report.py): what makes a level held, what
keeps a run out of BENCHMARKS.md, CPU per call-second over the window, and the latency
breakdown lined up from the gateway's turn timing lines."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import orjson

from load.bench_load import LevelRun, Outcome, Probe
from load.bench_procs import Reading
from load.bench_report import Report, Timing, figures, median_figures, turn_timings
from load.caller import CallResult

TIMING = Timing(stt_latency_ms=200, llm_ttfb_ms=250, tokens_per_s=50, tts_ttfb_ms=0,
                vad_stop_s=0.2, user_speech_timeout_s=0.4)
PHRASE = "What are your opening hours on Saturday"


def _outcome(added_ms: float, gaps: list[float], ends: list[float] | None = None,
             replies: list[float] | None = None, sid: str = "CA1") -> Outcome:
    latency = TIMING.floor_ms(PHRASE) + added_ms
    result = CallResult(sid, said=[PHRASE], first_audio_ms=100.0,
                        turn_latencies_ms=[latency], agent_audio_ms=20 * (len(gaps) + 1),
                        frame_gaps_ms=gaps, ended_by="caller")
    return Outcome(result, 1, streamed=True, utterance_ends=ends or [],
                   reply_starts=replies or [])


def _run(outcomes: list[Outcome], *, others_cores: float = 0.0, seconds: float = 32.0,
         run: int = 1, gateway_cores: float = 0.2, calls: int = 10) -> LevelRun:
    """A level whose gateway used `gateway_cores` and the rest of the machine
    `others_cores` (beside 0.1 core of callers and emulators) while `calls` calls were
    live over a `seconds` window after a 10 s ramp."""
    readings = [Reading(at=10.0 + t, gateway_cpu_s=gateway_cores * t, gateway_rss=100 << 20,
                        emulators_cpu_s=0.05 * t, self_cpu_s=0.05 * t,
                        gateway_core_busy_s=gateway_cores * t,
                        machine_busy_s=(gateway_cores + 0.1 + others_cores) * t,
                        stores_cpu_s=0.0, call_s=calls * t)
                for t in range(0, int(seconds) + 1)]
    level = LevelRun(calls, 10.0, seconds, 0.0, 10.0 + seconds + 30, outcomes, Probe(),
                     calls, readings, None, idle_rss=100 << 20, idle_cores=0.0)
    level.run = run
    return level


def _args(runs: int = 3) -> argparse.Namespace:
    return argparse.Namespace(target_ms=50.0, silence_ms=50.0, runs=runs, turns=1,
                              vad="silero", ramp_s=10.0, duration_s=32.0, gateway_core=0,
                              budget_s=3600.0)


def test_cpu_per_call_second_is_over_the_window_and_the_call_seconds_held() -> None:
    f = figures(_run([_outcome(10, [20.0] * 50)], gateway_cores=0.2, calls=10), TIMING, {})
    assert round(f.cpu_ms_per_call_s, 6) == 20.0  # 0.2 cores / 10 calls
    assert round(f.calls_per_core) == 50
    assert f.window_s == 32 and round(f.others_cores, 6) == 0.0


def test_a_level_is_held_only_with_every_call_whole_low_latency_and_no_silence() -> None:
    held = figures(_run([_outcome(10, [20.0] * 50)]), TIMING, {})
    assert held.passes(50, 50) and held.reasons(50, 50) == []
    late = figures(_run([_outcome(80, [20.0] * 50)]), TIMING, {})
    assert late.reasons(50, 50) == ["p99 added latency 80 ms > 50 ms"]
    # Each 100 ms gap between 20 ms frames is 80 ms of silence at the caller's.
    stuttering = figures(_run([_outcome(10, [20.0] * 20 + [100.0] * 3)]), TIMING, {})
    assert stuttering.stall_ms_per_min > 50
    assert "silence inside replies" in stuttering.reasons(50, 50)[0]
    refused = _outcome(10, [20.0] * 50)
    assert refused.result is not None
    refused.result.refused_with = ["All our lines are busy."]
    mixed = figures(_run([_outcome(10, [20.0] * 50), refused]), TIMING, {})
    assert mixed.reasons(50, 50) == ["1 of 2 calls not completed (refused 1, dropped 0)"]


def test_a_busy_machine_a_short_window_or_one_run_keeps_it_out_of_benchmarks_md(
        tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("")
    quiet = [_run([_outcome(10, [20.0] * 50)], run=n) for n in (1, 2, 3)]
    assert Report(_args(), TIMING, quiet, [], None, log, 1.0).refusals() == []
    busy = [*quiet[:2], _run([_outcome(10, [20.0] * 50)], run=3, others_cores=0.3)]
    (reason,) = Report(_args(), TIMING, busy, [], None, log, 1.0).refusals()
    assert "other processes used 0.30 cores" in reason and "run 3" in reason
    short = [_run([_outcome(10, [20.0] * 50)], run=n, seconds=8) for n in (1, 2, 3)]
    assert all("at least 30 s" in r
               for r in Report(_args(), TIMING, short, [], None, log, 1.0).refusals())
    once = Report(_args(1), TIMING, quiet[:1], [], None, log, 1.0).refusals()
    assert once == ["1 run(s), 3 are recorded (--runs)"]


def test_the_median_of_three_runs_and_the_majority_verdict(tmp_path: Path) -> None:
    runs = [_run([_outcome(added, [20.0] * 50)], run=n, gateway_cores=cores)
            for n, added, cores in ((1, 10, 0.1), (2, 300, 0.3), (3, 20, 0.2))]
    log = tmp_path / "gateway.log"
    log.write_text("")
    report = Report(_args(), TIMING, runs, [], None, log, 1.0)
    levels = report.levels()
    median = median_figures(levels[("voicegw", 10)])
    assert round(median.cpu_ms_per_call_s, 6) == 20.0 and round(median.added_ms[2]) == 20
    assert "| voicegw | 10 | yes (2/3) |" in report.markdown(
        "make bench-calls", "python -m load.bench_calls", dt.datetime(2026, 12, 2), "3.11")


def test_the_breakdown_lines_up_the_gateway_stamps_with_the_callers_utterance(
        tmp_path: Path) -> None:
    end = 1_000.0
    stamps = {"vad_stop": end + 0.25, "stt_request": end + 0.30, "stt_answer": end + 0.50,
              "llm_request": end + 0.70, "tts_request": end + 1.03,
              "tts_first_byte": end + 1.04, "first_frame_out": end + 1.085}
    log = tmp_path / "gateway.log"
    lines = [{"ts": "x", "msg": "turn timing", "event": "turn_timing", "call_id": "CA1",
              "timing": {"vad_stop": end - 30.0, "llm_request": end - 29.0}},  # earlier turn
             {"ts": "x", "msg": "turn timing", "event": "turn_timing", "call_id": "CA1",
              "timing": stamps}]
    log.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\nnot json\n")
    turns = turn_timings(log)
    outcome = _outcome(10, [20.0] * 50, ends=[end], replies=[end + 1.086])
    f = figures(_run([outcome]), TIMING, turns)
    parts = {name: round(v[0]) for name, v in f.parts_ms.items()}
    assert parts == {"turn detection": 300, "STT": 200, "turn end": 200,
                     "LLM first sentence": 330, "first TTS byte": 10,
                     "first audio frame out": 45, "to the caller": 1}
