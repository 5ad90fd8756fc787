"""HTTP routes of QR mapping: the FM team's API (``/api/places/...``), the public page a code opens
(``/q/{code}``, no sign-in) and the page that reports a problem about a place (``/app/report/{code}``).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role, allow
from app.deps import Caller, SettingsDep
from app.errors import InvalidInput, NotFound
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page
from app.places import qr, service
from app.web.pages import PUBLIC_PAGE, page_access, render
from schema.complaints import ComplaintCategory
from schema.tables import Site

MANAGERS = allow(*STAFF)
# Technicians see an asset's code on its page (app.web.control_assets): they may fetch its image.
CODE_READERS = allow(Role.TECHNICIAN, *STAFF)
KIND_WORDS = {"amenity": "Amenity", "shop": "Shop", "facility": "Facility", "asset": "Equipment"}
REPORTERS = (Role.OCCUPANT, Role.GUARD, *STAFF)
PlaceIds = Annotated[list[UUID] | None, QueryParameter(name="place_id", max_items=qr.MAX_SHEET_CODES)]


class PlaceController(Controller):
    path = "/api/places"
    tags = ["places"]

    @get("", opt=MANAGERS)
    async def list_places(
        self,
        principal: Caller,
        settings: SettingsDep,
        kind: Annotated[service.PlaceKind | None, QueryParameter(name="kind")] = None,
        active: FromQuery[bool | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[service.PlaceView]:
        return await service.list_places(
            settings, principal.site_id, kind=kind, active=active, limit=limit, offset=offset
        )

    @post("", opt=MANAGERS)
    async def create(
        self, principal: Caller, settings: SettingsDep, data: JSONBody[service.NewPlace]
    ) -> service.PlaceView:
        """A place and its first QR code."""
        return await service.create_place(settings, principal.site_id, data)

    @get("/{place_id:uuid}", opt=MANAGERS)
    async def read(self, principal: Caller, settings: SettingsDep, place_id: FromPath[UUID]) -> service.PlaceView:
        return await service.get_place(settings, principal.site_id, place_id)

    @patch("/{place_id:uuid}", opt=MANAGERS)
    async def change(
        self, principal: Caller, settings: SettingsDep, place_id: FromPath[UUID], data: JSONBody[service.PlaceChange]
    ) -> service.PlaceView:
        """Rename or move a place: its printed codes keep working."""
        return await service.update_place(settings, principal.site_id, place_id, data)

    @post("/{place_id:uuid}/revoke", opt=MANAGERS, status_code=200)
    async def revoke(
        self, principal: Caller, settings: SettingsDep, place_id: FromPath[UUID], data: JSONBody[service.Revocation]
    ) -> service.PlaceView:
        """Revoke the active code (it then opens a "no longer in use" page) and, by default, issue a new one."""
        return await service.revoke_code(settings, principal.site_id, place_id, data)

    @post("/{place_id:uuid}/retire", opt=MANAGERS, status_code=200)
    async def retire(self, principal: Caller, settings: SettingsDep, place_id: FromPath[UUID]) -> service.PlaceView:
        return await service.set_active(settings, principal.site_id, place_id, False)

    @post("/{place_id:uuid}/restore", opt=MANAGERS, status_code=200)
    async def restore(self, principal: Caller, settings: SettingsDep, place_id: FromPath[UUID]) -> service.PlaceView:
        return await service.set_active(settings, principal.site_id, place_id, True)

    @get("/{place_id:uuid}/scans", opt=MANAGERS)
    async def scans(
        self, principal: Caller, place_id: FromPath[UUID], limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[service.ScanDay]:
        """Scans per day (site calendar), newest first. Nothing about who scanned is kept."""
        return await service.scan_days(principal.site_id, place_id, limit=limit, offset=offset)

    @get("/{place_id:uuid}/qr.png", opt=CODE_READERS, media_type="image/png")
    async def qr_png(self, principal: Caller, settings: SettingsDep, place_id: FromPath[UUID]) -> Response[bytes]:
        url = await _active_url(settings, principal.site_id, place_id)
        return Response(qr.png(url), media_type="image/png", headers=_download("png", place_id))

    @get("/{place_id:uuid}/qr.svg", opt=CODE_READERS, media_type="image/svg+xml")
    async def qr_svg(self, principal: Caller, settings: SettingsDep, place_id: FromPath[UUID]) -> Response[bytes]:
        url = await _active_url(settings, principal.site_id, place_id)
        return Response(qr.svg(url), media_type="image/svg+xml", headers=_download("svg", place_id))

    @get("/sheet.pdf", opt=MANAGERS, media_type="application/pdf")
    async def sheet(
        self,
        principal: Caller,
        settings: SettingsDep,
        place_ids: PlaceIds = None,
        kind: Annotated[service.PlaceKind | None, QueryParameter(name="kind")] = None,
    ) -> Response[bytes]:
        """An A4 PDF of labelled codes to print: the places named (``place_id``, repeated), else every
        active place (of one ``kind``)."""
        if place_ids:
            chosen = await service.places_by_ids(settings, principal.site_id, place_ids)
        else:
            page = await service.list_places(
                settings, principal.site_id, kind=kind, active=True, limit=qr.MAX_SHEET_CODES, offset=0
            )
            chosen = page.items
        labels = [qr.Label(url=p.url, title=p.name, subtitle=_where(p)) for p in chosen if p.url]
        if place_ids and len(labels) != len(chosen):
            raise InvalidInput.for_query("place_id", "a retired place has no code to print")
        site = await Site.select(Site.name).where(Site.id == principal.site_id).first()
        pdf = qr.sheet_pdf(labels, f"{(site or {}).get('name', '')}: QR codes")
        headers = {"Content-Disposition": 'inline; filename="qr-codes.pdf"', "Cache-Control": "no-store"}
        return Response(pdf, media_type="application/pdf", headers=headers)


def _where(place: service.PlaceView) -> str:
    parts = [place.building_name or "", f"Floor {place.floor}" if place.floor else "", place.code or ""]
    return " · ".join(p for p in parts if p)


def _download(extension: str, place_id: UUID) -> dict[str, str]:
    return {"Content-Disposition": f'inline; filename="place-{place_id}.{extension}"', "Cache-Control": "no-store"}


async def _active_url(settings: Any, site_id: UUID, place_id: UUID) -> str:
    place = await service.get_place(settings, site_id, place_id)
    if place.url is None:
        raise NotFound("this place has no active code (it is retired)")
    return place.url


# ------------------------------------------------------------------------------ pages


@get(service.CODE_PATH + "{code:str}", opt=PUBLIC_PAGE, name="place-public", tags=["places"])
async def public_place_page(request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
    """What a scanned code opens, for anyone (no sign-in): the place, where it is, its hours, what can be
    done there. No personal data. A revoked code opens a "no longer in use" page (410)."""
    state, row = await service.resolve_code(code)
    if state == "unknown" or row is None:
        return render(request, "places/gone.html", status_code=404, gone=False)
    await service.count_scan(row)
    if state == "revoked":
        return render(request, "places/gone.html", status_code=410, gone=True)
    place = await service.public_place(row)
    return render(request, "places/public.html", place=place, kind_word=KIND_WORDS.get(place.kind, ""))


@get("/app/report/{code:str}", opt=page_access(*REPORTERS), name="place-report")
async def report_page(request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
    """Report a problem about the place a code names: the complaint carries the place (and its asset)."""
    principal = request.user
    assert isinstance(principal, Principal)
    state, row = await service.resolve_code(code)
    if row is None or row["site"] != principal.site_id:
        raise NotFound("this code is not known on your site")
    if state == "revoked":
        return render(request, "places/gone.html", status_code=410, gone=True)
    place = await service.public_place(row)
    categories = (
        await ComplaintCategory.select(ComplaintCategory.code, ComplaintCategory.name)
        .where((ComplaintCategory.site == principal.site_id) & (ComplaintCategory.is_active.eq(True)))
        .order_by(ComplaintCategory.name)
    )
    config = {
        "place_id": str(place.place_id),
        "asset_id": str(place.asset_id) if place.asset_id else None,
        "location": _location(place),
        "staff": principal.has_any(frozenset(STAFF)),
    }
    return render(request, "places/report.html", place=place, categories=categories, config=config)


def _location(place: service.PublicPlace) -> str:
    parts = [place.name, place.building or "", f"floor {place.floor}" if place.floor else ""]
    return ", ".join(p for p in parts if p)[:200]


ROUTES: list[ControllerRouterHandler] = [PlaceController]
PAGE_ROUTES: list[ControllerRouterHandler] = [public_place_page, report_page]
