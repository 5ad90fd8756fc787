"""The pages' security promises, over HTTP against the real app (#15, "Security"):

- a state-changing request from a page without the session's CSRF token is refused;
- no response body of a page holds an access token (sessions are opaque ids in HttpOnly cookies);
- the Content-Security-Policy (no unsafe-inline, no other origin, frame-ancestors 'none') and nosniff
  are on every HTML response, errors and the framework's docs page included;
- an occupant's session cannot open the guard console or the dashboard: a 403 page, not a blank;
- logout ends the session for the API and the websocket alike; a foreign page cannot use the cookie
  for a websocket;
- Idempotency-Key: a repeat gets the first answer and is not done twice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import websockets

from schema.events import CloseCode
from tests.support.servers import FAST, InProcessServer
from tests.support.world import PASSWORD

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
PAGES = ["/login", "/guard", "/app", "/control", "/no-such-page"]


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


async def sign_in(http: httpx.AsyncClient, world: Any, person: str) -> str:
    """Sign in through the form as a browser does; returns the session's CSRF token from the page."""
    form = await http.get("/login")
    login_csrf = re.search(r'name="_csrf" value="([^"]+)"', form.text)
    assert login_csrf is not None
    answer = await http.post(
        "/login",
        data={"username": world.emails[person], "password": PASSWORD, "_csrf": login_csrf.group(1)},
    )
    assert answer.status_code == 303, answer.text
    home = await http.get(answer.headers["location"])
    token = re.search(r'<meta name="csrf-token" content="([^"]*)">', home.text)
    assert token is not None and token.group(1)
    return token.group(1)


def assert_page_headers(response: httpx.Response) -> None:
    policy = response.headers.get("content-security-policy", "")
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, policy
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, policy
    assert "http" not in policy.replace("'self'", ""), f"a third-party origin in {policy}"
    assert response.headers.get("x-content-type-options") == "nosniff"


