"""The aiohttp server and its wiring: configuration, CLI, app factory, health and metrics,
embedded servers for development, and (as they come) the channel endpoints, vendor codecs
and per-call session lifecycle.

May import: `agents`, `metering`, `api` and third-party libraries. Nothing imports
`gateway` except its own CLI entry point and the tests.
"""
