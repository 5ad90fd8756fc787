"""Digests: what waited for a person goes out as one message per channel, not a pile at 07:00.

Two ways a message comes to wait for a digest:

- **Quiet hours.** The policy defers a non-urgent message to the end of the person's quiet time
  (``Reason.DND``). When that time comes, every deferred row of the person on a channel is released at
  once; where two or more of them are in categories the site digests on DND, they become one digest.
- **Bursts.** The first message of a thread (a complaint, or a category without threads) to a person
  goes at once and opens a window (the category's ``burst_minutes``); further ones of that thread to that
  person and channel wait until the window ends (``Reason.DIGEST``) and go out together.

A digest is a notification of kind ``digest`` with one ledger row, sent by the usual sender. Each
gathered row becomes ``digested`` (final) and names its digest, so the ledger still records every
underlying notification and where it went. Consent is decided again for each item when the digest is
made and again when it is sent: an item whose consent was withdrawn meanwhile is left out (its row
``suppressed``), and a digest with nothing left is not sent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis

from app.db import is_sqlite, write_transaction
from app.people.directory import Directory
from notifications.categories import DEFAULT_TTL_SECONDS, DIGEST_CHANNELS, Category, Channel, Urgency
from notifications.facts import PersonFacts, load_facts, load_site_policy
from notifications.ledger import new_row_id
from notifications.policy import Action, Reason, SitePolicy, decide
from schema.jsonvalue import as_dict, as_list
from schema.notifications import Delivery, Notification

DIGEST_KIND = "digest"


def decides_promotions(category: Category, kind: str) -> bool:
    """Whether deciding this notification may decide a promotion (``load_facts(promotional=...)``): it is one,
    or it is a digest, whose items are each decided again in their own category."""
    return category is Category.PROMOTIONAL or kind == DIGEST_KIND


# A digest's text is cut here, with a line saying how many more items are in the app.
MAX_BODY_CHARACTERS = 900
MAX_ITEM_CHARACTERS = 160


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One gathered message: its ledger row and what it said."""

    delivery_id: UUID
    notification_id: UUID
    category: Category
    urgency: Urgency
    title: str
    body: str
    created_at: dt.datetime


# -- bursts ---------------------------------------------------------------------------------------

# KEYS[1] the thread's window for one person and channel; ARGV: now (epoch s), window end (epoch s), ttl ms.
# Returns '0' when this message opens a window (send it now), else when the open window ends.
_BURST = """
local open_until = tonumber(redis.call('GET', KEYS[1]) or '0')
if open_until > tonumber(ARGV[1]) then
  return tostring(open_until)
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
return '0'
"""


def thread_of(category: Category, collapse_key: str | None) -> str:
    """Messages of one thread are gathered together: one complaint's updates, or one category's."""
    return collapse_key or str(category)


