"""The authenticated caller, as carried by an access token."""

from __future__ import annotations

from uuid import UUID

import msgspec

from app.auth.roles import Role


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    person_id: UUID
    site_id: UUID
    roles: frozenset[Role]
    token_id: str
    expires_at: int

    def has_any(self, roles: frozenset[Role]) -> bool:
        return not self.roles.isdisjoint(roles)
