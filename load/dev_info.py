"""Finding a running `voicegw dev`: the `running` section of its `dev.json`.

Looked up in `$VOICEGW_DEV_DIR/dev.json` when that is set, else `./.voicegw/dev.json`
(the data directory `make run` uses). The section holds every URL and credential the
load tools need; `voicegw dev` writes it when it is ready and removes it when it stops.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DevGateway:
    path: Path
    info: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.info[key]


class NoDevGateway(Exception):
    """Why no running `voicegw dev` was found (a sentence for the user)."""


def dev_json_path() -> Path:
    return Path(os.environ.get("VOICEGW_DEV_DIR") or ".voicegw") / "dev.json"


def find_dev() -> DevGateway:
    path = dev_json_path()
    if not path.exists():
        raise NoDevGateway(f"no {path} here: start `voicegw dev` (`make run`) in this "
                           "directory, set VOICEGW_DEV_DIR to its data directory, or pass "
                           "the flags (--help)")
    try:
        running = json.loads(path.read_text()).get("running")
    except (OSError, ValueError) as exc:
        raise NoDevGateway(f"cannot read {path}: {exc}") from exc
    if not isinstance(running, dict):
        raise NoDevGateway(f"{path} says voicegw dev is not running: start it (`make run`)")
    return DevGateway(path, running)
