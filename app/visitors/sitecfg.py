"""Per-site visitor settings: the approval ladder, overstay limits, ANPR threshold, code throttling.

Visitor retention is NOT owned here: its one owner is the privacy retention settings (class
``visitor_records``, ``/api/privacy/retention``), which the retention purge reads. This module's
``retention_days`` reads through to it, and a write of it is passed through to it (deprecated: use
``PUT /api/privacy/retention``); the ``visitor_site_settings.retention_days`` column is no longer read.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.errors import FieldError, Forbidden, InvalidInput
from schema.jsonvalue import as_dict
from schema.visitors import VisitorSiteSettings

VisitorKind = Literal["guest", "cab", "delivery", "service", "daily_help"]
KINDS: tuple[str, ...] = ("guest", "cab", "delivery", "service", "daily_help")
RungAction = Literal["message", "voice", "guard_prompt"]
MessageChannel = Literal["sms", "whatsapp"]
DEFAULT_RETENTION_DAYS = 180
# The privacy retention class that owns how long visitor records are kept.
RETENTION_CLASS = "visitor_records"
RETENTION_OWNER = "/api/privacy/retention"


class Rung(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One escalation, taken this many seconds after the request if nobody has answered."""

    after_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)]
    action: RungAction


DEFAULT_LADDER = [
    Rung(after_seconds=45, action="message"),
    Rung(after_seconds=90, action="voice"),
    Rung(after_seconds=150, action="guard_prompt"),
]
DEFAULT_OVERSTAY = {"guest": 720, "cab": 30, "delivery": 30, "service": 240, "daily_help": 600}


class VisitorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ladder: Annotated[list[Rung], msgspec.Meta(max_length=6)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_LADDER)
    )
    message_channels: Annotated[list[MessageChannel], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["sms"]
    )
    # One-tap links in ladder messages stay valid this long.
    link_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 900
    # The caller id of the automated voice call (an E.164 number of the Twilio account).
    voice_caller_id: Annotated[str, msgspec.Meta(pattern=r"^\+[1-9]\d{6,14}$")] = "+15005550006"
    overstay_minutes: dict[VisitorKind, Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)]] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_OVERSTAY)  # type: ignore[arg-type,return-value]
    )
    anpr_min_confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.85
    # Failed code verifications allowed per guard in the window (the site as a whole: 4x).
    code_max_failures: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    code_window_seconds: Annotated[int, msgspec.Meta(ge=10, le=86400)] = 300

    def overstay_limit(self, kind: str) -> int:
        return int(self.overstay_minutes.get(kind, DEFAULT_OVERSTAY.get(kind, 720)))  # type: ignore[call-overload]


class SettingsView(msgspec.Struct, frozen=True, kw_only=True):
    config: VisitorSettings
    # Read from the owner, the privacy retention settings (class visitor_records).
    retention_days: int
    retention_is_default: bool
    retention_owner: str = RETENTION_OWNER


class SettingsInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Not "settings": a body field named like an app dependency makes Litestar report its errors as a 500.
    config: VisitorSettings
    # Deprecated: set it at PUT /api/privacy/retention (class visitor_records). Absent or null: unchanged;
    # a number is passed through to that owner (by a site admin only, as there).
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


def _decode(raw: object) -> VisitorSettings:
    try:
        return msgspec.convert(as_dict(raw), VisitorSettings)
    except msgspec.ValidationError:
        return VisitorSettings()


# Settings change rarely and are read on every gate request: each process keeps them this long.
CACHE_SECONDS = 5.0
_cache: dict[UUID, tuple[float, VisitorSettings]] = {}


async def load(site_id: UUID) -> VisitorSettings:
    cached = _cache.get(site_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    row = (
        await VisitorSiteSettings.select(VisitorSiteSettings.config).where(VisitorSiteSettings.site == site_id).first()
    )
    loaded = VisitorSettings() if row is None else _decode(row["config"])
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[site_id] = (time.monotonic() + CACHE_SECONDS, loaded)
    return loaded


async def _retention(site_id: UUID) -> tuple[int, bool]:
    """(days, is_default) of visitor records, from their owner."""
    from app.privacy.retention import list_classes  # local: privacy's registry loads this module

    for cls in await list_classes(site_id):
        if cls.name == RETENTION_CLASS:
            return cls.days, cls.is_default
    return DEFAULT_RETENTION_DAYS, True


async def retention_days(site_id: UUID) -> int:
    return (await _retention(site_id))[0]


async def view(site_id: UUID) -> SettingsView:
    row = (
        await VisitorSiteSettings.select(VisitorSiteSettings.config).where(VisitorSiteSettings.site == site_id).first()
    )
    days, is_default = await _retention(site_id)
    config = VisitorSettings() if row is None else _decode(row["config"])
    return SettingsView(config=config, retention_days=days, retention_is_default=is_default)


async def save(
    site_id: UUID,
    data: SettingsInput,
    now: dt.datetime | None = None,
    *,
    actor_id: UUID | None = None,
    may_set_retention: bool = True,
) -> SettingsView:
    """Save the visitor settings; a ``retention_days`` that changes the period goes to its owner."""
    from app.privacy.retention import RetentionChange, set_period

    now = now or dt.datetime.now(dt.UTC)
    steps = [rung.after_seconds for rung in data.config.ladder]
    if steps != sorted(steps):
        raise InvalidInput.for_field("config.ladder", "rungs must be in increasing order of after_seconds")
    if data.retention_days is not None and data.retention_days != await retention_days(site_id):
        if not may_set_retention:
            raise Forbidden(
                f"retention_days: retention periods are set by a site admin at PUT {RETENTION_OWNER}",
                errors=[FieldError(field="retention_days", message=f"set it at PUT {RETENTION_OWNER}", source="body")],
                extra={"owner": RETENTION_OWNER},
            )
        await set_period(site_id, RetentionChange(class_name=RETENTION_CLASS, days=data.retention_days), actor_id, now)
    config = msgspec.to_builtins(data.config)
    existing = (
        await VisitorSiteSettings.select(VisitorSiteSettings.id).where(VisitorSiteSettings.site == site_id).first()
    )
    if existing is None:
        await VisitorSiteSettings(site=site_id, config=config, updated_at=now).save()
    else:
        await VisitorSiteSettings.update(
            {VisitorSiteSettings.config: config, VisitorSiteSettings.updated_at: now}
        ).where(VisitorSiteSettings.site == site_id)
    _cache.pop(site_id, None)
    return await view(site_id)
