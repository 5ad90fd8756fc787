"""Every HTTP route of the slots module, collected for `app.main.route_handlers`."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

ROUTES: list[ControllerRouterHandler] = []
