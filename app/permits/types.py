"""Permit types per site: their declared fields, attachments, declarations and approval chain.

A site starts with the six kinds every estate runs (fit-out/renovation, hot work, move-in,
move-out, vendor access, working at height), created the first time the site's types are read,
each with the fields, attachments, declarations and chain below; the FM team then edits them
(``PUT /api/permits/types/{code}``) or adds its own types of those kinds.

An approval chain is a list of steps, decided in order; each step is decided by one person:
either a named person (a list of one), any of a named group (``person_ids``), or anyone holding
a role (``role``: any-of a group by role). A permit takes a snapshot of the chain when it is
submitted, so editing a type never changes a permit in flight.

Field values are validated against the declared fields here (``validate_values``): each error
names ``values.<key>``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import msgspec
from piccolo.columns import Column

from app.auth.roles import Role
from app.db import is_unique_violation, write_transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.text import MULTI_LINE, ONE_LINE, text_error
from schema.jsonvalue import as_list
from schema.permits import PermitType
from schema.tables import Person, PersonRole

Kind = Literal["fit_out", "hot_work", "move_in", "move_out", "vendor_access", "working_at_height"]
KINDS: Final[tuple[str, ...]] = ("fit_out", "hot_work", "move_in", "move_out", "vendor_access", "working_at_height")
FieldType = Literal["text", "multiline", "number", "date", "boolean", "choice"]
ApproverRole = Literal["fm_admin", "site_admin", "guard", "technician"]
Accept = Literal["image", "pdf", "any"]

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
Choice = Annotated[str, msgspec.Meta(min_length=1, max_length=100), ONE_LINE]
Statement = Annotated[str, msgspec.Meta(min_length=1, max_length=1000), MULTI_LINE]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Bound = Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]
FieldValue = str | int | float | bool

TEXT_MAX: Final = 200
MULTILINE_MAX: Final = 4000


class FieldSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: Key
    label: Label
    type: FieldType
    required: bool = False
    choices: Annotated[list[Choice], msgspec.Meta(max_length=50)] | None = None  # choice fields
    min: Bound | None = None  # number fields
    max: Bound | None = None
    max_length: Annotated[int, msgspec.Meta(ge=1, le=MULTILINE_MAX)] | None = None  # text fields
    must_be_true: bool = False  # boolean fields: a confirmation that has to be given


class AttachmentSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: Key
    label: Label
    required: bool = True
    accept: Accept = "any"  # image (re-encoded), pdf (checked), or either


class DeclarationSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: Key
    text: Statement


class ChainStep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of ``role`` (anyone holding it) or ``person_ids`` (any one of them)."""

    label: Label
    role: ApproverRole | None = None
    person_ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=20)] | None = None


class PermitTypeInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Create or replace the type ``code`` of the site."""

    kind: Kind | None = None  # required (checked after the path's code, as other bodies are)
    name: Label | None = None  # required
    description: Annotated[str, msgspec.Meta(max_length=4000), MULTI_LINE] = ""
    fields: Annotated[list[FieldSpec], msgspec.Meta(max_length=40)] = msgspec.field(default_factory=list)
    attachments: Annotated[list[AttachmentSpec], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    declarations: Annotated[list[DeclarationSpec], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    chain: Annotated[list[ChainStep], msgspec.Meta(max_length=6)] | None = None  # required, one step or more
    max_days: Annotated[int, msgspec.Meta(ge=1, le=366)] = 30
    daily_start: HHMM | None = None
    daily_end: HHMM | None = None
    requires_dues_cleared: bool = False
    occupants_may_apply: bool = True
    is_active: bool = True


class NewPermitType(PermitTypeInput, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new type of the site: ``code`` names it in URLs of the occupant app and in reports."""

    code: Code | None = None  # required


class PermitTypeView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    code: str
    kind: str
    name: str
    description: str
    fields: list[FieldSpec]
    attachments: list[AttachmentSpec]
    declarations: list[DeclarationSpec]
    chain: list[ChainStep]
    max_days: int
    daily_start: str | None
    daily_end: str | None
    requires_dues_cleared: bool
    occupants_may_apply: bool
    is_active: bool


