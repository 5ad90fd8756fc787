"""Event payloads the slots module publishes (see docs/slots.md for topics and types)."""

from __future__ import annotations

import datetime as dt
from typing import Final
from uuid import UUID

import msgspec

# site:{site_id}:slots
SLOT_AVAILABILITY_CHANGED: Final = "slot.availability_changed"  # one resource's new state
SLOT_COUNTS_CHANGED: Final = "slot.counts_changed"  # the site's per-type free-now counts
# user:{person_id} of the owner
BOOKING_CHANGED: Final = "booking.changed"
# user:{person_id} of the requester and unit:{unit_id}
VALET_STATUS_CHANGED: Final = "valet.status_changed"


class ResourceAvailability(msgspec.Struct, frozen=True, kw_only=True):
    resource_id: UUID
    code: str
    category: str  # amenity | ev_connector | parking_slot | valet
    # free | booked (a booking holds it now) | in_use (charging / sensor occupied) | out_of_service
    state: str
    live_status: str | None  # the charger's OCPP status or the sensor's occupied/vacant
    free_until: dt.datetime | None  # start of the next booking, when free now
    next_free_at: dt.datetime | None  # when not free now: the earliest time it is free again (if known)
    as_of: dt.datetime


class SiteCounts(msgspec.Struct, frozen=True, kw_only=True):
    ev_total: int
    ev_free_now: int
    parking_total: int
    parking_free_now: int
    visitor_parking_free_now: int
    amenity_total: int
    amenity_free_now: int
    as_of: dt.datetime


class CountsChanged(msgspec.Struct, frozen=True, kw_only=True):
    site_id: UUID
    counts: SiteCounts


class BookingChanged(msgspec.Struct, frozen=True, kw_only=True):
    booking_id: UUID
    resource_id: UUID
    status: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None = None


class ValetStatusChanged(msgspec.Struct, frozen=True, kw_only=True):
    valet_id: UUID
    status: str
    bay: str | None
    eta_at: dt.datetime | None
    updated_at: dt.datetime
