"""Whether a unit's dues are cleared: the seam between permits and BILLING.

A move-out type can require cleared dues before its final approval. Billing is the module that
knows: its check (``app.billing.clearance.dues_of``) is the default one. ``OUTSTANDING`` blocks the
approval, ``CLEARED`` lets it through with no confirmation needed (the history records that billing
said so), and ``UNKNOWN`` (a site that does not bill through the hub) means the last approver must
confirm by hand that the dues are cleared (``dues_confirmed``), which the history records with their
name. Tests put another check in place with ``register_dues_checker``.
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


async def billing_dues(site_id: UUID, unit_id: UUID) -> DuesStatus:
    """Billing's answer (imported here, when asked: billing imports this module for DuesStatus)."""
    from app.billing.clearance import dues_of

    return await dues_of(site_id, unit_id)


_checker: DuesChecker = billing_dues


def register_dues_checker(checker: DuesChecker | None) -> DuesChecker:
    """Install another check (None restores billing's); returns the previous one."""
    global _checker
    previous = _checker
    _checker = checker if checker is not None else billing_dues
    return previous


async def dues_status(site_id: UUID, unit_id: UUID | None) -> DuesStatus:
    """The unit's dues as billing sees them; a permit without a unit has none to clear."""
    if unit_id is None:
        return DuesStatus.CLEARED
    return await _checker(site_id, unit_id)
