"""Every HTTP route of the slots module, collected for `app.main.route_handlers`. Thin: parse, call, shape."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, patch, post, put
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from app.auth.roles import ALL_ROLES, STAFF, Role, allow, own_auth
from app.deps import Caller, RedisDep, SettingsDep
from app.media import CSV
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page
from app.slots import availability, booking, chargers, passes, reports, resources, valet
from app.slots.availability import AvailabilityFeed
from schema.slots_events import ResourceAvailability, SiteCounts

EVERYONE = allow(*ALL_ROLES)
MANAGERS = allow(*STAFF)
BOOKERS = allow(Role.OCCUPANT, *STAFF)
GATE = allow(Role.GUARD, *STAFF)
VALET_USERS = allow(Role.OCCUPANT, Role.GUARD, *STAFF)
Category = Annotated[resources.Category | None, QueryParameter(name="category")]
DeviceId = Annotated[str, HeaderParameter(name="X-Device-Id", max_length=64)]
DeviceToken = Annotated[str, HeaderParameter(name="X-Device-Token", max_length=128)]


class AvailabilityNow(msgspec.Struct, frozen=True, kw_only=True):
    counts: SiteCounts
    resources: list[ResourceAvailability]


class ResourceController(Controller):
    path = "/api/slots/resources"
    tags = ["slots"]

    @get("", opt=EVERYONE)
    async def list_resources(
        self, principal: Caller, category: Category = None, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[resources.ResourceView]:
        return await resources.page_resources(
            principal.site_id, category, staff=booking.is_staff(principal), limit=limit, offset=offset
        )

    @post("", opt=MANAGERS)
    async def create(self, principal: Caller, data: JSONBody[resources.NewResource]) -> resources.ResourceView:
        return await resources.create_resource(principal.site_id, data)

    @put("/{resource_id:uuid}/rules", opt=MANAGERS)
    async def update_rules(
        self, principal: Caller, resource_id: FromPath[UUID], data: JSONBody[resources.Rules]
    ) -> resources.ResourceView:
        return await resources.update_rules(principal.site_id, resource_id, data)

    @get("/{resource_id:uuid}/availability", opt=EVERYONE)
    async def free_times(
        self,
        principal: Caller,
        resource_id: FromPath[UUID],
        date: FromQuery[dt.date | None] = None,
        duration_minutes: Annotated[int | None, QueryParameter(name="duration_minutes", ge=1, le=7 * 24 * 60)] = None,
    ) -> availability.FreeTimes:
        return await availability.search_free(principal.site_id, resource_id, date, duration_minutes)

    @post("/{resource_id:uuid}/bookings", opt=BOOKERS)
    async def book(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        resource_id: FromPath[UUID],
        data: JSONBody[booking.NewBooking],
    ) -> booking.BookingView:
        return await booking.book(AvailabilityFeed(redis, settings), principal, resource_id, data)


class BookingController(Controller):
    path = "/api/slots/bookings"
    tags = ["slots"]

    @get("", opt=BOOKERS)
    async def list_bookings(
        self,
        principal: Caller,
        resource_id: FromQuery[UUID | None] = None,
        status: Annotated[str | None, QueryParameter(name="status", max_length=16)] = None,
        mine: FromQuery[bool] = False,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[booking.BookingView]:
        return await booking.list_bookings(
            principal, resource_id=resource_id, status=status, mine=mine, limit=limit, offset=offset
        )

    @get("/{booking_id:uuid}", opt=BOOKERS)
    async def read(self, principal: Caller, booking_id: FromPath[UUID]) -> booking.BookingView:
        return await booking.get_booking(principal, booking_id)

    @patch("/{booking_id:uuid}", opt=BOOKERS)
    async def change(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        booking_id: FromPath[UUID],
        data: JSONBody[booking.BookingChange],
    ) -> booking.BookingView:
        return await booking.change_booking(AvailabilityFeed(redis, settings), principal, booking_id, data)

    @post("/{booking_id:uuid}/cancel", opt=BOOKERS, status_code=200)
    async def cancel(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        booking_id: FromPath[UUID],
        data: JSONBody[booking.Decision],
    ) -> booking.CancelResult:
        return await booking.cancel_booking(AvailabilityFeed(redis, settings), principal, booking_id, data.reason)

    @post("/{booking_id:uuid}/approve", opt=MANAGERS, status_code=200)
    async def approve(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        booking_id: FromPath[UUID],
        data: JSONBody[booking.Decision],
    ) -> booking.BookingView:
        return await booking.decide(AvailabilityFeed(redis, settings), principal, booking_id, True, data.reason)

    @post("/{booking_id:uuid}/reject", opt=MANAGERS, status_code=200)
    async def reject(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        booking_id: FromPath[UUID],
        data: JSONBody[booking.Decision],
    ) -> booking.BookingView:
        return await booking.decide(AvailabilityFeed(redis, settings), principal, booking_id, False, data.reason)

    @post("/{booking_id:uuid}/check-in", opt=allow(Role.OCCUPANT), status_code=200)
    async def check_in(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        booking_id: FromPath[UUID],
        data: JSONBody[booking.CheckIn],
    ) -> booking.BookingView:
        return await booking.check_in_with_code(AvailabilityFeed(redis, settings), principal, booking_id, data.code)

    @get("/{booking_id:uuid}/qr.svg", opt=allow(Role.OCCUPANT), media_type="image/svg+xml")
    async def qr(self, principal: Caller, booking_id: FromPath[UUID]) -> bytes:
        return await booking.qr_for(principal, booking_id)


class SlotsController(Controller):
    path = "/api/slots"
    tags = ["slots"]

    @get("/availability", opt=EVERYONE)
    async def now(self, principal: Caller, category: Category = None) -> AvailabilityNow:
        now = resources.now_utc()
        ids = [r.id for r in await resources.list_resources(principal.site_id, category)]
        states = await availability.states_of(principal.site_id, ids, now)
        return AvailabilityNow(
            counts=await availability.site_counts(principal.site_id, now),
            resources=sorted(states, key=lambda s: (s.category, s.code)),
        )

    @post("/check-in", opt=GATE, status_code=200)
    async def check_in_qr(
        self, principal: Caller, redis: RedisDep, settings: SettingsDep, data: JSONBody[booking.QrCheckIn]
    ) -> booking.BookingView:
        return await booking.check_in_with_qr(AvailabilityFeed(redis, settings), principal, data.qr)

    @post("/chargers", opt=MANAGERS)
    async def create_charger(
        self, principal: Caller, data: JSONBody[resources.NewCharger]
    ) -> resources.DeviceCredentials:
        return await resources.create_charger(principal.site_id, data)

    @post("/sensor-gateways", opt=MANAGERS)
    async def create_sensor_gateway(
        self, principal: Caller, data: JSONBody[resources.NewSensorGateway]
    ) -> resources.DeviceCredentials:
        return await resources.create_sensor_gateway(principal.site_id, data)

    @post("/ocpp/status-notification", opt=own_auth("device_token"), status_code=200)
    async def status_notification(
        self,
        redis: RedisDep,
        settings: SettingsDep,
        device_id: DeviceId,
        device_token: DeviceToken,
        data: JSONBody[chargers.StatusNotification],
    ) -> chargers.IngestResult:
        device, site_id = await chargers.authenticate(device_id, device_token, "charger")
        return await chargers.status_notification(redis, settings, device, site_id, data)

    @post("/sensors/occupancy", opt=own_auth("device_token"), status_code=200)
    async def sensor_event(
        self,
        redis: RedisDep,
        settings: SettingsDep,
        device_id: DeviceId,
        device_token: DeviceToken,
        data: JSONBody[chargers.SensorEvent],
    ) -> chargers.IngestResult:
        device, site_id = await chargers.authenticate(device_id, device_token, "sensor_gateway")
        return await chargers.sensor_event(redis, settings, device, site_id, data)

    @get("/reports/utilisation.csv", opt=MANAGERS, media_type=CSV)
    async def utilisation(
        self,
        principal: Caller,
        date_from: Annotated[dt.date, QueryParameter(name="from")],
        date_to: Annotated[dt.date, QueryParameter(name="to")],
    ) -> Response[str]:
        content = await reports.utilisation_csv(principal.site_id, date_from, date_to)
        return Response(
            content,
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="utilisation-{date_from}-{date_to}.csv"'},
        )


class PassController(Controller):
    path = "/api/slots/passes"
    tags = ["slots"]

    @post("", opt=BOOKERS)
    async def create(self, principal: Caller, settings: SettingsDep, data: JSONBody[passes.NewPass]) -> passes.PassView:
        return await passes.create_pass(settings, principal, data)

    @get("", opt=BOOKERS)
    async def list_passes(
        self, principal: Caller, settings: SettingsDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[passes.PassView]:
        return await passes.list_passes(settings, principal, limit=limit, offset=offset)

    @get("/check", opt=GATE)
    async def check(
        self,
        principal: Caller,
        settings: SettingsDep,
        plate: Annotated[str, QueryParameter(name="plate", max_length=20)],
    ) -> passes.PlateCheck:
        return await passes.check_plate(settings, principal, plate)

    @get("/{pass_id:uuid}", opt=BOOKERS)
    async def read(self, principal: Caller, settings: SettingsDep, pass_id: FromPath[UUID]) -> passes.PassView:
        return await passes.get_pass(settings, principal, pass_id)

    @post("/{pass_id:uuid}/renew", opt=BOOKERS, status_code=200)
    async def renew(
        self, principal: Caller, settings: SettingsDep, pass_id: FromPath[UUID], data: JSONBody[passes.Renewal]
    ) -> passes.PassView:
        return await passes.renew_pass(settings, principal, pass_id, data)

    @post("/{pass_id:uuid}/cancel", opt=BOOKERS, status_code=200)
    async def cancel(self, principal: Caller, settings: SettingsDep, pass_id: FromPath[UUID]) -> passes.PassView:
        return await passes.cancel_pass(settings, principal, pass_id)


class ValetController(Controller):
    path = "/api/slots/valet"
    tags = ["slots"]

    @post("", opt=allow(Role.OCCUPANT))
    async def request(
        self, principal: Caller, redis: RedisDep, settings: SettingsDep, data: JSONBody[valet.NewValet]
    ) -> valet.ValetView:
        return await valet.request_valet(redis, settings, principal, data)

    @get("", opt=VALET_USERS)
    async def list_requests(
        self,
        principal: Caller,
        settings: SettingsDep,
        active: FromQuery[bool] = True,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[valet.ValetView]:
        return await valet.list_valet(settings, principal, active, limit=limit, offset=offset)

    @get("/{valet_id:uuid}", opt=VALET_USERS)
    async def read(self, principal: Caller, settings: SettingsDep, valet_id: FromPath[UUID]) -> valet.ValetView:
        return await valet.get_valet(settings, principal, valet_id)

    @post("/{valet_id:uuid}/retrieve", opt=VALET_USERS, status_code=200)
    async def retrieve(
        self, principal: Caller, redis: RedisDep, settings: SettingsDep, valet_id: FromPath[UUID]
    ) -> valet.ValetView:
        return await valet.request_retrieval(redis, settings, principal, valet_id)

    @patch("/{valet_id:uuid}", opt=GATE)
    async def update(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        valet_id: FromPath[UUID],
        data: JSONBody[valet.ValetUpdate],
    ) -> valet.ValetView:
        return await valet.update_valet(redis, settings, principal, valet_id, data)


ROUTES: list[ControllerRouterHandler] = [
    ResourceController,
    BookingController,
    SlotsController,
    PassController,
    ValetController,
]
