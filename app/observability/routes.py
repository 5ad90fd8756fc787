"""``GET /metrics``: the Prometheus exposition of this process, for the metrics token or a platform admin.

The route is ``own_auth("metrics_token")`` (public to the auth middleware) because it authenticates
itself: a scraper sends
``Authorization: Bearer $OPSHUB_METRICS_TOKEN`` (compared in constant time); a platform admin may use
their access token or their browser session. Anything else is a 401 problem (no or a wrong credential)
or a 403 problem (a valid sign-in of another role). Without OPSHUB_METRICS_TOKEN only platform admins
can read it. The OpenAPI document lists it with that scheme, like every route.
"""

from __future__ import annotations

import time
from typing import Any, Final

from litestar import Request, Response, get

from app.auth.middleware import bearer_token
from app.auth.principal import Principal
from app.auth.roles import Role, own_auth
from app.auth.tokens import AuthError, authenticate_access_token
from app.config import Settings
from app.errors import Forbidden, Unauthenticated
from app.observability.metrics import CONTENT_TYPE, scrape
from app.security.compare import safe_equals
from app.web.sessions import SESSION_COOKIE, load_session

READERS: Final = frozenset({Role.PLATFORM_ADMIN})


def is_metrics_token(settings: Settings, token: str | None) -> bool:
    if not token or not settings.metrics_token:
        return False
    return safe_equals(settings.metrics_token, token)


async def _signed_in(request: Request[Any, Any, Any], token: str | None) -> Principal | None:
    state = request.app.state
    if token is not None:
        return await authenticate_access_token(state.settings, state.redis, token)
    if SESSION_COOKIE in request.cookies:
        found = await load_session(state.settings, state.redis, request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise AuthError("revoked")
        digest, session = found
        return session.principal(digest, state.settings, int(time.time()))
    return None


async def authorize_scrape(request: Request[Any, Any, Any]) -> None:
    token = bearer_token(request)
    if is_metrics_token(request.app.state.settings, token):
        return
    challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    try:
        principal = await _signed_in(request, token)
    except AuthError as exc:
        raise Unauthenticated(f"credential {exc.reason}", headers=challenge) from None
    if principal is None:
        raise Unauthenticated("send the metrics token (or a platform admin's) as a bearer token", headers=challenge)
    if not principal.has_any(READERS):
        raise Forbidden("only the metrics token or a platform admin may read the metrics")


@get("/metrics", opt=own_auth("metrics_token"), media_type=CONTENT_TYPE, tags=["system"])
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    await authorize_scrape(request)
    return Response(await scrape(request.app.state), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
