"""The business and admin HTTP API (problem-JSON errors, OpenAPI described) and the
dashboard page.

May import: `metering` and third-party libraries. Never `gateway` or `agents`: the
gateway mounts the API and fills the typed keys in `api.context`.
"""
