"""HTTP routes of the complaints module. Thin: parse, call the service, shape the reply."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody, Parameter

from app.auth.roles import STAFF, Role, allow
from app.complaints import config, reports, service
from app.complaints.lifecycle import Status
from app.deps import Caller, RedisDep, SettingsDep
from app.media import CSV
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, window
from app.uploads import download_headers

RAISERS = allow(Role.OCCUPANT, Role.GUARD, *STAFF)
VIEWERS = allow(Role.OCCUPANT, Role.GUARD, Role.TECHNICIAN, *STAFF)
MANAGERS = allow(*STAFF)
TECHNICIANS = allow(Role.TECHNICIAN)
CategoryCode = Annotated[str | None, Parameter(max_length=64)]


class PhotoUpload(msgspec.Struct):
    file: UploadFile | None = None  # required; checked after the complaint is found (404 first)
    stage: str = "before"


def _csv(content: str, name: str) -> Response[str]:
    return Response(
        content=content,
        media_type=CSV,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class ComplaintController(Controller):
    path = "/api/complaints"
    tags = ["complaints"]

    @post("", opt=RAISERS)
    async def raise_complaint(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, data: JSONBody[service.NewComplaint]
    ) -> service.ComplaintView:
        return await service.raise_complaint(settings, redis, principal, data)

    @get("", opt=VIEWERS)
    async def list_complaints(
        self,
        principal: Caller,
        status: FromQuery[Status | None] = None,
        category: CategoryCode = None,
        unit_id: FromQuery[UUID | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> service.ComplaintPage:
        return await service.list_complaints(
            principal, status=status, category=category, unit_id=unit_id, limit=limit, offset=offset
        )

    @get("/queue", opt=TECHNICIANS)
    async def queue(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[service.ComplaintView]:
        """Ordered by urgency and deadline, computed over the technician's whole open load."""
        return window(await service.technician_queue(principal), limit=limit, offset=offset)

    @get("/{complaint_id:uuid}", opt=VIEWERS)
    async def read(self, principal: Caller, complaint_id: FromPath[UUID]) -> service.ComplaintDetail:
        return await service.get_complaint(principal, complaint_id)

    @post("/{complaint_id:uuid}/transitions", opt=VIEWERS, status_code=200)
    async def change_status(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        complaint_id: FromPath[UUID],
        data: JSONBody[service.StatusChange],
    ) -> service.ComplaintView:
        return await service.change_status(settings, redis, principal, complaint_id, data)

    @post("/{complaint_id:uuid}/assign", opt=MANAGERS, status_code=200)
    async def assign(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        complaint_id: FromPath[UUID],
        data: JSONBody[service.AssignInput],
    ) -> service.ComplaintView:
        return await service.assign(settings, redis, principal, complaint_id, data)

    @get("/{complaint_id:uuid}/comments", opt=VIEWERS)
    async def comments(
        self, principal: Caller, complaint_id: FromPath[UUID], limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[service.CommentView]:
        return await service.list_comments(principal, complaint_id, limit=limit, offset=offset)

    @post("/{complaint_id:uuid}/comments", opt=VIEWERS)
    async def comment(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        complaint_id: FromPath[UUID],
        data: JSONBody[service.NewComment],
    ) -> service.CommentView:
        return await service.add_comment(settings, redis, principal, complaint_id, data)

    @post("/{complaint_id:uuid}/photos", opt=VIEWERS)
    async def upload_photo(
        self,
        principal: Caller,
        settings: SettingsDep,
        complaint_id: FromPath[UUID],
        data: MultipartBody[PhotoUpload],
    ) -> service.PhotoView:
        content = await data.file.read() if data.file is not None else None
        return await service.add_photo(settings, principal, complaint_id, content, data.stage)

    @get("/{complaint_id:uuid}/photos/{photo_id:uuid}", opt=VIEWERS)
    async def photo(
        self, principal: Caller, settings: SettingsDep, complaint_id: FromPath[UUID], photo_id: FromPath[UUID]
    ) -> Response[bytes]:
        content, media_type = await service.read_photo(settings, principal, complaint_id, photo_id)
        headers = {
            "Cache-Control": "private, max-age=300",
            **download_headers(media_type, f"complaint-photo-{photo_id}"),
        }
        return Response(content=content, media_type=media_type, headers=headers)

    @post("/{complaint_id:uuid}/rating", opt=allow(Role.OCCUPANT, Role.GUARD), status_code=200)
    async def rate(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        complaint_id: FromPath[UUID],
        data: JSONBody[service.RatingInput],
    ) -> service.ComplaintView:
        return await service.rate(settings, redis, principal, complaint_id, data)


class ComplaintConfigController(Controller):
    path = "/api/complaints/config"
    tags = ["complaints"]

    @get("/categories", opt=VIEWERS)
    async def categories(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[config.CategoryView]:
        return window(await config.list_categories(principal.site_id), limit=limit, offset=offset)

    @post("/categories", opt=MANAGERS, status_code=200)
    async def put_category(self, principal: Caller, data: JSONBody[config.CategoryInput]) -> config.CategoryView:
        return await config.put_category(principal.site_id, data)

    @get("/rules", opt=MANAGERS)
    async def rules(self, principal: Caller) -> config.SiteRulesView:
        return await config.get_rules(principal.site_id)

    @put("/rules", opt=MANAGERS)
    async def put_rules(self, principal: Caller, data: JSONBody[config.SiteRulesInput]) -> config.SiteRulesView:
        return await config.put_rules(principal.site_id, data)

    @get("/technicians/{technician_id:uuid}/shifts", opt=MANAGERS)
    async def shifts(self, principal: Caller, technician_id: FromPath[UUID]) -> config.ShiftsView:
        return await config.get_shifts(principal.site_id, technician_id)

    @put("/technicians/{technician_id:uuid}/shifts", opt=MANAGERS)
    async def put_shifts(
        self, principal: Caller, technician_id: FromPath[UUID], data: JSONBody[config.ShiftsInput]
    ) -> config.ShiftsView:
        return await config.put_shifts(principal.site_id, technician_id, data)


class ComplaintReportController(Controller):
    path = "/api/complaints/reports"
    tags = ["complaints"]

    @get("/sla.csv", opt=MANAGERS, media_type=CSV)
    async def sla(
        self,
        principal: Caller,
        by: FromQuery[reports.GroupBy] = reports.GroupBy.CATEGORY,
        since: FromQuery[dt.datetime | None] = None,
        until: FromQuery[dt.datetime | None] = None,
    ) -> Response[str]:
        content = await reports.sla_report(principal.site_id, by, since=since, until=until)
        return _csv(content, f"complaints-sla-by-{by}.csv")

    @get("/volume.csv", opt=MANAGERS, media_type=CSV)
    async def volume(
        self,
        principal: Caller,
        by: FromQuery[reports.GroupBy] = reports.GroupBy.CATEGORY,
        since: FromQuery[dt.datetime | None] = None,
        until: FromQuery[dt.datetime | None] = None,
    ) -> Response[str]:
        content = await reports.volume_report(principal.site_id, by, since=since, until=until)
        return _csv(content, f"complaints-volume-by-{by}.csv")
