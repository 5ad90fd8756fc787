"""HTTP routes of the AMC tracker (``/api/amc/...``), collected for ``app.main.route_handlers``. Thin."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, patch, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody, QueryParameter
from litestar.types import ControllerRouterHandler

from app.amc import assets, board, common, contracts, history, visits
from app.auth.roles import STAFF, Role, allow
from app.deps import Caller, RedisDep, SettingsDep
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page
from app.uploads import download_headers

MANAGERS = allow(*STAFF)
MAINTAINERS = allow(Role.TECHNICIAN, *STAFF)


class AttachmentUpload(msgspec.Struct):
    file: UploadFile | None = None  # required; checked after the visit is found (404 first)


class AssetController(Controller):
    path = "/api/amc/assets"
    tags = ["amc"]

    @get("", opt=MAINTAINERS)
    async def list_assets(
        self,
        principal: Caller,
        settings: SettingsDep,
        kind: Annotated[assets.AssetKind | None, QueryParameter(name="kind")] = None,
        status: Annotated[assets.AssetStatus | None, QueryParameter(name="status")] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[assets.AssetView]:
        return await assets.list_assets(
            settings, principal.site_id, kind=kind, status=status, limit=limit, offset=offset
        )

    @post("", opt=MANAGERS)
    async def create(
        self, principal: Caller, settings: SettingsDep, data: JSONBody[assets.NewAsset]
    ) -> assets.AssetView:
        return await assets.create_asset(settings, principal.site_id, data)

    @get("/{asset_id:uuid}", opt=MAINTAINERS)
    async def read(self, principal: Caller, settings: SettingsDep, asset_id: FromPath[UUID]) -> assets.AssetView:
        return await assets.get_asset(settings, principal.site_id, asset_id)

    @patch("/{asset_id:uuid}", opt=MANAGERS)
    async def change(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        asset_id: FromPath[UUID],
        data: JSONBody[assets.AssetChange],
    ) -> assets.AssetView:
        view = await assets.update_asset(settings, principal.site_id, asset_id, data)
        await board.board_changed(settings, redis, principal.site_id, "asset_changed")
        return view

    @get("/{asset_id:uuid}/history", opt=MAINTAINERS)
    async def asset_history(
        self, principal: Caller, settings: SettingsDep, asset_id: FromPath[UUID]
    ) -> history.AssetHistory:
        """The asset, its contracts, every visit, complaints raised against it, reminders sent, its QR code."""
        return await history.asset_history(settings, principal.site_id, asset_id)


class ContractController(Controller):
    path = "/api/amc/contracts"
    tags = ["amc"]

    @get("", opt=MAINTAINERS)
    async def list_contracts(
        self,
        principal: Caller,
        asset_id: FromQuery[UUID | None] = None,
        phase: Annotated[contracts.ContractState | None, QueryParameter(name="state")] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[contracts.ContractView]:
        return await contracts.list_contracts(
            principal.site_id, asset_id=asset_id, state=phase, limit=limit, offset=offset
        )

    @post("", opt=MANAGERS)
    async def create(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, data: JSONBody[contracts.NewContract]
    ) -> contracts.ContractView:
        """A contract and its whole service schedule (one visit per due date to the contract's end)."""
        return await contracts.create_contract(settings, redis, principal, data)

    @get("/{contract_id:uuid}", opt=MAINTAINERS)
    async def read(self, principal: Caller, contract_id: FromPath[UUID]) -> contracts.ContractView:
        return await contracts.get_contract(principal.site_id, contract_id)

    @post("/{contract_id:uuid}/cancel", opt=MANAGERS, status_code=200)
    async def cancel(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        contract_id: FromPath[UUID],
        data: JSONBody[contracts.Cancellation],
    ) -> contracts.ContractView:
        return await contracts.cancel_contract(settings, redis, principal.site_id, contract_id, data)

    @post("/{contract_id:uuid}/renew", opt=MANAGERS)
    async def renew(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        contract_id: FromPath[UUID],
        data: JSONBody[contracts.Renewal],
    ) -> contracts.ContractView:
        """The next contract on the same terms from the day after this one ends, its visits on the same cadence."""
        return await contracts.renew_contract(settings, redis, principal, contract_id, data)


class VisitController(Controller):
    path = "/api/amc/visits"
    tags = ["amc"]

    @get("", opt=MAINTAINERS)
    async def schedule(
        self,
        principal: Caller,
        asset_id: FromQuery[UUID | None] = None,
        contract_id: FromQuery[UUID | None] = None,
        which: Annotated[visits.VisitFilter, QueryParameter(name="which")] = "open",
        due_from: FromQuery[dt.date | None] = None,
        due_until: FromQuery[dt.date | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[visits.VisitView]:
        """The service schedule: open visits by date (default), or overdue, done or all."""
        return await visits.list_visits(
            principal.site_id,
            asset_id=asset_id,
            contract_id=contract_id,
            which=which,
            due_from=due_from,
            due_until=due_until,
            limit=limit,
            offset=offset,
        )

    @get("/{visit_id:uuid}", opt=MAINTAINERS)
    async def read(self, principal: Caller, visit_id: FromPath[UUID]) -> visits.VisitView:
        return await visits.get_visit(principal.site_id, visit_id)

    @post("/{visit_id:uuid}/complete", opt=MAINTAINERS, status_code=200)
    async def complete(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        visit_id: FromPath[UUID],
        data: JSONBody[visits.VisitReport],
    ) -> visits.VisitView:
        """Record the visit done, with notes and the checklist as ticked."""
        return await visits.complete_visit(settings, redis, principal, visit_id, data)

    @post("/{visit_id:uuid}/attachments", opt=MAINTAINERS)
    async def attach(
        self,
        principal: Caller,
        settings: SettingsDep,
        visit_id: FromPath[UUID],
        data: MultipartBody[AttachmentUpload],
    ) -> visits.AttachmentView:
        """A photo of the work or of the signed service report (JPEG, PNG or WebP; re-encoded, metadata removed)."""
        content = await data.file.read() if data.file is not None else None
        return await visits.add_attachment(settings, principal, visit_id, content)

    @get("/{visit_id:uuid}/attachments/{attachment_id:uuid}", opt=MAINTAINERS)
    async def attachment(
        self, principal: Caller, settings: SettingsDep, visit_id: FromPath[UUID], attachment_id: FromPath[UUID]
    ) -> Response[bytes]:
        content, media_type = await visits.read_attachment(settings, principal.site_id, visit_id, attachment_id)
        headers = {"Cache-Control": "private, max-age=300", **download_headers(media_type, f"visit-{attachment_id}")}
        return Response(content=content, media_type=media_type, headers=headers)


class AmcBoardController(Controller):
    path = "/api/amc"
    tags = ["amc"]

    @get("/board", opt=MANAGERS)
    async def amc_board(self, principal: Caller) -> board.AmcBoard:
        """Overdue visits, visits due within a week, contracts ending within the longest expiry lead time."""
        return await board.amc_board(principal.site_id)

    @get("/settings", opt=MANAGERS)
    async def read_settings(self, principal: Caller) -> common.ReminderSettings:
        return await common.reminder_settings(principal.site_id)

    @put("/settings", opt=MANAGERS)
    async def put_settings(self, principal: Caller, data: JSONBody[common.ReminderSettings]) -> common.ReminderSettings:
        """Reminder lead times (days before each visit, before a contract ends) and the hour they go out."""
        return await common.put_reminder_settings(principal.site_id, data)


ROUTES: list[ControllerRouterHandler] = [AssetController, ContractController, VisitController, AmcBoardController]