# ------------------------------------------------------------------------------ the six defaults

_FM = ChainStep(label="FM manager", role="fm_admin")
_SITE = ChainStep(label="Site admin", role="site_admin")


def _field(key: str, label: str, type_: FieldType, **more: Any) -> FieldSpec:
    return FieldSpec(key=key, label=label, type=type_, **more)


DEFAULT_TYPES: Final[dict[str, PermitTypeInput]] = {
    "fit_out": PermitTypeInput(
        kind="fit_out",
        name="Fit-out / renovation",
        description="Interior work in a unit: civil, electrical, plumbing, carpentry, painting.",
        fields=[
            _field("scope_of_work", "Scope of work", "multiline", required=True),
            _field("contractor", "Contractor (company)", "text", required=True),
            _field("structural_changes", "Any structural change (walls, columns, slabs)?", "boolean"),
            _field(
                "debris",
                "Debris disposal",
                "choice",
                required=True,
                choices=["contractor removes daily", "society skip (charged)"],
            ),
        ],
        attachments=[
            AttachmentSpec(key="drawing", label="Layout drawing", accept="any"),
            AttachmentSpec(key="insurance", label="Contractor's insurance", required=False, accept="any"),
        ],
        declarations=[
            DeclarationSpec(key="hours", text="Noisy work only within the permitted hours."),
            DeclarationSpec(key="structure", text="No structural change without the society's written approval."),
            DeclarationSpec(key="damage", text="I am responsible for any damage to common areas."),
        ],
        chain=[_FM, _SITE],
        max_days=90,
        daily_start="09:00",
        daily_end="18:00",
    ),
    "hot_work": PermitTypeInput(
        kind="hot_work",
        name="Hot work",
        description="Welding, cutting, grinding, brazing: anything with a flame or sparks.",
        fields=[
            _field("work", "Work to be done", "multiline", required=True),
            _field("location_detail", "Exact location", "text", required=True),
            _field("fire_watch", "Fire watch (name)", "text", required=True),
            _field("extinguisher", "Fire extinguisher at the spot", "boolean", required=True, must_be_true=True),
        ],
        attachments=[AttachmentSpec(key="welder_certificate", label="Welder's certificate", accept="any")],
        declarations=[
            DeclarationSpec(key="combustibles", text="Combustibles within 11 m are removed or covered."),
            DeclarationSpec(key="watch", text="The fire watch stays 30 minutes after the work ends."),
        ],
        chain=[_FM, _SITE],
        max_days=7,
        daily_start="09:00",
        daily_end="17:00",
    ),
    "move_in": PermitTypeInput(
        kind="move_in",
        name="Move-in",
        fields=[
            _field("movers", "Moving company", "text"),
            _field("trucks", "Number of trucks", "number", required=True, min=1, max=10),
            _field("service_lift", "Service lift needed", "boolean"),
        ],
        attachments=[AttachmentSpec(key="agreement", label="Sale deed or rental agreement", accept="any")],
        declarations=[DeclarationSpec(key="lift", text="The lift will be padded and used only in the slot given.")],
        chain=[ChainStep(label="FM desk", role="fm_admin")],
        max_days=3,
        daily_start="08:00",
        daily_end="20:00",
    ),
    "move_out": PermitTypeInput(
        kind="move_out",
        name="Move-out",
        fields=[
            _field("movers", "Moving company", "text"),
            _field("trucks", "Number of trucks", "number", required=True, min=1, max=10),
            _field("forwarding_address", "Forwarding address", "multiline"),
        ],
        declarations=[DeclarationSpec(key="keys", text="Access cards and keys will be returned to the FM desk.")],
        chain=[ChainStep(label="FM desk", role="fm_admin")],
        max_days=3,
        daily_start="08:00",
        daily_end="20:00",
        requires_dues_cleared=True,
    ),
    "vendor_access": PermitTypeInput(
        kind="vendor_access",
        name="Vendor access",
        fields=[
            _field("vendor", "Vendor (company)", "text", required=True),
            _field("purpose", "Purpose", "text", required=True),
        ],
        declarations=[DeclarationSpec(key="escort", text="The vendor's people stay in the areas of the work.")],
        chain=[ChainStep(label="FM desk", role="fm_admin")],
        max_days=30,
    ),
    "working_at_height": PermitTypeInput(
        kind="working_at_height",
        name="Working at height",
        fields=[
            _field("height_m", "Height (metres)", "number", required=True, min=2, max=200),
            _field(
                "equipment",
                "Access equipment",
                "choice",
                required=True,
                choices=["scaffold", "ladder", "rope access", "boom lift"],
            ),
            _field("harness", "Full-body harness for every worker", "boolean", required=True, must_be_true=True),
        ],
        attachments=[AttachmentSpec(key="safety_plan", label="Method statement / safety plan", accept="any")],
        declarations=[DeclarationSpec(key="barricade", text="The area below is barricaded while work goes on.")],
        chain=[_FM, _SITE],
        max_days=14,
        daily_start="08:00",
        daily_end="18:00",
    ),
}


