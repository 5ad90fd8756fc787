"""Every HTTP route of the privacy module, collected for `app.main.route_handlers`. Thin: parse, call, shape.

- Me (every role): my data (view, correct), consent in one call, my data-rights requests, my exports.
- Exports: the signed, expiring download link (no bearer token: the signature is the credential).
- Site admins: data-rights requests (acknowledge, complete, reject, erasure review and approval),
  the audit log (search, CSV export; nothing edits or deletes it), retention periods and runs.
- Platform admins: start the re-encryption of every encrypted column under the newest key.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, patch, post, put
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.response import File, Stream
from litestar.types import ControllerRouterHandler

from app.auth.roles import ALL_ROLES, Role, allow, own_auth
from app.deps import Caller, DirectoryDep, RedisDep, SettingsDep
from app.errors import InvalidInput, NotFound
from app.media import CSV
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, Timestamp, window
from app.privacy import audit, erasure, exports, mydata, requests, retention
from app.text import MULTI_LINE
from notifications.api import JobQueue, JobQueueDep, provide_job_queue
from notifications.preferences import PreferenceView
from schema.privacy_events import REQUEST_UPDATED, RequestUpdated

logger = logging.getLogger("opshub.privacy.routes")

EVERYONE = allow(*ALL_ROLES)
SITE_ADMINS = allow(Role.SITE_ADMIN)
# Running a purge under the periods in force is operations (FM admins too); setting periods is not.
PURGERS = allow(Role.SITE_ADMIN, Role.FM_ADMIN)
PLATFORM_ADMINS = allow(Role.PLATFORM_ADMIN)
JOBS = {"jobs": Provide(provide_job_queue, sync_to_thread=False)}
Details = Annotated[str, msgspec.Meta(max_length=2000), MULTI_LINE]
Note = Annotated[str, msgspec.Meta(max_length=2000), MULTI_LINE]


class NewMyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Export requests are answered at once by an archive: use POST /api/me/exports."""

    kind: Literal["access", "correction", "erasure", "objection"]
    details: Details = ""


