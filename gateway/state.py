"""Typed keys for the gateway's own application state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.sessions import SessionRegistry

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
SESSIONS = web.AppKey("sessions", SessionRegistry)
SCHEMA_READY = web.AppKey("schema_ready", asyncio.Event)  # set once migrations are applied
