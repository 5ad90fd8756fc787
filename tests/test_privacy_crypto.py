"""Encryption at rest: no plaintext in the database, lookups by blind index, and key rotation
(old data readable after a new key takes over; the re-encrypt job moves it to the new key)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
from cryptography.fernet import Fernet, MultiFernet

from app.people.directory import directory_for
from app.privacy.rotation import encrypted_columns, reencrypt_all
from app.security.crypto import GCM_PREFIX, parse_fernet_keys
from schema.tables import ContactPoint, Vehicle
from tests.support.privacy import make_subject, scan_database
from tests.support.world import World
from workers import privacy_jobs


async def test_the_raw_database_holds_no_plaintext_phone_number(world: World, settings: Any) -> None:
    subject = await make_subject(world)
    hits = await scan_database(
        [subject.mobile, subject.mobile[1:], subject.secondary_mobile, subject.email, subject.plate]
    )
    assert hits == []
    # ...and yet the directory finds and shows them: blind-index lookups, decryption on read.
    directory = directory_for(settings)
    assert await directory.find_by_phone(subject.mobile, world.site_id) == [subject.person_id]
    assert await directory.find_by_plate(subject.plate.lower(), world.site_id) == [subject.person_id]
    shown = await directory.contact_points_for(world.site_id, [subject.person_id])
    assert {c.value for c in shown[subject.person_id]} == {subject.mobile, subject.secondary_mobile, subject.email}


def test_every_encrypted_column_is_found_by_convention() -> None:
    found = {(t._meta.tablename, c._meta.name) for t, c in encrypted_columns()}
    assert {("contact_point", "value_encrypted"), ("vehicle", "plate_encrypted")} <= found
    assert ("data_rights_request", "identifiers_encrypted") in found


async def test_key_rotation_keeps_old_data_readable_and_the_job_moves_it_to_the_new_key(
    world: World, settings: Any, redis: Any
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = msgspec.structs.replace(settings, data_encryption_keys=old_key)
    # The world's other people were written under the suite's key: it stays configured while rotating.
    rotating = msgspec.structs.replace(
        settings, data_encryption_keys=f"{new_key},{old_key},{settings.data_encryption_keys}"
    )
    new_only = msgspec.structs.replace(settings, data_encryption_keys=new_key)
    old_world = World(
        settings=old, site_id=world.site_id, slug=world.slug, building_ids=world.building_ids, unit_ids=world.unit_ids
    )
    subject = await make_subject(old_world)  # written under the old key

    def raw_values() -> Any:
        return ContactPoint.select(ContactPoint.value_encrypted).where(ContactPoint.person == subject.person_id)

    before = {r["value_encrypted"] for r in await raw_values()}
    with pytest.raises(ValueError):
        await directory_for(new_only).contact_points_for(world.site_id, [subject.person_id])
    # Without the old key the job cannot read those values: it reports them and leaves them intact.
    blind = await reencrypt_all(directory_for(new_only).cipher, site_id=world.site_id)
    assert blind["contact_point.value_encrypted:unreadable"] >= 3
    assert {r["value_encrypted"] for r in await raw_values()} == before

    # The new key is deployed first: what the old key wrote is still readable, new writes use the new key.
    directory = directory_for(rotating)
    shown = await directory.contact_points_for(world.site_id, [subject.person_id])
    assert {c.value for c in shown[subject.person_id]} == {subject.mobile, subject.secondary_mobile, subject.email}
    assert (await directory.vehicles_for(world.site_id, [subject.person_id]))[subject.person_id][
        0
    ].plate == subject.plate

    # The re-encrypt job (here scoped to this test's site) moves everything to the new key.
    rotated = await privacy_jobs.privacy_reencrypt({"settings": rotating, "redis": redis}, str(world.site_id))
    people = len(world.people) + 1
    assert rotated["contact_point.value_encrypted"] == people + 2  # every email, and the subject's two mobiles
    assert rotated["vehicle.plate_encrypted"] == 1
    assert not [name for name in rotated if name.endswith(":unreadable")]
    after = {r["value_encrypted"] for r in await raw_values()}
    assert after.isdisjoint(before)
    # Decrypting with only the new key now works: the old key can be dropped.
    only_new = directory_for(new_only)
    shown = await only_new.contact_points_for(world.site_id, [subject.person_id])
    assert {c.value for c in shown[subject.person_id]} == {subject.mobile, subject.secondary_mobile, subject.email}
    assert (await only_new.vehicles_for(world.site_id, [subject.person_id]))[subject.person_id][
        0
    ].plate == subject.plate
    # Lookups by blind index are unaffected by the rotation.
    assert await only_new.find_by_phone(subject.mobile, world.site_id) == [subject.person_id]
    # Safe to re-run: nothing left to rotate, nothing changes.
    again = await reencrypt_all(directory_for(rotating).cipher, site_id=world.site_id)
    assert again["contact_point.value_encrypted"] == 0 and again["vehicle.plate_encrypted"] == 0
    assert {r["value_encrypted"] for r in await raw_values()} == after
    plates = await Vehicle.select(Vehicle.plate_encrypted).where(Vehicle.person == subject.person_id)
    assert directory_for(new_only).cipher.is_current(plates[0]["plate_encrypted"])


def test_values_are_sealed_with_aes_gcm_and_a_changed_byte_is_refused(settings: Any) -> None:
    cipher = directory_for(settings).cipher
    sealed = cipher.encrypt("+919845012345")
    assert sealed.startswith(GCM_PREFIX) and "9845012345" not in sealed
    assert cipher.decrypt(sealed) == "+919845012345"
    assert cipher.encrypt("+919845012345") != sealed, "a fresh nonce for every value"
    raw = bytearray(base64.b64decode(sealed[len(GCM_PREFIX) :]))
    raw[-1] ^= 1
    with pytest.raises(ValueError):
        cipher.decrypt(GCM_PREFIX + base64.b64encode(bytes(raw)).decode())
    for unreadable in (GCM_PREFIX, GCM_PREFIX + "not base64!", GCM_PREFIX + "AAAA"):
        with pytest.raises(ValueError):
            cipher.decrypt(unreadable)


async def test_values_written_as_fernet_tokens_stay_readable_and_the_job_rewrites_them(
    world: World, settings: Any, redis: Any
) -> None:
    """Before 2026-12 personal values were Fernet tokens under the same keys."""
    subject = await make_subject(world)
    directory = directory_for(settings)
    fernet = MultiFernet(parse_fernet_keys(settings.data_encryption_keys))
    rows = await ContactPoint.select(ContactPoint.id, ContactPoint.value_encrypted).where(
        ContactPoint.person == subject.person_id
    )
    for row in rows:
        legacy = fernet.encrypt(directory.cipher.decrypt(row["value_encrypted"]).encode()).decode()
        await ContactPoint.update({ContactPoint.value_encrypted: legacy}).where(ContactPoint.id == row["id"])
    shown = await directory.contact_points_for(world.site_id, [subject.person_id])
    assert {c.value for c in shown[subject.person_id]} == {subject.mobile, subject.secondary_mobile, subject.email}

    rotated = await privacy_jobs.privacy_reencrypt({"settings": settings, "redis": redis}, str(world.site_id))
    assert rotated["contact_point.value_encrypted"] == len(rows)
    after = await ContactPoint.select(ContactPoint.value_encrypted).where(ContactPoint.person == subject.person_id)
    assert all(directory.cipher.is_current(row["value_encrypted"]) for row in after)
    shown = await directory.contact_points_for(world.site_id, [subject.person_id])
    assert {c.value for c in shown[subject.person_id]} == {subject.mobile, subject.secondary_mobile, subject.email}


async def test_reencrypt_is_for_platform_admins(client: Any, world: World) -> None:
    response = await client.post("/api/platform/privacy/reencrypt", headers=world.headers("platform_admin"))
    assert response.status_code == 202 and response.json()["job"] == "privacy_reencrypt"
    refused = await client.post("/api/platform/privacy/reencrypt", headers=world.headers("site_admin"))
    assert refused.status_code == 403
