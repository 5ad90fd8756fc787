"""Every HTTP route of the visitors module, collected for `app.main.route_handlers`."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from app.visitors.controllers import VisitorController
from app.visitors.public import PUBLIC_ROUTES

ROUTES: list[ControllerRouterHandler] = [VisitorController, *PUBLIC_ROUTES]
