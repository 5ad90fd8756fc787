"""HTTP routes of the visitors module. Thin: parse, call a service, shape the reply."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody

from app.auth.roles import STAFF, Role, allow
from app.deps import Caller
from app.errors import InvalidInput, NotFound
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, window
from app.uploads import download_headers, media_type_for, read_upload
from app.visitors import anpr, approvals, blocklist, feeds, gate, ladder, passes, sitecfg
from app.visitors.common import VisitorDeps
from schema.visitors import Visit
from schema.visitors_events import OccupantToCall

MANAGERS = allow(*STAFF)
GATE_STAFF = allow(Role.GUARD, *STAFF)
UNIT_PEOPLE = allow(Role.OCCUPANT, Role.GUARD, *STAFF)
ISSUERS = allow(Role.OCCUPANT, *STAFF)


def provide_visitor_deps(state: State) -> VisitorDeps:
    """Settings, Redis and the directory from the app, plus a kick that asks a worker to send now."""
    from notifications.api import provide_job_queue

    queue = provide_job_queue(state)

    async def enqueue_job(name: str) -> object:
        from notifications.lanes import Lane, queue_placement

        try:
            # Someone is waiting at the gate: ahead of every bulk job in the queue.
            return await (await queue.pool()).enqueue_job(name, **queue_placement(Lane.URGENT))
        except Exception:  # the visitor tick finds the work within seconds anyway
            return None

    return VisitorDeps(
        settings=state.settings,
        redis=state.redis,
        directory=state.directory,
        kick=queue.enqueue_expand,
        enqueue_job=enqueue_job,
    )


VISITOR_DEPENDENCIES = {"vdeps": Provide(provide_visitor_deps, sync_to_thread=False)}
VisitorDepsDep = NamedDependency[VisitorDeps]


class WalkInUpload(msgspec.Struct, kw_only=True):
    """multipart/form-data: the visitor's details and, optionally, a photo (JPEG, PNG or WebP)."""

    unit_id: str
    name: str
    phone: str | None = None
    purpose: str | None = None
    kind: str = "guest"
    plate: str | None = None
    gate: str | None = None
    photo: UploadFile | None = None


