"""Security headers on every response, and a Content-Security-Policy on every HTML page.

The policy allows scripts, styles, images, fonts and connections from this origin only: no
``unsafe-inline``, no third-party origin, ``frame-ancestors 'none'``. Pages keep data for their scripts
in ``<script type="application/json">`` blocks, which a browser never executes.

``security_headers_hook`` adds them as the app sends each response (a ``before_send`` hook sees the
router's own 404s too, which middleware does not). The one exception is the framework's Swagger page
under ``/schema``, whose bootstrap script is inline
and not ours to change: that page's policy lists the SHA-256 of each inline script it actually holds,
so it runs that script and nothing injected beside it could match.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, Final

from litestar.types import ASGIApp, Receive, Scope

from app.config import Settings

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; font-src 'self'; connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
COMMON_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), geolocation=(self), microphone=()"),
)
HTML_HEADERS: Final = ((b"x-frame-options", b"DENY"),)
_INLINE_SCRIPT: Final = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_INLINE_STYLE: Final = re.compile(rb"<style[^>]*>(.*?)</style>", re.S | re.I)


def _hashes(pattern: re.Pattern[bytes], body: bytes) -> str:
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(match).digest()).decode()}'" for match in pattern.findall(body)
    )


def csp_for_framework_page(body: bytes) -> str:
    scripts = _hashes(_INLINE_SCRIPT, body)
    styles = _hashes(_INLINE_STYLE, body)
    return CONTENT_SECURITY_POLICY.replace("script-src 'self'", f"script-src 'self' {scripts}".rstrip()).replace(
        "style-src 'self'", f"style-src 'self' {styles}".rstrip()
    )


def _with_common_headers(headers: list[tuple[bytes, bytes]], hsts: bool) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    added = [pair for pair in COMMON_HEADERS if pair[0] not in present]
    if hsts and b"strict-transport-security" not in present:
        added.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    if content_type.startswith(b"text/html"):
        added.extend(pair for pair in HTML_HEADERS if pair[0] not in present)
        if b"content-security-policy" not in present:
            added.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
    return [*headers, *added]


def security_headers_hook(settings: Settings) -> Any:
    """A ``before_send`` hook: it sees every response the app sends, including the router's own 404s and
    405s, which no middleware wraps."""
    hsts = settings.public_url.startswith("https://")

    async def add_headers(message: Any, scope: Any) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = _with_common_headers(list(message.get("headers", [])), hsts)

    return add_headers


class FrameworkPagePolicyMiddleware:
    """For the framework's docs pages only: hold the (small) page, hash its inline scripts and styles, and
    send a policy that allows exactly those."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/schema") or path.startswith("/schema/assets"):
            await self.app(scope, receive, send)
            return
        held: list[Any] = []

        async def hold(message: Any) -> None:
            if message["type"] == "http.response.start":
                content_type = next((v for k, v in message.get("headers", []) if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    held.append(message)
                    return
            elif held and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body"):
                    return
                start, *bodies = held
                body = b"".join(m.get("body", b"") for m in bodies)
                policy = csp_for_framework_page(body).encode()
                await send({**start, "headers": [*start["headers"], (b"content-security-policy", policy)]})
                message = {"type": "http.response.body", "body": body, "more_body": False}
            await send(message)

        await self.app(scope, receive, hold)
