"""HTTP routes of the permits module. Thin: parse, call the service, shape the reply."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody, Parameter

from app.auth.roles import STAFF, Role, allow
from app.deps import Caller, RedisDep, SettingsDep
from app.errors import NotFound
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, window
from app.permits import gate, service, types
from app.permits.lifecycle import Status
from app.uploads import download_headers
from schema.permits import Permit, PermitType

APPLICANTS = allow(Role.OCCUPANT, *STAFF)
VIEWERS = allow(Role.OCCUPANT, Role.GUARD, Role.TECHNICIAN, *STAFF)
APPROVERS = allow(Role.GUARD, Role.TECHNICIAN, *STAFF)
MANAGERS = allow(*STAFF)
GATE_STAFF = allow(Role.GUARD, *STAFF)
TypeCode = Annotated[str | None, Parameter(max_length=64)]


class AttachmentUpload(msgspec.Struct):
    slot: str | None = None  # required: one of the type's attachment keys (checked after the permit is found)
    file: UploadFile | None = None  # required: an image (JPEG, PNG, WebP) or a PDF, as the slot accepts


class PermitTypeController(Controller):
    path = "/api/permits/types"
    tags = ["permits"]

    @get("", opt=VIEWERS)
    async def list_types(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[types.PermitTypeView]:
        """The site's permit types (the six defaults the first time); only the active ones for non-staff."""
        found = await types.list_types(principal.site_id, active_only=not principal.has_any(STAFF))
        return window(found, limit=limit, offset=offset)

    @post("", opt=MANAGERS)
    async def create_type(self, principal: Caller, data: JSONBody[types.NewPermitType]) -> types.PermitTypeView:
        return await types.create_type(principal.site_id, data)

    @get("/{type_id:uuid}", opt=VIEWERS)
    async def read_type(self, principal: Caller, type_id: FromPath[UUID]) -> types.PermitTypeView:
        return await types.get_type_by_id(principal.site_id, type_id)

    @put("/{type_id:uuid}", opt=MANAGERS)
    async def put_type(
        self, principal: Caller, type_id: FromPath[UUID], data: JSONBody[types.PermitTypeInput]
    ) -> types.PermitTypeView:
        row = (
            await PermitType.select(PermitType.code)
            .where((PermitType.site == principal.site_id) & (PermitType.id == type_id))
            .first()
        )
        if row is None:
            raise NotFound("permit type not found")
        return await types.put_type(principal.site_id, row["code"], data)


class PermitController(Controller):
    path = "/api/permits"
    tags = ["permits"]

    @post("", opt=APPLICANTS)
    async def apply(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, data: JSONBody[service.PermitInput]
    ) -> service.PermitView:
        """A draft permit; add its attachments, then submit it."""
        return await service.apply(settings, redis, principal, data)

    @get("", opt=VIEWERS)
    async def list_permits(
        self,
        principal: Caller,
        settings: SettingsDep,
        status: FromQuery[Status | None] = None,
        awaiting_me: FromQuery[bool] = False,
        unit_id: FromQuery[UUID | None] = None,
        type: TypeCode = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[service.PermitView]:
        """Permits the caller may see, newest first; ``awaiting_me``: those whose next step is the caller's."""
        return await service.list_permits(
            settings,
            principal,
            status=status,
            awaiting_me=awaiting_me,
            unit_id=unit_id,
            type_code=type,
            limit=limit,
            offset=offset,
        )

    @get("/{permit_id:uuid}", opt=VIEWERS)
    async def read(self, principal: Caller, settings: SettingsDep, permit_id: FromPath[UUID]) -> service.PermitDetail:
        return await service.get_permit(settings, principal, permit_id)

    @put("/{permit_id:uuid}", opt=APPLICANTS)
    async def edit(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        permit_id: FromPath[UUID],
        data: JSONBody[service.PermitEdit],
    ) -> service.PermitView:
        return await service.edit(settings, redis, principal, permit_id, data)

    @post("/{permit_id:uuid}/attachments", opt=APPLICANTS)
    async def upload(
        self,
        principal: Caller,
        settings: SettingsDep,
        permit_id: FromPath[UUID],
        data: MultipartBody[AttachmentUpload],
    ) -> service.AttachmentView:
        content = await data.file.read() if data.file is not None else None
        return await service.add_attachment(settings, principal, permit_id, data.slot, content)

    @get("/{permit_id:uuid}/attachments/{attachment_id:uuid}", opt=VIEWERS, media_type="application/octet-stream")
    async def attachment(
        self, principal: Caller, settings: SettingsDep, permit_id: FromPath[UUID], attachment_id: FromPath[UUID]
    ) -> Response[bytes]:
        content, media_type, name = await service.read_attachment(settings, principal, permit_id, attachment_id)
        headers = {"Cache-Control": "private, max-age=300", **download_headers(media_type, name)}
        return Response(content=content, media_type=media_type, headers=headers)

    @post("/{permit_id:uuid}/submit", opt=APPLICANTS, status_code=200)
    async def submit(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        permit_id: FromPath[UUID],
        data: JSONBody[service.VersionInput],
    ) -> service.PermitView:
        """Submit a draft, or resubmit a permit sent back for changes: the chain starts at its first step."""
        return await service.submit(settings, redis, principal, permit_id, data)

    @post("/{permit_id:uuid}/decision", opt=APPROVERS, status_code=200)
    async def decide(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        permit_id: FromPath[UUID],
        data: JSONBody[service.DecisionInput],
    ) -> service.PermitView:
        """Approve, reject or send back the step awaiting the caller."""
        return await service.decide(settings, redis, principal, permit_id, data)

    @post("/{permit_id:uuid}/cancel", opt=APPLICANTS, status_code=200)
    async def cancel(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        permit_id: FromPath[UUID],
        data: JSONBody[service.ReasonInput],
    ) -> service.PermitView:
        return await service.cancel(settings, redis, principal, permit_id, data)

    @post("/{permit_id:uuid}/revoke", opt=MANAGERS, status_code=200)
    async def revoke(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        permit_id: FromPath[UUID],
        data: JSONBody[service.ReasonInput],
    ) -> service.PermitView:
        return await service.revoke(settings, redis, principal, permit_id, data)

    @get("/{permit_id:uuid}/entries", opt=GATE_STAFF)
    async def entries(
        self, principal: Caller, permit_id: FromPath[UUID], limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[gate.EntryView]:
        """Who came in under the permit and when they left, newest first."""
        if not await Permit.exists().where((Permit.id == permit_id) & (Permit.site == principal.site_id)):
            raise NotFound("permit not found")
        return await gate.entries(principal, permit_id, limit=limit, offset=offset)


class PermitGateController(Controller):
    path = "/api/permits/gate"
    tags = ["permits"]

    @post("/check", opt=GATE_STAFF, status_code=200)
    async def check(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, data: JSONBody[gate.GateCheckInput]
    ) -> gate.GateCheckResult:
        """Recognise a vendor by the permit's reference, their mobile or their plate; ``check_in`` lets them in."""
        return await gate.check(settings, redis, principal, data)

    @get("/today", opt=GATE_STAFF)
    async def today(
        self, principal: Caller, settings: SettingsDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[gate.GatePermit]:
        """Approved permits whose window touches today, in the site's clock."""
        return await gate.today(settings, principal, limit=limit, offset=offset)

    @post("/entries/{entry_id:uuid}/check-out", opt=GATE_STAFF, status_code=200)
    async def check_out(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, entry_id: FromPath[UUID]
    ) -> gate.EntryView:
        return await gate.check_out(settings, redis, principal, entry_id)
