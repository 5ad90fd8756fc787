"""Erasure (the right to be forgotten): review with legal holds, approval, and the erasure job.

1. The person (or a site admin for them) files an ``erasure`` request.
2. A site admin reviews it: ``review`` lists every registered section with how many rows it holds
   for the person and the legal holds that will keep some of it (billing, request records, ...),
   and records that it was reviewed (``reviewed_at``).
3. ``approve`` needs both earlier steps, the request acknowledged and the review opened, and
   otherwise answers 409 naming the missing step (``missing_step``); it records the holds shown
   and the decision; the arq job ``privacy_erase`` runs ``run_erasure``, which is safe to re-run until it completes:
   - the person's identifiers (name, contact values, plates and their blind indexes) are captured
     first and kept encrypted on the request while the job runs, so a re-run still knows them;
   - every section's ``erase`` runs, in reverse order of registration (core last: the person row
     goes after everything that refers to it);
   - Redis is swept (``scrub_redis``): realtime histories of the person's topic and of any topic
     whose history mentions them, caches, queues, throttles and token revocations keyed by them;
   - the person's still-valid access tokens are refused from then on;
   - the request keeps ids, dates, per-section counts and the holds; its free text is blanked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Final
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.config import Settings
from app.errors import Conflict, InvalidInput
from app.people.directory import Directory
from app.privacy import audit
from app.privacy.redact import contains_any
from app.privacy.registry import ErasureOutcome, PersonalDataSection, PersonScope, load_registries
from app.privacy.requests import DataRequestView, _row, get_request, now_utc
from schema.privacy import DataRightsRequest
from schema.tables import Person

logger = logging.getLogger("opshub.privacy.erasure")

# Realtime history keys: "<prefix>rt:{<topic>}:hist" and its sibling ":meta".
_RT_SUFFIXES: Final = (":hist", ":meta")


class SectionReview(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    rows: int
    legal_hold: str | None


class ErasureReview(msgspec.Struct, frozen=True, kw_only=True):
    request: DataRequestView
    person_name: str | None
    sections: list[SectionReview]
    legal_holds: list[str]  # what will be kept, and why


def _scope(settings: Settings, redis: Redis, directory: Directory, site_id: UUID, person_id: UUID) -> PersonScope:
    return PersonScope(site_id=site_id, person_id=person_id, settings=settings, directory=directory, redis=redis)


def _holds(sections: dict[str, PersonalDataSection]) -> list[str]:
    return [f"{name}: {section.legal_hold}" for name, section in sections.items() if section.legal_hold]


async def _erasure_row(site_id: UUID, request_id: UUID) -> dict[str, Any]:
    row = await _row(site_id, request_id)
    if row["kind"] != "erasure":
        raise InvalidInput.for_field("request_id", "is not an erasure request")
    return row


async def review(
    settings: Settings,
    redis: Redis,
    directory: Directory,
    site_id: UUID,
    request_id: UUID,
    reviewer_id: UUID | None = None,
    now: dt.datetime | None = None,
) -> ErasureReview:
    row = await _erasure_row(site_id, request_id)
    if reviewer_id is not None and row["status"] in ("open", "acknowledged"):
        # Approval is refused until this has been seen (legal holds included).
        await DataRightsRequest.update(
            {DataRightsRequest.reviewed_at: now or now_utc(), DataRightsRequest.reviewed_by: reviewer_id}
        ).where(DataRightsRequest.id == request_id)
    sections, _ = load_registries()
    scope = _scope(settings, redis, directory, site_id, row["person_id"])
    reviewed = []
    for name, section in sections.items():
        rows = await section.export(scope) if row["completed_at"] is None else []
        reviewed.append(
            SectionReview(name=name, description=section.description, rows=len(rows), legal_hold=section.legal_hold)
        )
    person = await Person.select(Person.full_name).where(Person.id == row["person_id"]).first()
    return ErasureReview(
        request=await get_request(site_id, request_id),
        person_name=person["full_name"] if person else None,
        sections=reviewed,
        legal_holds=_holds(sections),
    )


async def approve(
    site_id: UUID, request_id: UUID, actor_id: UUID, note: str = "", now: dt.datetime | None = None
) -> DataRequestView:
    """Record the decision with the holds shown; the caller enqueues ``privacy_erase``."""
    now = now or now_utc()
    row = await _erasure_row(site_id, request_id)
    if row["status"] in ("completed", "rejected"):
        raise Conflict(f"request is already {row['status']}")
    if row["status"] in ("approved", "erasing"):
        return await get_request(site_id, request_id)
    # The order is the safeguard: acknowledged (the clock is honoured), then reviewed (the holds seen).
    for missing, done in (("acknowledge", row["acknowledged_at"]), ("erasure-review", row.get("reviewed_at"))):
        if done is None:
            raise Conflict(
                f"the request must pass '{missing}' before it can be approved",
                extra={"missing_step": missing, "status": row["status"]},
            )
    sections, _ = load_registries()
    await DataRightsRequest.update(
        {
            DataRightsRequest.status: "approved",
            DataRightsRequest.approved_at: now,
            DataRightsRequest.handled_by: actor_id,
            DataRightsRequest.resolution: note,
            DataRightsRequest.legal_holds: _holds(sections),
        }
    ).where(DataRightsRequest.id == request_id)
    return await get_request(site_id, request_id)


# ------------------------------------------------------------------------------ identifiers


async def person_identifiers(directory: Directory, site_id: UUID, person_id: UUID) -> list[str]:
    """Everything that identifies the person in text: name, contact values, plates, and every blind
    index those values could be stored or keyed under, plus the person id itself."""
    values: list[str] = []
    person = await Person.select(Person.full_name).where(Person.id == person_id).first()
    if person and person["full_name"]:
        values.append(person["full_name"])
    indexes: list[str] = []
    for contact in await directory.contact_point_rows(site_id, person_id):
        values.append(str(contact["value"]))
        indexes.append(str(contact["value_index"]))
        if contact["kind"] == "mobile" and str(contact["value"]).startswith("+"):
            values.append(str(contact["value"])[1:])  # the digits, as a provider or a log may write them
    for vehicle in await directory.vehicle_rows(site_id, person_id):
        values.append(str(vehicle["plate"]))
        indexes.append(str(vehicle["plate_index"]))
    for value in list(values):
        indexes += directory.index_candidates(value)
        indexes += directory.index_candidates(value.lower())
        escaped = json.dumps(value)[1:-1]
        if escaped != value:  # a non-ASCII name as ``json.dumps`` writes it in a cache
            values.append(escaped)
    return list(dict.fromkeys([str(person_id), *values, *indexes]))


# ------------------------------------------------------------------------------ Redis


async def _members_matching(redis: Any, key: bytes, kind: bytes, needles: list[str]) -> list[bytes]:
    if kind == b"list":
        items = await redis.lrange(key, 0, -1)
    elif kind == b"set":
        items = list(await redis.smembers(key))
    elif kind == b"zset":
        items = await redis.zrange(key, 0, -1)
    else:
        return []
    return [item for item in items if contains_any(item, needles)]


async def scrub_redis(redis: Redis, settings: Settings, needles: list[str]) -> int:
    """Delete (or remove members of) every key under the prefix that names or holds the person.

    Realtime histories are deleted with their meta key, so a client resuming such a topic is told
    to resync rather than served a history with holes.
    """
    removed = 0
    prefix = settings.redis_prefix
    # Keys and members are handled as the bytes Redis returns (the typed signatures say str).
    client: Any = redis
    async for raw_key in client.scan_iter(match=f"{prefix}*", count=500):
        key = raw_key if isinstance(raw_key, bytes) else str(raw_key).encode()
        kind = await client.type(key)
        kind = kind if isinstance(kind, bytes) else str(kind).encode()
        doomed = contains_any(key, needles)
        if not doomed and kind == b"string":
            doomed = contains_any(await client.get(key), needles)
        elif not doomed and kind == b"hash":
            fields = await client.hgetall(key)
            matching = [f for f, v in fields.items() if contains_any(f, needles) or contains_any(v, needles)]
            if matching:
                removed += int(await client.hdel(key, *matching))
        elif not doomed and kind == b"stream":
            entries = await client.xrange(key)
            doomed = any(contains_any(b" ".join(fields.values()), needles) for _, fields in entries)
        elif not doomed and kind in (b"list", b"set", b"zset"):
            for member in await _members_matching(client, key, kind, needles):
                if kind == b"list":
                    removed += int(await client.lrem(key, 0, member))
                elif kind == b"set":
                    removed += int(await client.srem(key, member))
                else:
                    removed += int(await client.zrem(key, member))
        if doomed:
            keys = [key]
            for suffix in _RT_SUFFIXES:
                if key.endswith(suffix.encode()) and key.startswith(f"{prefix}rt:".encode()):
                    keys = [key[: -len(suffix)] + s.encode() for s in _RT_SUFFIXES]
            removed += int(await client.delete(*keys))
    return removed


# ------------------------------------------------------------------------------ the job


async def _stash_identifiers(directory: Directory, row: dict[str, Any]) -> list[str]:
    if row["identifiers_encrypted"]:
        return list(json.loads(directory.cipher.decrypt(row["identifiers_encrypted"])))
    identifiers = await person_identifiers(directory, row["site"], row["person_id"])
    await DataRightsRequest.update(
        {
            DataRightsRequest.identifiers_encrypted: directory.cipher.encrypt(json.dumps(identifiers)),
            DataRightsRequest.status: "erasing",
        }
    ).where(DataRightsRequest.id == row["id"])
    return identifiers


async def run_erasure(
    settings: Settings, redis: Redis, directory: Directory, request_id: UUID, now: dt.datetime | None = None
) -> DataRequestView | None:
    """Erase the person of an approved erasure request. Re-runnable: each step is idempotent."""
    now = now or now_utc()
    found = await DataRightsRequest.select(DataRightsRequest.site).where(DataRightsRequest.id == request_id).first()
    if found is None:
        return None
    site_id = found["site"]
    row = await _erasure_row(site_id, request_id)
    if row["status"] == "completed":
        return await get_request(site_id, request_id)
    if row["status"] not in ("approved", "erasing"):
        raise Conflict(f"request is {row['status']}, not approved")
    person_id: UUID = row["person_id"]
    sections, _ = load_registries()
    with audit.acting_as(row["handled_by"], route="job:privacy_erase"):
        identifiers = await _stash_identifiers(directory, row)
        scope = PersonScope(
            site_id=site_id,
            person_id=person_id,
            settings=settings,
            directory=directory,
            redis=redis,
            identifiers=tuple(identifiers),
        )
        outcomes: dict[str, ErasureOutcome] = {}
        for name, section in reversed(list(sections.items())):
            outcomes[name] = await section.erase(scope)
        await audit.record(site_id, [person_id], "erase", "all", now=now)
    redis_removed = await scrub_redis(redis, settings, identifiers)
    from app.auth.tokens import revoke_all_access_tokens

    await revoke_all_access_tokens(settings, redis, person_id)
    held = [f"{name}: {h}" for name, outcome in outcomes.items() for h in outcome.held]
    outcome = {
        "sections": {name: o.erased for name, o in outcomes.items()},
        "files_deleted": sum(o.files_deleted for o in outcomes.values()),
        "redis_removed": redis_removed,
        "held": held,
    }
    # The person's own words in their requests are personal data too; the records stay, blank.
    await DataRightsRequest.update({DataRightsRequest.details: ""}).where(
        (DataRightsRequest.site == site_id) & (DataRightsRequest.person_id == person_id)
    )
    await DataRightsRequest.update(
        {
            DataRightsRequest.status: "completed",
            DataRightsRequest.completed_at: now,
            DataRightsRequest.outcome: outcome,
            DataRightsRequest.identifiers_encrypted: None,
        }
    ).where(DataRightsRequest.id == request_id)
    logger.info("erasure %s completed: %s", request_id, outcome["sections"])
    return await get_request(site_id, request_id)
