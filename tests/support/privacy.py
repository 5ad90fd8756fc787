"""Helpers for the privacy tests: a person with data everywhere, and scanners that look for them
in every table, every file and every Redis key."""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from piccolo.columns import JSON, Text, Varchar
from piccolo.conf.apps import Finder
from redis.asyncio import Redis

from app.auth.roles import Role
from app.config import Settings
from app.people.directory import directory_for
from app.people.service import NewPerson, UnitLink, create_person
from app.privacy.registry import load_registries
from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.preferences import ConsentChange, QuietHours, change_consent, set_dnd
from notifications.service import NotificationRequest, create_notification
from realtime.publish import publish
from realtime.topics import site_topic, unit_topic, user_topic
from schema.notifications import Delivery
from schema.tables import Device
from tests.support import (
    ids_amc,
    ids_attendance,
    ids_billing,
    ids_complaints,
    ids_permits,
    ids_reports,
    ids_slots,
    ids_visitors,
)
from tests.support.world import PASSWORD, World, password_hash

MODULE_SEEDS = (ids_visitors, ids_complaints, ids_slots, ids_billing, ids_permits, ids_attendance, ids_amc, ids_reports)


@dataclass
class Subject:
    """A person and every identifier the erasure test looks for."""

    key: str  # their name in world.people
    person_id: UUID
    name: str
    mobile: str
    secondary_mobile: str
    email: str
    plate: str
    push_token: str
    indexes: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[str]:
        return [self.name, self.mobile, self.mobile[1:], self.secondary_mobile, self.email, self.plate]

    @property
    def needles(self) -> list[str]:
        return [*self.values, *self.indexes, self.push_token]


def _digits(count: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


async def make_subject(world: World) -> Subject:
    tag = secrets.token_hex(3)
    key = f"subject_{tag}"
    name = f"Zephyrine Quayle {tag.upper()}"
    subject = Subject(
        key=key,
        person_id=UUID(int=0),
        name=name,
        mobile=f"+9198{_digits(8)}",
        secondary_mobile=f"+9197{_digits(8)}",
        email=f"zq.{tag}@example.test",
        plate=f"KA{_digits(2)}ZQ{_digits(4)}",
        push_token=f"fcm-{secrets.token_hex(16)}",
    )
    directory = directory_for(world.settings)
    subject.person_id = await create_person(
        directory,
        world.site_id,
        NewPerson(
            full_name=name,
            roles=frozenset({Role.OCCUPANT}),
            primary_mobile=subject.mobile,
            secondary_mobile=subject.secondary_mobile,
            email=subject.email,
            password_hash=password_hash(),
            unit_links=[UnitLink(unit_id=world.unit_ids[0], relation="owner")],
            plates=[subject.plate],
        ),
    )
    world.people[key] = subject.person_id
    world.roles[key] = frozenset({Role.OCCUPANT})
    world.emails[key] = subject.email
    for value in subject.values:
        subject.indexes += directory.index_candidates(value)
        subject.indexes += directory.index_candidates(value.lower())
    return subject


async def seed_everywhere(world: World, subject: Subject, client: Any, redis: Redis, settings: Settings) -> None:
    """Data of the subject in every module, in Redis and in files (an export archive)."""
    person_id = subject.person_id
    # Core: a device; a login session (refresh token); a failed login (a throttle key keyed by them).
    await Device(site=world.site_id, person=person_id, platform="android", push_token=subject.push_token).save()
    login = await client.post(
        "/api/auth/login", json={"username": subject.email, "password": PASSWORD, "site": world.slug}
    )
    assert login.status_code in (200, 201), login.text
    failed = await client.post(
        "/api/auth/login", json={"username": subject.email, "password": "wrong password!", "site": world.slug}
    )
    assert failed.status_code == 401, failed.text
    # Notifications: consent and its history, DND, a message to them alone (in-app and SMS), one
    # to staff that names them.
    await change_consent(
        site_id=world.site_id,
        person_id=person_id,
        changes=[
            ConsentChange(channel=Channel.SMS, category=Category.PROMOTIONAL, granted=True),
            ConsentChange(channel=Channel.WHATSAPP, category=Category.ANNOUNCEMENT, granted=False),
        ],
        source="app",
        policy_version=settings.notify_policy_version,
    )
    await set_dnd(
        site_id=world.site_id,
        person_id=person_id,
        timezone="Asia/Kolkata",
        quiet_hours=[QuietHours(weekday=0, start="22:00", end="07:00")],
        snooze_until=None,
    )
    own, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title=f"Parcel for {subject.name}",
            body=f"Courier at the gate for {subject.name}; call {subject.mobile}",
            category=Category.VISITOR,
            audience=Audience(person_ids=[person_id]),
            channels=[Channel.IN_APP, Channel.SMS],
        ),
        kind="event",
        data={"plate": subject.plate},
    )
    await Delivery(site=world.site_id, notification=own, person=person_id, channel="in_app", status="read").save()
    await Delivery(site=world.site_id, notification=own, person=person_id, channel="sms", status="delivered").save()
    staff, _ = await create_notification(
        site_id=world.site_id,
        request=NotificationRequest(
            title="New complaint",
            body=f"{subject.name} of A-101 reports a leak; reach them at {subject.email}",
            category=Category.COMPLAINT,
            audience=Audience(person_ids=[world.people["fm_admin"], person_id]),
            channels=[Channel.IN_APP],
        ),
        kind="event",
    )
    await Delivery(
        site=world.site_id, notification=staff, person=world.people["fm_admin"], channel="in_app", status="sent"
    ).save()
    # Redis: realtime histories naming them, a cache keyed by them, a queue and a hash holding them.
    await publish(
        redis, settings, user_topic(person_id), "notification.created", {"title": f"Parcel for {subject.name}"}
    )
    await publish(redis, settings, unit_topic(world.unit_ids[0]), "visitor.approved", {"by": subject.name})
    await publish(redis, settings, site_topic(world.site_id, "gate"), "vehicle.entered", {"plate": subject.plate})
    prefix = settings.redis_prefix
    await redis.set(f"{prefix}cache:person:{person_id}", json.dumps({"name": subject.name, "mobile": subject.mobile}))
    await redis.rpush(f"{prefix}queue:test-sms-retry", json.dumps({"to": subject.mobile}), json.dumps({"to": "+10000"}))
    await redis.hset(f"{prefix}cache:test-plates", mapping={subject.plate: "1", "OTHER123": "2"})
    # Privacy: a correction request in their own words; staff reading their record (audit trail).
    filed = await client.post(
        "/api/me/data-requests",
        json={"kind": "correction", "details": f"My second number is {subject.secondary_mobile}"},
        headers=world.headers(subject.key),
    )
    assert filed.status_code == 201, filed.text
    read = await client.get(f"/api/occupants/{person_id}", headers=world.headers("fm_admin"))
    assert read.status_code == 200, read.text
    # Every other module's own data of them.
    for module in MODULE_SEEDS:
        await module.seed_person_data(world, person_id)


