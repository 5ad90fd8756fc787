"""HTTP authentication and the role guard every route passes.

Two ways in, one principal: an API client sends a bearer access token; a page of the hub sends its
session cookie (``app.web.sessions``). A request authenticated by the cookie that changes state must
also carry the session's CSRF token in ``X-CSRF-Token`` (a route whose opt says ``csrf="form"`` checks
the ``_csrf`` form field itself, for plain HTML forms). A bearer token cannot be sent by another site's
page, so it needs no CSRF token.
"""

from __future__ import annotations

import time
from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.auth.principal import Principal
from app.auth.roles import allowed_roles, is_framework_handler
from app.auth.tokens import AuthError, authenticate_access_token
from app.web.sessions import CSRF_HEADER, SESSION_COOKIE, BrowserSession, csrf_matches, load_session

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# The scope key under which a cookie-authenticated request carries its session (pages read the CSRF token).
SESSION_SCOPE_KEY: Final = "opshub.session"


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def request_session(connection: ASGIConnection[Any, Any, Any, Any]) -> BrowserSession | None:
    session: BrowserSession | None = connection.scope.get(SESSION_SCOPE_KEY)  # type: ignore[assignment]
    return session


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        state = connection.app.state
        token = bearer_token(connection)
        if token is None and SESSION_COOKIE in connection.cookies:
            return await self._authenticate_session(connection)
        try:
            principal = await authenticate_access_token(state.settings, state.redis, token)
        except AuthError as exc:
            raise NotAuthorizedException(
                detail=f"access token {exc.reason}", headers={"WWW-Authenticate": "Bearer"}
            ) from None
        return AuthenticationResult(user=principal, auth=principal.token_id)

    async def _authenticate_session(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        state = connection.app.state
        found = await load_session(state.settings, state.redis, connection.cookies.get(SESSION_COOKIE))
        if found is None:
            raise NotAuthorizedException(detail="your session has ended; please sign in again")
        digest, session = found
        method = connection.scope.get("method", "GET")
        handler = connection.scope.get("route_handler")
        form_checked = getattr(handler, "opt", {}).get("csrf") == "form"
        if (
            method not in SAFE_METHODS
            and not form_checked
            and not csrf_matches(session.csrf, connection.headers.get(CSRF_HEADER))
        ):
            raise PermissionDeniedException(detail="the CSRF token is missing or wrong; reload the page")
        scope: Any = connection.scope
        scope[SESSION_SCOPE_KEY] = session
        principal = session.principal(digest, state.settings, int(time.time()))
        return AuthenticationResult(user=principal, auth=principal.token_id)


def role_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if is_framework_handler(handler):
        return
    try:
        roles = allowed_roles(handler.opt)
    except LookupError:
        raise PermissionDeniedException(detail="this endpoint has no access rule") from None
    if roles is None:
        return
    principal = connection.user
    if not isinstance(principal, Principal) or not principal.has_any(roles):
        raise PermissionDeniedException(detail="your role may not use this endpoint")
