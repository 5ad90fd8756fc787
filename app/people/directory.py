"""The one place where personal identifiers are written, read and looked up.

Phone numbers, emails and plates are stored encrypted, with a keyed blind index for
equality lookups (see ``app.security.crypto``). Nothing else queries those columns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Literal
from uuid import UUID

import msgspec

from app.config import Settings
from app.db import any_of, fetch_rows
from app.people.normalise import normalise_email, normalise_phone, normalise_plate
from app.privacy import audit
from app.security.crypto import PiiCipher
from schema.tables import ContactPoint, Vehicle

ContactKind = Literal["mobile", "email"]
ContactLabel = Literal["primary", "secondary"]


@lru_cache(maxsize=4)
def _cipher(encryption_keys: str, blind_index_key: str) -> PiiCipher:
    return PiiCipher(encryption_keys, blind_index_key)


def cipher_for(settings: Settings) -> PiiCipher:
    return _cipher(settings.data_encryption_keys, settings.blind_index_key)


class ContactPointView(msgspec.Struct, frozen=True):
    kind: ContactKind
    label: ContactLabel
    value: str
    status: str


class ChosenContact(msgspec.Struct, frozen=True, gc=False):
    """The contact point of a kind that a message goes to (the primary; the secondary only without one):
    its blind index and status, and its value where it was asked to be read (decrypted), or kept sealed (still
    encrypted, for :meth:`Directory.open_contacts` to read later, of only the people it turns out to need)."""

    index: str
    status: str
    value: str | None = None
    sealed: str | None = None


class VehicleView(msgspec.Struct, frozen=True):
    id: UUID
    plate: str
    kind: str


class PersonMatch(msgspec.Struct, frozen=True):
    person_id: UUID
    site_id: UUID


class Directory:
    def __init__(self, cipher: PiiCipher) -> None:
        self._cipher = cipher

    # Index computation is public so bulk code (import) can match many rows in one query.
    def contact_index(self, kind: ContactKind, normalised_value: str) -> str:
        return self._cipher.blind_index(kind, normalised_value)

    def plate_index(self, normalised_plate: str) -> str:
        return self._cipher.blind_index("plate", normalised_plate)

    async def find_by_contact(
        self, kind: ContactKind, normalised_value: str, site_id: UUID | None = None
    ) -> list[PersonMatch]:
        """People whose mobile/email equals the value; in one site, or in every site (login)."""
        query = ContactPoint.select(ContactPoint.person, ContactPoint.site).where(
            (ContactPoint.kind == kind) & (ContactPoint.value_index == self.contact_index(kind, normalised_value))
        )
        if site_id is not None:
            query = query.where(ContactPoint.site == site_id)
        rows = await query
        unique = {(row["person"], row["site"]) for row in rows}
        return [PersonMatch(person_id=p, site_id=s) for p, s in sorted(unique, key=str)]

    async def find_by_phone(self, raw_phone: str, site_id: UUID, default_region: str = "IN") -> list[UUID]:
        matches = await self.find_by_contact("mobile", normalise_phone(raw_phone, default_region), site_id)
        return [m.person_id for m in matches]

    async def find_by_email(self, raw_email: str, site_id: UUID) -> list[UUID]:
        matches = await self.find_by_contact("email", normalise_email(raw_email), site_id)
        return [m.person_id for m in matches]

    async def find_by_plate(self, raw_plate: str, site_id: UUID) -> list[UUID]:
        rows = await Vehicle.select(Vehicle.person).where(
            (Vehicle.site == site_id) & (Vehicle.plate_index == self.plate_index(normalise_plate(raw_plate)))
        )
        return sorted({row["person"] for row in rows}, key=str)

    def contact_point_row(
        self, *, site_id: UUID, person_id: UUID, kind: ContactKind, label: ContactLabel, value: str
    ) -> ContactPoint:
        """An unsaved row; ``value`` must already be normalised."""
        return ContactPoint(
            site=site_id,
            person=person_id,
            kind=kind,
            label=label,
            value_encrypted=self._cipher.encrypt(value),
            value_index=self.contact_index(kind, value),
        )

    async def set_contact_point(
        self, *, site_id: UUID, person_id: UUID, kind: ContactKind, label: ContactLabel, value: str | None
    ) -> None:
        """Replace (or with None, remove) one contact point. Value must already be normalised."""
        await ContactPoint.delete().where(
            (ContactPoint.site == site_id)
            & (ContactPoint.person == person_id)
            & (ContactPoint.kind == kind)
            & (ContactPoint.label == label)
        )
        if value is not None:
            row = self.contact_point_row(site_id=site_id, person_id=person_id, kind=kind, label=label, value=value)
            await row.save()
        await audit.record(site_id, [person_id], "write", "contact_points")

    async def contact_points_for(
        self, site_id: UUID, person_ids: Iterable[UUID], kinds: Iterable[ContactKind] | None = None
    ) -> dict[UUID, list[ContactPointView]]:
        """Each person's contact points with their values (decrypted, and the read audited); only of
        ``kinds`` when given."""
        ids = list(person_ids)
        result: dict[UUID, list[ContactPointView]] = defaultdict(list)
        if not ids:
            return result
        query = ContactPoint.select(
            ContactPoint.person,
            ContactPoint.kind,
            ContactPoint.label,
            ContactPoint.value_encrypted,
            ContactPoint.status,
        ).where((ContactPoint.site == site_id) & ContactPoint.person.is_in(ids))
        if kinds is not None:
            query = query.where(ContactPoint.kind.is_in(list(kinds)))
        rows = await query
        for row in rows:
            result[row["person"]].append(
                ContactPointView(
                    kind=row["kind"],
                    label=row["label"],
                    value=self._cipher.decrypt(row["value_encrypted"]),
                    status=row["status"],
                )
            )
        for views in result.values():
            views.sort(key=lambda v: (v.kind, v.label))
        await audit.record(site_id, result.keys(), "read", "contact_points")
        return result

    async def chosen_contacts_for(
        self,
        site_id: UUID,
        person_ids: Iterable[UUID],
        *,
        kinds: Iterable[ContactKind] = ("mobile", "email"),
        read: Iterable[ContactKind] = (),
        keep_sealed: Iterable[ContactKind] = (),
    ) -> dict[UUID, dict[str, ChosenContact]]:
        """Each person's chosen contact point of each of ``kinds``, in one query: whether a message can reach
        them, and their index to match the NCPR list. Values are read (decrypted, and the read audited) only
        of the kinds in ``read``, and only of the chosen point. Of the kinds in ``keep_sealed`` the value is
        kept encrypted: a sender decides first, then opens the values of just the people it sends to."""
        ids = list(person_ids)
        result: dict[UUID, dict[str, ChosenContact]] = {}
        wanted = sorted(set(kinds))
        if not ids or not wanted:
            return result
        people, params = any_of("person", ids)
        rows = await fetch_rows(
            "contact_point",
            ("person", "kind", "label", "value_index", "status", "value_encrypted"),
            f"WHERE site = {{}} AND {people} AND kind IN ({', '.join('{}' for _ in wanted)})",
            site_id,
            *params,
            *wanted,
        )
        kinds, sealed = set(read), set(keep_sealed)
        encrypted: dict[tuple[UUID, str], str] = {}
        for row in sorted(rows, key=lambda row: str(row["label"])):  # primary before secondary
            chosen = result.setdefault(row["person"], {})
            if row["kind"] in chosen:
                continue
            chosen[row["kind"]] = ChosenContact(
                index=row["value_index"],
                status=row["status"],
                sealed=row["value_encrypted"] if row["kind"] in sealed else None,
            )
            if row["kind"] in kinds:
                encrypted[(row["person"], row["kind"])] = row["value_encrypted"]
        for (person_id, kind), value in encrypted.items():
            point = result[person_id][kind]
            result[person_id][kind] = ChosenContact(
                index=point.index, status=point.status, value=self._cipher.decrypt(value)
            )
        if encrypted:
            await audit.record(site_id, dict.fromkeys(p for p, _ in encrypted), "read", "contact_points")
        return result

    async def open_contacts(self, site_id: UUID, sealed: Mapping[UUID, str]) -> dict[UUID, str]:
        """The values of contact points kept sealed by :meth:`chosen_contacts_for` (one per person), decrypted;
        the read is audited as :meth:`chosen_contacts_for`'s are."""
        opened = {person_id: self._cipher.decrypt(value) for person_id, value in sealed.items()}
        if opened:
            await audit.record(site_id, opened, "read", "contact_points")
        return opened

    def vehicle_row(self, *, site_id: UUID, person_id: UUID, plate: str, kind: str = "car") -> Vehicle:
        normalised = normalise_plate(plate)
        return Vehicle(
            site=site_id,
            person=person_id,
            plate_encrypted=self._cipher.encrypt(normalised),
            plate_index=self.plate_index(normalised),
            kind=kind,
        )

    async def vehicles_for(self, site_id: UUID, person_ids: Iterable[UUID]) -> dict[UUID, list[VehicleView]]:
        ids = list(person_ids)
        result: dict[UUID, list[VehicleView]] = defaultdict(list)
        if not ids:
            return result
        rows = await Vehicle.select(Vehicle.id, Vehicle.person, Vehicle.plate_encrypted, Vehicle.kind).where(
            (Vehicle.site == site_id) & Vehicle.person.is_in(ids)
        )
        for row in rows:
            result[row["person"]].append(
                VehicleView(id=row["id"], plate=self._cipher.decrypt(row["plate_encrypted"]), kind=row["kind"])
            )
        await audit.record(site_id, result.keys(), "read", "vehicles")
        return result

    # Bulk helpers for the occupant listing and its importer: one query per 500 values, not one per row.
    async def people_by_contacts(
        self, site_id: UUID, kind: ContactKind, normalised_values: Iterable[str], label: ContactLabel | None = None
    ) -> dict[str, set[UUID]]:
        """Many ``find_by_contact`` lookups in one site at once: each normalised value -> the people holding it."""
        by_index = {self.contact_index(kind, value): value for value in set(normalised_values)}
        indexes = list(by_index)
        found: dict[str, set[UUID]] = defaultdict(set)
        for start in range(0, len(indexes), 500):
            query = ContactPoint.select(ContactPoint.person, ContactPoint.value_index).where(
                (ContactPoint.site == site_id)
                & (ContactPoint.kind == kind)
                & ContactPoint.value_index.is_in(indexes[start : start + 500])
            )
            if label is not None:
                query = query.where(ContactPoint.label == label)
            for row in await query:
                found[by_index[row["value_index"]]].add(row["person"])
        return dict(found)

    async def replace_contact_points(
        self, site_id: UUID, changes: Iterable[tuple[UUID, ContactKind, ContactLabel, str | None]]
    ) -> None:
        """Many ``set_contact_point`` calls at once: (person, kind, label, normalised value or None to remove)."""
        removals: dict[tuple[ContactKind, ContactLabel], list[UUID]] = defaultdict(list)
        rows: list[ContactPoint] = []
        for person_id, kind, label, value in changes:
            removals[(kind, label)].append(person_id)
            if value is not None:
                rows.append(
                    self.contact_point_row(site_id=site_id, person_id=person_id, kind=kind, label=label, value=value)
                )
        for (kind, label), person_ids in removals.items():
            for start in range(0, len(person_ids), 500):
                await ContactPoint.delete().where(
                    (ContactPoint.site == site_id)
                    & ContactPoint.person.is_in(person_ids[start : start + 500])
                    & (ContactPoint.kind == kind)
                    & (ContactPoint.label == label)
                )
        for start in range(0, len(rows), 500):
            await ContactPoint.insert(*rows[start : start + 500])
        await audit.record(
            site_id,
            [person_id for person_ids in removals.values() for person_id in person_ids],
            "write",
            "contact_points",
        )

    async def replace_vehicles(
        self, site_id: UUID, *, remove_ids: Iterable[UUID], add: Iterable[tuple[UUID, str]]
    ) -> None:
        """Remove vehicles by id and add (person, plate) pairs, in bulk."""
        doomed = list(remove_ids)
        owners: list[UUID] = []
        for start in range(0, len(doomed), 500):
            chunk = doomed[start : start + 500]
            owners += [
                r["person"]
                for r in await Vehicle.select(Vehicle.person).where((Vehicle.site == site_id) & Vehicle.id.is_in(chunk))
            ]
            await Vehicle.delete().where((Vehicle.site == site_id) & Vehicle.id.is_in(chunk))
        rows = [self.vehicle_row(site_id=site_id, person_id=person_id, plate=plate) for person_id, plate in add]
        for start in range(0, len(rows), 500):
            await Vehicle.insert(*rows[start : start + 500])
        await audit.record(site_id, [*owners, *(row.person for row in rows)], "write", "vehicles")

    # Privacy helpers: one person's rows with their values, for export and erasure.
    async def contact_point_rows(self, site_id: UUID, person_id: UUID) -> list[dict[str, object]]:
        rows = await ContactPoint.select().where((ContactPoint.site == site_id) & (ContactPoint.person == person_id))
        await audit.record(site_id, [person_id], "read", "contact_points")
        return [
            {
                "id": row["id"],
                "kind": row["kind"],
                "label": row["label"],
                "value": self._cipher.decrypt(row["value_encrypted"]),
                "value_index": row["value_index"],
                "status": row["status"],
                "created_at": row["created_at"],
            }
            for row in rows
        ]

    async def vehicle_rows(self, site_id: UUID, person_id: UUID) -> list[dict[str, object]]:
        rows = await Vehicle.select().where((Vehicle.site == site_id) & (Vehicle.person == person_id))
        await audit.record(site_id, [person_id], "read", "vehicles")
        return [
            {
                "id": row["id"],
                "plate": self._cipher.decrypt(row["plate_encrypted"]),
                "plate_index": row["plate_index"],
                "kind": row["kind"],
                "unit_id": row["unit"],
                "created_at": row["created_at"],
            }
            for row in rows
        ]

    def index_candidates(self, value: str) -> list[str]:
        """Every blind index a value could have been stored or keyed under (any kind)."""
        return [self._cipher.blind_index(kind, value) for kind in ("mobile", "email", "plate")]

    @property
    def cipher(self) -> PiiCipher:
        return self._cipher


def directory_for(settings: Settings) -> Directory:
    return Directory(cipher_for(settings))
