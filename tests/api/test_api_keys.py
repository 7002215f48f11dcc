"""API keys: many, scoped, listed without secrets, revoked at once, rotated with a grace
period; and the audit log that records who did what (append-only). No secret is ever in
a log line or in a response after the one that created it."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import asyncpg
import pytest

from metering.tenants import hash_api_key, new_api_key
from tests.api.accounts_env import PASSWORD, bearer, invite, join, new_tenant_with_owner
from tests.api.conftest import ADMIN, Client, Mailbox, MovableClock


async def _problem(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["code"]


async def _create(client: Client, by: dict[str, str], name: str, scope: str = "full"
                  ) -> dict[str, Any]:
    response = await client.post("/v1/api-keys", headers=by, json={"name": name, "scope": scope})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_keys_are_many_scoped_revoked_and_listed_without_secrets(
        accounts_client: Client, pg_pool: asyncpg.Pool) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    first = bearer(tenant["api_key"])
    ci = await _create(client, first, "ci")
    bi = await _create(client, first, "bi", "read")
    assert ci["key"].startswith(ci["prefix"]) and ci["key"] != tenant["api_key"]

    assert (await client.get("/v1/usage", headers=bearer(bi["key"]))).status == 200
    write = await client.post("/v1/topups", json={"credits": 5},
                              headers={**bearer(bi["key"]), "Idempotency-Key": "t1"})
    assert await _problem(write) == (403, "insufficient_scope")
    assert await pg_pool.fetchval("SELECT count(*) FROM topups") == 0  # nothing changed

    listed = await client.get("/v1/api-keys", headers=bearer(ci["key"]))
    keys = {k["name"]: k for k in (await listed.json())["api_keys"]}
    assert set(keys) == {"default", "ci", "bi"}
    assert keys["bi"]["scope"] == "read" and keys["ci"]["last_used_at"] is not None
    assert keys["default"]["prefix"] == tenant["api_key"][:12]
    text = await listed.text()
    assert all(secret not in text for secret in (ci["key"], bi["key"], tenant["api_key"]))

    assert (await client.delete(f"/v1/api-keys/{ci['id']}", headers=first)).status == 204
    assert await _problem(await client.get("/v1/usage", headers=bearer(ci["key"]))) == (
        401, "unauthorized")
    again = await client.delete(f"/v1/api-keys/{ci['id']}", headers=first)
    assert await _problem(again) == (404, "not_found")
    assert (await client.get("/v1/balance", headers=first)).status == 200  # others unaffected

    default_id = keys["default"]["id"]
    assert (await client.delete(f"/v1/api-keys/{default_id}",
                                headers=bearer(bi["key"]))).status == 403
    assert (await client.delete(f"/v1/api-keys/{default_id}", headers=first)).status == 204
    assert (await client.get("/v1/balance", headers=first)).status == 401


async def test_a_rotated_key_works_for_its_grace_period_and_not_after(
        accounts_client: Client, clock: MovableClock) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    old = bearer(tenant["api_key"])
    keys = await (await client.get("/v1/api-keys", headers=old)).json()
    key_id = keys["api_keys"][0]["id"]

    too_long = await client.post(f"/v1/api-keys/{key_id}/rotate", headers=old,
                                 json={"grace_seconds": 7 * 86400 + 1})
    assert await _problem(too_long) == (422, "invalid_field")
    rotated = await client.post(f"/v1/api-keys/{key_id}/rotate", headers=old,
                                json={"grace_seconds": 3600})
    assert rotated.status == 201
    body = await rotated.json()
    new = bearer(body["key"])
    assert body["name"] == "default" and body["scope"] == "full"
    assert dt.datetime.fromisoformat(body["previous"]["expires_at"]) == (
        clock.at + dt.timedelta(hours=1))
    twice = await client.post(f"/v1/api-keys/{key_id}/rotate", headers=new, json={})
    assert await _problem(twice) == (409, "key_rotated")

    clock.at += dt.timedelta(minutes=59)
    assert (await client.get("/v1/balance", headers=old)).status == 200
    clock.at += dt.timedelta(minutes=2)
    assert await _problem(await client.get("/v1/balance", headers=old)) == (401, "unauthorized")
    assert (await client.get("/v1/balance", headers=new)).status == 200
    listed = await (await client.get("/v1/api-keys", headers=new)).json()
    assert [k["id"] for k in listed["api_keys"]] == [body["id"]]


async def test_the_audit_log_says_who_did_what_from_where(
        accounts_client: Client, mailbox: Mailbox, pg_pool: asyncpg.Pool) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    key = bearer(tenant["api_key"])
    owner = await join(client, mailbox, "owner@acme.test")
    topup = await client.post("/v1/topups", json={"credits": 25, "reference": "PO-1"},
                              headers={**key, "Idempotency-Key": "a1"})
    assert topup.status == 201
    assert (await client.post("/v1/topups", json={"credits": 25, "reference": "PO-1"},
                              headers={**key, "Idempotency-Key": "a1"})).status == 200
    assert (await client.put("/v1/alerts", headers=owner.headers(),
                             json={"low_balance_credits": 5, "emails": []})).status == 200
    made = await _create(client, owner.headers(), "ci", "read")
    await client.delete(f"/v1/api-keys/{made['id']}", headers=owner.headers())
    await invite(client, owner.headers(), "bill@acme.test", "billing")

    page = await (await client.get("/v1/audit", headers=owner.headers())).json()
    actions = [e["action"] for e in page["entries"]]
    assert actions == ["user.invited", "api_key.revoked", "api_key.created", "alerts.changed",
                       "topup.created", "session.created", "user.password_set",
                       "tenant.created"]
    by_action = {e["action"]: e for e in page["entries"]}
    assert by_action["topup.created"]["actor"] == {
        "kind": "api_key", "id": by_action["topup.created"]["actor"]["id"], "label": "default"}
    assert by_action["topup.created"]["changes"] == {"credits": 25, "reference": "PO-1"}
    assert by_action["alerts.changed"]["actor"]["label"] == "owner@acme.test"
    assert by_action["alerts.changed"]["address"] == "127.0.0.1"
    assert by_action["user.invited"]["changes"] == {"email": "bill@acme.test",
                                                    "role": "billing"}

    keys_only = await (await client.get("/v1/audit?action=api_key&limit=1",
                                        headers=owner.headers())).json()
    assert [e["action"] for e in keys_only["entries"]] == ["api_key.revoked"]
    rest = await (await client.get(
        f"/v1/audit?action=api_key&limit=1&cursor={keys_only['next_cursor']}",
        headers=owner.headers())).json()
    assert [e["action"] for e in rest["entries"]] == ["api_key.created"]
    assert rest["next_cursor"] is None
    bad = await client.get("/v1/audit?from=yesterday", headers=owner.headers())
    assert await _problem(bad) == (422, "invalid_field")

    operator = await (await client.get(f"/admin/audit?tenant_id={tenant['id']}"
                                       "&action=tenant", headers=ADMIN)).json()
    assert [(e["action"], e["actor"]["kind"]) for e in operator["entries"]] == [
        ("tenant.created", "admin_token")]
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pg_pool.execute("UPDATE audit_log SET action = 'x.y'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pg_pool.execute("DELETE FROM audit_log")


async def test_no_secret_in_any_log_line_or_later_response(
        accounts_client: Client, mailbox: Mailbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    token = await mailbox.link("owner@acme.test")
    owner = await join(client, mailbox, "owner@acme.test")
    made = await _create(client, owner.headers(), "ci")
    await client.post("/auth/login", json={"email": "owner@acme.test", "password": "wrong!"})
    await client.post("/auth/password", json={"token": token, "password": PASSWORD})
    await client.post("/auth/password-reset", json={"email": "owner@acme.test"})
    reset = await mailbox.link("owner@acme.test", "reset")
    later = [await (await client.get(path, headers=owner.headers())).text()
             for path in ("/v1/api-keys", "/v1/users", "/v1/audit", "/auth/session")]
    later.append(await (await client.get("/admin/audit", headers=ADMIN)).text())
    secrets = [PASSWORD, "wrong!", token, reset, made["key"], tenant["api_key"],
               owner.session]
    # Every record but the receiving mail server's own (`mail.log`: aiosmtpd, the
    # recipient's side, which reads the link it was sent).
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records
                       if r.name != "mail.log")
    assert [s for s in secrets if s in logged] == []
    assert [s for s in secrets if any(s in text for text in later)] == []


async def test_a_tenant_written_by_another_path_keeps_its_key(
        accounts_client: Client, pg_pool: asyncpg.Pool) -> None:
    """Fixtures, benchmarks and imports insert tenants directly: their key is their
    `default` key (a trigger of migration 0009), as it always worked."""
    key = new_api_key()
    await pg_pool.execute("INSERT INTO tenants (id, name, api_key_hash) "
                          "VALUES (gen_random_uuid(), 'Direct', $1)", hash_api_key(key))
    assert (await accounts_client.get("/v1/balance", headers=bearer(key))).status == 200
    listed = await (await accounts_client.get("/v1/api-keys", headers=bearer(key))).json()
    assert [k["name"] for k in listed["api_keys"]] == ["default"]


async def test_operator_tariff_template_and_billing_email_actions_are_audited(
        accounts_client: Client) -> None:
    client = accounts_client
    tenant = await new_tenant_with_owner(client, "owner@acme.test")
    assert (await client.put(f"/admin/tenants/{tenant['id']}/billing-email", headers=ADMIN,
                             json={"billing_email": "ap@acme.test"})).status == 200
    assert (await client.put("/admin/templates/per_call_follow_up", headers=ADMIN,
                             json={"text": "{7}, see our mail of {6}: {5}"})).status == 200
    assert (await client.post("/admin/tariff-reviews", headers=ADMIN,
                              json={"period": "2026-10"})).status == 200
    entries = (await (await client.get("/admin/audit", headers=ADMIN)).json())["entries"]
    found = {e["action"]: e for e in entries}
    assert found["tenant.billing_email_changed"]["tenant_id"] == tenant["id"]
    assert found["tenant.billing_email_changed"]["changes"] == {"billing_email": "ap@acme.test"}
    assert found["template.changed"]["target"] == "per_call_follow_up"
    assert found["tariff.reviewed"]["target"] == "2026-10"
    assert {e["actor"]["kind"] for e in entries} == {"admin_token"}
