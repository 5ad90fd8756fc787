"""The report framework: a report is a declared query, its filters, typed columns and a role rule.

A ``Report`` declares
- ``columns``: the detail row, one typed ``Column`` each (the types drive XLSX cells and JSON);
- ``filters``: which of the common filters (``Filter``) it takes; any other is a 422 naming it;
- ``group_by`` and ``measures``: the summary view (``?by=column``), computed from the detail rows by
  the framework, so a summary and the rows it came from never disagree;
- ``roles``: who may run it. The caller's role gives the ``Scope`` (``scope_of``): an occupant their own
  units, a technician (or guard) their own work, FM and site admins their site, a platform admin every
  site of the deployment (``site`` narrows it). The ``Source`` applies the scope in the query itself
  (``Source.where``): filters only ever narrow a scoped query, so no filter widens what a caller sees.

Rows are read in keyset batches (``Source.batches``): a report of any size streams in bounded memory.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Literal
from uuid import UUID

from app.auth.principal import Principal
from app.auth.roles import STAFF, Role
from app.errors import Forbidden, InvalidInput, NotFound
from schema.tables import Occupancy

BATCH: Final = 1000
# The days a range may name: the day after the last must still be a date (and a timestamp both databases keep).
FIRST_DAY: Final = dt.date(1970, 1, 1)
LAST_DAY: Final = dt.date(9998, 12, 31)


class ColumnType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"  # money and fractions: exact in CSV, a number in XLSX
    DATE = "date"
    DATETIME = "datetime"  # UTC
    BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    title: str = ""
    width: int | None = None  # XLSX column width in characters; None: from the type and title

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    @property
    def xlsx_width(self) -> int:
        if self.width is not None:
            return self.width
        by_type = {
            ColumnType.TEXT: 18,
            ColumnType.INTEGER: 10,
            ColumnType.DECIMAL: 12,
            ColumnType.DATE: 12,
            ColumnType.DATETIME: 20,
            ColumnType.BOOLEAN: 8,
        }[self.type]
        return max(by_type, len(self.label) + 2)


class Filter(StrEnum):
    FROM = "from"  # first day, inclusive (UTC)
    TO = "to"  # last day, inclusive (UTC)
    TOWER = "tower"  # a building's code
    CATEGORY = "category"
    STATUS = "status"
    PERSON = "person"  # a person's id
    SITE = "site"  # a site's id: platform admins only


COMMON_FILTERS: Final = frozenset({Filter.FROM, Filter.TO, Filter.SITE})

MeasureKind = Literal["count", "sum", "count_true", "count_eq", "count_present", "avg", "p50", "p90", "percent"]


@dataclass(frozen=True, slots=True)
class Measure:
    """One figure of the summary, computed over a group's detail rows.

    ``count``: rows; ``sum``/``avg``/``p50``/``p90`` of ``column`` (blank values left out); ``count_true``:
    rows whose ``column`` is true; ``count_eq``: rows whose ``column`` is one of ``values``;
    ``count_present``: rows whose ``column`` is not blank;
    ``percent``: 100 * (measure ``values[0]``) / (measure ``values[1]``), blank when the latter is 0."""

    name: str
    kind: MeasureKind
    column: str | None = None
    values: tuple[Any, ...] = ()
    type: ColumnType = ColumnType.INTEGER


# ------------------------------------------------------------------------------ who asks


class ScopeKind(StrEnum):
    OWN_UNITS = "own_units"
    OWN_WORK = "own_work"
    SITE = "site"
    SITES = "sites"


# The widest scope a role gives, widest first: a person with several roles reports with the widest
# one the report admits.
_ROLE_ORDER: Final = (
    (Role.PLATFORM_ADMIN, ScopeKind.SITES),
    (Role.SITE_ADMIN, ScopeKind.SITE),
    (Role.FM_ADMIN, ScopeKind.SITE),
    (Role.TECHNICIAN, ScopeKind.OWN_WORK),
    (Role.GUARD, ScopeKind.OWN_WORK),
    (Role.OCCUPANT, ScopeKind.OWN_UNITS),
)


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    site_id: UUID | None  # None: every site (a platform admin without ``site``)
    person_id: UUID
    unit_ids: tuple[UUID, ...] = ()


async def scope_of(principal: Principal, report: Report, site: UUID | None = None) -> Scope:
    """The rows ``principal`` may see in ``report``; 403 when none of their roles may run it."""
    widest = next((k for role, k in _ROLE_ORDER if role in principal.roles and role in report.roles), None)
    if widest is None:
        raise Forbidden(f"report '{report.name}' is not open to your role")
    kind: ScopeKind = widest
    if site is not None and kind is not ScopeKind.SITES:
        raise InvalidInput.for_query("site", "only platform admins choose a site; yours is implied")
    if kind is ScopeKind.SITES:
        return Scope(kind=kind, site_id=site, person_id=principal.person_id)
    units: tuple[UUID, ...] = ()
    if kind is ScopeKind.OWN_UNITS:
        rows = await Occupancy.select(Occupancy.unit).where(
            (Occupancy.site == principal.site_id)
            & (Occupancy.person == principal.person_id)
            & (Occupancy.is_active == True)  # noqa: E712 - Piccolo builds SQL from ==
        )
        units = tuple(sorted({row["unit"] for row in rows}, key=str))
    return Scope(kind=kind, site_id=principal.site_id, person_id=principal.person_id, unit_ids=units)


def scope_for_site(site_id: UUID, person_id: UUID) -> Scope:
    """A site's whole scope, for the site's own jobs (scheduled reports, the control room's figures)."""
    return Scope(kind=ScopeKind.SITE, site_id=site_id, person_id=person_id)


# ------------------------------------------------------------------------------ what is asked


@dataclass(frozen=True, slots=True)
class Query:
    scope: Scope
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    tower: str | None = None
    category: str | None = None
    status: str | None = None
    person: UUID | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    batch: int = BATCH

    @property
    def since(self) -> dt.datetime | None:
        if self.date_from is None:
            return None
        return dt.datetime.combine(self.date_from, dt.time(), tzinfo=dt.UTC)

    @property
    def until(self) -> dt.datetime | None:
        """The end of the range, exclusive: midnight after ``date_to``."""
        if self.date_to is None:
            return None
        return dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def make_query(
    report: Report,
    scope: Scope,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    tower: str | None = None,
    category: str | None = None,
    status: str | None = None,
    person: UUID | None = None,
    now: dt.datetime | None = None,
) -> Query:
    """The query, after refusing any filter the report does not take (422 naming it)."""
    given = {
        Filter.TOWER: tower,
        Filter.CATEGORY: category,
        Filter.STATUS: status,
        Filter.PERSON: person,
    }
    for name, value in given.items():
        if value is not None and name not in report.filters:
            takes = ", ".join(sorted(str(f) for f in report.all_filters))
            raise InvalidInput.for_query(str(name), f"report '{report.name}' has no such filter (it takes: {takes})")
    if date_from is not None and date_to is not None and date_to < date_from:
        raise InvalidInput.for_query("to", "must be on or after from")
    for name, day in ((Filter.FROM, date_from), (Filter.TO, date_to)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidInput.for_query(str(name), f"must be between {FIRST_DAY} and {LAST_DAY}")
    return Query(
        scope=scope,
        date_from=date_from,
        date_to=date_to,
        tower=tower,
        category=category,
        status=status,
        person=person,
        now=now or dt.datetime.now(dt.UTC),
    )


# ------------------------------------------------------------------------------ where rows come from

Shape = Callable[[Query, list[dict[str, Any]]], Awaitable[list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class Source:
    """A Piccolo table read in keyset batches of (``time``, ``id``), scoped and filtered in SQL.

    ``select`` are the columns read (aliased); ``shape`` turns a batch of them into detail rows. Each
    ``*_column`` is what a filter or the scope compares (None: the report has no such thing)."""

    table: Any
    time: Any  # a Timestamptz or Date column: the date range and the order
    select: Sequence[Any]
    shape: Shape
    unit: Any = None  # the row's unit: an occupant's scope, and ``tower`` through it
    own_work: Any = None  # the person whose work the row is: a technician's scope
    tower: Any = None  # the building code column
    category: Any = None
    status: Any = None
    person: Any = None
    extra: Callable[[Query], Any] | None = None  # a fixed condition of the report (or None)

    def where(self, query: Query) -> Any:
        scope = query.scope
        table = self.table
        condition: Any = table.id.is_not_null()
        if scope.site_id is not None:
            condition &= table.site == scope.site_id
        if scope.kind is ScopeKind.OWN_UNITS:
            if self.unit is None:
                raise Forbidden("this report is not open to occupants")
            condition &= self.unit.is_in(list(scope.unit_ids)) if scope.unit_ids else table.id.is_null()
        elif scope.kind is ScopeKind.OWN_WORK:
            if self.own_work is None:
                raise Forbidden("this report is not open to your role")
            condition &= self.own_work == scope.person_id
        is_date = self.time.value_type is dt.date
        if query.date_from is not None:
            condition &= self.time >= (query.date_from if is_date else query.since)
        if query.date_to is not None:
            condition &= (self.time <= query.date_to) if is_date else (self.time < query.until)
        for value, column in (
            (query.tower, self.tower),
            (query.category, self.category),
            (query.status, self.status),
            (query.person, self.person),
        ):
            if value is not None and column is not None:
                condition &= column == value
        if self.extra is not None:
            condition &= self.extra(query)
        return condition

    async def batches(self, query: Query) -> AsyncIterator[list[tuple[Any, ...]]]:
        table = self.table
        base = self.where(query)
        after: tuple[Any, Any] | None = None
        while True:
            condition = base
            if after is not None:
                last_time, last_id = after
                condition = condition & ((self.time > last_time) | ((self.time == last_time) & (table.id > last_id)))
            rows: list[dict[str, Any]] = (
                await table.select(table.id.as_alias("_id"), self.time.as_alias("_time"), *self.select)
                .where(condition)
                .order_by(self.time, table.id)
                .limit(query.batch)
            )
            if not rows:
                return
            after = (rows[-1]["_time"], rows[-1]["_id"])
            yield await self.shape(query, rows)
            if len(rows) < query.batch:
                return


Produce = Callable[[Query], AsyncIterator[list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    columns: tuple[Column, ...]
    roles: frozenset[Role]
    source: Source | None = None
    produce: Produce | None = None  # for reports computed otherwise; must apply the scope itself
    filters: frozenset[Filter] = frozenset()
    filter_notes: dict[Filter, str] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    measures: tuple[Measure, ...] = (Measure("rows", "count"),)
    default_by: str | None = None  # the summary a scheduled e-mail and the control room show

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        for by in self.group_by:
            assert by in names, f"{self.name}: group_by {by} is not a column"
        for measure in self.measures:
            assert measure.column is None or measure.column in names, f"{self.name}: {measure.name}"
        assert (self.source is None) != (self.produce is None), f"{self.name}: one of source and produce"
        if self.source is not None:
            assert Role.OCCUPANT not in self.roles or self.source.unit is not None, self.name
            assert Role.TECHNICIAN not in self.roles or self.source.own_work is not None, self.name

    @property
    def all_filters(self) -> frozenset[Filter]:
        return self.filters | COMMON_FILTERS

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def batches(self, query: Query) -> AsyncIterator[list[tuple[Any, ...]]]:
        if self.source is not None:
            return self.source.batches(query)
        assert self.produce is not None
        return self.produce(query)

    def summary_columns(self, by: str) -> tuple[Column, ...]:
        return (self.column(by), *(Column(m.name, m.type) for m in self.measures))

    def check_by(self, by: str | None) -> None:
        if by is not None and by not in self.group_by:
            raise InvalidInput.for_query("by", f"report '{self.name}' groups by one of: {', '.join(self.group_by)}")


# ------------------------------------------------------------------------------ the summary


def nearest_rank(sorted_values: Sequence[float], percent: float) -> float | None:
    """The smallest value with at least ``percent`` % of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class _Group:
    __slots__ = ("count", "values")

    def __init__(self, measured: Sequence[str]) -> None:
        self.count = 0
        self.values: dict[str, list[Any]] = {name: [] for name in measured}


def _number(value: Any, kind: ColumnType) -> Any:
    if value is None:
        return None
    if kind is ColumnType.INTEGER:
        return round(value)
    if kind is ColumnType.DECIMAL:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    return value


async def summarise(report: Report, query: Query, by: str) -> list[tuple[Any, ...]]:
    """One row per value of ``by`` (sorted, blanks last as ""), with every measure of the report.
    Memory grows with the groups and the values a percentile needs, not with the rows' width."""
    report.check_by(by)
    index = {c.name: i for i, c in enumerate(report.columns)}
    at = index[by]
    measured = sorted({m.column for m in report.measures if m.column is not None})
    groups: dict[Any, _Group] = {}
    async for batch in report.batches(query):
        for row in batch:
            key = row[at]
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(measured)
            group.count += 1
            for name in measured:
                group.values[name].append(row[index[name]])
    out = []
    for key in sorted(groups, key=lambda k: (k is None or k == "", str(k) if k is not None else "")):
        group = groups[key]
        figures: dict[str, Any] = {}
        for measure in report.measures:
            figures[measure.name] = _measure(measure, group, figures)
        out.append((key, *(figures[m.name] for m in report.measures)))
    return out


def _measure(measure: Measure, group: _Group, done: dict[str, Any]) -> Any:
    kind = measure.kind
    if kind == "count":
        return group.count
    if kind == "percent":
        top, bottom = done[measure.values[0]], done[measure.values[1]]
        return _number(100 * Decimal(top) / Decimal(bottom), ColumnType.DECIMAL) if bottom else None
    assert measure.column is not None
    values = group.values[measure.column]
    if kind == "count_true":
        return sum(1 for v in values if v is True)
    if kind == "count_eq":
        return sum(1 for v in values if v in measure.values)
    if kind == "count_present":
        return sum(1 for v in values if v is not None)
    present = sorted(v for v in values if v is not None)
    if kind == "sum":
        if not present:
            return None  # nothing to add up (a cost no provider reported) is blank, not zero
        return _number(sum(present, start=Decimal(0) if measure.type is ColumnType.DECIMAL else 0), measure.type)
    if kind == "avg":
        return _number(sum(present) / len(present), measure.type) if present else None
    return _number(nearest_rank(present, 50 if kind == "p50" else 90), measure.type)


# ------------------------------------------------------------------------------ the catalogue

_REPORTS: dict[str, Report] = {}


def register(report: Report) -> Report:
    assert report.name not in _REPORTS, report.name
    _REPORTS[report.name] = report
    return report


def catalogue() -> dict[str, Report]:
    from app.reports import catalogue as _  # noqa: F401 - registers every report

    return dict(_REPORTS)


def get_report(name: str) -> Report:
    report = catalogue().get(name)
    if report is None:
        raise NotFound(f"no report '{name}'")
    return report


def is_staff_scope(scope: Scope) -> bool:
    return scope.kind in (ScopeKind.SITE, ScopeKind.SITES)


STAFF_AND_PLATFORM: Final = frozenset({*STAFF, Role.PLATFORM_ADMIN})