class NewRequestFor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A request received outside the app (letter, desk), filed by a site admin for the person."""

    person_id: UUID
    kind: Literal["access", "correction", "erasure", "objection"]
    details: Details = ""


class Resolution(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    resolution: Note = ""


class Enqueued(msgspec.Struct, frozen=True):
    job: str
    enqueued: bool


async def _enqueue(jobs: JobQueue, function: str, argument: str, job_id: str | None = None) -> bool:
    """Ask a worker now; if that fails the privacy tick finds the work in the database within minutes."""
    try:
        pool = await jobs.pool()
        await pool.enqueue_job(function, argument, _job_id=job_id or f"{function}:{argument}")
    except Exception:
        logger.warning("could not enqueue %s(%s); the privacy tick will pick it up", function, argument)
        return False
    return True


async def _tell_person(redis: Any, settings: Any, view: requests.DataRequestView) -> requests.DataRequestView:
    event = RequestUpdated(request_id=view.id, kind=view.kind, status=view.status)
    await exports.announce(redis, settings, view.person_id, REQUEST_UPDATED, event)
    return view


class MyDataController(Controller):
    path = "/api/me"
    tags = ["my data"]
    dependencies = JOBS

    @get("/data", opt=EVERYONE)
    async def read(self, principal: Caller, directory: DirectoryDep) -> mydata.MyData:
        return await mydata.my_data(directory, principal.site_id, principal.person_id)

    @patch("/data", opt=EVERYONE)
    async def correct(
        self, principal: Caller, directory: DirectoryDep, data: JSONBody[mydata.MyDataChanges]
    ) -> mydata.MyData:
        return await mydata.correct_my_data(directory, principal.site_id, principal.person_id, data)

    @post("/consents", opt=EVERYONE, status_code=200)
    async def consent_all(
        self, principal: Caller, settings: SettingsDep, data: JSONBody[mydata.ConsentAll]
    ) -> list[PreferenceView]:
        """Grant or withdraw every pair of the given channels x categories (all when omitted) at once.
        Pair by pair: PUT /api/me/notification-preferences; history: GET /api/me/consent-history."""
        return await mydata.set_all_consents(
            site_id=principal.site_id,
            person_id=principal.person_id,
            data=data,
            policy_version=settings.notify_policy_version,
        )

    @get("/data-requests", opt=EVERYONE)
    async def my_requests(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> requests.DataRequestPage:
        return await requests.list_requests(
            principal.site_id, person_id=principal.person_id, limit=limit, offset=offset
        )

    @post("/data-requests", opt=EVERYONE, status_code=201)
    async def file_request(self, principal: Caller, data: JSONBody[NewMyRequest]) -> requests.DataRequestView:
        return await requests.create_request(
            site_id=principal.site_id,
            person_id=principal.person_id,
            kind=data.kind,
            details=data.details,
            created_by=principal.person_id,
        )

    @post(
        "/exports",
        opt=EVERYONE,
        status_code=202,
        responses={200: ResponseSpec(exports.ExportView, description="The export still being built, as before.")},
    )
    async def request_export(
        self, principal: Caller, settings: SettingsDep, jobs: JobQueueDep
    ) -> Response[exports.ExportView]:
        """202 with a new pending export; 200 with the one still being built if there is one (asking
        again files and builds nothing). Rate-limited per person with the data-rights requests."""
        view, created = await exports.ask_for_export(
            settings, site_id=principal.site_id, person_id=principal.person_id, created_by=principal.person_id
        )
        if created:
            await _enqueue(jobs, "privacy_export", str(view.id))
        return Response(view, status_code=202 if created else 200)

    @get("/exports", opt=EVERYONE)
    async def my_exports(
        self, principal: Caller, settings: SettingsDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[exports.ExportView]:
        return await exports.list_exports(settings, principal.site_id, principal.person_id, limit=limit, offset=offset)


@get(exports.DOWNLOAD_PATH.replace("{export_id}", "{export_id:uuid}"), opt=own_auth("signed_link"), tags=["my data"])
async def download_export(
    settings: SettingsDep,
    export_id: FromPath[UUID],
    expires: Timestamp,
    signature: Annotated[str, Parameter(max_length=128)],
) -> File:
    """The signed link from the export: 410 once it has expired, 404 if the signature is wrong."""
    path, filename = await exports.open_download(settings, export_id, expires, signature)
    return File(path=path, filename=filename, media_type="application/zip")


class PrivacyAdminController(Controller):
    path = "/api/privacy"
    tags = ["privacy administration"]
    dependencies = JOBS

    @get("/requests", opt=SITE_ADMINS)
    async def list_requests(
        self,
        principal: Caller,
        person_id: FromQuery[UUID | None] = None,
        status: FromQuery[requests.RequestStatus | None] = None,
        kind: FromQuery[requests.RequestKind | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> requests.DataRequestPage:
        return await requests.list_requests(
            principal.site_id, person_id=person_id, status=status, kind=kind, limit=limit, offset=offset
        )

    @post("/requests", opt=SITE_ADMINS, status_code=201)
    async def file_request(self, principal: Caller, data: JSONBody[NewRequestFor]) -> requests.DataRequestView:
        try:
            return await requests.create_request(
                site_id=principal.site_id,
                person_id=data.person_id,
                kind=data.kind,
                details=data.details,
                created_by=principal.person_id,
            )
        except NotFound:
            raise InvalidInput.for_field("person_id", "no such person on this site") from None

    @get("/requests/{request_id:uuid}", opt=SITE_ADMINS)
    async def read_request(self, principal: Caller, request_id: FromPath[UUID]) -> requests.DataRequestView:
        return await requests.get_request(principal.site_id, request_id)

    @post("/requests/{request_id:uuid}/acknowledge", opt=SITE_ADMINS, status_code=200)
    async def acknowledge(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, request_id: FromPath[UUID]
    ) -> requests.DataRequestView:
        view = await requests.acknowledge(principal.site_id, request_id, principal.person_id)
        return await _tell_person(redis, settings, view)

    @post("/requests/{request_id:uuid}/complete", opt=SITE_ADMINS, status_code=200)
    async def complete(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        request_id: FromPath[UUID],
        data: JSONBody[Resolution],
    ) -> requests.DataRequestView:
        view = await requests.close(
            principal.site_id, request_id, principal.person_id, outcome="completed", resolution=data.resolution
        )
        return await _tell_person(redis, settings, view)

    @post("/requests/{request_id:uuid}/reject", opt=SITE_ADMINS, status_code=200)
    async def reject(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        request_id: FromPath[UUID],
        data: JSONBody[Resolution],
    ) -> requests.DataRequestView:
        view = await requests.close(
            principal.site_id, request_id, principal.person_id, outcome="rejected", resolution=data.resolution
        )
        return await _tell_person(redis, settings, view)

    @get("/requests/{request_id:uuid}/erasure-review", opt=SITE_ADMINS)
    async def erasure_review(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        directory: DirectoryDep,
        request_id: FromPath[UUID],
    ) -> erasure.ErasureReview:
        return await erasure.review(
            settings, redis, directory, principal.site_id, request_id, reviewer_id=principal.person_id
        )

    @post("/requests/{request_id:uuid}/approve-erasure", opt=SITE_ADMINS, status_code=202)
    async def approve_erasure(
        self, principal: Caller, jobs: JobQueueDep, request_id: FromPath[UUID], data: JSONBody[Resolution]
    ) -> requests.DataRequestView:
        view = await erasure.approve(principal.site_id, request_id, principal.person_id, data.resolution)
        if view.status in ("approved", "erasing"):
            await _enqueue(jobs, "privacy_erase", str(request_id))
        return view

    @get("/audit", opt=SITE_ADMINS)
    async def search_audit(
        self,
        principal: Caller,
        person_id: FromQuery[UUID | None] = None,
        actor_id: FromQuery[UUID | None] = None,
        since: FromQuery[dt.datetime | None] = None,
        until: FromQuery[dt.datetime | None] = None,
        action: FromQuery[audit.AuditAction | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> audit.AuditPage:
        flt = audit.AuditFilter(person_id=person_id, actor_id=actor_id, since=since, until=until, action=action)
        return await audit.search(principal.site_id, flt, limit=limit, offset=offset)

    @get("/audit/export.csv", opt=SITE_ADMINS, media_type=CSV)
    async def export_audit(
        self,
        principal: Caller,
        person_id: FromQuery[UUID | None] = None,
        actor_id: FromQuery[UUID | None] = None,
        since: FromQuery[dt.datetime | None] = None,
        until: FromQuery[dt.datetime | None] = None,
        action: FromQuery[audit.AuditAction | None] = None,
    ) -> Stream:
        flt = audit.AuditFilter(person_id=person_id, actor_id=actor_id, since=since, until=until, action=action)
        return Stream(
            audit.export_csv(principal.site_id, flt),
            media_type=CSV,
            headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
        )

    @get("/retention", opt=SITE_ADMINS)
    async def retention_classes(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[retention.RetentionClassView]:
        return window(await retention.list_classes(principal.site_id), limit=limit, offset=offset)

    @put("/retention", opt=SITE_ADMINS)
    async def set_retention(
        self, principal: Caller, data: JSONBody[retention.RetentionChange]
    ) -> list[retention.RetentionClassView]:
        return await retention.set_period(principal.site_id, data, principal.person_id)

    @get("/retention/runs", opt=SITE_ADMINS)
    async def retention_runs(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> retention.RetentionRunPage:
        return await retention.list_runs(principal.site_id, limit=limit, offset=offset)

    @post("/retention/purge", opt=PURGERS, status_code=200)
    async def purge_retention(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, data: JSONBody[retention.PurgeRequest]
    ) -> retention.PurgeView:
        """Dry run first (counts per data class, deletes nothing), then the purge naming its preview_id."""
        return await retention.purge(settings, redis, principal.site_id, data)


@post(
    "/api/platform/privacy/reencrypt",
    opt=PLATFORM_ADMINS,
    status_code=202,
    tags=["privacy administration"],
    dependencies=JOBS,
)
async def start_reencrypt(jobs: JobQueueDep) -> Response[Enqueued]:
    """Re-encrypt every encrypted column under the newest key (after putting a new key first)."""
    job_id = f"privacy_reencrypt:{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    enqueued = await _enqueue(jobs, "privacy_reencrypt", "all", job_id)
    return Response(Enqueued(job="privacy_reencrypt", enqueued=enqueued), status_code=202)


ROUTES: list[ControllerRouterHandler] = [MyDataController, download_export, PrivacyAdminController, start_reencrypt]
