"""Whether a unit's dues are cleared: the seam between permits and BILLING.

A move-out type can require cleared dues before its final approval. Billing is the module that
knows; until it exists (or on a site where it is not used) the answer is ``UNKNOWN``, and the last
approver of such a permit must confirm by hand that the dues are cleared (``dues_confirmed``),
which the permit's history records with their name. When billing lands it registers its check::

    from app.permits.dues import DuesStatus, register_dues_checker

    async def dues_of(site_id: UUID, unit_id: UUID) -> DuesStatus: ...
    register_dues_checker(dues_of)

and from then on ``OUTSTANDING`` blocks the approval and ``CLEARED`` lets it through with no
confirmation needed (the history records that billing said so).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from uuid import UUID


class DuesStatus(StrEnum):
    CLEARED = "cleared"
    OUTSTANDING = "outstanding"
    UNKNOWN = "unknown"  # nobody can say: billing is not connected, or has no account for the unit


DuesChecker = Callable[[UUID, UUID], Awaitable[DuesStatus]]


async def unknown_until_billing(site_id: UUID, unit_id: UUID) -> DuesStatus:
    return DuesStatus.UNKNOWN


_checker: DuesChecker = unknown_until_billing


def register_dues_checker(checker: DuesChecker | None) -> DuesChecker:
    """Install billing's check (None restores the default); returns the previous one."""
    global _checker
    previous = _checker
    _checker = checker if checker is not None else unknown_until_billing
    return previous


async def dues_status(site_id: UUID, unit_id: UUID | None) -> DuesStatus:
    """The unit's dues as billing sees them; a permit without a unit has none to clear."""
    if unit_id is None:
        return DuesStatus.CLEARED
    return await _checker(site_id, unit_id)
