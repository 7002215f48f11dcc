"""All vendor emulators on one aiohttp server, in-process or standalone."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from load.emulators import messaging, openai_chat, openai_stt, rest_vendors
from load.emulators.openai_chat import ChatState
from load.emulators.openai_stt import SttState
from load.emulators.rest_vendors import VendorState

MAX_UPLOAD = 26 * 1024 * 1024  # OpenAI accepts audio files up to 25 MB


@dataclass
class EmulatorConfig:
    chat: ChatState = field(default_factory=ChatState)
    vendors: VendorState = field(default_factory=VendorState)
    stt: SttState = field(default_factory=SttState)


def build_emulator_app(config: EmulatorConfig | None = None) -> web.Application:
    config = config or EmulatorConfig()
    app = web.Application(client_max_size=MAX_UPLOAD)
    openai_chat.add_routes(app, config.chat)
    openai_stt.add_routes(app, config.stt)
    rest_vendors.add_routes(app, config.vendors)
    messaging.add_routes(app)
    return app


@dataclass
class RunningEmulators:
    runner: web.AppRunner
    host: str
    port: int
    config: EmulatorConfig

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_urls(self) -> dict[str, str]:
        """Base URLs as each vendor's client takes them; `openai` serves chat and STT,
        `emulator` is where the `/_emulator/...` control routes live."""
        return {"openai": f"{self.base}/v1", "elevenlabs": self.base, "twilio": self.base,
                "graph": f"{self.base}/v21.0", "emulator": self.base}

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_emulators(host: str = "127.0.0.1", port: int = 0,
                          config: EmulatorConfig | None = None) -> RunningEmulators:
    config = config or EmulatorConfig()
    runner = web.AppRunner(build_emulator_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = next(a for a in runner.addresses if isinstance(a, tuple))
    return RunningEmulators(runner, host, int(bound[1]), config)
