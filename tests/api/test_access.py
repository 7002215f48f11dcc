"""Every route has a role decision (`api.access.ROUTES`), and every role meets it: each
tenant role, a read and a full API key, an operator, a viewer and the admin token are
sent to every route, and each is let through or refused with the precise 403."""

from __future__ import annotations

import uuid
from typing import Any

from api.access import ROUTES, TENANT_ROLES
from gateway.app import create_app
from tests.api.accounts_env import Person, bearer, invite, join, new_tenant_with_owner
from tests.api.conftest import ADMIN, Client, Mailbox
from tests.gateway.helpers import make_settings

DEV_ONLY = {("GET", "/dev/mail")}  # mounted by `voicegw dev` alone


def _mounted() -> set[tuple[str, str]]:
    app = create_app(make_settings("redis://127.0.0.1:1/0", "postgresql://u@127.0.0.1:1/d",
                                   "unused:", run_sink="false"))
    return {(route.method, route.resource.canonical) for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None}


def test_every_mounted_route_has_a_role_decision() -> None:
    """Adding a route means deciding who may call it, in api/access.py."""
    undecided = sorted(_mounted() - set(ROUTES))
    assert undecided == [], f"no role decision in api/access.py for {undecided}"


def test_the_table_decides_only_routes_that_exist() -> None:
    assert sorted(set(ROUTES) - _mounted() - DEV_ONLY) == []


def _path(template: str) -> str:
    filled = template
    for name in ("tenant_id", "user_id", "key_id", "webhook_id", "topup_id", "invoice_id",
                 "task_id", "conversation_id"):
        filled = filled.replace("{" + name + "}", str(uuid.uuid4()))
    filled = (filled.replace("{call_sid}", "CA" + "0" * 32).replace("{plan_id}", "nope")
              .replace("{asset}", "nope.css").replace("{name}", "nope"))
    assert "{" not in filled, f"fill the path parameter of {template} here"
    return filled


async def _call(client: Client, method: str, template: str, headers: dict[str, str]
                ) -> tuple[int, str | None]:
    body: Any = None if method in ("GET", "DELETE") else {}
    response = await client.request(method, _path(template), headers=headers, json=body)
    code = None
    if response.content_type == "application/problem+json":
        code = (await response.json())["code"]
    return response.status, code


async def test_every_role_against_every_route(accounts_client: Client,
                                              mailbox: Mailbox) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    full = bearer(tenant["api_key"])
    people: dict[str, Person] = {"owner": await join(client, mailbox, "owner@acme.test")}
    for role in TENANT_ROLES[1:]:
        await invite(client, full, f"{role}@acme.test", role)
        people[role] = await join(client, mailbox, f"{role}@acme.test")
    read = await client.post("/v1/api-keys", headers=full, json={"name": "bi", "scope": "read"})
    read_key = bearer((await read.json())["key"])
    for role in ("operator", "viewer"):
        made = await client.post("/admin/operators", headers=ADMIN,
                                 json={"email": f"{role}@ops.test", "role": role})
        assert made.status == 201
        people[role] = await join(client, mailbox, f"{role}@ops.test")

    wrong: list[str] = []

    def expect(what: str, got: tuple[int, str | None], allowed: bool,
               refusal: tuple[int, str]) -> None:
        status, code = got
        if allowed and status in (401, 403):
            wrong.append(f"{what}: refused {status} {code}")
        if not allowed and (status, code) != refusal:
            wrong.append(f"{what}: {status} {code}, expected {refusal}")

    for (method, template), decision in sorted(ROUTES.items()):
        route = f"{method} {template}"
        if decision.area == "tenant":
            for role in TENANT_ROLES:
                got = await _call(client, method, template, people[role].headers())
                expect(f"{role} {route}", got, decision.allows(role), (403, "role_forbidden"))
            got = await _call(client, method, template, read_key)
            expect(f"read key {route}", got, method == "GET" or decision.reads,
                   (403, "insufficient_scope"))
            expect(f"full key {route}", await _call(client, method, template, full), True,
                   (0, ""))
            got = await _call(client, method, template, people["operator"].headers())
            expect(f"operator {route}", got, False, (403, "role_forbidden"))
            expect(f"admin token {route}", await _call(client, method, template, ADMIN),
                   False, (401, "unauthorized"))
            expect(f"nobody {route}", await _call(client, method, template, {}), False,
                   (401, "unauthorized"))
        elif decision.area == "admin":
            for role in ("operator", "viewer"):
                got = await _call(client, method, template, people[role].headers())
                expect(f"{role} {route}", got, decision.allows(role), (403, "role_forbidden"))
            expect(f"admin token {route}", await _call(client, method, template, ADMIN), True,
                   (0, ""))
            got = await _call(client, method, template, people["owner"].headers())
            expect(f"owner {route}", got, False, (403, "role_forbidden"))
            expect(f"tenant key {route}", await _call(client, method, template, full), False,
                   (401, "unauthorized"))
            expect(f"nobody {route}", await _call(client, method, template, {}), False,
                   (401, "unauthorized"))
    assert wrong == []
