"""Mounts every API route on an app whose `api.context` keys are filled."""

from __future__ import annotations

from aiohttp import web

from api import admin, calls, dashboard, openapi, tenant_api


def add_api_routes(app: web.Application) -> None:
    admin.add_routes(app)
    calls.add_routes(app)
    tenant_api.add_routes(app)
    openapi.add_routes(app)
    dashboard.add_routes(app)
