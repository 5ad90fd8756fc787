"""The guard console (``/guard``): the gate's live page, for guards and the FM team.

Everything the page shows comes from the visitors API and the ``site:{id}:gate`` topic; this route only
hands the page what it needs to start (its site, the gate it stands at, the visitor kinds)."""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.visitors.gate import GATE_PATTERN
from app.visitors.sitecfg import KINDS
from app.web.pages import asset, page_access, render

DEFAULT_GATE: Final = "main"


def gate_of(request: Request[Any, Any, Any]) -> str:
    """The gate this console stands at: ``?gate=`` when it names a gate, else the main gate."""
    asked = (request.query_params.get("gate") or "").strip().lower()
    return asked if GATE_PATTERN.fullmatch(asked) else DEFAULT_GATE


@get("/guard", opt=page_access(Role.GUARD, *STAFF), name="guard-console")
async def guard_console(request: Request[Any, Any, Any]) -> Template:
    principal: Principal = request.scope["user"]
    gate = gate_of(request)
    config = {
        "site_id": str(principal.site_id),
        "gate": gate,
        "kinds": list(KINDS),
        # Loaded only when the guard opens the scanner: most check-ins are typed codes.
        "jsqr_url": asset("vendor/jsqr/jsQR.js"),
    }
    return render(request, "guard/console.html", guard_config=config, gate=gate, kinds=KINDS)


ROUTES: list[ControllerRouterHandler] = [guard_console]