class VisitorController(Controller):
    path = "/api/visitors"
    tags = ["visitors"]
    dependencies = VISITOR_DEPENDENCIES

    # -- settings -------------------------------------------------------------------------------
    @get("/settings", opt=MANAGERS)
    async def read_settings(self, principal: Caller) -> sitecfg.SettingsView:
        return await sitecfg.view(principal.site_id)

    @put("/settings", opt=MANAGERS)
    async def write_settings(self, principal: Caller, data: JSONBody[sitecfg.SettingsInput]) -> sitecfg.SettingsView:
        return await sitecfg.save(
            principal.site_id, data, actor_id=principal.person_id, may_set_retention=Role.SITE_ADMIN in principal.roles
        )

    # -- passes ---------------------------------------------------------------------------------
    @post("/passes", opt=ISSUERS)
    async def create_pass(
        self, principal: Caller, vdeps: VisitorDepsDep, data: JSONBody[passes.NewPass]
    ) -> passes.PassCreated:
        created = await passes.create_pass(vdeps, principal, data)
        if created.message_status == "pending" and vdeps.enqueue_job is not None:
            await vdeps.enqueue_job("visitor_send_pass_messages")
        return created

    @get("/passes", opt=UNIT_PEOPLE)
    async def list_passes(
        self,
        principal: Caller,
        vdeps: VisitorDepsDep,
        unit_id: FromQuery[UUID | None] = None,
        status: FromQuery[str | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[passes.PassView]:
        return await passes.list_passes(vdeps, principal, unit_id=unit_id, status=status, limit=limit, offset=offset)

    @post("/passes/{pass_id:uuid}/revoke", opt=ISSUERS, status_code=200)
    async def revoke_pass(self, principal: Caller, vdeps: VisitorDepsDep, pass_id: FromPath[UUID]) -> passes.PassView:
        return await passes.revoke_pass(vdeps, principal, pass_id)

    # -- the gate -------------------------------------------------------------------------------
    @post("/gate/verify", opt=GATE_STAFF, status_code=200)
    async def verify(
        self, principal: Caller, vdeps: VisitorDepsDep, data: JSONBody[gate.VerifyInput]
    ) -> gate.VerifyResult:
        return await gate.verify(vdeps, principal, data)

    @post("/walk-ins", opt=GATE_STAFF, status_code=201)
    async def walk_in(
        self,
        principal: Caller,
        vdeps: VisitorDepsDep,
        data: Annotated[WalkInUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> gate.WalkInCreated:
        try:
            unit_id = UUID(data.unit_id)
        except ValueError:
            raise InvalidInput.for_field("unit_id", "is not a UUID") from None
        if data.kind not in sitecfg.KINDS:
            raise InvalidInput.for_field("kind", f"must be one of {', '.join(sitecfg.KINDS)}")
        photo = await data.photo.read() if data.photo is not None else None
        form = gate.WalkInForm(
            unit_id=unit_id,
            name=data.name,
            phone=data.phone or None,
            purpose=data.purpose or None,
            kind=data.kind,  # type: ignore[arg-type]
            plate=data.plate or None,
            gate=data.gate or None,
        )
        return await gate.register_walk_in(vdeps, principal, form, photo or None)

    @get("/approvals", opt=allow(Role.OCCUPANT))
    async def my_approvals(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[approvals.ApprovalView]:
        """The caller's units' visitor requests of the last two hours, waiting or answered (newest first)."""
        return await approvals.for_my_units(principal, limit=limit, offset=offset)

    @get("/approvals/{approval_id:uuid}", opt=UNIT_PEOPLE)
    async def read_approval(self, principal: Caller, approval_id: FromPath[UUID]) -> approvals.ApprovalView:
        found = await approvals.view(principal.site_id, approval_id)
        await approvals.may_see(principal, found.unit_id)
        return found

    @post("/approvals/{approval_id:uuid}/answer", opt=UNIT_PEOPLE, status_code=200)
    async def answer(
        self,
        principal: Caller,
        vdeps: VisitorDepsDep,
        approval_id: FromPath[UUID],
        data: JSONBody[approvals.AnswerInput],
    ) -> approvals.ApprovalView:
        return await approvals.answer_as(vdeps, principal, approval_id, data.decision)

    @get("/visits/{visit_id:uuid}/photo", opt=UNIT_PEOPLE, media_type="image/jpeg")
    async def photo(self, principal: Caller, vdeps: VisitorDepsDep, visit_id: FromPath[UUID]) -> Response[bytes]:
        row = (
            await Visit.select(Visit.unit, Visit.photo_key)
            .where((Visit.site == principal.site_id) & (Visit.id == visit_id))
            .first()
        )
        if row is None or not row["photo_key"]:
            raise NotFound("no photo for this visit")
        await approvals.may_see(principal, row["unit"])
        try:
            content = read_upload(row["photo_key"], vdeps.settings)
        except FileNotFoundError:
            raise NotFound("no photo for this visit") from None
        media_type = media_type_for(row["photo_key"])
        return Response(content, media_type=media_type, headers=download_headers(media_type, f"visitor-{visit_id}"))

    @post("/visits/{visit_id:uuid}/check-in", opt=GATE_STAFF, status_code=200)
    async def check_in(self, principal: Caller, vdeps: VisitorDepsDep, visit_id: FromPath[UUID]) -> gate.VisitView:
        return await gate.check_in(vdeps, principal, visit_id)

    @post("/visits/{visit_id:uuid}/check-out", opt=GATE_STAFF, status_code=200)
    async def check_out(self, principal: Caller, vdeps: VisitorDepsDep, visit_id: FromPath[UUID]) -> gate.VisitView:
        return await gate.check_out(vdeps, principal, visit_id)

    # -- feeds ----------------------------------------------------------------------------------
    @get("/feeds/expected", opt=GATE_STAFF)
    async def expected(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[feeds.ExpectedVisitor]:
        return await feeds.expected_today(principal.site_id, limit=limit, offset=offset)

    @get("/feeds/inside", opt=GATE_STAFF)
    async def inside(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[feeds.InsideVisitor]:
        return await feeds.inside_now(principal.site_id, limit=limit, offset=offset)

    @get("/feeds/pending", opt=GATE_STAFF)
    async def pending(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[approvals.ApprovalView]:
        return await feeds.pending_approvals(principal.site_id, limit=limit, offset=offset)

    @get("/feeds/answered", opt=GATE_STAFF)
    async def answered(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[approvals.ApprovalView]:
        return await feeds.answered_recently(principal.site_id, limit=limit, offset=offset)

    @get("/approvals/{approval_id:uuid}/call-list", opt=GATE_STAFF)
    async def call_list(
        self,
        principal: Caller,
        vdeps: VisitorDepsDep,
        approval_id: FromPath[UUID],
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[OccupantToCall]:
        """The unit's occupants in the order the ladder calls them (a handful: cut from the whole list)."""
        return window(await ladder.call_list(vdeps, principal.site_id, approval_id), limit=limit, offset=offset)

    # -- blocklist and cameras ------------------------------------------------------------------
    @get("/blocklist", opt=MANAGERS)
    async def list_blocks(
        self, principal: Caller, vdeps: VisitorDepsDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[blocklist.BlockView]:
        return await blocklist.list_blocks(vdeps.settings, principal.site_id, limit, offset)

    @post("/blocklist", opt=MANAGERS)
    async def add_block(
        self, principal: Caller, vdeps: VisitorDepsDep, data: JSONBody[blocklist.NewBlock]
    ) -> blocklist.BlockView:
        return await blocklist.add(vdeps.settings, principal, data)

    @delete("/blocklist/{block_id:uuid}", opt=MANAGERS)
    async def remove_block(self, principal: Caller, block_id: FromPath[UUID]) -> None:
        await blocklist.remove(principal.site_id, block_id)

    @post("/cameras", opt=MANAGERS)
    async def add_camera(self, principal: Caller, data: JSONBody[anpr.NewCamera]) -> anpr.CameraCreated:
        return await anpr.create_camera(principal.site_id, data)