# ------------------------------------------------------------------------------ reading


def specs(row: dict[str, Any]) -> tuple[list[FieldSpec], list[AttachmentSpec], list[DeclarationSpec]]:
    return (
        msgspec.convert(as_list(row["fields"]), list[FieldSpec]),
        msgspec.convert(as_list(row["attachments"]), list[AttachmentSpec]),
        msgspec.convert(as_list(row["declarations"]), list[DeclarationSpec]),
    )


def chain_of(value: Any) -> list[ChainStep]:
    return msgspec.convert(as_list(value), list[ChainStep])


def view_of(row: dict[str, Any]) -> PermitTypeView:
    fields, attachments, declarations = specs(row)
    return PermitTypeView(
        id=row["id"],
        code=row["code"],
        kind=row["kind"],
        name=row["name"],
        description=row["description"],
        fields=fields,
        attachments=attachments,
        declarations=declarations,
        chain=chain_of(row["chain"]),
        max_days=row["max_days"],
        daily_start=row["daily_start"],
        daily_end=row["daily_end"],
        requires_dues_cleared=row["requires_dues_cleared"],
        occupants_may_apply=row["occupants_may_apply"],
        is_active=row["is_active"],
    )


def _columns(data: PermitTypeInput) -> dict[str, Any]:
    return {
        "kind": data.kind,
        "name": data.name,
        "description": data.description,
        "fields": msgspec.to_builtins(data.fields),
        "attachments": msgspec.to_builtins(data.attachments),
        "declarations": msgspec.to_builtins(data.declarations),
        "chain": msgspec.to_builtins(data.chain or []),
        "max_days": data.max_days,
        "daily_start": data.daily_start,
        "daily_end": data.daily_end,
        "requires_dues_cleared": data.requires_dues_cleared,
        "occupants_may_apply": data.occupants_may_apply,
        "is_active": data.is_active,
    }


async def ensure_defaults(site_id: UUID, now: dt.datetime | None = None) -> None:
    """Give a site the six default types the first time its types are needed (safe to repeat and to race:
    the unique (site, code) index lets one writer in, and the other finds the types there)."""
    if await PermitType.exists().where(PermitType.site == site_id):
        return
    now = now or dt.datetime.now(dt.UTC)
    try:
        async with write_transaction():
            await PermitType.insert(
                *[
                    PermitType(site=site_id, code=code, updated_at=now, **_columns(data))
                    for code, data in DEFAULT_TYPES.items()
                ]
            )
    except Exception as error:
        if not is_unique_violation(error):
            raise


async def list_types(site_id: UUID, *, active_only: bool = False) -> list[PermitTypeView]:
    await ensure_defaults(site_id)
    where: Any = PermitType.site == site_id
    if active_only:
        where = where & PermitType.is_active.eq(True)
    rows = await PermitType.select().where(where).order_by(PermitType.name).order_by(PermitType.code)
    return [view_of(row) for row in rows]