# ------------------------------------------------------------------------------ scanners


@dataclass(frozen=True)
class Hit:
    where: str  # "table.column", "file:<path>", "redis:<key>"
    needle: str


def _found(text: str, needles: list[str]) -> list[str]:
    lowered = text.lower()
    return [n for n in needles if n and n.lower() in lowered]


def held_columns() -> set[str]:
    sections, _ = load_registries()
    return {column for section in sections.values() for column in section.held_columns}


async def scan_database(needles: list[str]) -> list[Hit]:
    """Every text, varchar and JSON column of every table of the app, read raw (no decryption)."""
    hits: list[Hit] = []
    for table in Finder().get_app_config("opshub").table_classes:
        columns = [c for c in table._meta.columns if isinstance(c, Varchar | Text | JSON)]
        if not columns:
            continue
        names = ", ".join(f'"{c._meta.db_column_name}"' for c in columns)
        rows = await table.raw(f'SELECT {names} FROM "{table._meta.tablename}"')
        for row in rows:
            for column in columns:
                value = row[column._meta.db_column_name]
                if value is None:
                    continue
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                hits += [Hit(f"{table._meta.tablename}.{column._meta.name}", n) for n in _found(text, needles)]
    return hits


def _file_texts(path: Path) -> list[tuple[str, str]]:
    content = path.read_bytes()
    texts = [(str(path), str(path)), (str(path), content.decode("utf-8", "replace"))]
    if zipfile.is_zipfile(io.BytesIO(content)):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for member in archive.namelist():
                texts.append((f"{path}!{member}", archive.read(member).decode("utf-8", "replace")))
    return texts


def scan_files(settings: Settings, needles: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    for root in (settings.upload_path, settings.export_path):
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if path.is_file():
                for where, text in _file_texts(path):
                    hits += [Hit(f"file:{where}", n) for n in _found(text, needles)]
    return hits


async def redis_dump(redis: Redis, settings: Settings) -> dict[str, str]:
    """Every key under the run's prefix with its whole value as text."""
    dump: dict[str, str] = {}
    async for raw in redis.scan_iter(match=f"{settings.redis_prefix}*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        kind = (await redis.type(raw)).decode()
        value: Any
        if kind == "string":
            value = await redis.get(raw)
        elif kind == "hash":
            value = await redis.hgetall(raw)  # type: ignore[misc]
        elif kind == "list":
            value = await redis.lrange(raw, 0, -1)  # type: ignore[misc]
        elif kind == "set":
            value = await redis.smembers(raw)  # type: ignore[misc]
        elif kind == "zset":
            value = await redis.zrange(raw, 0, -1)
        elif kind == "stream":
            value = await redis.xrange(raw)
        else:
            value = kind
        dump[key] = repr(value)
    return dump


async def scan_redis(redis: Redis, settings: Settings, needles: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    for key, value in (await redis_dump(redis, settings)).items():
        hits += [Hit(f"redis:{key}", n) for n in _found(key + " " + value, needles)]
    return hits
