"""Hostile inputs end as 4xx problems naming the field, never as a 500 (issue #22)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.input_guard import MAX_JSON_DEPTH, json_depth
from app.pagination import MAX_INT
from app.security.compare import safe_equals
from app.visitors.ladder import LINK_PATH
from tests.support import complaints as complaint_support

ROOT = Path(__file__).resolve().parents[1]
DEEP = b"[" * 1000 + b"]" * 1000
NOT_UTF8 = b"\xff\xfe not utf-8"


def field_of(response: Any) -> tuple[str, str | None]:
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    error = problem["errors"][0]
    return error["field"], error.get("source")


# ------------------------------------------------------------------------------ integers


def _integer_schemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
    return [s for s in kinds if s.get("type") == "integer"]


def test_every_integer_query_or_path_parameter_has_bounds(app: Any) -> None:
    """The class: no integer parameter of any operation may reach the database unbounded."""
    unbounded = []
    for path, item in app.openapi_schema.to_schema()["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                schema = parameter.get("schema", {})
                if not _integer_schemas(schema):
                    continue
                if schema.get("maximum", 2**53 + 1) > 2**53 or schema.get("minimum") is None:
                    unbounded.append(f"{method.upper()} {path} {parameter['name']}")
    assert unbounded == []


@pytest.mark.parametrize("offset", [str(2**63), str(2**64), str(MAX_INT + 1)])
@pytest.mark.parametrize(
    "path", ["/api/complaints", "/api/slots/bookings", "/api/visitors/passes", "/api/privacy/audit", "/api/units"]
)
async def test_an_offset_beyond_the_range_names_the_offset(client: Any, world: Any, path: str, offset: str) -> None:
    role = "site_admin" if path.startswith("/api/privacy") else "fm_admin"
    response = await client.get(path, params={"offset": offset}, headers=world.headers(role))
    assert response.status_code == 400, response.text
    assert field_of(response) == ("offset", "query")


async def test_the_largest_offset_is_an_empty_page(client: Any, world: Any) -> None:
    response = await client.get("/api/complaints", params={"offset": MAX_INT}, headers=world.headers("fm_admin"))
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


# ------------------------------------------------------------------------------ signatures


def test_safe_equals_never_raises() -> None:
    assert safe_equals("abc", "abc") and not safe_equals("abc", "abd")
    assert not safe_equals("abc", "é") and not safe_equals(b"abc", "\ud800") and safe_equals("é", "é")


def test_no_secret_comparison_bypasses_the_helper() -> None:
    """compare_digest raises on non-ASCII str; only app/security/compare.py may call it (sessions compare bytes)."""
    users = sorted(
        str(path.relative_to(ROOT))
        for folder in ("app", "notifications", "realtime", "workers")
        for path in (ROOT / folder).rglob("*.py")
        if "compare_digest(" in path.read_text()
    )
    assert users == ["app/security/compare.py", "app/web/sessions.py"]
    sessions = (ROOT / "app/web/sessions.py").read_text()
    assert all(".encode()" in line for line in sessions.splitlines() if "compare_digest(" in line)


@pytest.mark.parametrize("signature", ["é", "\u2603" * 10, "%ff"])
async def test_an_export_link_with_a_non_ascii_signature_is_not_found(client: Any, signature: str) -> None:
    response = await client.get(
        f"/api/privacy/exports/{uuid.uuid4()}/download", params={"expires": "1", "signature": signature}
    )
    assert response.status_code == 404, response.text


async def test_an_export_link_with_a_huge_expiry_names_it(client: Any) -> None:
    response = await client.get(
        f"/api/privacy/exports/{uuid.uuid4()}/download", params={"expires": str(2**70), "signature": "a"}
    )
    assert response.status_code == 400 and field_of(response) == ("expires", "query")


async def test_a_one_tap_link_with_a_non_ascii_token_is_refused_not_crashed(client: Any) -> None:
    token = f"{uuid.uuid4().hex}.{uuid.uuid4().hex}.9999999999.é"
    response = await client.get(f"{LINK_PATH}{token}")
    assert response.status_code < 500, response.text


# ------------------------------------------------------------------------------ multipart


async def test_a_walk_in_text_field_that_is_not_utf8_names_the_field(client: Any, world: Any) -> None:
    response = await client.post(
        "/api/visitors/walk-ins",
        headers=world.headers("guard"),
        files={"name": (None, NOT_UTF8, "text/plain")},
        data={"unit_id": str(world.unit_ids[0])},
    )
    assert response.status_code == 400, response.text
    assert field_of(response) == ("name", "body")


async def test_a_complaint_photo_stage_that_is_not_utf8_names_the_field(
    client: Any, world: Any, settings: Any, redis: Any
) -> None:
    await complaint_support.configure(world)
    complaint = await complaint_support.raise_one(world, settings, redis)
    response = await client.post(
        f"/api/complaints/{complaint.id}/photos",
        headers=world.headers("occupant"),
        files={"stage": (None, NOT_UTF8, "text/plain; charset=utf-8")},
    )
    assert response.status_code == 400, response.text
    assert field_of(response) == ("stage", "body")


async def test_a_multipart_field_with_an_unknown_charset_names_the_field(client: Any, world: Any) -> None:
    response = await client.post(
        "/api/visitors/walk-ins",
        headers=world.headers("guard"),
        files={"name": (None, b"Asha", "text/plain; charset=no-such-charset")},
        data={"unit_id": str(world.unit_ids[0])},
    )
    assert response.status_code == 400 and field_of(response) == ("name", "body")


# ------------------------------------------------------------------------------ nesting


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[[[{{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0 and json_depth(b"[]" * 1000) == 1 and json_depth(DEEP) == 1000


async def test_deep_json_on_login_is_a_400_before_any_login(client: Any) -> None:
    response = await client.post("/api/auth/login", content=DEEP, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert field_of(response) == ("body", "body")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/complaints"),
        ("post", "/api/visitors/passes"),
        ("put", "/api/me/dnd"),
        ("post", "/api/slots/resources"),
    ],
)
async def test_deep_json_on_any_endpoint_is_a_400(client: Any, world: Any, method: str, path: str) -> None:
    body = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = await client.request(
        method, path, content=body, headers={**world.headers("fm_admin"), "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_json_nested_within_the_limit_still_reaches_the_endpoint(client: Any) -> None:
    body = json.dumps({"username": "nobody@example.test", "password": "x", "site": None}).encode()
    response = await client.post("/api/auth/login", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401
    shallow = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    response = await client.post("/api/auth/login", content=shallow, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nests deeper" not in response.text


def test_the_depth_check_is_cheap_on_a_large_flat_body() -> None:
    import time

    body = b"[" + b",".join([b'{"k": "v[]"}'] * 100_000) + b"]"
    started = time.perf_counter()
    assert json_depth(body) == 2
    assert time.perf_counter() - started < 1.0


# ------------------------------------------------------------------------------ no lock-out by strangers


async def _try_login(settings: Any, redis: Any, world: Any, password: str, address: str) -> str:
    from app.auth.service import verify_credentials
    from app.auth.throttle import LoginThrottled
    from app.errors import Unauthenticated
    from app.people.directory import directory_for

    try:
        await verify_credentials(
            settings=settings,
            redis=redis,
            directory=directory_for(settings),
            username=world.emails["occupant"],
            password=password,
            site_slug=None,
            client_address=address,
        )
    except LoginThrottled:
        return "throttled"
    except Unauthenticated:
        return "wrong"
    return "ok"


async def test_a_strangers_failures_do_not_lock_the_owner_out(settings: Any, redis: Any, world: Any) -> None:
    import msgspec

    from tests.support.world import PASSWORD

    tight = msgspec.structs.replace(settings, login_max_failures=3, login_account_max_failures=6)
    owner = "10.1.9.7"
    assert await _try_login(tight, redis, world, PASSWORD, owner) == "ok"  # the owner's usual address

    # One stranger address: stopped after its own failures, the owner is not.
    for _ in range(tight.login_max_failures):
        assert await _try_login(tight, redis, world, "guess", "203.0.113.1") == "wrong"
    assert await _try_login(tight, redis, world, PASSWORD, "203.0.113.1") == "throttled"
    assert await _try_login(tight, redis, world, PASSWORD, owner) == "ok"

    # Guessing spread over many addresses trips the account backstop for unknown addresses only.
    for n in range(2, 2 + tight.login_account_max_failures - tight.login_max_failures):
        assert await _try_login(tight, redis, world, "guess", f"203.0.113.{n}") == "wrong"
    assert await _try_login(tight, redis, world, PASSWORD, "198.51.100.50") == "throttled"
    assert await _try_login(tight, redis, world, PASSWORD, owner) == "ok"


# ------------------------------------------------------------------------------ client address


async def _procfile_web(allow: str) -> tuple[Any, int]:
    """The Procfile's own `web` command, run by a shell as honcho runs it."""
    import asyncio
    import os
    import subprocess
    import sys

    from app.devredis import free_port

    command = next(
        line.split(":", 1)[1].strip()
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "OPSHUB_FORWARDED_ALLOW_IPS": allow}
    # As the launcher does: the Procfile's commands live beside this interpreter, in the venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(command, shell=True, cwd=ROOT, env=env, start_new_session=True)  # noqa: ASYNC220
    for _ in range(400):
        assert process.poll() is None, "the Procfile's web process exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process, port
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError("web process did not start")