async def type_row(site_id: UUID, code: str, field: str = "type", *, source: Any = "body") -> dict[str, Any]:
    await ensure_defaults(site_id)
    row = await PermitType.select().where((PermitType.site == site_id) & (PermitType.code == code)).first()
    if row is None:
        raise InvalidInput.for_field(field, f"no permit type {code!r} on this site", source=source)
    return row


async def get_type_by_id(site_id: UUID, type_id: UUID) -> PermitTypeView:
    row = await PermitType.select().where((PermitType.site == site_id) & (PermitType.id == type_id)).first()
    if row is None:
        raise NotFound("permit type not found")
    return view_of(row)


async def get_type(site_id: UUID, code: str) -> PermitTypeView:
    await ensure_defaults(site_id)
    row = await PermitType.select().where((PermitType.site == site_id) & (PermitType.code == code)).first()
    if row is None:
        raise NotFound("permit type not found")
    return view_of(row)


# ------------------------------------------------------------------------------ writing


def _unique(keys: list[str], field: str) -> None:
    seen: set[str] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise InvalidInput.for_field(f"{field}[{index}].key", f"{key!r} is used twice")
        seen.add(key)


async def _check_chain(site_id: UUID, chain: list[ChainStep]) -> None:
    if not chain:
        raise InvalidInput.for_field("chain", "needs at least one approval step")
    approver_roles = [str(Role.FM_ADMIN), str(Role.SITE_ADMIN), str(Role.GUARD), str(Role.TECHNICIAN)]
    for index, step in enumerate(chain):
        if (step.role is None) == (step.person_ids is None):
            raise InvalidInput.for_field(f"chain[{index}]", "give exactly one of role or person_ids")
        if step.person_ids is None:
            continue
        wanted = list(dict.fromkeys(step.person_ids))
        rows = await PersonRole.select(PersonRole.person).where(
            (PersonRole.site == site_id) & PersonRole.person.is_in(wanted) & PersonRole.role.is_in(approver_roles)
        )
        active = {
            row["id"]
            for row in await Person.select(Person.id).where(
                (Person.site == site_id) & Person.id.is_in(wanted) & Person.is_active.eq(True)
            )
        }
        found = {row["person"] for row in rows} & active
        for position, person in enumerate(step.person_ids):
            if person not in found:
                raise InvalidInput.for_field(
                    f"chain[{index}].person_ids[{position}]",
                    "is not an active FM admin, site admin, guard or technician of this site",
                )


def _check_fields(fields: list[FieldSpec]) -> None:
    _unique([f.key for f in fields], "fields")
    for index, spec in enumerate(fields):
        where = f"fields[{index}]"
        if spec.type == "choice" and not spec.choices:
            raise InvalidInput.for_field(f"{where}.choices", "a choice field needs its choices")
        if spec.type != "choice" and spec.choices:
            raise InvalidInput.for_field(f"{where}.choices", "only choice fields have choices")
        if spec.type != "number" and (spec.min is not None or spec.max is not None):
            raise InvalidInput.for_field(f"{where}.min", "only number fields have bounds")
        if spec.min is not None and spec.max is not None and spec.min > spec.max:
            raise InvalidInput.for_field(f"{where}.max", "must not be below min")
        if spec.must_be_true and spec.type != "boolean":
            raise InvalidInput.for_field(f"{where}.must_be_true", "only boolean fields are confirmations")
        if spec.max_length is not None and spec.type not in ("text", "multiline"):
            raise InvalidInput.for_field(f"{where}.max_length", "only text fields have a length")
        if spec.type == "text" and spec.max_length is not None and spec.max_length > TEXT_MAX:
            raise InvalidInput.for_field(f"{where}.max_length", f"a one-line text field holds at most {TEXT_MAX}")


