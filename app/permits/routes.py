"""Every HTTP route of the permits module, collected for `app.main.route_handlers`."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from app.permits.controller import PermitController, PermitGateController, PermitTypeController

ROUTES: list[ControllerRouterHandler] = [PermitTypeController, PermitGateController, PermitController]
