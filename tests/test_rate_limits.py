"""Rate limits on login, refresh, pass verification, one-tap links and public pages (per address and
per account, 429 problems with Retry-After), and the audit log of failed logins and plate reads."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.security.ratelimit import RULES
from schema.privacy import AuditEvent
from tests.support.world import PASSWORD, World

LIMITS = {rule.name: rule for rule in RULES}


async def fresh_window() -> None:
    """Counting windows are fixed minutes: start a burst early in one, so it cannot straddle two."""
    into = time.time() % 60
    if into > 45:
        await asyncio.sleep(60.5 - into)


@pytest.fixture
async def limited(settings: Any) -> AsyncIterator[Any]:
    """The app at the real limits (the suite's shared client runs them scaled up: every test comes
    from one address), with counters of its own."""
    from app.main import create_app

    own = msgspec.structs.replace(
        settings, rate_limit_scale=1.0, redis_prefix=f"{settings.redis_prefix}rl-{secrets.token_hex(3)}:"
    )
    async with AsyncTestClient(app=create_app(own)) as client:
        yield client


def assert_limited(response: Any, rule: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["retry-after"]) <= 61
    assert response.json()["extra"]["limit"] == rule


async def test_login_is_limited_per_account_then_per_address(limited: Any, world: World) -> None:
    await fresh_window()
    per_account, per_address = LIMITS["login"].per_account, LIMITS["login"].per_address
    assert per_account is not None
    body = {"username": world.emails["fm_admin"], "password": PASSWORD}
    for _ in range(per_account):
        assert (await limited.post("/api/auth/login", json=body)).status_code == 200
    assert_limited(await limited.post("/api/auth/login", json=body), "login")
    # Another account from the same address still gets in, until the address has had its share.
    other = {"username": world.emails["guard"], "password": PASSWORD}
    assert (await limited.post("/api/auth/login", json=other)).status_code == 200
    sent = per_account + 2
    while sent < per_address:
        answer = await limited.post("/api/auth/login", json={"username": f"n{sent}@example.test", "password": "x"})
        assert answer.status_code == 401
        sent += 1
    assert_limited(await limited.post("/api/auth/login", json=other), "login")
    # The sign-in form shares the same counters.
    form = await limited.post("/login", data={"username": world.emails["guard"], "password": PASSWORD})
    assert_limited(form, "login")


async def test_refresh_is_limited_per_token(limited: Any) -> None:
    await fresh_window()
    per_account = LIMITS["refresh"].per_account
    assert per_account is not None
    token = {"refresh_token": secrets.token_urlsafe(32)}
    for _ in range(per_account):
        assert (await limited.post("/api/auth/refresh", json=token)).status_code == 401
    assert_limited(await limited.post("/api/auth/refresh", json=token), "refresh")
    fresh = await limited.post("/api/auth/refresh", json={"refresh_token": secrets.token_urlsafe(32)})
    assert fresh.status_code == 401


async def test_pass_verification_is_limited_per_guard(limited: Any, world: World) -> None:
    await fresh_window()
    per_account = LIMITS["pass-verify"].per_account
    assert per_account is not None
    guard = world.headers("guard")
    for _ in range(per_account):
        answer = await limited.post("/api/visitors/gate/verify", json={"code": "000000"}, headers=guard)
        # The visitors' own failed-code throttle may answer first; it is not this limit.
        assert answer.status_code in (200, 429), answer.text
        if answer.status_code == 429:
            assert answer.json().get("extra", {}).get("limit") != "pass-verify"
    assert_limited(
        await limited.post("/api/visitors/gate/verify", json={"code": "000000"}, headers=guard), "pass-verify"
    )
    other = await limited.post("/api/visitors/gate/verify", json={"code": "000000"}, headers=world.headers("fm_admin"))
    assert other.status_code != 429 or other.json().get("extra", {}).get("limit") != "pass-verify"


async def test_one_tap_links_are_limited_per_link_and_address(limited: Any) -> None:
    await fresh_window()
    rule = LIMITS["one-tap"]
    assert rule.per_account is not None
    link = f"/v/a/{secrets.token_hex(16)}.{secrets.token_hex(16)}.1.x"
    for _ in range(rule.per_account):
        assert (await limited.get(link)).status_code == 403  # not a valid link: refused, but counted
    assert_limited(await limited.post(link, data={"decision": "approved"}), "one-tap")
    sent = rule.per_account + 1
    while sent < rule.per_address:
        assert (await limited.get(f"/v/a/other-{sent}")).status_code == 403
        sent += 1
    assert_limited(await limited.get("/v/a/yet-another"), "one-tap")


async def test_public_pages_are_limited_per_address(limited: Any) -> None:
    await fresh_window()
    for _ in range(LIMITS["public"].per_address):
        assert (await limited.get("/login")).status_code == 200
    assert_limited(await limited.get("/login"), "public")
    assert_limited(await limited.get("/v/qr/anything.svg"), "public")
    # Probes are never limited.
    assert (await limited.get("/health")).status_code == 200


async def test_failed_logins_are_in_the_audit_log(client: Any, world: World) -> None:
    person = world.people["technician"]
    wrong = await client.post("/api/auth/login", json={"username": world.emails["technician"], "password": "nope"})
    assert wrong.status_code == 401
    rows = await AuditEvent.select().where((AuditEvent.subject_id == person) & (AuditEvent.action == "login_failed"))
    assert len(rows) == 1 and rows[0]["site"] == world.site_id and rows[0]["actor_id"] is None
    assert rows[0]["route"] == "/api/auth/login" and rows[0]["data"] == "password"
    # The site admin finds it in the audit search.
    found = await client.get(
        "/api/privacy/audit",
        params={"person_id": str(person), "action": "login_failed"},
        headers=world.headers("site_admin"),
    )
    assert found.status_code == 200 and found.json()["total"] == 1
    # A good login adds nothing.
    assert (
        await client.post("/api/auth/login", json={"username": world.emails["technician"], "password": PASSWORD})
    ).status_code == 200
    assert (
        await AuditEvent.count().where((AuditEvent.subject_id == person) & (AuditEvent.action == "login_failed")) == 1
    )


async def test_plate_reads_of_parking_passes_and_valet_are_audited(client: Any, world: World) -> None:
    occupant = world.people["occupant"]
    made = await client.post(
        "/api/slots/passes",
        json={"plate": "KA01AB4321", "unit_id": str(world.unit_ids[0])},
        headers=world.headers("occupant"),
    )
    assert made.status_code == 201, made.text
    reads = AuditEvent.count().where(
        (AuditEvent.subject_id == occupant) & (AuditEvent.action == "read") & (AuditEvent.data == "vehicles")
    )
    before = await reads
    listed = await client.get("/api/slots/passes", headers=world.headers("fm_admin"))
    assert listed.status_code == 200
    after_list = await AuditEvent.select().where(
        (AuditEvent.subject_id == occupant) & (AuditEvent.action == "read") & (AuditEvent.data == "vehicles")
    )
    assert len(after_list) == before + 1
    assert any(r["actor_id"] == world.people["fm_admin"] and r["route"] == "/api/slots/passes" for r in after_list)
    checked = await client.get(
        "/api/slots/passes/check", params={"plate": "KA01AB4321"}, headers=world.headers("guard")
    )
    assert checked.status_code == 200, checked.text
    assert await AuditEvent.exists().where(
        (AuditEvent.subject_id == occupant)
        & (AuditEvent.actor_id == world.people["guard"])
        & (AuditEvent.data == "vehicles")
    )
