"""Login, refresh rotation, logout and revocation, and login throttling."""

from __future__ import annotations

import time

from app.auth.tokens import issue_access_token
from tests.support.world import PASSWORD


async def login(client, world, name: str = "fm_admin", password: str = PASSWORD, **extra):  # type: ignore[no-untyped-def]
    return await client.post("/api/auth/login", json={"username": world.emails[name], "password": password, **extra})


async def test_login_issues_tokens_that_work(client, world) -> None:  # type: ignore[no-untyped-def]
    response = await login(client, world)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["roles"] == ["fm_admin"]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["person_id"] == str(world.people["fm_admin"])


async def test_login_by_phone(client, world) -> None:  # type: ignore[no-untyped-def]
    await world.add_person("caller", frozenset({"occupant"}), mobile="+919812345670")  # type: ignore[arg-type]
    response = await client.post("/api/auth/login", json={"username": "098123 45670", "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["person_id"] == str(world.people["caller"])


async def test_wrong_password_is_401_problem(client, world) -> None:  # type: ignore[no-untyped-def]
    response = await login(client, world, password="nope")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401


async def test_login_is_throttled_after_repeated_failures(client, world, settings) -> None:  # type: ignore[no-untyped-def]
    for _ in range(settings.login_max_failures):
        assert (await login(client, world, "guard", password="wrong")).status_code == 401
    response = await login(client, world, "guard")  # even the right password waits now
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_refresh_rotates_and_detects_reuse(client, world) -> None:  # type: ignore[no-untyped-def]
    first = (await login(client, world)).json()
    second = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    # Re-using the first refresh token ends the whole login family, including the second.
    reused = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    after = await client.post("/api/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 401


async def test_logout_revokes_access_and_refresh(client, world) -> None:  # type: ignore[no-untyped-def]
    tokens = (await login(client, world)).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=headers)
    assert response.status_code == 204
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401


async def test_logout_everywhere_revokes_every_access_token(client, world) -> None:  # type: ignore[no-untyped-def]
    one = (await login(client, world)).json()["access_token"]
    two = (await login(client, world)).json()["access_token"]
    response = await client.post("/api/auth/logout-everywhere", headers={"Authorization": f"Bearer {one}"})
    assert response.status_code == 204
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {two}"})).status_code == 401


async def test_expired_and_forged_tokens_are_refused(client, world, settings) -> None:  # type: ignore[no-untyped-def]
    expired, _ = issue_access_token(
        settings,
        person_id=world.people["fm_admin"],
        site_id=world.site_id,
        roles=world.roles["fm_admin"],
        now=time.time() - settings.access_token_ttl_seconds - 5,
    )
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    forged = world.token("fm_admin")[:-4] + "AAAA"
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {forged}"})).status_code == 401
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_deactivated_person_cannot_log_in(client, world) -> None:  # type: ignore[no-untyped-def]
    from schema.tables import Person

    await Person.update({Person.is_active: False}).where(Person.id == world.people["guard"])
    assert (await login(client, world, "guard")).status_code == 401
