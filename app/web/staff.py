"""My attendance (``/attendance``): a staff member's own check-in and check-out from their phone.

The page asks the browser for its position only when the person taps Check in or Check out, says
why before it asks, and sends it once; the hub keeps only whether it was inside the site's geofence
and the accuracy (``app.attendance.punches``). Guards, technicians and FM staff may open it; whether
they are on the staff list is the API's answer (``GET /api/attendance/me``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.roles import STAFF, Role
from app.web.pages import page_access, render


@get("/attendance", opt=page_access(Role.GUARD, Role.TECHNICIAN, *STAFF), name="my-attendance")
async def my_attendance(request: Request[Any, Any, Any]) -> Template:
    return render(request, "staff/attendance.html")


ROUTES: list[ControllerRouterHandler] = [my_attendance]
