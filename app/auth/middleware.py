"""HTTP authentication (bearer access tokens) and the role guard every route passes."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.auth.principal import Principal
from app.auth.roles import allowed_roles, is_framework_handler
from app.auth.tokens import AuthError, authenticate_access_token


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        state = connection.app.state
        try:
            principal = await authenticate_access_token(state.settings, state.redis, bearer_token(connection))
        except AuthError as exc:
            raise NotAuthorizedException(
                detail=f"access token {exc.reason}", headers={"WWW-Authenticate": "Bearer"}
            ) from None
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
