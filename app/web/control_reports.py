"""The control room's reports (``/control/reports``): every report the FM team may run, its filters as a
plain form (GET: the address is the query, so it can be bookmarked or shared), the first rows or the chosen
summary, and the export buttons (CSV, XLSX) that download the same query from ``/api/reports/{name}/export``.
Server-rendered; no script needed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.principal import Principal
from app.auth.roles import STAFF
from app.errors import AppError, InvalidInput
from app.reports.framework import catalogue
from app.reports.routes import build_query, info, page_of_rows
from app.web.pages import page_access, render

FIELDS = ("from", "to", "tower", "category", "status", "person", "by")
SHOWN = 50


@get("/control/reports", opt=page_access(*STAFF), name="control-reports")
async def reports_page(request: Request[Any, Any, Any]) -> Template:
    principal = request.user
    assert isinstance(principal, Principal)
    reports = {name: r for name, r in catalogue().items() if principal.has_any(r.roles)}
    asked = {k: v.strip() for k in FIELDS if (v := request.query_params.get(k)) is not None and v.strip()}
    chosen = reports.get(request.query_params.get("report", "")) or next(iter(reports.values()))
    result, error = None, None
    try:
        query = await build_query(
            principal,
            chosen,
            date_from=asked.get("from"),
            date_to=asked.get("to"),
            tower=asked.get("tower"),
            category=asked.get("category"),
            status=asked.get("status"),
            person=_uuid(asked.get("person")),
            site=None,
        )
        by = asked.get("by")
        chosen.check_by(by)
        result = await page_of_rows(chosen, query, by, SHOWN, 0)
    except AppError as problem:
        error = problem.detail
    export_query = urlencode(asked)
    return render(
        request,
        "control/reports.html",
        reports=[info(r) for r in reports.values()],
        chosen=info(chosen),
        asked=asked,
        result=result,
        error=error,
        export_base=f"/api/reports/{chosen.name}/export?{export_query}{'&' if export_query else ''}",
        shown=SHOWN,
    )


def _uuid(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput.for_query("person", "must be a person's id") from None


ROUTES: list[ControllerRouterHandler] = [reports_page]
