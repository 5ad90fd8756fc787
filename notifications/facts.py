"""Loads, for a chunk of people, everything the policy needs to decide: in a few bulk queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from uuid import UUID

import msgspec

from app.db import any_of, fetch_rows
from app.people.directory import ContactKind, Directory
from notifications.categories import Category, Channel, Urgency
from notifications.policy import DigestRule, DndSettings, Facts, SitePolicy
from notifications.preferences import consent_matrix, dnd_of, is_enabled
from schema.jsonvalue import as_dict
from schema.tables import Site

# The kind of contact point each channel sends to (push and in-app reach a person's devices and the app).
CONTACT_KIND_OF: dict[Channel, ContactKind] = {
    Channel.SMS: "mobile",
    Channel.WHATSAPP: "mobile",
    Channel.EMAIL: "email",
}


class PersonFacts(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    person_id: UUID
    choices: dict[tuple[Channel, Category], bool]
    dnd: DndSettings | None
    has_mobile: bool
    mobile_status: str
    has_email: bool
    email_status: str
    push_tokens: tuple[str, ...]
    on_national_dnd: bool
    # The values themselves, read (decrypted) only when asked for: the sender's SMS, WhatsApp and e-mail.
    mobile: str | None = None
    email: str | None = None
    # Or kept encrypted until the sender knows whom it sends to (open_addresses): nobody's is read in vain.
    mobile_sealed: str | None = None
    email_sealed: str | None = None
    # The contact kinds read for these facts (a sender reads only its channel's): deciding on a channel whose
    # kind was not read would take an unread contact point for a missing one.
    kinds_read: frozenset[ContactKind] = frozenset({"mobile", "email"})
    # Whether what only a promotional message's decision needs was read: the mobile's entry in the national
    # DND registry, and the person's own timezone for 09:00-21:00 (without quiet hours it sets nothing else).
    promotional_read: bool = True

    def address(self, channel: Channel) -> str | None:
        return _of_channel(channel, self.mobile, self.email)

    def sealed_address(self, channel: Channel) -> str | None:
        """The encrypted value of the address this channel sends to, where it was kept sealed."""
        return _of_channel(channel, self.mobile_sealed, self.email_sealed)

    def opened(self, channel: Channel, address: str) -> PersonFacts:
        """These facts with the address this channel sends to read, and no longer sealed."""
        if channel is Channel.EMAIL:
            return msgspec.structs.replace(self, email=address, email_sealed=None)
        return msgspec.structs.replace(self, mobile=address, mobile_sealed=None)

    def decision_key(self, channel: Channel, category: Category) -> tuple[object, ...]:
        """What, of this person, a decision on this channel and category depends on (the rest is the
        notification's and the moment's): people with equal keys get equal decisions."""
        present, status = self._contact(channel)
        consented = is_enabled(self.choices, channel, category)
        return (channel, consented, present, status, self.on_national_dnd, self.dnd)

    def _contact(self, channel: Channel) -> tuple[bool, str]:
        """Whether this channel can reach the person, and the status of the contact point it uses."""
        if channel is Channel.PUSH:
            return bool(self.push_tokens), "ok"
        if channel is Channel.IN_APP:
            return True, "ok"
        kind = CONTACT_KIND_OF[channel]
        if kind not in self.kinds_read:
            raise ValueError(f"facts loaded without {kind} contact points cannot decide on {channel}")
        if kind == "email":
            return self.has_email, self.email_status
        return self.has_mobile, self.mobile_status

    def facts(
        self, *, channel: Channel, category: Category, urgency: Urgency, created_at: dt.datetime, now: dt.datetime
    ) -> Facts:
        present, status = self._contact(channel)
        if category is Category.PROMOTIONAL and not self.promotional_read:
            raise ValueError("facts loaded without the national DND registry and timezones cannot decide promotions")
        return Facts(
            channel=channel,
            category=category,
            urgency=urgency,
            consented=is_enabled(self.choices, channel, category),
            contact_present=present,
            contact_status=status,
            on_national_dnd=self.on_national_dnd,
            dnd=self.dnd,
            created_at=created_at,
            now=now,
        )


def _of_channel(channel: Channel, mobile: str | None, email: str | None) -> str | None:
    """Of a person's mobile and e-mail, the one this channel sends to (push and in-app: neither)."""
    kind = CONTACT_KIND_OF.get(channel)
    return mobile if kind == "mobile" else email if kind == "email" else None


def site_policy(site_row: dict[str, object]) -> SitePolicy:
    notify = as_dict(as_dict(site_row.get("settings")).get("notifications"))
    policy = SitePolicy(timezone=str(site_row.get("timezone") or "Asia/Kolkata"))
    if "critical_categories" in notify:
        policy = msgspec.structs.replace(
            policy, critical_categories=frozenset(Category(c) for c in notify["critical_categories"])
        )
    if "ttl_seconds" in notify:
        merged = {**policy.ttl_seconds, **{Category(k): int(v) for k, v in notify["ttl_seconds"].items()}}
        policy = msgspec.structs.replace(policy, ttl_seconds=merged)
    if "digest" in notify:
        # The site's rules replace the defaults: a category it leaves out is not digested.
        rules = msgspec.convert(notify["digest"], dict[Category, DigestRule])
        policy = msgspec.structs.replace(policy, digest=rules)
    return policy


