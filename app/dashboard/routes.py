"""HTTP routes of the control room's aggregates (``/api/dashboard/...``): staff of the site only."""

from __future__ import annotations

from litestar import Controller, get
from litestar.types import ControllerRouterHandler

from app.auth.roles import STAFF, allow
from app.dashboard import service
from app.deps import Caller

STAFF_ONLY = allow(*STAFF)


class DashboardController(Controller):
    path = "/api/dashboard"
    tags = ["control room"]

    @get("/complaints", opt=STAFF_ONLY)
    async def complaints(self, principal: Caller) -> service.ComplaintBoard:
        """Active complaints by status and SLA state, breached first."""
        return await service.complaint_board(principal.site_id)

    @get("/gate", opt=STAFF_ONLY)
    async def gate(self, principal: Caller) -> service.GateBoard:
        """Pending walk-in approvals with their rung, recent answers, arrivals and overstays."""
        return await service.gate_board(principal.site_id)

    @get("/charts", opt=STAFF_ONLY)
    async def charts(self, principal: Caller) -> service.Charts:
        """Complaint volume and SLA compliance per day, approval times, the delivery funnel (30 days)."""
        return await service.charts(principal.site_id)

    @get("/audience-options", opt=STAFF_ONLY)
    async def audience_options(self, principal: Caller) -> service.AudienceOptions:
        """The towers, units and roles an announcement can be addressed to."""
        return await service.audience_options(principal.site_id)


ROUTES: list[ControllerRouterHandler] = [DashboardController]