async def put_type(site_id: UUID, code: str, data: PermitTypeInput, now: dt.datetime | None = None) -> PermitTypeView:
    now = now or dt.datetime.now(dt.UTC)
    await ensure_defaults(site_id)
    if data.kind is None:
        raise InvalidInput.for_field("kind", f"is required: one of {', '.join(KINDS)}")
    if data.name is None:
        raise InvalidInput.for_field("name", "is required")
    if data.chain is None:
        raise InvalidInput.for_field("chain", "is required: the approval steps, in order")
    _check_fields(data.fields)
    _unique([a.key for a in data.attachments], "attachments")
    _unique([d.key for d in data.declarations], "declarations")
    await _check_chain(site_id, data.chain)
    if (data.daily_start is None) != (data.daily_end is None):
        raise InvalidInput.for_field("daily_end", "give both daily_start and daily_end, or neither")
    if data.daily_start is not None and data.daily_start == data.daily_end:
        raise InvalidInput.for_field("daily_end", "must differ from daily_start")
    values = _columns(data)
    async with write_transaction():
        existing = (
            await PermitType.select(PermitType.id)
            .where((PermitType.site == site_id) & (PermitType.code == code))
            .first()
        )
        if existing is None:
            await PermitType(site=site_id, code=code, updated_at=now, **values).save()
        else:
            changes: dict[Column | str, Any] = {name: value for name, value in values.items()}
            changes[PermitType.updated_at] = now
            await PermitType.update(changes).where(PermitType.id == existing["id"])
    return await get_type(site_id, code)


async def create_type(site_id: UUID, data: NewPermitType, now: dt.datetime | None = None) -> PermitTypeView:
    if data.code is None:
        raise InvalidInput.for_field("code", "is required: a short name, e.g. lift_booking")
    await ensure_defaults(site_id)
    if await PermitType.exists().where((PermitType.site == site_id) & (PermitType.code == data.code)):
        raise Conflict(f"the site has a permit type {data.code!r} already: change it with PUT")
    fields = {f: getattr(data, f) for f in PermitTypeInput.__struct_fields__}
    return await put_type(site_id, data.code, PermitTypeInput(**fields), now)


# ------------------------------------------------------------------------------ validating a permit's values


def _number_ok(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_values(fields: list[FieldSpec], values: dict[str, Any], *, complete: bool) -> dict[str, Any]:
    """The values, checked against the declared fields; ``complete`` also demands every required one.

    Unknown keys are refused; every error names ``values.<key>``."""
    declared = {spec.key: spec for spec in fields}
    for key in values:
        if key not in declared:
            raise InvalidInput.for_field(f"values.{key}", "is not a field of this permit type")
    clean: dict[str, Any] = {}
    for spec in fields:
        where = f"values.{spec.key}"
        value = values.get(spec.key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if complete and (spec.required or spec.must_be_true):
                raise InvalidInput.for_field(where, f"is required ({spec.label})")
            continue
        if spec.type in ("text", "multiline"):
            if not isinstance(value, str):
                raise InvalidInput.for_field(where, "must be text")
            limit = spec.max_length or (TEXT_MAX if spec.type == "text" else MULTILINE_MAX)
            if len(value) > limit:
                raise InvalidInput.for_field(where, f"must be at most {limit} characters")
            if (problem := text_error(value, multiline=spec.type == "multiline")) is not None:
                raise InvalidInput.for_field(where, problem)
            clean[spec.key] = value.strip()
        elif spec.type == "number":
            if not _number_ok(value):
                raise InvalidInput.for_field(where, "must be a number")
            if spec.min is not None and value < spec.min:
                raise InvalidInput.for_field(where, f"must be at least {spec.min:g}")
            if spec.max is not None and value > spec.max:
                raise InvalidInput.for_field(where, f"must be at most {spec.max:g}")
            clean[spec.key] = value
        elif spec.type == "date":
            try:
                parsed = dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
            except ValueError:
                parsed = None
            if parsed is None:
                raise InvalidInput.for_field(where, "must be a date, YYYY-MM-DD")
            clean[spec.key] = parsed.isoformat()
        elif spec.type == "boolean":
            if not isinstance(value, bool):
                raise InvalidInput.for_field(where, "must be true or false")
            if complete and spec.must_be_true and value is not True:
                raise InvalidInput.for_field(where, f"must be confirmed ({spec.label})")
            clean[spec.key] = value
        elif spec.type == "choice":
            if value not in (spec.choices or []):
                raise InvalidInput.for_field(where, f"must be one of: {', '.join(spec.choices or [])}")
            clean[spec.key] = value
    return clean
