"""Where each module declares the personal data it holds, so privacy features cover all of it.

A module that stores anything about a person registers, in its own ``personal_data.py``:

- a ``PersonalDataSection``: how to export that person's rows (one section of the archive)
  and how to erase them (delete, or irreversibly anonymise where a legal hold applies);
- zero or more ``RetentionClass``es: data that must be deleted after a per-site period.

The privacy module (export job, erasure job, the one retention cron) reads these registries;
it never needs to know another module's tables. ``SECTION_MODULES`` lists every module that
registers, so loading is explicit and a forgotten module is visible in one place.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from redis.asyncio import Redis

from app.config import Settings
from app.people.directory import Directory

SECTION_MODULES: Final = (
    "app.people.personal_data",
    "notifications.personal_data",
    "app.visitors.personal_data",
    "app.complaints.personal_data",
    "app.slots.personal_data",
    "app.billing.personal_data",
    "app.amc.personal_data",
    "app.privacy.personal_data",
    "app.permits.personal_data",
    "app.attendance.personal_data",
    "app.reports.personal_data",
)


@dataclass(frozen=True, slots=True)
class PersonScope:
    """One person of one site, with what a section needs to read or erase their data."""

    site_id: UUID
    person_id: UUID
    settings: Settings
    directory: Directory
    redis: Redis
    # Filled by the erasure engine: the person's name, contact values and plates (plaintext) and
    # their blind indexes, for sections that must redact free text mentioning them.
    identifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    erased: int  # rows deleted or anonymised
    files_deleted: int = 0
    held: list[str] = field(default_factory=list)  # what was kept under a legal hold, and why


@dataclass(frozen=True, slots=True)
class PersonalDataSection:
    name: str  # the section's name in the export archive and in erasure reports
    description: str  # what it holds, written into the archive's README
    export: Callable[[PersonScope], Awaitable[list[dict[str, Any]]]]
    erase: Callable[[PersonScope], Awaitable[ErasureOutcome]]
    legal_hold: str | None = None  # shown to the site admin reviewing an erasure request
    # "table.column"s that may still hold the person's values after erasure, under the legal hold
    # (the erasure test searches every other column of every table for them).
    held_columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RetentionRun:
    site_id: UUID
    cutoff: datetime  # delete what is older than this (timezone-aware, UTC)
    settings: Settings
    redis: Redis


@dataclass(frozen=True, slots=True)
class RetentionClass:
    name: str  # e.g. "visitor_records"; sites override the period per name
    description: str
    default_days: int
    apply: Callable[[RetentionRun], Awaitable[int]]  # deletes what is past the cutoff; returns the count
    min_days: int = 1  # a site may not set a shorter period (e.g. request records: 3 years)
    # What ``apply`` would delete at this cutoff, deleting nothing (the purge's dry run).
    count: Callable[[RetentionRun], Awaitable[int]] | None = None


SECTIONS: dict[str, PersonalDataSection] = {}
RETENTION_CLASSES: dict[str, RetentionClass] = {}


def register_section(section: PersonalDataSection) -> PersonalDataSection:
    existing = SECTIONS.get(section.name)
    if existing is not None and existing is not section:
        raise ValueError(f"personal-data section {section.name!r} registered twice")
    SECTIONS[section.name] = section
    return section


def register_retention(retention: RetentionClass) -> RetentionClass:
    existing = RETENTION_CLASSES.get(retention.name)
    if existing is not None and existing is not retention:
        raise ValueError(f"retention class {retention.name!r} registered twice")
    RETENTION_CLASSES[retention.name] = retention
    return retention


def load_registries() -> tuple[dict[str, PersonalDataSection], dict[str, RetentionClass]]:
    """Import every registering module (idempotent) and return both registries."""
    for module in SECTION_MODULES:
        importlib.import_module(module)
    return SECTIONS, RETENTION_CLASSES
