"""Every HTTP route of the staff attendance module, collected for `app.main.route_handlers`.

Importing this module also registers the daily-help check-in with the visitors' gate (``app.attendance.visits``).
"""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from app.attendance import visits as _visits  # noqa: F401 - registers the gate hooks
from app.attendance.controller import AttendanceController

ROUTES: list[ControllerRouterHandler] = [AttendanceController]
