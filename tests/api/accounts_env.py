"""Helpers to invite, sign in and call the API as a person or a key (the gateway with a
real SMTP catcher is `accounts_client` in conftest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientResponse

from tests.api.conftest import ADMIN, Client, Mailbox

PASSWORD = "correct horse battery"


@dataclass
class Person:
    """A signed-in user: the session cookie and its CSRF token."""

    email: str
    session: str
    csrf: str
    user_id: str = ""
    role: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def headers(self, csrf: bool = True) -> dict[str, str]:
        found = {"Cookie": f"vgw_session={self.session}"}
        if csrf:
            found["X-CSRF-Token"] = self.csrf
        return found


async def new_tenant_with_owner(client: Client, email: str) -> dict[str, Any]:
    response = await client.post("/admin/tenants", headers=ADMIN,
                                 json={"name": "Acme Dental", "owner_email": email})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def set_password(client: Client, token: str, password: str = PASSWORD) -> ClientResponse:
    return await client.post("/auth/password", json={"token": token, "password": password})


async def login(client: Client, email: str, password: str = PASSWORD) -> Person:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    body = await response.json()
    return Person(email, response.cookies["vgw_session"].value, body["csrf_token"],
                  body["user"]["id"], body["user"]["role"])


async def join(client: Client, mailbox: Mailbox, email: str) -> Person:
    """Uses the invite mailed to `email`, and signs in."""
    response = await set_password(client, await mailbox.link(email))
    assert response.status == 200, await response.text()
    return await login(client, email)


async def invite(client: Client, by: dict[str, str], email: str, role: str) -> str:
    response = await client.post("/v1/users", headers=by, json={"email": email, "role": role})
    assert response.status == 201, await response.text()
    user_id: str = (await response.json())["id"]
    return user_id


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