async def load_site_policy(site_id: UUID) -> SitePolicy:
    row = await Site.select(Site.timezone, Site.settings).where(Site.id == site_id).first()
    if row is None:
        raise LookupError(f"site {site_id} not found")
    return site_policy(row)


async def load_facts(
    directory: Directory,
    site_id: UUID,
    site_timezone: str,
    person_ids: list[UUID],
    *,
    addresses: Iterable[ContactKind] = ("mobile", "email"),
    channels: Iterable[Channel] | None = None,
    promotional: bool = True,
    sealed: Iterable[ContactKind] = (),
) -> dict[UUID, PersonFacts]:
    """What the policy needs about these people, in a few bulk queries. Contact values are read
    (decrypted) only of the kinds in ``addresses``: deciding needs only whether a contact point exists,
    its status and its index; a sender reads the one its channel sends to.

    With ``channels`` (default: every channel), only what deciding on those channels needs: a push sender
    reads no contact points and no national DND entries, an SMS sender only mobiles (a batch's largest read,
    otherwise) and no devices. Without ``promotional``, neither the national DND registry nor the timezones of
    people without quiet hours are read: only a promotional message's decision needs them (its 09:00-21:00
    is the person's own), and they were two of a batch's reads. Of the kinds in ``sealed`` the values are kept
    encrypted, for :func:`open_addresses` to read of just the people a batch sends to."""
    if not person_ids:
        return {}
    deciding = tuple(Channel) if channels is None else tuple(channels)
    kinds = frozenset(CONTACT_KIND_OF[c] for c in deciding if c in CONTACT_KIND_OF)
    choices = await consent_matrix(person_ids)
    person_zones: dict[UUID, str] = {}
    if promotional:
        ids, params = any_of("id", person_ids)
        rows = await fetch_rows("person", ("id", "timezone"), f"WHERE {ids}", *params)
        person_zones = {row["id"]: row["timezone"] for row in rows}
    dnd = await dnd_of(person_ids, site_timezone)
    contacts = (
        await directory.chosen_contacts_for(site_id, person_ids, kinds=kinds, read=addresses, keep_sealed=sealed)
        if kinds
        else {}
    )
    tokens: dict[UUID, list[str]] = {}
    if Channel.PUSH in deciding:
        people, params = any_of("person", person_ids)
        for row in await fetch_rows("device", ("person", "push_token"), f"WHERE {people}", *params):
            tokens.setdefault(row["person"], []).append(row["push_token"])
    indexes = {chosen["mobile"].index: pid for pid, chosen in contacts.items() if "mobile" in chosen}
    listed: set[UUID] = set()
    if indexes and promotional:
        listed_in, params = any_of("phone_index", list(indexes))
        rows = await fetch_rows(
            "national_dnd_entry", ("phone_index",), f"WHERE site = {{}} AND {listed_in}", site_id, *params
        )
        listed = {indexes[row["phone_index"]] for row in rows}

    result = {}
    for pid in person_ids:
        own_dnd = dnd.get(pid)
        if own_dnd is None and person_zones.get(pid):
            # No quiet hours, but the person's own timezone still sets their 09:00-21:00.
            own_dnd = DndSettings(timezone=person_zones[pid])
        chosen = contacts.get(pid, {})
        mobile, email = chosen.get("mobile"), chosen.get("email")
        result[pid] = PersonFacts(
            person_id=pid,
            choices=choices.get(pid, {}),
            dnd=own_dnd,
            has_mobile=mobile is not None,
            mobile_status=mobile.status if mobile else "ok",
            has_email=email is not None,
            email_status=email.status if email else "ok",
            push_tokens=tuple(tokens.get(pid, ())),
            on_national_dnd=pid in listed,
            mobile=mobile.value if mobile else None,
            email=email.value if email else None,
            mobile_sealed=mobile.sealed if mobile else None,
            email_sealed=email.sealed if email else None,
            kinds_read=kinds,
            promotional_read=promotional,
        )
    return result


async def open_addresses(
    directory: Directory, site_id: UUID, channel: Channel, facts: dict[UUID, PersonFacts], person_ids: Iterable[UUID]
) -> dict[UUID, PersonFacts]:
    """These people's facts with the address ``channel`` sends to read (decrypted) from its sealed value;
    everyone else's as they were. A sender calls it once it has decided whom of a batch it sends to."""
    if channel not in CONTACT_KIND_OF:
        return facts
    sealed = {
        pid: value for pid in dict.fromkeys(person_ids) if (value := facts[pid].sealed_address(channel)) is not None
    }
    opened = await directory.open_contacts(site_id, sealed)
    return {**facts, **{pid: facts[pid].opened(channel, address) for pid, address in opened.items()}}
