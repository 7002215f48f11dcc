"""All vendor emulators on one aiohttp server, in-process or standalone."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from load.emulators import openai_chat, rest_vendors
from load.emulators.openai_chat import ChatState
from load.emulators.rest_vendors import VendorState


@dataclass
class EmulatorConfig:
    chat: ChatState = field(default_factory=ChatState)
    vendors: VendorState = field(default_factory=VendorState)


def build_emulator_app(config: EmulatorConfig | None = None) -> web.Application:
    config = config or EmulatorConfig()
    app = web.Application(client_max_size=8 * 1024 * 1024)
    openai_chat.add_routes(app, config.chat)
    rest_vendors.add_routes(app, config.vendors)
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
        return {"openai": f"{self.base}/v1", "elevenlabs": self.base, "twilio": self.base,
                "graph": f"{self.base}/v21.0"}

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