async def test_session_cookie_is_http_only_strict_and_the_token_never_reaches_a_page(
    server: InProcessServer, world: Any
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        form = await http.get("/login")
        login_csrf = re.search(r'name="_csrf" value="([^"]+)"', form.text)
        assert login_csrf is not None
        answer = await http.post(
            "/login",
            data={"username": world.emails["fm_admin"], "password": PASSWORD, "_csrf": login_csrf.group(1)},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/control"
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("opshub_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        with pytest.raises(jwt.DecodeError):
            jwt.decode(value, options={"verify_signature": False})  # opaque, not a token
        for path in ["/control", "/guard", "/app", "/login", "/api/auth/me"]:
            body = (await http.get(path)).text
            assert not JWT_SHAPE.search(body), f"{path} holds something shaped like an access token"
            assert value not in body, f"{path} shows the session id"


async def test_csp_and_nosniff_on_every_html_response(server: InProcessServer, world: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        for path in ["/login", "/no-such-page", "/schema/swagger"]:
            response = await http.get(path, headers={"Accept": "text/html"})
            assert response.headers["content-type"].startswith("text/html"), path
            assert_page_headers(response)
        await sign_in(http, world, "occupant")
        for path in PAGES:
            response = await http.get(path, headers={"Accept": "text/html"})
            if response.headers["content-type"].startswith("text/html"):
                assert_page_headers(response)
                assert response.headers.get("x-frame-options") == "DENY"
        api = await http.get("/api/auth/me")
        assert api.headers.get("x-content-type-options") == "nosniff"
        assert "content-security-policy" not in api.headers  # JSON is not a document


async def test_the_docs_page_runs_only_its_own_inline_script(server: InProcessServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/schema/swagger")
    policy = response.headers["content-security-policy"]
    hashes = re.findall(r"'sha256-[^']+'", policy)
    assert hashes and "unsafe-inline" not in policy


async def test_an_occupant_gets_a_403_page_for_the_guard_console_and_the_dashboard(
    server: InProcessServer, world: Any
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        await sign_in(http, world, "occupant")
        for path in ["/guard", "/control"]:
            response = await http.get(path)
            assert response.status_code == 403
            assert response.headers["content-type"].startswith("text/html")
            assert "This page is not for your role" in response.text
        assert (await http.get("/app")).status_code == 200


async def test_signed_out_pages_send_the_browser_to_sign_in(server: InProcessServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/guard")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/guard"


async def test_writes_without_the_csrf_token_are_refused(server: InProcessServer, world: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        csrf = await sign_in(http, world, "occupant")
        body = {"decision": "approved"}
        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": "नहीं".encode()}):
            refused = await http.post("/api/auth/logout-everywhere", json=body, headers=headers)
            assert refused.status_code == 403, refused.text
            assert "CSRF" in refused.json()["detail"]
        # The logout form without its field changes nothing either.
        assert (await http.post("/logout", data={})).status_code == 403
        assert (await http.get("/api/auth/me")).status_code == 200
        # With the token the same request goes through.
        snooze = await http.post("/api/me/dnd/snooze", json={"minutes": 30}, headers={"X-CSRF-Token": csrf})
        assert snooze.status_code < 500 and snooze.status_code != 403, snooze.text
        # A bearer token is not a cookie: API clients need no CSRF token.
        bearer = httpx.AsyncClient(base_url=server.http_url, headers=world.headers("occupant"))
        async with bearer:
            assert (await bearer.get("/api/auth/me")).status_code == 200


async def test_the_login_form_needs_its_own_token(server: InProcessServer, world: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        forged = await http.post("/login", data={"username": world.emails["occupant"], "password": PASSWORD})
        assert forged.status_code == 403
        assert "opshub_session" not in forged.headers.get("set-cookie", "")


async def test_a_wrong_password_shows_the_form_again_with_the_reason(server: InProcessServer, world: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        form = await http.get("/login")
        token = re.search(r'name="_csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = await http.post(
            "/login", data={"username": world.emails["guard"], "password": "nope", "_csrf": token.group(1)}
        )
    assert answer.status_code == 401 and "username or password is wrong" in answer.text
    assert_page_headers(answer)


async def test_next_never_leaves_the_site(server: InProcessServer, world: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        form = await http.get("/login")
        token = re.search(r'name="_csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = await http.post(
            "/login",
            data={
                "username": world.emails["guard"],
                "password": PASSWORD,
                "_csrf": token.group(1),
                "next": "//evil.example/x",
            },
        )
    assert answer.status_code == 303 and answer.headers["location"] == "/guard"


def _cookie_header(http: httpx.AsyncClient) -> str:
    return "; ".join(f"{name}={value}" for name, value in http.cookies.items())


async def test_websocket_uses_the_session_only_from_this_origin_and_logout_ends_it(
    server: InProcessServer, world: Any
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        csrf = await sign_in(http, world, "guard")
        cookie = _cookie_header(http)
        origin = server.http_url
        async with websockets.connect(server.url, additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
            welcome = await asyncio.wait_for(ws.recv(), 5)
            assert '"op":"welcome"' in str(welcome) and str(world.people["guard"]) in str(welcome)

        async with websockets.connect(
            server.url, additional_headers={"Cookie": cookie, "Origin": "https://evil.example"}
        ) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.UNAUTHORIZED

        logout = await http.post("/logout", data={"_csrf": csrf})
        assert logout.status_code == 303 and logout.headers["location"] == "/login"
        assert (await http.get("/api/auth/me", headers={"Cookie": cookie})).status_code == 401
        async with websockets.connect(server.url, additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code in (
                CloseCode.UNAUTHORIZED,
                CloseCode.TOKEN_REVOKED,
            )


async def test_logout_everywhere_ends_browser_sessions_too(server: InProcessServer, world: Any) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        await sign_in(http, world, "technician")
        async with httpx.AsyncClient(base_url=server.http_url, headers=world.headers("technician")) as api:
            assert (await api.post("/api/auth/logout-everywhere")).status_code == 204
        assert (await http.get("/api/auth/me")).status_code == 401
