"""Roles and the per-route access declaration.

Every route handler declares who may call it with ``opt=allow(...)`` or ``opt=PUBLIC``;
the app refuses to start if a route declares neither (``assert_every_route_declares_access``),
and the role-matrix test checks every operation in the OpenAPI schema against it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final


class Role(StrEnum):
    OCCUPANT = "occupant"
    GUARD = "guard"
    TECHNICIAN = "technician"
    FM_ADMIN = "fm_admin"
    SITE_ADMIN = "site_admin"
    PLATFORM_ADMIN = "platform_admin"


ALL_ROLES: Final = frozenset(Role)
STAFF: Final = frozenset({Role.FM_ADMIN, Role.SITE_ADMIN})
ROLES_KEY: Final = "roles"
PUBLIC_KEY: Final = "public"

# Public routes skip authentication as well as role checks.
PUBLIC: Final[dict[str, Any]] = {PUBLIC_KEY: True, "exclude_from_auth": True}


# Public to the role guard, but the route checks a credential of its own (a provider's signature, a
# device's key, a signed link): its name, one of app.openapi.OWN_AUTH, is shown in the OpenAPI document.
OWN_AUTH_KEY: Final = "own_auth"


def own_auth(scheme: str) -> dict[str, Any]:
    """``opt`` for a route outside the role model that authenticates its caller itself."""
    return {**PUBLIC, OWN_AUTH_KEY: scheme}


def allow(*roles: Role) -> dict[str, Any]:
    if not roles:
        raise ValueError("allow() needs at least one role; use PUBLIC for open routes")
    return {ROLES_KEY: frozenset(roles)}


def is_framework_handler(handler: Any) -> bool:
    """Litestar's own handlers (automatic OPTIONS, the OpenAPI docs) are public by nature."""
    module = getattr(getattr(handler, "fn", None), "__module__", "") or ""
    return module.startswith("litestar.")


def allowed_roles(opt: dict[str, Any]) -> frozenset[Role] | None:
    """The roles a route admits; None for public routes. Raises if the route declared nothing."""
    if opt.get(PUBLIC_KEY):
        return None
    roles = opt.get(ROLES_KEY)
    if roles is None:
        raise LookupError("route declares no access rule")
    return frozenset(roles)
