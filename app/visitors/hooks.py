"""What other modules do when a visitor arrives or leaves, without the visitors module knowing them.

Staff attendance registers here: a daily help let in on their pass is checked in, and checked out
when they leave (``app.attendance.visits``). Hooks run after the visit is committed and published;
a hook that fails is logged and does not undo or delay the gate (the guard has let the person through).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.visitors.common import VisitorDeps

logger = logging.getLogger("opshub.visitors.hooks")

VisitHook = Callable[[VisitorDeps, dict[str, Any], dt.datetime], Awaitable[object]]
ON_ARRIVAL: list[VisitHook] = []
ON_DEPARTURE: list[VisitHook] = []


def on_arrival(hook: VisitHook) -> VisitHook:
    if hook not in ON_ARRIVAL:
        ON_ARRIVAL.append(hook)
    return hook


def on_departure(hook: VisitHook) -> VisitHook:
    if hook not in ON_DEPARTURE:
        ON_DEPARTURE.append(hook)
    return hook


async def run(hooks: list[VisitHook], deps: VisitorDeps, visit: dict[str, Any], now: dt.datetime) -> None:
    for hook in hooks:
        try:
            await hook(deps, visit, now)
        except Exception:
            logger.exception("visit hook %s failed for visit %s", getattr(hook, "__name__", hook), visit.get("id"))
