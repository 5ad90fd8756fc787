"""A site's notification policy as its FM team sets it: which categories break through quiet hours, how
long each stays worth delivering, and how each is gathered into digests.

Stored under ``site.settings["notifications"]``; ``notifications.facts.site_policy`` reads it for every
decision. A category left out of ``digest`` is never digested on that site.
"""

from __future__ import annotations

from typing import Annotated, Final
from uuid import UUID

import msgspec

from app.db import write_transaction
from app.errors import FieldError, InvalidInput, NotFound
from notifications.categories import DEFAULT_CRITICAL, DEFAULT_TTL_SECONDS, Category
from notifications.facts import site_policy
from notifications.policy import DigestRule
from schema.jsonvalue import as_dict
from schema.tables import Site

# Never gathered into a digest: time-bound or safety messages, and marketing, which India's DLT approves
# in a template class of its own (it may not share a message with service updates); scheduled reports,
# whose attachment a digest cannot carry.
NEVER_DIGESTED: Final = frozenset(
    {Category.EMERGENCY, Category.SECURITY, Category.VISITOR, Category.PROMOTIONAL, Category.REPORT}
)
# Safety categories a site may not take out of the critical set: a fire alarm must always wake people.
ALWAYS_CRITICAL: Final = frozenset({Category.EMERGENCY})
Seconds = Annotated[int, msgspec.Meta(ge=60, le=7 * 24 * 3600)]


class NotificationSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Categories whose critical messages break through a person's quiet hours.
    critical_categories: Annotated[list[Category], msgspec.Meta(max_length=len(Category))]
    # How long a message of each category stays worth delivering (a deferred one past it is dropped).
    ttl_seconds: dict[Category, Seconds]
    # How each category is gathered into digests; a category left out is never digested.
    digest: dict[Category, DigestRule]


def _current(raw_settings: object, timezone: str) -> NotificationSettings:
    policy = site_policy({"settings": raw_settings, "timezone": timezone})
    return NotificationSettings(
        critical_categories=sorted(policy.critical_categories),
        ttl_seconds={**DEFAULT_TTL_SECONDS, **policy.ttl_seconds},
        digest=dict(policy.digest),
    )


async def read(site_id: UUID) -> NotificationSettings:
    row = await Site.select(Site.settings, Site.timezone).where(Site.id == site_id).first()
    if row is None:
        raise NotFound("site not found")
    return _current(row["settings"], str(row["timezone"]))


def _check(new: NotificationSettings) -> None:
    errors = [
        FieldError(f"digest.{category}", f"{category} messages are never gathered into a digest", "body")
        for category in sorted(new.digest)
        if category in NEVER_DIGESTED
    ]
    duplicates = {c for c in new.critical_categories if new.critical_categories.count(c) > 1}
    errors += [FieldError("critical_categories", f"{c} is listed twice", "body") for c in sorted(duplicates)]
    errors += [
        FieldError("critical_categories", f"{c} is always critical", "body")
        for c in sorted(ALWAYS_CRITICAL - set(new.critical_categories))
    ]
    if errors:
        raise InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


async def write(site_id: UUID, new: NotificationSettings) -> NotificationSettings:
    _check(new)
    stored = {
        "critical_categories": sorted(str(c) for c in new.critical_categories),
        "ttl_seconds": {str(c): seconds for c, seconds in sorted(new.ttl_seconds.items())},
        "digest": {str(c): msgspec.to_builtins(rule) for c, rule in sorted(new.digest.items())},
    }
    async with write_transaction():
        row = await Site.select(Site.settings, Site.timezone).where(Site.id == site_id).first()
        if row is None:
            raise NotFound("site not found")
        settings = {**as_dict(row["settings"]), "notifications": stored}
        await Site.update({Site.settings: settings}).where(Site.id == site_id)
    return _current(settings, str(row["timezone"]))


__all__ = ["DEFAULT_CRITICAL", "NEVER_DIGESTED", "NotificationSettings", "read", "write"]
