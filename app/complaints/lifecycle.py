"""The complaint lifecycle: every allowed move, and who may make it, declared in one table.

    open -> assigned -> in_progress <-> on_hold -> resolved -> closed
                                                  resolved -> reopened (within the site's window)
    open / assigned -> cancelled (by the raiser, before work starts)

A reopened complaint behaves like an open one that keeps its technician: staff may
(re)assign it, and its assignee may start work on it again. Assigning or reassigning is
a move to ``assigned`` (from ``assigned`` too: a reassignment is recorded like any move).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Status(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    CANCELLED = "cancelled"


class Actor(StrEnum):
    """What the caller is to this complaint (one person may be several)."""

    RAISER = "raiser"  # raised it, or staff raised it on their behalf
    ASSIGNEE = "assignee"  # the technician it is assigned to
    STAFF = "staff"  # FM admin or site admin of its site
    SYSTEM = "system"  # automatic assignment


_S = Status
_A = Actor

# state -> {next state: the actors who may make that move}
TRANSITIONS: Final[dict[Status, dict[Status, frozenset[Actor]]]] = {
    _S.OPEN: {
        _S.ASSIGNED: frozenset({_A.STAFF, _A.SYSTEM}),
        _S.CANCELLED: frozenset({_A.RAISER}),
    },
    _S.ASSIGNED: {
        _S.ASSIGNED: frozenset({_A.STAFF, _A.SYSTEM}),
        _S.IN_PROGRESS: frozenset({_A.ASSIGNEE}),
        _S.CANCELLED: frozenset({_A.RAISER}),
    },
    _S.IN_PROGRESS: {
        _S.ON_HOLD: frozenset({_A.ASSIGNEE, _A.STAFF}),
        _S.RESOLVED: frozenset({_A.ASSIGNEE, _A.STAFF}),
        _S.ASSIGNED: frozenset({_A.STAFF}),
    },
    _S.ON_HOLD: {
        _S.IN_PROGRESS: frozenset({_A.ASSIGNEE, _A.STAFF}),
        _S.ASSIGNED: frozenset({_A.STAFF}),
    },
    _S.RESOLVED: {
        _S.CLOSED: frozenset({_A.RAISER, _A.STAFF}),
        _S.REOPENED: frozenset({_A.RAISER, _A.STAFF}),
    },
    _S.REOPENED: {
        _S.ASSIGNED: frozenset({_A.STAFF, _A.SYSTEM}),
        _S.IN_PROGRESS: frozenset({_A.ASSIGNEE}),
    },
    _S.CLOSED: {},
    _S.CANCELLED: {},
}

# States in which work is still owed (SLA clocks run, escalation applies, technician load counts).
ACTIVE: Final = frozenset({_S.OPEN, _S.ASSIGNED, _S.IN_PROGRESS, _S.ON_HOLD, _S.REOPENED})
# States in which a technician is working on it (the open load of assignment).
LOAD: Final = frozenset({_S.ASSIGNED, _S.IN_PROGRESS, _S.ON_HOLD, _S.REOPENED})
DONE: Final = frozenset({_S.RESOLVED, _S.CLOSED})


def allowed_moves(status: Status, actors: frozenset[Actor]) -> list[Status]:
    """The states these actors may move a complaint in ``status`` to, in declaration order."""
    return [target for target, who in TRANSITIONS[status].items() if not who.isdisjoint(actors)]


def may_move(status: Status, target: Status, actors: frozenset[Actor]) -> bool:
    who = TRANSITIONS[status].get(target)
    return who is not None and not who.isdisjoint(actors)
