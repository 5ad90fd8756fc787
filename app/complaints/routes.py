"""Every HTTP route of the complaints module, collected for `app.main.route_handlers`."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

ROUTES: list[ControllerRouterHandler] = []
