"""Routes of the occupant listing. Thin: parse, call the service or the importer, shape the reply."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody, Parameter
from litestar.response import Stream

from app.auth.roles import STAFF, allow
from app.deps import Caller, DirectoryDep, RedisDep, SettingsDep
from app.media import CSV
from app.occupants import importer, service
from app.pagination import DEFAULT_LIMIT, Limit, Offset

MANAGERS = allow(*STAFF)
# Parameter (not msgspec.Meta) is what Litestar enforces on query strings.
SearchText = Annotated[str | None, Parameter(max_length=200)]


class ImportUpload(msgspec.Struct):
    file: UploadFile


class OccupantController(Controller):
    path = "/api/occupants"
    tags = ["occupants"]

    @get("", opt=MANAGERS)
    async def search(
        self,
        principal: Caller,
        directory: DirectoryDep,
        q: SearchText = None,
        unit: SearchText = None,
        building_id: FromQuery[UUID | None] = None,
        relation: FromQuery[service.Relation | None] = None,
        active: FromQuery[bool | None] = None,
        phone: SearchText = None,
        email: SearchText = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> service.OccupantPage:
        filters = service.OccupantFilter(
            q=q, unit=unit, building_id=building_id, relation=relation, active=active, phone=phone, email=email
        )
        return await service.list_occupants(directory, principal.site_id, filters, limit=limit, offset=offset)

    @post("", opt=MANAGERS)
    async def create(
        self, principal: Caller, directory: DirectoryDep, data: JSONBody[service.NewOccupant]
    ) -> service.OccupantView:
        return await service.create_occupant(directory, principal.site_id, data)

    @get("/export.csv", opt=MANAGERS, media_type=CSV)
    async def export(
        self,
        principal: Caller,
        directory: DirectoryDep,
        q: SearchText = None,
        unit: SearchText = None,
        building_id: FromQuery[UUID | None] = None,
        relation: FromQuery[service.Relation | None] = None,
        active: FromQuery[bool] = True,
    ) -> Stream:
        filters = service.OccupantFilter(q=q, unit=unit, building_id=building_id, relation=relation, active=active)
        # Resolved before streaming starts, so a bad filter is still a problem response.
        ids = await service.matching_ids(directory, principal.site_id, filters)
        return Stream(
            importer.export_csv(directory, principal.site_id, ids),
            media_type=CSV,
            headers={"Content-Disposition": 'attachment; filename="occupants.csv"'},
        )

    @post("/import", opt=MANAGERS, status_code=200)
    async def import_file(
        self,
        principal: Caller,
        directory: DirectoryDep,
        settings: SettingsDep,
        data: MultipartBody[ImportUpload],
        dry_run: FromQuery[bool] = False,
    ) -> importer.ImportResult:
        content = await data.file.read()
        return await importer.import_occupants(
            directory, principal.site_id, content, max_bytes=settings.max_request_body_bytes, dry_run=dry_run
        )

    @get("/{occupant_id:uuid}", opt=MANAGERS)
    async def read(
        self, principal: Caller, directory: DirectoryDep, occupant_id: FromPath[UUID]
    ) -> service.OccupantView:
        return await service.get_occupant(directory, principal.site_id, occupant_id)

    @patch("/{occupant_id:uuid}", opt=MANAGERS)
    async def update(
        self,
        principal: Caller,
        directory: DirectoryDep,
        occupant_id: FromPath[UUID],
        data: JSONBody[service.OccupantChanges],
    ) -> service.OccupantView:
        return await service.update_occupant(directory, principal.site_id, occupant_id, data)

    @post("/{occupant_id:uuid}/deactivate", opt=MANAGERS, status_code=200)
    async def deactivate(
        self,
        principal: Caller,
        directory: DirectoryDep,
        settings: SettingsDep,
        redis: RedisDep,
        occupant_id: FromPath[UUID],
    ) -> service.OccupantView:
        return await service.deactivate_occupant(directory, settings, redis, principal.site_id, occupant_id)

    @post("/{occupant_id:uuid}/reactivate", opt=MANAGERS, status_code=200)
    async def reactivate(
        self, principal: Caller, directory: DirectoryDep, occupant_id: FromPath[UUID]
    ) -> service.OccupantView:
        return await service.reactivate_occupant(directory, principal.site_id, occupant_id)

    @put("/{occupant_id:uuid}/units/{unit_id:uuid}", opt=MANAGERS)
    async def link_unit(
        self,
        principal: Caller,
        directory: DirectoryDep,
        occupant_id: FromPath[UUID],
        unit_id: FromPath[UUID],
        data: JSONBody[service.LinkInput],
    ) -> service.OccupantView:
        return await service.link_unit(directory, principal.site_id, occupant_id, unit_id, data.relation)

    @delete("/{occupant_id:uuid}/units/{unit_id:uuid}", opt=MANAGERS)
    async def unlink_unit(
        self, principal: Caller, directory: DirectoryDep, occupant_id: FromPath[UUID], unit_id: FromPath[UUID]
    ) -> None:
        await service.unlink_unit(directory, principal.site_id, occupant_id, unit_id)
