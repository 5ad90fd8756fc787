"""Every HTTP route of the complaints module, collected for `app.main.route_handlers`.

Importing this module also registers the realtime check for ``complaint:{id}`` topics
(in ``app.complaints.service``).
"""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from app.complaints.controller import ComplaintConfigController, ComplaintController, ComplaintReportController

ROUTES: list[ControllerRouterHandler] = [ComplaintController, ComplaintConfigController, ComplaintReportController]
