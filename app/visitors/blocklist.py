"""The site's visitor blocklist: by phone and/or plate (blind indexes), with a name for display."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import msgspec

from app.auth.principal import Principal
from app.config import Settings
from app.errors import InvalidInput, NotFound
from app.pagination import Page, page_of
from app.text import MULTI_LINE, ONE_LINE
from app.visitors.common import now_utc, reveal, seal_phone, seal_plate, site_region
from schema.visitors import VisitorBlock


class NewBlock(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=200), ONE_LINE] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    plate: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500), MULTI_LINE]


class BlockView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str | None
    phone: str | None
    plate: str | None
    reason: str
    created_at: dt.datetime


def _view(settings: Settings, row: dict[str, object]) -> BlockView:
    return BlockView(
        id=row["id"],  # type: ignore[arg-type]
        name=row["name"],  # type: ignore[arg-type]
        phone=reveal(settings, row["phone_encrypted"]),  # type: ignore[arg-type]
        plate=reveal(settings, row["plate_encrypted"]),  # type: ignore[arg-type]
        reason=str(row["reason"]),
        created_at=row["created_at"],  # type: ignore[arg-type]
    )


async def add(settings: Settings, principal: Principal, data: NewBlock, now: dt.datetime | None = None) -> BlockView:
    if not (data.phone or data.plate):
        raise InvalidInput.for_field("phone", "give a phone number or a plate (a name alone is too ambiguous)")
    phone = seal_phone(settings, data.phone, await site_region(principal.site_id), "phone")
    plate = seal_plate(settings, data.plate, "plate")
    row = VisitorBlock(
        site=principal.site_id,
        name=data.name.strip() if data.name else None,
        phone_encrypted=phone.encrypted,
        phone_index=phone.index,
        plate_encrypted=plate.encrypted,
        plate_index=plate.index,
        reason=data.reason,
        created_by=principal.person_id,
        created_at=now or now_utc(),
    )
    await row.save()
    stored = await VisitorBlock.select().where(VisitorBlock.id == row.id).first()
    assert stored is not None
    return _view(settings, stored)


async def list_blocks(settings: Settings, site_id: UUID, limit: int, offset: int) -> Page[BlockView]:
    total = await VisitorBlock.count().where(VisitorBlock.site == site_id)
    rows = (
        await VisitorBlock.select()
        .where(VisitorBlock.site == site_id)
        .order_by(VisitorBlock.created_at, ascending=False)
        .order_by(VisitorBlock.id)
        .limit(limit)
        .offset(offset)
    )
    return page_of([_view(settings, r) for r in rows], total=total, limit=limit, offset=offset)


async def remove(site_id: UUID, block_id: UUID) -> None:
    deleted = (
        await VisitorBlock.delete()
        .where((VisitorBlock.site == site_id) & (VisitorBlock.id == block_id))
        .returning(VisitorBlock.id)
    )
    if not deleted:
        raise NotFound("blocklist entry not found")