class BurstGate:
    """Decides, for messages about to be sent, which open a burst window and which wait for its end.

    The windows live in Redis, shared by every worker. Losing them (a Redis restart) only means some
    messages go one by one instead of in a digest.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_BURST)

    async def hold_until(
        self, keys: Sequence[tuple[UUID, Channel]], thread: str, minutes: int, now: dt.datetime
    ) -> dict[tuple[UUID, Channel], dt.datetime]:
        """For each (person, channel): the end of the window it must wait for; absent when it goes now."""
        if minutes <= 0 or not keys:
            return {}
        end = now + dt.timedelta(minutes=minutes)
        async with self._redis.pipeline(transaction=False) as pipe:
            for person_id, channel in keys:
                await self._script(
                    keys=[f"{self._prefix}notify:burst:{person_id}:{channel}:{thread}"],
                    args=[repr(now.timestamp()), repr(end.timestamp()), minutes * 60_000],
                    client=pipe,
                )
            answers = await pipe.execute()
        held = {}
        for key, answer in zip(keys, answers, strict=True):
            until = float(answer)
            if until > 0:
                held[key] = dt.datetime.fromtimestamp(until, dt.UTC)
        return held


def bursts_apply(policy: SitePolicy, category: Category, urgency: Urgency, channel: Channel) -> int:
    """The burst window (minutes) for this message, 0 when it always goes at once."""
    if urgency is Urgency.CRITICAL or channel not in DIGEST_CHANNELS:
        return 0
    rule = policy.digest.get(category)
    return rule.burst_minutes if rule is not None else 0


# -- release at the end of a wait -----------------------------------------------------------------


class Released(msgspec.Struct):
    """What a release did: (notification, channel) pairs with rows to send now, and the counts."""

    to_send: list[tuple[UUID, str]] = msgspec.field(default_factory=list)
    # Notifications some of whose rows became final here (digested, suppressed): maybe complete now.
    touched: set[UUID] = msgspec.field(default_factory=set)
    digests: int = 0
    digested: int = 0
    suppressed: int = 0


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _aware(value: Any) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


async def release_due(directory: Directory, now: dt.datetime, limit: int = 5000) -> Released:
    """Release deferred rows whose wait is over: gathered into digests where the site digests them,
    pending again otherwise. Decided again first, so consent withdrawn meanwhile suppresses."""
    pick = (
        "SELECT d.id, d.site, d.notification, d.person, d.channel, d.reason, n.kind, n.category, n.urgency, "
        "n.title, n.body, n.created_at FROM delivery d JOIN notification n ON n.id = d.notification "
        "WHERE d.status = 'deferred' AND d.defer_until <= {} ORDER BY d.site, d.person, d.defer_until LIMIT {}"
    )
    if not is_sqlite():
        pick += " FOR UPDATE OF d SKIP LOCKED"
    released = Released()
    async with write_transaction():
        rows = list(await Delivery.raw(pick, now, limit))
        by_site: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_site[_uuid(row["site"])].append(row)
        for site_id, site_rows in by_site.items():
            await _release_site(directory, site_id, site_rows, now, released)
    released.to_send = sorted(set(released.to_send), key=str)
    return released


async def _release_site(
    directory: Directory, site_id: UUID, rows: list[dict[str, Any]], now: dt.datetime, released: Released
) -> None:
    policy = await load_site_policy(site_id)
    people = sorted({_uuid(r["person"]) for r in rows}, key=str)
    facts = await load_facts(directory, site_id, policy.timezone, people, addresses=())
    gathered: dict[tuple[UUID, Channel], list[Item]] = defaultdict(list)
    single: list[tuple[UUID, str]] = []
    for row in rows:
        item = _item(row)
        person_id, channel = _uuid(row["person"]), Channel(row["channel"])
        decision = decide(
            facts[person_id].facts(
                channel=channel, category=item.category, urgency=item.urgency, created_at=item.created_at, now=now
            ),
            policy,
        )
        if decision.action is Action.SUPPRESS:
            await _set(item.delivery_id, "status = 'suppressed', reason = {}", str(decision.reason), now=now)
            released.suppressed += 1
            released.touched.add(item.notification_id)
        elif decision.action is Action.DEFER:  # quiet again (a snooze, another window): wait on
            await _set(item.delivery_id, "defer_until = {}, reason = {}", decision.defer_until, str(decision.reason))
        elif row["kind"] != DIGEST_KIND and _digestible(policy, item, channel, str(row["reason"] or "")):
            gathered[(person_id, channel)].append(item)
        else:
            single.append((item.delivery_id, str(channel)))
            released.to_send.append((item.notification_id, str(channel)))
    for (person_id, channel), items in gathered.items():
        if len(items) == 1:
            single.append((items[0].delivery_id, str(channel)))
            released.to_send.append((items[0].notification_id, str(channel)))
            continue
        digest_id = await _create_digest(site_id, person_id, channel, items, now)
        released.to_send.append((digest_id, str(channel)))
        released.digests += 1
        released.digested += len(items)
        released.touched |= {item.notification_id for item in items}
    for delivery_id, _ in single:
        await _set(delivery_id, "status = 'pending', next_attempt_at = NULL", now=now)


def _item(row: dict[str, Any]) -> Item:
    return Item(
        delivery_id=_uuid(row["id"]),
        notification_id=_uuid(row["notification"]),
        category=Category(row["category"]),
        urgency=Urgency(row["urgency"]),
        title=str(row["title"]),
        body=str(row["body"]),
        created_at=_aware(row["created_at"]),
    )


def _digestible(policy: SitePolicy, item: Item, channel: Channel, deferred_for: str) -> bool:
    if channel not in DIGEST_CHANNELS or item.urgency is Urgency.CRITICAL:
        return False
    if deferred_for == Reason.DIGEST:
        return True  # held for a burst's digest in the first place
    rule = policy.digest.get(item.category)
    return deferred_for == Reason.DND and rule is not None and rule.dnd


async def _set(delivery_id: UUID, assignments: str, *params: Any, now: dt.datetime | None = None) -> None:
    stamp = ", updated_at = {}" if now is not None else ""
    values = [*params, *([now] if now is not None else [])]
    await Delivery.raw(
        f"UPDATE delivery SET {assignments}{stamp} WHERE id = {{}} AND status = 'deferred'", *values, delivery_id
    )


def digest_category(items: Sequence[Item]) -> Category:
    """The category a digest travels as (its lane and its time to live): its most time-sensitive item's."""
    return min((item.category for item in items), key=lambda c: DEFAULT_TTL_SECONDS[c])


