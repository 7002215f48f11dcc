"""The vendor emulators of `voicegw dev`, run as a child process.

`gateway` never imports `load` (the load tools measure the gateway from outside); dev
mode starts `python -m load.emulators` with the interpreter running us and reads the
one JSON line it prints when it listens. The child runs in its own session, so a
Ctrl-C at the terminal reaches only us: we stop it after the gateway has drained its
calls (which still talk to the emulated vendors). It also exits when its stdin closes,
so even a killed `voicegw dev` leaves no emulator behind. Its output goes to
`emulators.log` in the data directory.
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

log = logging.getLogger("voicegw.embedded")

READY_TIMEOUT_S = 30.0


class EmulatorProcess:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.base_urls: dict[str, str] = {}

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self, env: dict[str, str], port: int = 0) -> dict[str, str]:
        """Starts the emulators; returns their base URLs by vendor (and `emulator`, where
        the `/_emulator/...` control routes live)."""
        command = [sys.executable, "-m", "load.emulators", "--port", str(port),
                   "--ready-json", "--exit-with-stdin"]
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=output,
                env=env, text=True, start_new_session=True)
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, READY_TIMEOUT_S)
        try:
            ready = json.loads(line)
            self.base_urls = {str(k): str(v) for k, v in ready["base_urls"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            self.stop()
            raise RuntimeError(f"the vendor emulators did not start (see {self.log_path})"
                               ) from None
        log.info("vendor emulators listening on %s (their log: %s)",
                 self.base_urls["emulator"], self.log_path)
        return self.base_urls

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the child's cue to stop on its own
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


def _read_line(stream: IO[str], timeout_s: float) -> str:
    """One line from the child's stdout, or "" when it printed none in time (or died)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([stream], [], [], left)
        if readable:
            return stream.readline()
    return ""
