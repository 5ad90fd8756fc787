"""HTTP routes of the staff attendance module. Thin: parse, call the service, shape the reply."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import FromPath, JSONBody, Parameter

from app.attendance import config as cfg
from app.attendance import punches, sheet
from app.auth.principal import Principal
from app.auth.roles import STAFF, Role, allow
from app.deps import Caller, RedisDep, SettingsDep
from app.media import CSV
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, window

MANAGERS = allow(*STAFF)
GATE_STAFF = allow(Role.GUARD, *STAFF)
ON_STAFF = allow(Role.GUARD, Role.TECHNICIAN, *STAFF)  # people who may be on the staff list with an account
Month = Annotated[
    str | None, Parameter(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM; default: this month, site time")
]


async def _month(principal: Principal, month: str | None) -> str:
    if month is not None:
        return month
    zone = await sheet.site_zone(principal.site_id)
    return f"{dt.datetime.now(dt.UTC).astimezone(zone):%Y-%m}"


class MyAttendance(msgspec.Struct, frozen=True, kw_only=True):
    """The signed-in person's own attendance: whether they are on the staff list, in, and due today."""

    on_staff: bool
    name: str | None
    phone_check_in: bool  # the site has a geofence: check-in from this phone is possible
    inside: bool
    last_punch: punches.PunchView | None
    today: list[sheet.BoardRow]