def _stop(process: Any) -> None:
    import os
    import signal

    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


@pytest.mark.parametrize(("allow", "escapes"), [("", False), ("127.0.0.1", True)])
async def test_rotating_forwarded_for_escapes_the_throttle_only_behind_a_trusted_proxy(
    settings: Any, world: Any, allow: str, escapes: bool
) -> None:
    import httpx

    process, port = await _procfile_web(allow)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            statuses = []
            for n in range(settings.login_max_failures + 1):
                response = await http.post(
                    "/api/auth/login",
                    json={"username": world.emails["guard"], "password": "guess"},
                    headers={"X-Forwarded-For": f"192.0.2.{n + 1}"},
                )
                statuses.append(response.status_code)
    finally:
        _stop(process)
    assert statuses[:-1] == [401] * settings.login_max_failures
    assert statuses[-1] == (401 if escapes else 429)


def test_a_forwarded_allow_ips_typo_stops_start_up() -> None:
    from app.config import ConfigError, load_settings

    assert load_settings({"OPSHUB_FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.0.2.1"}).forwarded_allow_ips
    with pytest.raises(ConfigError, match="OPSHUB_FORWARDED_ALLOW_IPS"):
        load_settings({"OPSHUB_FORWARDED_ALLOW_IPS": "10.0.0.300"})
