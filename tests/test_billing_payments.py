"""Payments end to end through the official razorpay SDK and the local fake Razorpay: a real server
receives the fake's signed webhooks.

- an occupant's order, paid at the fake: the webhooks record one payment with a receipt, the invoice is paid;
- a replayed webhook changes nothing; a forged or unsigned one is a 403 problem;
- a capture reported twice (and every event delivered twice) is recorded once;
- a refund after the capture reverses exactly; a refund that arrives before its capture is applied by it;
- partial and advance payments; an advance pays the next invoice when it is issued;
- the checkout's signed return records the payment too (once); a forged return is refused;
- reconciliation finds a payment whose webhooks were lost, records it and reports it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest
import razorpay

from app.billing import ledger
from app.billing.charges import NewCharge, add_charge
from app.billing.invoicing import issue_invoice
from app.billing.provider import RazorpayProvider
from app.billing.reconciliation import reconcile
from notifications.fakes import RunningFakes, running_fakes
from notifications.fakes.razorpay_server import sign
from schema.billing import Invoice, LedgerEntry, Payment, WebhookEvent
from tests.support.billing import ISSUE_DAY, configure, monthly_run
from tests.support.servers import FAST, InProcessServer
from tests.support.world import World

PROBLEM = "application/problem+json"


def billing_settings(settings: Any, fakes: RunningFakes, public_url: str) -> Any:
    return msgspec.structs.replace(
        settings,
        razorpay_base_url=fakes.razorpay_url,
        razorpay_key_id=fakes.razorpay.key_id,
        razorpay_key_secret=fakes.razorpay.key_secret,
        razorpay_webhook_secret=fakes.razorpay.webhook_secret,
        public_url=public_url,
    )


class Running:
    def __init__(self, fakes: RunningFakes, server: InProcessServer, settings: Any) -> None:
        self.fakes = fakes
        self.server = server
        self.settings = settings
        self.http = httpx.AsyncClient(base_url=server.http_url, timeout=20)

    @property
    def razorpay(self) -> Any:
        return self.fakes.razorpay

    async def settle(self) -> None:
        async with asyncio.timeout(20):
            await self.razorpay.drain()


@pytest.fixture(scope="module")
async def running(settings: Any) -> AsyncIterator[Running]:
    from app.devredis import free_port

    async with running_fakes() as fakes:
        port = free_port()
        ours = billing_settings(settings, fakes, f"http://127.0.0.1:{port}")
        server = InProcessServer(ours, FAST)
        server.port = port
        server.http_url = f"http://127.0.0.1:{port}"
        server.server.config.port = port
        await server.start()
        fakes.razorpay.configure(webhook_url=f"{server.http_url}/api/webhooks/razorpay")
        result = Running(fakes, server, ours)
        try:
            yield result
        finally:
            await result.http.aclose()
            await server.stop()


@pytest.fixture
async def fresh(running: Running) -> Running:
    await running.settle()
    running.razorpay.reset()
    running.razorpay.configure(webhook_url=f"{running.server.http_url}/api/webhooks/razorpay")
    return running


async def invoice_for(world: World) -> tuple[UUID, UUID, int]:
    await configure(world)
    result = await monthly_run(world)
    issued = next(i for i in result.issued if i.unit_id == world.unit_ids[0])
    return issued.invoice_id, issued.unit_id, issued.total_minor


async def start_payment(running: Running, world: World, unit_id: UUID, **body: Any) -> dict[str, Any]:
    answer = await running.http.post(f"/api/billing/units/{unit_id}/pay", json=body, headers=world.headers("occupant"))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def balance(world: World, unit_id: UUID) -> int:
    return (await ledger.settlement_of(world.site_id, unit_id)).balance_minor


async def test_an_order_paid_at_the_checkout_is_recorded_once_with_a_receipt(fresh: Running, world: World) -> None:
    invoice_id, unit_id, total = await invoice_for(world)
    checkout = await start_payment(fresh, world, unit_id, invoice_id=str(invoice_id))
    assert checkout["amount_minor"] == total
    assert checkout["checkout_url"].startswith(f"{fresh.fakes.razorpay_url}/v1/checkout/embedded?")
    payment = fresh.razorpay.pay(checkout["order_id"])
    await fresh.settle()
    events = {e.event: e for e in fresh.razorpay.events}
    assert [d for e in fresh.razorpay.events for d in e.deliveries] == [200, 200, 200]
    rows = await Payment.select().where(Payment.unit == unit_id)
    assert len(rows) == 1 and rows[0]["provider_payment_id"] == payment["id"]
    assert rows[0]["receipt_number"] == "RCT/26-27/00001" and rows[0]["amount_minor"] == total
    invoice = await Invoice.select(Invoice.status, Invoice.settled_minor).where(Invoice.id == invoice_id).first()
    assert invoice == {"status": "paid", "settled_minor": total}
    assert await balance(world, unit_id) == 0

    # A replayed event is answered and changes nothing.
    entries_before = await LedgerEntry.count().where(LedgerEntry.unit == unit_id)
    captured = events["payment.captured"]
    replay = await fresh.http.post(
        "/api/webhooks/razorpay", content=captured.body, headers=fresh.razorpay.headers(captured)
    )
    assert replay.status_code == 200 and replay.json()["outcome"] == "replayed"
    assert await LedgerEntry.count().where(LedgerEntry.unit == unit_id) == entries_before
    assert await Payment.count().where(Payment.unit == unit_id) == 1
    # The signature the fake sent is the one the SDK's own utility accepts.
    assert razorpay.Utility().verify_webhook_signature(
        captured.body.decode(), fresh.razorpay.headers(captured)["X-Razorpay-Signature"], fresh.razorpay.webhook_secret
    )


async def test_forged_and_unsigned_webhooks_are_refused(fresh: Running, world: World) -> None:
    _, unit_id, _ = await invoice_for(world)
    checkout = await start_payment(fresh, world, unit_id)
    fresh.razorpay.configure(webhooks_enabled=False)
    fresh.razorpay.pay(checkout["order_id"])
    captured = next(e for e in fresh.razorpay.events if e.event == "payment.captured")
    forged = fresh.razorpay.headers(captured, secret="not-the-webhook-secret")
    for headers in (forged, {"Content-Type": "application/json", "X-Razorpay-Event-Id": captured.event_id}):
        answer = await fresh.http.post("/api/webhooks/razorpay", content=captured.body, headers=headers)
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM)
    # A body altered after signing is forged too.
    altered = captured.body.replace(b'"amount": ', b'"amount": 1')
    answer = await fresh.http.post("/api/webhooks/razorpay", content=altered, headers=fresh.razorpay.headers(captured))
    assert answer.status_code == 403
    assert await Payment.count().where(Payment.unit == unit_id) == 0
    assert not await WebhookEvent.exists().where(WebhookEvent.event_id == captured.event_id)


async def test_a_capture_reported_twice_and_delivered_twice_is_recorded_once(fresh: Running, world: World) -> None:
    _, unit_id, total = await invoice_for(world)
    fresh.razorpay.configure(capture_twice=True, duplicate_webhooks=True)
    checkout = await start_payment(fresh, world, unit_id)
    fresh.razorpay.pay(checkout["order_id"])
    await fresh.settle()
    captures = [e for e in fresh.razorpay.events if e.event == "payment.captured"]
    assert len(captures) == 2 and captures[0].event_id != captures[1].event_id
    assert all(d == 200 for e in fresh.razorpay.events for d in e.deliveries)
    assert await Payment.count().where(Payment.unit == unit_id) == 1
    payments = await LedgerEntry.select(LedgerEntry.amount_minor).where(
        (LedgerEntry.unit == unit_id) & (LedgerEntry.kind == "payment")
    )
    assert [p["amount_minor"] for p in payments] == [-total]


async def test_a_refund_after_the_capture_reverses_exactly(fresh: Running, world: World) -> None:
    invoice_id, unit_id, total = await invoice_for(world)
    before = await balance(world, unit_id)
    checkout = await start_payment(fresh, world, unit_id)
    fresh.razorpay.pay(checkout["order_id"])
    await fresh.settle()
    [payment] = await Payment.select().where(Payment.unit == unit_id)
    partial = await fresh.http.post(
        f"/api/billing/payments/{payment['id']}/refund",
        json={"amount_minor": 10_000},
        headers=world.headers("fm_admin"),
    )
    assert partial.status_code == 200, partial.text
    assert partial.json()["refunded_minor"] == 10_000 and partial.json()["status"] == "partially_refunded"
    assert await balance(world, unit_id) == 10_000
    status = await Invoice.select(Invoice.status).where(Invoice.id == invoice_id).first()
    assert status == {"status": "partially_paid"}
    rest = await fresh.http.post(
        f"/api/billing/payments/{payment['id']}/refund", json={}, headers=world.headers("fm_admin")
    )
    assert rest.status_code == 200 and rest.json()["status"] == "refunded"
    await fresh.settle()  # the refund webhooks arrive after the API answered: recorded already, nothing changes
    assert await balance(world, unit_id) == before == total
    status = await Invoice.select(Invoice.status, Invoice.paid_at).where(Invoice.id == invoice_id).first()
    assert status == {"status": "open", "paid_at": None}
    refunds = await LedgerEntry.select(LedgerEntry.amount_minor).where(
        (LedgerEntry.unit == unit_id) & (LedgerEntry.kind == "refund")
    )
    assert sorted(r["amount_minor"] for r in refunds) == [10_000, total - 10_000]
    again = await fresh.http.post(
        f"/api/billing/payments/{payment['id']}/refund", json={}, headers=world.headers("fm_admin")
    )
    assert again.status_code == 409


async def test_a_refund_that_arrives_before_its_capture_is_applied_by_it(fresh: Running, world: World) -> None:
    _, unit_id, total = await invoice_for(world)
    fresh.razorpay.configure(webhooks_enabled=False)
    checkout = await start_payment(fresh, world, unit_id)
    payment = fresh.razorpay.pay(checkout["order_id"])
    fresh.razorpay.refund(payment["id"], 50_000)
    fresh.razorpay.configure(webhooks_enabled=True)
    by_kind = {e.event: e for e in fresh.razorpay.events}
    first = await fresh.http.post(
        "/api/webhooks/razorpay",
        content=by_kind["refund.processed"].body,
        headers=fresh.razorpay.headers(by_kind["refund.processed"]),
    )
    assert first.json()["outcome"] == "waiting_for_capture"
    assert await balance(world, unit_id) == total
    second = await fresh.http.post(
        "/api/webhooks/razorpay",
        content=by_kind["payment.captured"].body,
        headers=fresh.razorpay.headers(by_kind["payment.captured"]),
    )
    assert second.json()["outcome"] == "recorded"
    assert await balance(world, unit_id) == 50_000
    [row] = await Payment.select(Payment.refunded_minor, Payment.status).where(Payment.unit == unit_id)
    assert row == {"refunded_minor": 50_000, "status": "partially_refunded"}
    late = await fresh.http.post(
        "/api/webhooks/razorpay",
        content=by_kind["order.paid"].body,
        headers=fresh.razorpay.headers(by_kind["order.paid"]),
    )
    assert late.json()["outcome"] == "duplicate"


async def test_partial_and_advance_payments(fresh: Running, world: World) -> None:
    invoice_id, unit_id, total = await invoice_for(world)
    part = await start_payment(fresh, world, unit_id, invoice_id=str(invoice_id), amount_minor=100_000)
    fresh.razorpay.pay(part["order_id"])
    await fresh.settle()
    invoice = await Invoice.select(Invoice.status, Invoice.settled_minor).where(Invoice.id == invoice_id).first()
    assert invoice == {"status": "partially_paid", "settled_minor": 100_000}
    dues = (await fresh.http.get(f"/api/billing/units/{unit_id}/dues", headers=world.headers("occupant"))).json()
    assert dues["outstanding_minor"] == total - 100_000
    ahead = await start_payment(fresh, world, unit_id, amount_minor=total - 100_000 + 300_000)  # and an advance
    fresh.razorpay.pay(ahead["order_id"])
    await fresh.settle()
    assert await balance(world, unit_id) == -300_000
    invoice = await Invoice.select(Invoice.status).where(Invoice.id == invoice_id).first()
    assert invoice == {"status": "paid"}
    # The next invoice is paid from the advance the moment it is issued.
    await add_charge(world.site_id, NewCharge(unit_id=unit_id, description="Gym card", unit_price_minor=50_000))
    issued = await issue_invoice(world.site_id, unit_id, ISSUE_DAY)
    assert issued is not None and not isinstance(issued, str)
    row = await Invoice.select(Invoice.status).where(Invoice.id == issued.invoice_id).first()
    assert row == {"status": "paid"}
    assert await balance(world, unit_id) == -300_000 + issued.total_minor
    nothing = await fresh.http.post(f"/api/billing/units/{unit_id}/pay", json={}, headers=world.headers("occupant"))
    assert nothing.status_code == 409  # nothing due: an advance needs an amount


async def test_the_checkout_return_records_the_payment_and_a_forged_one_is_refused(
    fresh: Running, world: World
) -> None:
    _, unit_id, total = await invoice_for(world)
    fresh.razorpay.configure(webhook_delay=2.0)  # the payer is back before the webhooks
    checkout = await start_payment(fresh, world, unit_id)
    payment = fresh.razorpay.pay(checkout["order_id"])
    fields = {
        "razorpay_order_id": checkout["order_id"],
        "razorpay_payment_id": payment["id"],
        "razorpay_signature": fresh.razorpay.payment_signature(checkout["order_id"], payment["id"]),
    }
    forged = await fresh.http.post("/billing/checkout/return", data={**fields, "razorpay_signature": "0" * 64})
    assert forged.status_code == 403 and "text/html" in forged.headers["content-type"]
    back = await fresh.http.post("/billing/checkout/return", data=fields)
    assert back.status_code == 200 and "RCT/26-27/" in back.text and "/app?section=bills" in back.text
    assert await balance(world, unit_id) == 0
    await fresh.settle()
    assert await Payment.count().where(Payment.unit == unit_id) == 1
    assert RazorpayProvider(fresh.settings).verify_checkout(
        checkout["order_id"], payment["id"], fields["razorpay_signature"]
    )
    assert total > 0


async def test_reconciliation_recovers_a_payment_whose_webhooks_were_lost(fresh: Running, world: World) -> None:
    _, unit_id, total = await invoice_for(world)
    fresh.razorpay.configure(webhooks_enabled=False)
    checkout = await start_payment(fresh, world, unit_id)
    lost = fresh.razorpay.pay(checkout["order_id"])
    assert await Payment.count().where(Payment.unit == unit_id) == 0
    from app.redis import create_redis

    redis = create_redis(fresh.settings)
    try:
        views = await reconcile(RazorpayProvider(fresh.settings), redis, fresh.settings, site_ids=[world.site_id])
    finally:
        await redis.aclose()
    [view] = views
    assert [(m.kind, m.provider_payment_id, m.recovered) for m in view.mismatches] == [
        ("missing_here", lost["id"], True)
    ]
    assert await balance(world, unit_id) == 0
    listed = await fresh.http.get("/api/billing/reconciliations", headers=world.headers("fm_admin"))
    assert listed.json()["items"][0]["mismatches"][0]["kind"] == "missing_here"
    # Asked for by the FM team, it runs in the background; run again, nothing is missing any more.
    asked = await fresh.http.post("/api/billing/reconciliations", headers=world.headers("site_admin"))
    assert asked.status_code == 202, asked.text
    from workers.billing_jobs import billing_reconcile_site

    redis = create_redis(fresh.settings)
    try:
        assert await billing_reconcile_site({"settings": fresh.settings, "redis": redis}, str(world.site_id)) == 0
    finally:
        await redis.aclose()
    assert total > 0


async def test_an_unknown_order_and_a_bad_body_change_nothing(fresh: Running, world: World) -> None:
    body = fresh.razorpay.event_body(
        "payment.captured",
        {
            "payment": {
                "id": "pay_notours",
                "amount": 100,
                "currency": "INR",
                "status": "captured",
                "order_id": "order_x",
            }
        },
    )
    headers = {"X-Razorpay-Signature": sign(fresh.razorpay.webhook_secret, body), "X-Razorpay-Event-Id": "evt_unknown1"}
    answer = await fresh.http.post("/api/webhooks/razorpay", content=body, headers=headers)
    assert answer.status_code == 200 and answer.json()["outcome"] == "unknown_order"
    junk = b"not json"
    answer = await fresh.http.post(
        "/api/webhooks/razorpay",
        content=junk,
        headers={"X-Razorpay-Signature": sign(fresh.razorpay.webhook_secret, junk)},
    )
    assert answer.status_code == 422 and answer.headers["content-type"].startswith(PROBLEM)
    assert json.loads(answer.text)["errors"][0]["field"] == "body"