class AttendanceController(Controller):
    path = "/api/attendance"
    tags = ["attendance"]

    # -- settings, shifts ------------------------------------------------------------------------
    @get("/settings", opt=MANAGERS)
    async def read_settings(self, principal: Caller) -> cfg.SettingsView:
        return cfg.settings_view(await cfg.load(principal.site_id))

    @put("/settings", opt=MANAGERS)
    async def write_settings(self, principal: Caller, data: JSONBody[cfg.SettingsInput]) -> cfg.SettingsView:
        return await cfg.save_settings(principal.site_id, data)

    @get("/shifts", opt=MANAGERS)
    async def shifts(self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Page[cfg.ShiftView]:
        return window(await cfg.list_shifts(principal.site_id), limit=limit, offset=offset)

    @post("/shifts", opt=MANAGERS)
    async def add_shift(self, principal: Caller, data: JSONBody[cfg.ShiftInput]) -> cfg.ShiftView:
        return await cfg.add_shift(principal.site_id, data)

    @put("/shifts/{shift_id:uuid}", opt=MANAGERS)
    async def put_shift(
        self, principal: Caller, shift_id: FromPath[UUID], data: JSONBody[cfg.ShiftInput]
    ) -> cfg.ShiftView:
        return await cfg.update_shift(principal.site_id, shift_id, data)

    # -- staff and rosters -----------------------------------------------------------------------
    @get("/staff", opt=GATE_STAFF)
    async def list_staff(
        self, principal: Caller, settings: SettingsDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[cfg.StaffView]:
        """Active staff by name; mobile numbers for FM staff only."""
        rows = await cfg.list_staff(principal.site_id)
        phones = cfg.may_see_phones(principal.roles)
        return window([cfg.staff_view(settings, row, show_phone=phones) for row in rows], limit=limit, offset=offset)

    @post("/staff", opt=MANAGERS)
    async def add_staff(
        self, principal: Caller, settings: SettingsDep, data: JSONBody[cfg.StaffInput]
    ) -> cfg.StaffView:
        return await cfg.add_staff(settings, principal.site_id, data)

    @get("/staff/{staff_id:uuid}", opt=MANAGERS)
    async def read_staff(self, principal: Caller, settings: SettingsDep, staff_id: FromPath[UUID]) -> cfg.StaffView:
        return cfg.staff_view(settings, await cfg.staff_row(principal.site_id, staff_id))

    @put("/staff/{staff_id:uuid}", opt=MANAGERS)
    async def put_staff(
        self, principal: Caller, settings: SettingsDep, staff_id: FromPath[UUID], data: JSONBody[cfg.StaffInput]
    ) -> cfg.StaffView:
        return await cfg.update_staff(settings, principal.site_id, staff_id, data)

    @get("/staff/{staff_id:uuid}/roster", opt=MANAGERS)
    async def roster(self, principal: Caller, staff_id: FromPath[UUID]) -> cfg.RosterView:
        """The weekly pattern: roster lines, and a technician's shifts from the complaints module (read-only here)."""
        return await cfg.get_roster(principal.site_id, staff_id)

    @put("/staff/{staff_id:uuid}/roster", opt=MANAGERS)
    async def put_roster(
        self, principal: Caller, staff_id: FromPath[UUID], data: JSONBody[cfg.RosterInput]
    ) -> cfg.RosterView:
        return await cfg.put_roster(principal.site_id, staff_id, data)

    # -- check-in and out ------------------------------------------------------------------------
    @post("/staff/{staff_id:uuid}/punch", opt=GATE_STAFF)
    async def gate_punch(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        staff_id: FromPath[UUID],
        data: JSONBody[punches.GatePunchInput],
    ) -> punches.PunchView:
        """A guard checks a staff member in or out at the gate."""
        return await punches.at_gate(settings, redis, principal, staff_id, data)

    @get("/me", opt=ON_STAFF)
    async def me(self, principal: Caller) -> MyAttendance:
        member = await cfg.staff_of_person(principal.site_id, principal.person_id)
        site = await cfg.load(principal.site_id)
        if member is None:
            return MyAttendance(
                on_staff=False, name=None, phone_check_in=False, inside=False, last_punch=None, today=[]
            )
        last = await punches.last_punch(member["id"])
        today = [row for row in await sheet.board(principal.site_id) if row.staff_id == member["id"]]
        return MyAttendance(
            on_staff=True,
            name=member["name"],
            phone_check_in=site.geofence is not None,
            inside=last is not None and last["kind"] == "in",
            last_punch=punches.punch_view(last) if last else None,
            today=today,
        )

    @post("/me/punch", opt=ON_STAFF)
    async def phone_punch(
        self, principal: Caller, settings: SettingsDep, redis: RedisDep, data: JSONBody[punches.PhonePunchInput]
    ) -> punches.PunchView:
        """Check in or out from this phone, inside the site's geofence: the position is used once, never stored."""
        return await punches.from_phone(settings, redis, principal, data)

    @post("/staff/{staff_id:uuid}/corrections", opt=MANAGERS)
    async def correct(
        self,
        principal: Caller,
        settings: SettingsDep,
        redis: RedisDep,
        staff_id: FromPath[UUID],
        data: JSONBody[punches.CorrectionInput],
    ) -> punches.PunchView:
        """Add a missed punch or void a wrong one, with the reason."""
        return await punches.correct(settings, redis, principal, staff_id, data)

    # -- the record ------------------------------------------------------------------------------
    @get("/board", opt=GATE_STAFF)
    async def board(self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Page[sheet.BoardRow]:
        """Today's duties, site time: not arrived and absent first; staff with no duty today as ``off``."""
        return window(await sheet.board(principal.site_id), limit=limit, offset=offset)

    @get("/staff/{staff_id:uuid}/punches", opt=MANAGERS)
    async def month_punches(
        self,
        principal: Caller,
        staff_id: FromPath[UUID],
        month: Month = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[punches.PunchView]:
        """The raw record of the month, voided punches too: what the sheet is computed from."""
        found = await sheet.punches_of_month(principal.site_id, staff_id, await _month(principal, month))
        return window(found, limit=limit, offset=offset)

    @get("/staff/{staff_id:uuid}/sheet", opt=MANAGERS)
    async def month_sheet(
        self, principal: Caller, settings: SettingsDep, staff_id: FromPath[UUID], month: Month = None
    ) -> sheet.Sheet:
        return await sheet.build_sheet(settings, principal.site_id, staff_id, await _month(principal, month))

    @get("/staff/{staff_id:uuid}/sheet.csv", opt=MANAGERS, media_type=CSV)
    async def month_sheet_csv(
        self, principal: Caller, settings: SettingsDep, staff_id: FromPath[UUID], month: Month = None
    ) -> Response[str]:
        chosen = await _month(principal, month)
        built = await sheet.build_sheet(settings, principal.site_id, staff_id, chosen)
        zone = await sheet.site_zone(principal.site_id)
        return Response(
            content=sheet.sheet_csv(built, zone),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="attendance-{staff_id}-{chosen}.csv"'},
        )
