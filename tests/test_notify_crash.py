"""A worker killed (SIGKILL) in the middle of a 5,000-recipient announcement, then restarted.

Afterwards every eligible person has exactly one message per channel at the fakes, and the
ledger's counts equal the fakes' counts. The worker is a real `arq` process; the fakes are
the local Twilio and FCM servers, reached through the real SDKs.

Twilio status callbacks are off, so recovery relies on asking the provider (the message
list) for sends that were in flight when the worker died. FCM cannot be asked: push is
re-sent with the same tag (the delivery id), so the device shows one notification; the
test counts what a device displays and also reports raw repeats at the transport.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from arq import create_pool

from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.fakes import running_fakes
from notifications.service import NotificationRequest, cancel_notification, create_notification
from schema.notifications import Delivery, Notification
from tests.support.notify import TEMPLATE_SID, add_recipients
from workers.main import queue_name, redis_settings

ROOT = Path(__file__).resolve().parent.parent
RECIPIENTS = 5000
CHANNELS = [Channel.PUSH, Channel.SMS, Channel.WHATSAPP]


def _worker_env(fakes: Any) -> dict[str, str]:
    return {
        **os.environ,
        **fakes.env(),
        "OPSHUB_WHATSAPP_TEMPLATE_SID": TEMPLATE_SID,
        "OPSHUB_NOTIFY_RATE_SMS": "0",
        "OPSHUB_NOTIFY_RATE_WHATSAPP": "0",
        "OPSHUB_NOTIFY_RATE_PUSH": "0",
        "OPSHUB_NOTIFY_CLAIM_LEASE_SECONDS": "2",
        "OPSHUB_LOG_LEVEL": "WARNING",
    }


async def _start_worker(env: dict[str, str], log: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers",
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )


async def _count(notification_id: Any, statuses: list[str]) -> int:
    return await Delivery.count().where((Delivery.notification == notification_id) & Delivery.status.is_in(statuses))


async def _wait_until(predicate: Any, within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _cancel_other_sites_notifications(site_id: Any) -> None:
    """Earlier tests leave notifications that no worker ever sent; the worker started here would
    send them all first. Cancel them the way an FM admin would, so this test measures its own."""
    rows = await Notification.select(Notification.id, Notification.site).where(
        Notification.status.not_in(["completed", "cancelled"]) & (Notification.site != site_id)
    )
    for row in rows:
        await cancel_notification(row["site"], row["id"])


def _displayed_push(fakes: Any) -> Counter[str]:
    """What devices show: a notification with the same tag replaces the earlier one."""
    shown = {(m.target, m.message["android"]["notification"]["tag"]) for m in fakes.fcm.messages}
    return Counter(token for token, _ in shown)


async def test_sigkill_mid_fanout_then_restart_sends_exactly_once(world, settings, tmp_dir) -> None:  # type: ignore[no-untyped-def]
    people = await add_recipients(world, RECIPIENTS)
    await _cancel_other_sites_notifications(world.site_id)
    async with running_fakes() as fakes:
        fakes.twilio.configure(callbacks_enabled=False)
        env = _worker_env(fakes)
        log = (tmp_dir / "worker.log").open("ab")  # both workers' output, shown if one will not stop
        notification_id, _ = await create_notification(
            site_id=world.site_id,
            request=NotificationRequest(
                title="Fire drill",
                body="Fire drill at 11:00 in both towers",
                category=Category.ANNOUNCEMENT,
                audience=Audience(person_ids=[p.person_id for p in people]),
                channels=CHANNELS,
            ),
        )
        pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
        worker = await _start_worker(env, log)
        try:
            await pool.enqueue_job("notify_expand", str(notification_id))

            async def part_sent() -> bool:
                return await _count(notification_id, ["sent"]) >= RECIPIENTS  # about a third of 15,000

            await _wait_until(part_sent, 120, "the first sends")
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            at_kill = await _count(notification_id, ["sent"])
            assert at_kill < RECIPIENTS * len(CHANNELS), "killed too late to test anything"

            worker = await _start_worker(env, log)

            async def finished() -> bool:
                row = await Notification.select(Notification.status).where(Notification.id == notification_id).first()
                return row is not None and row["status"] == "completed"

            await _wait_until(finished, 200, "the restarted worker to finish")
        finally:
            if worker.returncode is None:
                worker.terminate()
                # A worker that cannot exit (a leaked non-daemon thread) would hang CI. Exiting may
                # legitimately take up to SQLite's busy timeout (30 s): a connection told to close
                # while it waits for the write lock closes once its wait ends.
                try:
                    await asyncio.wait_for(worker.wait(), 60)
                except TimeoutError:
                    worker.kill()
                    await worker.wait()
                    log.flush()
                    tail = (tmp_dir / "worker.log").read_text(errors="replace")[-3000:]
                    raise AssertionError(
                        f"the worker did not exit within 60 s of SIGTERM; its log ends:\n{tail}"
                    ) from None
            await pool.aclose()
            log.close()

        sms = Counter(m.to for m in fakes.twilio.messages if m.channel == "sms")
        whatsapp = Counter(m.to for m in fakes.twilio.messages if m.channel == "whatsapp")
        push_shown = _displayed_push(fakes)
        push_raw = Counter(m.target for m in fakes.fcm.messages)

    rows = await Delivery.select(
        Delivery.person, Delivery.channel, Delivery.status, Delivery.attempts, Delivery.provider_code
    ).where(Delivery.notification == notification_id)
    ledger = Counter((r["channel"], r["status"]) for r in rows)
    row_of = {(r["person"], r["channel"]): r for r in rows}
    wrong = [
        (person, channel, seen, row_of.get((person.person_id, channel)))
        for person in people
        for channel, seen in (
            ("sms", sms[person.mobile]),
            ("whatsapp", whatsapp[f"whatsapp:{person.mobile}"]),
            ("push", push_shown[person.token]),
        )
        if seen != 1
    ]
    # Each person's message per channel, with the ledger's row beside it: a failure says what the ledger thought.
    assert not wrong, f"{len(wrong)} people x channels not shown exactly once, e.g. {wrong[:5]}; ledger {ledger}"
    assert ledger == {("push", "sent"): RECIPIENTS, ("sms", "sent"): RECIPIENTS, ("whatsapp", "sent"): RECIPIENTS}
    assert sum(sms.values()) == ledger[("sms", "sent")]
    assert sum(whatsapp.values()) == ledger[("whatsapp", "sent")]
    assert sum(push_shown.values()) == ledger[("push", "sent")]
    repeats = sum(push_raw.values()) - sum(push_shown.values())
    print(f"\nkilled with {at_kill} rows sent; push repeats at the transport (same tag): {repeats}")