def render(items: Sequence[Item]) -> tuple[str, str]:
    """The digest's title and text: what happened, oldest first, cut to what one message can hold."""
    ordered = sorted(items, key=lambda i: i.created_at)
    title = (
        f"{len(ordered)} update while you were away"
        if len(ordered) == 1
        else f"{len(ordered)} updates while you were away"
    )
    lines: list[str] = []
    used = 0
    for index, item in enumerate(ordered):
        text = f"{item.title}: {item.body}" if item.title else item.body
        text = " ".join(text.split())
        if len(text) > MAX_ITEM_CHARACTERS:
            text = text[: MAX_ITEM_CHARACTERS - 1] + "…"
        line = f"- {text}"
        if used + len(line) > MAX_BODY_CHARACTERS:
            lines.append(f"and {len(ordered) - index} more in the app")
            break
        lines.append(line)
        used += len(line) + 1
    return title, "\n".join(lines)


async def _create_digest(
    site_id: UUID, person_id: UUID, channel: Channel, items: Sequence[Item], now: dt.datetime
) -> UUID:
    title, body = render(items)
    digest_id = uuid.uuid4()
    await Notification.insert(
        Notification(
            id=digest_id,
            site=site_id,
            kind=DIGEST_KIND,
            category=str(digest_category(items)),
            urgency=str(Urgency.NORMAL),
            title=title,
            body=body,
            data={"items": [str(item.delivery_id) for item in items]},
            channels=[str(channel)],
            audience={"person_ids": [str(person_id)]},
            status="sending",
            created_at=now,
            expanded_at=now,
            targeted=1,
        )
    )
    # Inside the release's transaction: not ledger.insert_rows, which writes on a connection of its own.
    await Delivery.insert(
        Delivery(
            id=new_row_id(),
            site=site_id,
            notification=digest_id,
            person=person_id,
            channel=str(channel),
            status="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    ids = [item.delivery_id for item in items]
    placeholders = ", ".join("{}" for _ in ids)
    await Delivery.raw(
        f"UPDATE delivery SET status = 'digested', digest = {{}}, updated_at = {{}} WHERE id IN ({placeholders}) "
        "AND status = 'deferred'",
        digest_id,
        now,
        *ids,
    )
    return digest_id


# -- at send time ---------------------------------------------------------------------------------


async def items_of(notification: Notification) -> list[Item]:
    """The items a digest gathered that are still in it (a row left out since is ``suppressed``)."""
    ids = [UUID(str(i)) for i in as_list(as_dict(notification.data).get("items"))]
    if not ids:
        return []
    rows = await Delivery.raw(
        "SELECT d.id, d.notification, n.category, n.urgency, n.title, n.body, n.created_at FROM delivery d "
        "JOIN notification n ON n.id = d.notification WHERE d.digest = {} AND d.status = 'digested'",
        notification.id,
    )
    return [_item(row) for row in rows]


async def still_wanted(
    notification: Notification, person: PersonFacts, channel: Channel, policy: SitePolicy, now: dt.datetime
) -> tuple[str, str] | None:
    """Decide each item of a digest again as it is sent: items whose consent went meanwhile are left
    out (their rows suppressed). Returns the digest's title and text now, or None if nothing is left."""
    keep: list[Item] = []
    for item in await items_of(notification):
        facts = person.facts(
            channel=channel, category=item.category, urgency=item.urgency, created_at=item.created_at, now=now
        )
        decision = decide(facts, policy)
        if decision.action is not Action.SUPPRESS:
            keep.append(item)  # deferred again: the digest as a whole waits (its own decision)
            continue
        await Delivery.raw(
            "UPDATE delivery SET status = 'suppressed', reason = {}, updated_at = {} "
            "WHERE id = {} AND status = 'digested'",
            str(decision.reason),
            now,
            item.delivery_id,
        )
    return render(keep) if keep else None
