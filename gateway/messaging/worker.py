"""Background work after a webhook was answered: bounded, held, ordered per customer, and
drained on shutdown.

Webhooks answer as soon as the messages are stored; answering them (LLM, vendor send,
billing) happens in tasks this worker holds references to (no task is left for the
garbage collector, ruff RUF006). At most `concurrency` run at once; at most `max_backlog`
wait, beyond which webhooks are answered 503 and the vendor retries later. Messages of
one customer run one after the other, in the order they were received, so each reply
sees the previous exchange in the history.

On shutdown, waiting jobs get `deadline_s` to finish; the rest are cancelled and their
messages handed back (`on_abandon`) for another process to take over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("voicegw.messaging.worker")


@dataclass(frozen=True)
class Job:
    key: str  # what the job works on (a message), unique while it runs
    lane: str  # jobs of one lane (a customer) run one at a time, in submission order
    run: Callable[[], Awaitable[None]]


class MessageWorker:
    def __init__(self, concurrency: int = 64, max_backlog: int = 10_000, *,
                 on_outcome: Callable[[str], None] | None = None) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.max_backlog = max_backlog
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lanes: dict[str, tuple[asyncio.Lock, int]] = {}
        self.accepting = True
        self.done = 0
        self.failed = 0
        self._on_outcome = on_outcome  # told "done" or "failed" as each job ends (metrics)

    def __len__(self) -> int:
        return len(self._tasks)

    def has_room(self, jobs: int) -> bool:
        return self.accepting and len(self._tasks) + jobs <= self.max_backlog

    def running(self, key: str) -> bool:
        return key in self._tasks

    def submit(self, job: Job) -> bool:
        """Starts the job unless it is already running or the worker is closing."""
        if not self.accepting or job.key in self._tasks:
            return False
        lock, users = self._lanes.get(job.lane, (asyncio.Lock(), 0))
        self._lanes[job.lane] = (lock, users + 1)
        task = asyncio.create_task(self._run(job, lock), name=f"message:{job.key}")
        self._tasks[job.key] = task
        task.add_done_callback(lambda _: self._forget(job))
        return True

    def _forget(self, job: Job) -> None:
        self._tasks.pop(job.key, None)
        lock, users = self._lanes[job.lane]
        if users <= 1:
            del self._lanes[job.lane]
        else:
            self._lanes[job.lane] = (lock, users - 1)

    async def _run(self, job: Job, lock: asyncio.Lock) -> None:
        try:
            async with lock, self._slots:
                await job.run()
            self.done += 1
            self._tell("done")
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failed += 1
            log.exception("message job %s failed", job.key)
            self._tell("failed")

    def _tell(self, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    async def idle(self) -> None:
        """Waits until every job submitted so far has finished (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def drain(self, deadline_s: float,
                    on_abandon: Callable[[list[str]], Awaitable[None]] | None = None) -> int:
        """Stops taking jobs, waits up to the deadline, cancels the rest; returns how many
        were cancelled (and hands their keys to `on_abandon`)."""
        self.accepting = False
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=max(deadline_s, 0))
        leftovers = dict(self._tasks)
        for task in leftovers.values():
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers.values(), return_exceptions=True)
            if on_abandon is not None:
                await on_abandon(list(leftovers))
        return len(leftovers)
