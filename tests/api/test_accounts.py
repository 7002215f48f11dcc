"""People and their sessions: invite links, passwords, login (cookie and CSRF), roles,
the last owner, password reset, the login flood; every refusal a precise 4xx that
changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tests.api.accounts_env import (
    PASSWORD,
    bearer,
    invite,
    join,
    login,
    new_tenant_with_owner,
    set_password,
)
from tests.api.conftest import ADMIN, Client, Mailbox, MovableClock


async def _problem(response: Any) -> tuple[int, str]:
    body = await response.json()
    return response.status, body["code"]


async def test_invite_set_password_sign_in_and_call_the_api_with_cookie_and_csrf(
        accounts_client: Client, mailbox: Mailbox) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    assert tenant["owner_id"]
    token = await mailbox.link("owner@acme.test")
    assert (await set_password(client, token)).status == 200

    response = await client.post("/auth/login",
                                 json={"email": "Owner@Acme.test", "password": PASSWORD})
    assert response.status == 200
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    body = await response.json()
    assert body["user"]["role"] == "owner" and body["user"]["tenant_id"] == tenant["id"]
    session = response.cookies["vgw_session"].value
    jar = {"Cookie": f"vgw_session={session}"}

    assert (await client.get("/v1/usage", headers=jar)).status == 200
    me = await client.get("/auth/session", headers=jar)
    assert (await me.json())["csrf_token"] == body["csrf_token"]

    alerts = {"low_balance_credits": 50, "emails": []}
    refused = await client.put("/v1/alerts", headers=jar, json=alerts)
    assert await _problem(refused) == (403, "csrf_token_required")
    forged = await client.put("/v1/alerts", headers={**jar, "X-CSRF-Token": "0" * 64},
                              json=alerts)
    assert await _problem(forged) == (403, "csrf_token_invalid")
    assert (await (await client.get("/v1/alerts", headers=jar)).json())[
        "low_balance_credits"] is None  # nothing changed
    done = await client.put("/v1/alerts", json=alerts,
                            headers={**jar, "X-CSRF-Token": body["csrf_token"]})
    assert done.status == 200


async def test_wrong_passwords_and_unknown_addresses_are_the_same_401(
        accounts_client: Client, mailbox: Mailbox) -> None:
    client = accounts_client
    await new_tenant_with_owner(client, "owner@acme.test")
    await join(client, mailbox, "owner@acme.test")
    for email, password in (("owner@acme.test", "wrong password!"),
                            ("nobody@acme.test", PASSWORD), ("owner\x00@acme.test", PASSWORD)):
        response = await client.post("/auth/login", json={"email": email, "password": password})
        assert await _problem(response) == (401, "invalid_credentials")
        assert "Set-Cookie" not in response.headers


async def test_links_work_once_and_for_24_hours(accounts_client: Client, mailbox: Mailbox,
                                                clock: MovableClock,
                                                pg_pool: asyncpg.Pool) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    token = await mailbox.link("owner@acme.test")

    short = await set_password(client, token, "short")
    assert await _problem(short) == (422, "invalid_field")
    assert (await short.json())["field"] == "password"
    assert await _problem(await set_password(client, "vgl_made_up")) == (400, "link_invalid")
    assert (await set_password(client, token)).status == 200  # the refusals used nothing
    assert await _problem(await set_password(client, token, "another password")) == (
        410, "link_used")
    await login(client, "owner@acme.test")  # the first password stands

    await invite(client, bearer(tenant["api_key"]), "late@acme.test", "analyst")
    late = await mailbox.link("late@acme.test")
    clock.at += dt.timedelta(hours=24, seconds=1)
    assert await _problem(await set_password(client, late)) == (410, "link_expired")
    assert await pg_pool.fetchval(
        "SELECT password_hash FROM users WHERE email = 'late@acme.test'") is None


async def test_password_reset_ends_every_session(accounts_client: Client,
                                                 mailbox: Mailbox) -> None:
    client = accounts_client
    await new_tenant_with_owner(client, "owner@acme.test")
    before = await join(client, mailbox, "owner@acme.test")

    for email in ("owner@acme.test", "nobody@acme.test"):
        asked = await client.post("/auth/password-reset", json={"email": email})
        assert asked.status == 202 and await asked.json() == {"status": "queued"}
    token = await mailbox.link("owner@acme.test", "reset")
    assert (await set_password(client, token, "a brand new password")).status == 200
    assert not any("nobody@acme.test" in mail.recipients for mail in mailbox.catcher.mails)

    ended = await client.get("/v1/usage", headers=before.headers())
    assert await _problem(ended) == (401, "session_expired")
    old = await client.post("/auth/login",
                            json={"email": "owner@acme.test", "password": PASSWORD})
    assert old.status == 401
    await login(client, "owner@acme.test", "a brand new password")


async def test_the_last_owner_stays_and_only_owners_touch_owners(
        accounts_client: Client, mailbox: Mailbox) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    owner = await join(client, mailbox, "owner@acme.test")
    admin_id = await invite(client, owner.headers(), "admin@acme.test", "admin")
    admin = await join(client, mailbox, "admin@acme.test")

    gone = await client.delete(f"/v1/users/{owner.user_id}", headers=owner.headers())
    assert await _problem(gone) == (409, "last_owner")
    demoted = await client.patch(f"/v1/users/{owner.user_id}", headers=owner.headers(),
                                 json={"role": "analyst"})
    assert await _problem(demoted) == (409, "last_owner")
    by_admin = await client.delete(f"/v1/users/{owner.user_id}", headers=admin.headers())
    assert await _problem(by_admin) == (403, "role_forbidden")
    promote = await client.patch(f"/v1/users/{admin_id}", headers=admin.headers(),
                                 json={"role": "owner"})
    assert await _problem(promote) == (403, "role_forbidden")
    listed = await (await client.get("/v1/users", headers=owner.headers())).json()
    assert {(u["email"], u["role"]) for u in listed["users"]} == {
        ("owner@acme.test", "owner"), ("admin@acme.test", "admin")}

    nul = await client.post("/v1/users", headers=owner.headers(),
                            json={"email": "a\x00b@acme.test", "role": "analyst"})
    assert (await _problem(nul)) == (422, "invalid_field")
    taken = await client.post("/v1/users", headers=owner.headers(),
                              json={"email": "ADMIN@acme.test", "role": "analyst"})
    assert await _problem(taken) == (409, "email_taken")
    other = await client.post("/admin/tenants", headers=ADMIN,
                              json={"name": "Other", "owner_email": "admin@acme.test"})
    assert await _problem(other) == (409, "email_taken")

    promoted = await client.patch(f"/v1/users/{admin_id}", headers=owner.headers(),
                                  json={"role": "owner"})
    assert promoted.status == 200
    assert (await client.delete(f"/v1/users/{owner.user_id}",
                                headers=admin.headers())).status == 204
    assert await _problem(await client.get("/v1/users", headers=owner.headers())) == (
        401, "session_expired")
    assert tenant["id"]


async def test_an_analyst_reads_usage_but_no_billing_and_changes_nothing(
        accounts_client: Client, mailbox: Mailbox) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    await invite(client, bearer(tenant["api_key"]), "ana@acme.test", "analyst")
    ana = await join(client, mailbox, "ana@acme.test")
    assert (await client.get("/v1/usage", headers=ana.headers())).status == 200
    assert (await client.get("/v1/calls", headers=ana.headers())).status == 200
    for method, path, body in (("GET", "/v1/balance", None), ("GET", "/v1/invoices", None),
                               ("PUT", "/v1/plan", {"plan_id": "growth"}),
                               ("POST", "/v1/users", {"email": "x@acme.test",
                                                      "role": "owner"})):
        response = await client.request(method, path, headers=ana.headers(), json=body)
        assert await _problem(response) == (403, "role_forbidden"), path
    topup = await client.post("/v1/topups", json={"credits": 10},
                              headers={**ana.headers(), "Idempotency-Key": "k1"})
    assert await _problem(topup) == (403, "role_forbidden")
    balance = await (await client.get("/v1/balance", headers=bearer(tenant["api_key"]))).json()
    assert balance["available_credits"] == "0.000000"


async def test_a_login_flood_is_refused_with_429_and_retry_after(
        accounts_client: Client, mailbox: Mailbox) -> None:
    client = accounts_client
    await new_tenant_with_owner(client, "owner@acme.test")
    await join(client, mailbox, "owner@acme.test")
    for _ in range(5):
        wrong = await client.post("/auth/login",
                                  json={"email": "owner@acme.test", "password": "guess guess"})
        assert wrong.status == 401
    locked = await client.post("/auth/login",
                               json={"email": "owner@acme.test", "password": PASSWORD})
    assert await _problem(locked) == (429, "too_many_attempts")
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    assert "Set-Cookie" not in locked.headers  # even the right password waits

    statuses = []
    for n in range(20):  # one address, many accounts: the address limit (20 a minute)
        response = await client.post("/auth/login",
                                     json={"email": f"u{n}@acme.test", "password": "x"})
        statuses.append(response.status)
    assert statuses[-1] == 429 and set(statuses[:13]) == {401}
    assert 0 < int(response.headers["Retry-After"]) <= 60


async def test_logout_ends_the_session_everywhere(accounts_client: Client,
                                                  mailbox: Mailbox) -> None:
    client = accounts_client
    await new_tenant_with_owner(client, "owner@acme.test")
    owner = await join(client, mailbox, "owner@acme.test")
    without = await client.post("/auth/logout", headers=owner.headers(csrf=False))
    assert await _problem(without) == (403, "csrf_token_required")
    assert (await client.get("/auth/session", headers=owner.headers())).status == 200
    done = await client.post("/auth/logout", headers=owner.headers())
    assert done.status == 204 and "vgw_session=\"\"" in done.headers["Set-Cookie"]
    again = await client.get("/auth/session", headers=owner.headers())
    assert await _problem(again) == (401, "session_expired")
    assert await _problem(await client.get("/auth/session")) == (401, "not_signed_in")


async def test_operators_sign_in_to_the_admin_api(accounts_client: Client,
                                                  mailbox: Mailbox) -> None:
    client = accounts_client
    made = await client.post("/admin/operators", headers=ADMIN,
                             json={"email": "ops@voicegw.test", "role": "viewer"})
    assert made.status == 201
    viewer = await join(client, mailbox, "ops@voicegw.test")
    assert (await client.get("/admin/plans", headers=viewer.headers())).status == 200
    create = await client.post("/admin/tenants", headers=viewer.headers(),
                               json={"name": "Nope"})
    assert await _problem(create) == (403, "role_forbidden")
    listed = await (await client.get("/admin/operators", headers=ADMIN)).json()
    assert [u["email"] for u in listed["users"]] == ["ops@voicegw.test"]
    tenant_route = await client.get("/v1/usage", headers=viewer.headers())
    assert await _problem(tenant_route) == (403, "role_forbidden")
