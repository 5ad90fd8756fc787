"""The guard console (``/guard``): the gate's live page, for guards and the FM team."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.roles import STAFF, Role
from app.web.pages import page_access, render


@get("/guard", opt=page_access(Role.GUARD, *STAFF), name="guard-console")
async def guard_console(request: Request[Any, Any, Any]) -> Template:
    return render(request, "guard/console.html")


ROUTES: list[ControllerRouterHandler] = [guard_console]
