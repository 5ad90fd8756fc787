"""How each route is authenticated, in the OpenAPI document.

Every route of the hub is in ``/schema/openapi.json``: the API, the pages, the provider webhooks,
the ANPR cameras' and devices' endpoints and the visitors' signed links (only the static files and
the docs' own assets, served by Litestar's file routers, are not). Each operation's ``security`` and
an ``Access:`` line of its description come from the route's access declaration (``app.auth.roles``),
so they cannot drift from what the app enforces:

- ``allow(...)``: a bearer access token or the session cookie of a signed-in page, and the roles;
- ``page_access(...)``: the session cookie (a page answers a sign-in redirect, not a 401);
- ``own_auth(name)``: the credential the route checks itself, one of ``OWN_AUTH``;
- ``PUBLIC``: nothing.
"""

from __future__ import annotations

from typing import Final

from litestar import Litestar
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.routes import HTTPRoute

from app.auth.roles import OWN_AUTH_KEY, PUBLIC_KEY, allowed_roles, is_framework_handler
from app.web.pages import PAGE_KEY
from app.web.sessions import CSRF_HEADER, SESSION_COOKIE

BEARER: Final = "bearer"
SESSION: Final = "session"

# Schemes a route checks itself. "signed_path" has no OpenAPI scheme: the credential is in the path.
OWN_AUTH: Final[dict[str, str]] = {
    "twilio_signature": "Twilio's X-Twilio-Signature over the URL and the form, checked with the account's auth token",
    "camera_key": "the X-Camera-Key of an ANPR camera registered with POST /api/visitors/cameras",
    "device_token": "X-Device-Id and X-Device-Token of a charger or sensor gateway (POST /api/slots/chargers, "
    "/api/slots/sensor-gateways)",
    "signed_link": "the expires and signature query parameters of the link the export was issued with",
    "signed_path": "the signed token in the path of the link the visitor or occupant was sent",
    "metrics_token": "a bearer token equal to OPSHUB_METRICS_TOKEN, or a platform admin's token or session",
    "razorpay_signature": "Razorpay's X-Razorpay-Signature, the HMAC-SHA256 of the raw body with the webhook secret",
    "razorpay_checkout": "the razorpay_signature the hosted checkout returns over its order and payment ids",
}

SECURITY_SCHEMES: Final[dict[str, SecurityScheme]] = {
    BEARER: SecurityScheme(
        type="http", scheme="bearer", bearer_format="JWT", description="An access token from POST /api/auth/login."
    ),
    SESSION: SecurityScheme(
        type="apiKey",
        name=SESSION_COOKIE,
        security_scheme_in="cookie",
        description=f"The session cookie of a signed-in page; a request that changes state also sends {CSRF_HEADER}.",
    ),
    "twilio_signature": SecurityScheme(
        type="apiKey", name="X-Twilio-Signature", security_scheme_in="header", description=OWN_AUTH["twilio_signature"]
    ),
    "camera_key": SecurityScheme(
        type="apiKey", name="X-Camera-Key", security_scheme_in="header", description=OWN_AUTH["camera_key"]
    ),
    "device_token": SecurityScheme(
        type="apiKey", name="X-Device-Token", security_scheme_in="header", description=OWN_AUTH["device_token"]
    ),
    "razorpay_signature": SecurityScheme(
        type="apiKey",
        name="X-Razorpay-Signature",
        security_scheme_in="header",
        description=OWN_AUTH["razorpay_signature"],
    ),
    "metrics_token": SecurityScheme(type="http", scheme="bearer", description=OWN_AUTH["metrics_token"]),
    "signed_link": SecurityScheme(
        type="apiKey", name="signature", security_scheme_in="query", description=OWN_AUTH["signed_link"]
    ),
}


def components() -> Components:
    return Components(security_schemes=dict(SECURITY_SCHEMES))


def access_of(opt: dict[str, object]) -> tuple[list[SecurityRequirement], str]:
    """The security requirements and the one-line access description of a route's ``opt``."""
    own = opt.get(OWN_AUTH_KEY)
    if own is not None:
        name = str(own)
        if name not in OWN_AUTH:
            raise LookupError(f"own_auth({name!r}) is not one of {sorted(OWN_AUTH)}")
        return ([{name: []}] if name in SECURITY_SCHEMES else []), f"Access: {OWN_AUTH[name]}."
    if opt.get(PUBLIC_KEY):
        return [], "Access: public."
    roles = ", ".join(sorted(allowed_roles(opt) or ()))
    if opt.get(PAGE_KEY):
        # A page opens for its session cookie; a bearer token of the role opens it too (the same
        # authentication layer), which is not ambient like a cookie, so it needs no CSRF token.
        return [{BEARER: []}, {SESSION: []}], f"Access: a page for {roles}, signed in (the session cookie)."
    return [{BEARER: []}, {SESSION: []}], f"Access: {roles}, with a bearer token or a page's session."


def describe_access(app: Litestar) -> None:
    """Writes each route's access into its OpenAPI operation (before the document is first built)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if is_framework_handler(handler):
                continue
            security, line = access_of(handler.opt)
            handler.security = security
            handler.description = f"{handler.description}\n\n{line}" if handler.description else line
