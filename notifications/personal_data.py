"""Personal data this module holds: registered with `app.privacy.registry`.

Sections: the person's current preferences, their consent history, their do-not-disturb
settings, every notification delivered to them (with its status per channel) and their in-app
feed. Erasing also removes notifications addressed to the person alone and redacts the person's
identifiers from the text of any other notification of the site.

Retention: the ``delivery_ledger`` class deletes finished ledger rows (and notifications left
with none) older than the site's period.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from piccolo.columns.combination import Combinable

from app.privacy.redact import redact, redact_json
from app.privacy.registry import (
    ErasureOutcome,
    PersonalDataSection,
    PersonScope,
    RetentionClass,
    RetentionRun,
    register_retention,
    register_section,
)
from notifications.categories import Channel
from schema.jsonvalue import as_list
from schema.notifications import ConsentEvent, Delivery, DoNotDisturb, Notification, NotificationPreference

FINAL_STATUSES = ("suppressed", "sent", "delivered", "read", "failed")


def _mine(table: Any, scope: PersonScope) -> Any:
    return (table.site == scope.site_id) & (table.person == scope.person_id)


async def _export_preferences(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await NotificationPreference.select(
        NotificationPreference.channel,
        NotificationPreference.category,
        NotificationPreference.enabled,
        NotificationPreference.updated_at,
    ).where(_mine(NotificationPreference, scope))
    return list(rows)


async def _erase_preferences(scope: PersonScope) -> ErasureOutcome:
    deleted = (
        await NotificationPreference.delete()
        .where(_mine(NotificationPreference, scope))
        .returning(NotificationPreference.id)
    )
    return ErasureOutcome(erased=len(deleted))


async def _export_consents(scope: PersonScope) -> list[dict[str, Any]]:
    rows = (
        await ConsentEvent.select(
            ConsentEvent.channel,
            ConsentEvent.category,
            ConsentEvent.granted,
            ConsentEvent.source,
            ConsentEvent.policy_version,
            ConsentEvent.actor.as_alias("actor_id"),
            ConsentEvent.created_at,
        )
        .where(_mine(ConsentEvent, scope))
        .order_by(ConsentEvent.created_at)
    )
    return list(rows)


async def _erase_consents(scope: PersonScope) -> ErasureOutcome:
    deleted = await ConsentEvent.delete().where(_mine(ConsentEvent, scope)).returning(ConsentEvent.id)
    return ErasureOutcome(erased=len(deleted))


async def _export_dnd(scope: PersonScope) -> list[dict[str, Any]]:
    rows = await DoNotDisturb.select(
        DoNotDisturb.timezone, DoNotDisturb.windows, DoNotDisturb.snooze_until, DoNotDisturb.updated_at
    ).where(_mine(DoNotDisturb, scope))
    return [{**row, "windows": as_list(row["windows"])} for row in rows]


async def _erase_dnd(scope: PersonScope) -> ErasureOutcome:
    deleted = await DoNotDisturb.delete().where(_mine(DoNotDisturb, scope)).returning(DoNotDisturb.id)
    return ErasureOutcome(erased=len(deleted))


async def _export_deliveries(scope: PersonScope) -> list[dict[str, Any]]:
    rows = (
        await Delivery.select(
            Delivery.id,
            Delivery.notification.as_alias("notification_id"),
            Delivery.notification.title.as_alias("title"),
            Delivery.notification.category.as_alias("category"),
            Delivery.channel,
            Delivery.status,
            Delivery.reason,
            Delivery.attempts,
            Delivery.created_at,
            Delivery.sent_at,
            Delivery.delivered_at,
            Delivery.read_at,
        )
        .where(_mine(Delivery, scope))
        .order_by(Delivery.created_at)
    )
    return list(rows)


async def _notifications_only_for(scope: PersonScope) -> list[UUID]:
    """Notifications of the site whose every ledger row is the person's (sent to them alone)."""
    theirs = {r["notification"] for r in await Delivery.select(Delivery.notification).where(_mine(Delivery, scope))}
    alone: list[UUID] = []
    for notification_id in theirs:
        others = await Delivery.count().where(
            (Delivery.notification == notification_id) & (Delivery.person != scope.person_id)
        )
        if others == 0:
            alone.append(notification_id)
    return alone


async def _erase_deliveries(scope: PersonScope) -> ErasureOutcome:
    alone = await _notifications_only_for(scope)
    deleted = await Delivery.delete().where(_mine(Delivery, scope)).returning(Delivery.id)
    erased = len(deleted)
    if alone:
        gone = (
            await Notification.delete()
            .where((Notification.site == scope.site_id) & Notification.id.is_in(alone))
            .returning(Notification.id)
        )
        erased += len(gone)
    erased += await _redact_notifications(scope)
    return ErasureOutcome(erased=erased)


