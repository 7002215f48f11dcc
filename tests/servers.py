"""Finds the Redis and PostgreSQL servers the tests run against.

Order: `VOICEGW_TEST_REDIS_URL` / `VOICEGW_TEST_DATABASE_URL` when set; else the local
servers on their default ports when they answer; else embedded servers started for this
test run (binaries from pip packages) and stopped at its end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from gateway.embedded import EmbeddedPostgres, EmbeddedRedis, port_answers

LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class TestServers:
    """Lazily resolved server URLs, with the embedded servers we had to start."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self) -> None:
        self._redis_url: str | None = None
        self._postgres_url: str | None = None
        self._stops: list[Callable[[], None]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _scratch(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="voicegw-test-")
            # The embedded postgres system user must reach it; nothing secret lives here.
            os.chmod(self._tmp.name, 0o755)  # noqa: S103
        return Path(self._tmp.name)

    @property
    def redis_url(self) -> str:
        if self._redis_url is None:
            self._redis_url = os.environ.get("VOICEGW_TEST_REDIS_URL") or self._local_or(
                LOCAL_REDIS_URL, 6379, self._start_redis
            )
        return self._redis_url

    @property
    def postgres_url(self) -> str:
        if self._postgres_url is None:
            self._postgres_url = os.environ.get("VOICEGW_TEST_DATABASE_URL") or self._local_or(
                LOCAL_POSTGRES_URL, 5432, self._start_postgres
            )
        return self._postgres_url

    @staticmethod
    def _local_or(url: str, port: int, start: Callable[[], str]) -> str:
        return url if port_answers("127.0.0.1", port) else start()

    def _start_redis(self) -> str:
        server = EmbeddedRedis(self._scratch() / "redis")
        url = server.start()
        self._stops.append(server.stop)
        return url

    def _start_postgres(self) -> str:
        server = EmbeddedPostgres(self._scratch() / "pg")
        url = server.start()
        self._stops.append(server.stop)
        return url

    def close(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
