"""Topics and who may subscribe to them: the single place where realtime access is declared.

A topic names one object: ``user:{person_id}``, ``unit:{unit_id}``, ``complaint:{complaint_id}``,
``site:{site_id}:gate``, ``site:{site_id}:control`` or ``site:{site_id}:slots`` (ids are
canonical lower-case UUIDs, so one object has exactly one topic and one history).

Each kind has a ``TopicRule``: the roles that may ask at all, and an object-level check
(same person, same site, an active occupancy...). A caller is allowed when it has one of
the roles *and* the check passes. Modules that own an object kind plug their check in with
``register_checker`` (the complaints module does so for ``complaint``; until then nobody
may subscribe to a complaint, which fails closed).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from app.auth.principal import Principal
from app.auth.roles import ALL_ROLES, STAFF, Role
from schema.tables import Occupancy, Unit

Checker = Callable[[Principal, UUID], Awaitable[bool]]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TOPIC: Final = re.compile(rf"^(?:(user|unit|complaint):({_UUID})|site:({_UUID}):(gate|control|slots))$")


class TopicError(ValueError):
    """A topic that is malformed (code ``unknown_topic``) or not allowed (code ``forbidden``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Topic:
    kind: str  # user | unit | complaint | site_gate | site_control | site_slots
    object_id: UUID
    name: str


def parse_topic(name: str) -> Topic:
    match = _TOPIC.match(name)
    if match is None:
        raise TopicError("unknown_topic", f"{name!r} is not a topic (see docs/realtime.md)")
    kind, object_id, site_id, site_part = match.groups()
    if kind is not None:
        return Topic(kind=kind, object_id=UUID(object_id), name=name)
    return Topic(kind=f"site_{site_part}", object_id=UUID(site_id), name=name)


def user_topic(person_id: UUID) -> str:
    return f"user:{person_id}"


def unit_topic(unit_id: UUID) -> str:
    return f"unit:{unit_id}"


def complaint_topic(complaint_id: UUID) -> str:
    return f"complaint:{complaint_id}"


def site_topic(site_id: UUID, part: str) -> str:
    return f"site:{site_id}:{part}"


# ------------------------------------------------------------------------------ object checks


async def is_self(principal: Principal, person_id: UUID) -> bool:
    return person_id == principal.person_id


async def is_own_site(principal: Principal, site_id: UUID) -> bool:
    return site_id == principal.site_id


async def may_watch_unit(principal: Principal, unit_id: UUID) -> bool:
    """Guards and staff of the unit's site; occupants with an active occupancy of the unit."""
    row = await Unit.select(Unit.site).where(Unit.id == unit_id).first()
    if row is None or row["site"] != principal.site_id:
        return False
    if principal.has_any(STAFF | {Role.GUARD}):
        return True
    return Role.OCCUPANT in principal.roles and await Occupancy.exists().where(
        (Occupancy.person == principal.person_id)
        & (Occupancy.unit == unit_id)
        & (Occupancy.site == principal.site_id)
        & (Occupancy.is_active.eq(True))
    )


async def deny(principal: Principal, object_id: UUID) -> bool:
    return False


def staff_of_object_site(site_of: Callable[[UUID], Awaitable[UUID | None]]) -> Checker:
    """A check admitting staff of the site the object belongs to (``site_of`` looks that up).

    The complaints module can register ``staff_of_object_site(complaint_site)`` or its own
    check that also admits the raiser, the unit's occupants and the assigned technician.
    """

    async def check(principal: Principal, object_id: UUID) -> bool:
        return principal.has_any(STAFF) and await site_of(object_id) == principal.site_id

    return check


# ------------------------------------------------------------------------------ the rules


@dataclass(frozen=True, slots=True)
class TopicRule:
    kind: str
    template: str
    roles: frozenset[Role]
    who: str


RULES: Final[dict[str, TopicRule]] = {
    rule.kind: rule
    for rule in (
        TopicRule("user", "user:{person_id}", ALL_ROLES, "the person themself"),
        TopicRule(
            "unit",
            "unit:{unit_id}",
            frozenset({Role.OCCUPANT, Role.GUARD, *STAFF}),
            "occupants with an active occupancy of the unit; guards and staff of the unit's site",
        ),
        TopicRule(
            "complaint",
            "complaint:{complaint_id}",
            frozenset({Role.OCCUPANT, Role.TECHNICIAN, *STAFF}),
            "decided by the complaints module's registered check (nobody until it registers one)",
        ),
        TopicRule("site_gate", "site:{site_id}:gate", frozenset({Role.GUARD, *STAFF}), "guards and staff of the site"),
        TopicRule("site_control", "site:{site_id}:control", STAFF, "staff of the site"),
        TopicRule("site_slots", "site:{site_id}:slots", ALL_ROLES, "every member of the site"),
    )
}

_DEFAULT_CHECKERS: Final[dict[str, Checker]] = {
    "user": is_self,
    "unit": may_watch_unit,
    "complaint": deny,
    "site_gate": is_own_site,
    "site_control": is_own_site,
    "site_slots": is_own_site,
}
_checkers: dict[str, Checker] = dict(_DEFAULT_CHECKERS)


def register_checker(kind: str, checker: Checker | None) -> Checker:
    """Install the object-level check for a topic kind (None restores the default); returns the previous one."""
    if kind not in RULES:
        raise KeyError(f"unknown topic kind {kind!r}")
    previous = _checkers[kind]
    _checkers[kind] = checker if checker is not None else _DEFAULT_CHECKERS[kind]
    return previous


async def authorize(principal: Principal, name: str) -> Topic:
    """The parsed topic if ``principal`` may subscribe to it; raises TopicError otherwise."""
    topic = parse_topic(name)
    rule = RULES[topic.kind]
    if not principal.has_any(rule.roles) or not await _checkers[topic.kind](principal, topic.object_id):
        raise TopicError("forbidden", f"{rule.template}: only {rule.who}")
    return topic


async def personal_topics(principal: Principal) -> list[str]:
    """The topics a connection is subscribed to on connect."""
    topics = [user_topic(principal.person_id)]
    if Role.OCCUPANT in principal.roles:
        rows = await Occupancy.select(Occupancy.unit).where(
            (Occupancy.person == principal.person_id)
            & (Occupancy.site == principal.site_id)
            & (Occupancy.is_active.eq(True))
        )
        topics += sorted(unit_topic(row["unit"]) for row in rows)
    if principal.has_any(STAFF | {Role.GUARD}):
        topics.append(site_topic(principal.site_id, "gate"))
    if principal.has_any(STAFF):
        topics.append(site_topic(principal.site_id, "control"))
    return topics