async def _redact_notifications(scope: PersonScope) -> int:
    """Other notifications of the site that name the person or list them in the audience."""
    person = str(scope.person_id)
    needles = [n for n in scope_identifiers(scope) if n]
    changed = 0
    rows = await Notification.select(
        Notification.id, Notification.title, Notification.body, Notification.data, Notification.audience
    ).where(Notification.site == scope.site_id)
    for row in rows:
        title, body = redact(row["title"], needles), redact(row["body"], needles)
        data = redact_json(row["data"], needles)
        audience = row["audience"]
        audience_text = audience if isinstance(audience, str) else str(audience)
        new_audience = audience
        if person in audience_text:
            new_audience = redact_json(audience, [person], replacement=None)
        if (title, body, data, new_audience) != (row["title"], row["body"], row["data"], audience):
            await Notification.update(
                {
                    Notification.title: title,
                    Notification.body: body,
                    Notification.data: data,
                    Notification.audience: new_audience,
                }
            ).where(Notification.id == row["id"])
            changed += 1
    return changed


def scope_identifiers(scope: PersonScope) -> list[str]:
    return list(scope.identifiers)


async def _export_feed(scope: PersonScope) -> list[dict[str, Any]]:
    rows = (
        await Delivery.select(
            Delivery.id.as_alias("delivery_id"),
            Delivery.notification.title.as_alias("title"),
            Delivery.notification.body.as_alias("body"),
            Delivery.notification.category.as_alias("category"),
            Delivery.sent_at,
            Delivery.read_at,
        )
        .where(
            _mine(Delivery, scope)
            & (Delivery.channel == str(Channel.IN_APP))
            & Delivery.status.is_in(["sent", "delivered", "read"])
        )
        .order_by(Delivery.sent_at)
    )
    return list(rows)


async def _erase_feed(scope: PersonScope) -> ErasureOutcome:
    # The feed is the in-app rows of the ledger: the "notifications_received" section erases them.
    deleted = (
        await Delivery.delete()
        .where(_mine(Delivery, scope) & (Delivery.channel == str(Channel.IN_APP)))
        .returning(Delivery.id)
    )
    return ErasureOutcome(erased=len(deleted))


def _old_final_rows(run: RetentionRun) -> Combinable:
    """The site's finished ledger rows created before the cutoff (read by ``ix_delivery_site_created``)."""
    condition: Combinable = (
        (Delivery.site == run.site_id)
        & (Delivery.created_at < run.cutoff)
        & Delivery.status.is_in(list(FINAL_STATUSES))
    )
    return condition


async def _apply_ledger_retention(run: RetentionRun) -> int:
    deleted = await Delivery.delete().where(_old_final_rows(run)).returning(Delivery.id)
    finished = await Notification.select(Notification.id).where(
        (Notification.site == run.site_id)
        & (Notification.created_at < run.cutoff)
        & Notification.status.is_in(["completed", "cancelled"])
    )
    emptied = [row["id"] for row in finished if not await Delivery.exists().where(Delivery.notification == row["id"])]
    count = len(deleted)
    for start in range(0, len(emptied), 500):
        gone = (
            await Notification.delete()
            .where(Notification.id.is_in(emptied[start : start + 500]))
            .returning(Notification.id)
        )
        count += len(gone)
    return count


async def _count_ledger_retention(run: RetentionRun) -> int:
    """What ``_apply_ledger_retention`` would delete: finished deliveries, then notifications left empty."""
    old_final = _old_final_rows(run)
    count = int(await Delivery.count().where(old_final))
    finished = await Notification.select(Notification.id).where(
        (Notification.site == run.site_id)
        & (Notification.created_at < run.cutoff)
        & Notification.status.is_in(["completed", "cancelled"])
    )
    for row in finished:
        left = await Delivery.count().where(Delivery.notification == row["id"])
        going = await Delivery.count().where((Delivery.notification == row["id"]) & old_final)
        count += left == going
    return count


PREFERENCES = register_section(
    PersonalDataSection(
        name="notification_preferences",
        description="Your current choice per channel (push, SMS, WhatsApp, email, in-app) and category.",
        export=_export_preferences,
        erase=_erase_preferences,
    )
)
CONSENT_HISTORY = register_section(
    PersonalDataSection(
        name="consent_history",
        description="Every consent you gave or withdrew: when, for which channel and category, how "
        "(app, web, keyword, admin, provider) and under which policy version.",
        export=_export_consents,
        erase=_erase_consents,
    )
)
DND = register_section(
    PersonalDataSection(
        name="do_not_disturb",
        description="Your quiet hours (in your timezone) and any snooze.",
        export=_export_dnd,
        erase=_erase_dnd,
    )
)
FEED = register_section(
    PersonalDataSection(
        name="in_app_feed",
        description="The notifications in your in-app feed, with when you read them.",
        export=_export_feed,
        erase=_erase_feed,
    )
)
DELIVERIES = register_section(
    PersonalDataSection(
        name="notifications_received",
        description="Every notification sent to you, one row per channel, with its delivery status "
        "(sent, delivered, read, failed, suppressed and why).",
        export=_export_deliveries,
        erase=_erase_deliveries,
    )
)
DELIVERY_LEDGER = register_retention(
    RetentionClass(
        name="delivery_ledger",
        description="Finished delivery records (and notifications left without any) are deleted after this period.",
        default_days=365,
        apply=_apply_ledger_retention,
        count=_count_ledger_retention,
    )
)
