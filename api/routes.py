"""Mounts every API route on an app whose `api.context` keys are filled."""

from __future__ import annotations

from aiohttp import web

from api import (
    accounts_api,
    admin,
    auth_api,
    billing_admin,
    billing_tenant,
    calls,
    conversations,
    dashboard,
    kpis,
    live,
    notify_api,
    openapi,
    pages,
    tariff_admin,
    tenant_api,
)


def add_api_routes(app: web.Application) -> None:
    admin.add_routes(app)
    calls.add_routes(app)
    conversations.add_routes(app)
    tenant_api.add_routes(app)
    billing_admin.add_routes(app)
    billing_tenant.add_routes(app)
    notify_api.add_routes(app)
    openapi.add_routes(app)
    live.add_routes(app)
    dashboard.add_routes(app)
    kpis.add_routes(app)
    tariff_admin.add_routes(app)
    auth_api.add_routes(app)
    accounts_api.add_routes(app)
    pages.add_routes(app)
