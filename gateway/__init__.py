"""The aiohttp server and its wiring: configuration, CLI, app factory, health and metrics,
embedded servers for development, and (as they come) the channel endpoints, vendor codecs
and per-call session lifecycle.

May import: `agents`, `metering`, `api` and third-party libraries; never `load` (dev mode
runs the emulators as a process; tests/gateway/test_layering.py checks). Nothing imports
`gateway` except its own CLI entry point and the tests.
"""
