"""Who an announcement is for: the whole site, towers, units, roles or a list of people.

An audience is read in chunks, in order of person id, and may be split into parts by ranges of that
id (ids are random, so parts are about equal): a 100,000-person township is never one list in memory,
and several workers can expand its parts at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import msgspec

from app.auth.roles import Role
from schema.tables import Person

ID_SPACE = 2**128


class Audience(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The union of every selector given; `everyone` means every active person of the site."""

    everyone: bool = False
    building_ids: list[UUID] = msgspec.field(default_factory=list)
    unit_ids: list[UUID] = msgspec.field(default_factory=list)
    roles: list[Role] = msgspec.field(default_factory=list)
    person_ids: list[UUID] = msgspec.field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.everyone or self.building_ids or self.unit_ids or self.roles or self.person_ids)


def part_bounds(part: int, parts: int) -> tuple[UUID, UUID | None]:
    """The range of person ids of one part: [low, high), the last part open-ended."""
    low = UUID(int=part * ID_SPACE // parts)
    high = UUID(int=(part + 1) * ID_SPACE // parts) if part + 1 < parts else None
    return low, high


def _list(values: Sequence[Any]) -> str:
    return ", ".join("{}" for _ in values)


def _selector(site_id: UUID, audience: Audience) -> tuple[str, list[Any]]:
    """SQL that holds for a person (alias p) in the audience, and its parameters."""
    if audience.everyone:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    if audience.person_ids:
        clauses.append(f"p.id IN ({_list(audience.person_ids)})")
        params += audience.person_ids
    if audience.unit_ids:
        clauses.append(
            "p.id IN (SELECT o.person FROM occupancy o WHERE o.site = {} AND o.is_active = {} "
            f"AND o.unit IN ({_list(audience.unit_ids)}))"
        )
        params += [site_id, True, *audience.unit_ids]
    if audience.building_ids:
        clauses.append(
            "p.id IN (SELECT o.person FROM occupancy o JOIN unit u ON u.id = o.unit WHERE o.site = {} "
            f"AND o.is_active = {{}} AND u.site = {{}} AND u.building IN ({_list(audience.building_ids)}))"
        )
        params += [site_id, True, site_id, *audience.building_ids]
    if audience.roles:
        clauses.append(
            f"p.id IN (SELECT r.person FROM person_role r WHERE r.site = {{}} AND r.role IN ({_list(audience.roles)}))"
        )
        params += [site_id, *(str(r) for r in audience.roles)]
    return " AND (" + " OR ".join(clauses) + ")", params


async def count_audience(site_id: UUID, audience: Audience) -> int:
    where, params = _selector(site_id, audience)
    rows = await Person.raw(
        f"SELECT COUNT(*) AS n FROM person p WHERE p.site = {{}} AND p.is_active = {{}}{where}", site_id, True, *params
    )
    return int(rows[0]["n"]) if rows else 0


async def audience_chunks(
    site_id: UUID, audience: Audience, *, part: int = 0, parts: int = 1, chunk: int = 1000, first: int | None = None
) -> AsyncIterator[list[UUID]]:
    """Active people of the site in the audience and in this part, `chunk` at a time (the first chunk
    `first`, where given), in id order."""
    where, params = _selector(site_id, audience)
    low, high = part_bounds(part, parts)
    after: UUID | None = None
    size = first or chunk
    while True:
        bounds = " AND p.id >= {}" + (" AND p.id < {}" if high is not None else "")
        cursor = " AND p.id > {}" if after is not None else ""
        values: list[Any] = [site_id, True, low, *([high] if high is not None else []), *([after] if after else [])]
        rows = await Person.raw(
            f"SELECT p.id FROM person p WHERE p.site = {{}} AND p.is_active = {{}}{bounds}{cursor}{where} "
            "ORDER BY p.id LIMIT {}",
            *values,
            *params,
            size,
        )
        ids = [row["id"] if isinstance(row["id"], UUID) else UUID(str(row["id"])) for row in rows]
        if not ids:
            return
        yield ids
        if len(ids) < size:
            return
        after, size = ids[-1], chunk


async def resolve_audience(site_id: UUID, audience: Audience) -> list[UUID]:
    """Every person of a (small) audience at once, sorted. Large audiences go through audience_chunks."""
    return [person for ids in [c async for c in audience_chunks(site_id, audience)] for person in ids]
