"""Every HTTP route of the billing module, collected for `app.main.route_handlers`. Thin: parse, call, shape.

Staff (FM admin, site admin) set billing up, run it and see the whole site; occupants see and pay the
units they have an active occupancy of (another unit, or another site's, is a 404). Guards and
technicians have no billing routes. The provider's webhook and the checkout's return check their own
signatures.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from app.auth.roles import STAFF, Role, allow, own_auth
from app.billing import collections, documents, invoicing, payments, reconciliation, setup, views, webhooks
from app.billing.charges import ChargeView, NewCharge, add_charge, list_charges
from app.billing.provider import PaymentProvider, provider_for
from app.deps import Caller, RedisDep, SettingsDep
from app.errors import AppError, InvalidInput
from app.media import CSV
from app.pagination import DEFAULT_LIMIT, Limit, Offset, Page, page_of, window
from app.web.pages import PAGE_KEY
from notifications.api import JobQueue, JobQueueDep, provide_job_queue
from schema.billing import Invoice, InvoiceLine

logger = logging.getLogger("opshub.billing.routes")
MANAGERS = allow(*STAFF)
PAYERS = allow(Role.OCCUPANT, *STAFF)
PDF = "application/pdf"
Status = Annotated[str | None, QueryParameter(name="status", max_length=16)]
DateFrom = Annotated[dt.date | None, QueryParameter(name="from")]
DateTo = Annotated[dt.date | None, QueryParameter(name="to")]


def provide_provider(state: State) -> PaymentProvider:
    provider: PaymentProvider | None = getattr(state, "payment_provider", None)
    if provider is None:
        provider = provider_for(state.settings)
        state.payment_provider = provider
    return provider


ProviderDep = NamedDependency[PaymentProvider]
DEPENDENCIES = {
    "provider": Provide(provide_provider, sync_to_thread=False),
    "jobs": Provide(provide_job_queue, sync_to_thread=False),
}


async def enqueue_run(jobs: JobQueue, run_id: UUID) -> None:
    """Ask a worker now; ``billing_tick`` starts a queued run a worker never took."""
    try:
        pool = await jobs.pool()
        await pool.enqueue_job("billing_invoice_run", str(run_id), _job_id=f"billing_invoice_run:{run_id}")
    except Exception:
        logger.warning("could not enqueue billing run %s; billing_tick will start it", run_id)


def _attachment(content: bytes, filename: str) -> Response[bytes]:
    return Response(
        content,
        media_type=PDF,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"},
    )


def _filename(number: str) -> str:
    return number.replace("/", "-") + ".pdf"


class BillingSetupController(Controller):
    path = "/api/billing"
    tags = ["billing"]

    @get("/settings", opt=MANAGERS)
    async def read_settings(self, principal: Caller) -> setup.SettingsView:
        return await setup.get_settings(principal.site_id)

    @put("/settings", opt=MANAGERS)
    async def change_settings(self, principal: Caller, data: JSONBody[setup.SettingsChange]) -> setup.SettingsView:
        return await setup.change_settings(principal.site_id, data)

    @get("/charge-types", opt=MANAGERS)
    async def charge_types(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[setup.ChargeTypeView]:
        return await setup.list_charge_types(principal.site_id, limit=limit, offset=offset)

    @post("/charge-types", opt=MANAGERS)
    async def create_charge_type(self, principal: Caller, data: JSONBody[setup.NewChargeType]) -> setup.ChargeTypeView:
        return await setup.create_charge_type(principal.site_id, data)

    @patch("/charge-types/{charge_type_id:uuid}", opt=MANAGERS)
    async def change_charge_type(
        self, principal: Caller, charge_type_id: FromPath[UUID], data: JSONBody[setup.ChargeTypeChange]
    ) -> setup.ChargeTypeView:
        return await setup.change_charge_type(principal.site_id, charge_type_id, data)

    @get("/rates", opt=MANAGERS)
    async def rates(self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Page[setup.RateView]:
        return await setup.list_rates(principal.site_id, limit=limit, offset=offset)

    @put("/rates", opt=MANAGERS)
    async def set_rate(self, principal: Caller, data: JSONBody[setup.RateChange]) -> setup.RateView:
        return await setup.set_rate(principal.site_id, data)

    @get("/units/{unit_id:uuid}/profile", opt=MANAGERS)
    async def unit_profile(self, principal: Caller, unit_id: FromPath[UUID]) -> setup.UnitProfileView:
        return await setup.get_unit_profile(principal.site_id, unit_id)

    @put("/units/{unit_id:uuid}/profile", opt=MANAGERS)
    async def set_unit_profile(
        self, principal: Caller, unit_id: FromPath[UUID], data: JSONBody[setup.UnitProfileChange]
    ) -> setup.UnitProfileView:
        return await setup.set_unit_profile(principal.site_id, unit_id, data)

    @get("/charges", opt=MANAGERS)
    async def charges(
        self,
        principal: Caller,
        unit_id: FromQuery[UUID | None] = None,
        status: Status = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[ChargeView]:
        return await list_charges(principal.site_id, unit_id=unit_id, status=status, limit=limit, offset=offset)

    @post("/charges", opt=MANAGERS)
    async def add_charge(self, principal: Caller, data: JSONBody[NewCharge]) -> ChargeView:
        """A one-off charge or a credit for a unit, billed on its next invoice."""
        return await add_charge(principal.site_id, data, created_by=principal.person_id)

    @post("/runs", opt=MANAGERS, status_code=202, dependencies=DEPENDENCIES)
    async def start_run(
        self, principal: Caller, jobs: JobQueueDep, data: JSONBody[invoicing.NewRun]
    ) -> invoicing.RunView:
        """Queue the invoice run for a month: every unit's maintenance, booking fees and pending charges."""
        run = await invoicing.queue_run(principal.site_id, data, principal.person_id)
        await enqueue_run(jobs, run.id)
        return run

    @get("/runs", opt=MANAGERS)
    async def runs(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[invoicing.RunView]:
        items, total = await invoicing.list_runs(principal.site_id, limit=limit, offset=offset)
        return page_of(items, total=total, limit=limit, offset=offset)

    @get("/runs/{run_id:uuid}", opt=MANAGERS)
    async def run(self, principal: Caller, run_id: FromPath[UUID]) -> invoicing.RunView:
        return await invoicing.get_run(principal.site_id, run_id)


class InvoiceController(Controller):
    path = "/api/billing"
    tags = ["billing"]

    @get("/invoices", opt=PAYERS)
    async def invoices(
        self,
        principal: Caller,
        unit_id: FromQuery[UUID | None] = None,
        status: Status = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[views.InvoiceView]:
        return await views.list_invoices(principal, unit_id=unit_id, status=status, limit=limit, offset=offset)

    @get("/invoices/{invoice_id:uuid}", opt=PAYERS)
    async def invoice(self, principal: Caller, invoice_id: FromPath[UUID]) -> views.InvoiceView:
        return await views.get_invoice(principal, invoice_id)

    @get("/invoices/{invoice_id:uuid}/pdf", opt=PAYERS, media_type=PDF)
    async def invoice_pdf(self, principal: Caller, invoice_id: FromPath[UUID]) -> Response[bytes]:
        """The invoice as a PDF: the unit's occupants and the FM team only."""
        row = await views.invoice_row(principal, invoice_id)
        lines = await InvoiceLine.select().where(InvoiceLine.invoice == invoice_id).order_by(InvoiceLine.line_no)
        settings = await setup.ensure_site(principal.site_id)
        return _attachment(documents.invoice_pdf(row, lines, settings), _filename(row["number"]))

    @post("/invoices/{invoice_id:uuid}/credit-notes", opt=MANAGERS)
    async def credit(
        self, principal: Caller, invoice_id: FromPath[UUID], data: JSONBody[invoicing.NewCreditNote]
    ) -> invoicing.CreditNoteView:
        """Correct an invoice with a credit note (never an edit); without lines it credits everything left."""
        note, _ = await invoicing.issue_credit_note(principal.site_id, invoice_id, data, principal.person_id)
        return note

    @get("/invoices/{invoice_id:uuid}/credit-notes", opt=PAYERS)
    async def credit_notes(
        self, principal: Caller, invoice_id: FromPath[UUID], limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[invoicing.CreditNoteView]:
        await views.invoice_row(principal, invoice_id)
        return window(await invoicing.list_credit_notes(principal.site_id, invoice_id), limit=limit, offset=offset)

    @get("/receipts", opt=PAYERS)
    async def receipts(
        self,
        principal: Caller,
        unit_id: FromQuery[UUID | None] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Page[views.ReceiptView]:
        return await views.list_receipts(principal, unit_id=unit_id, limit=limit, offset=offset)

    @get("/receipts/{payment_id:uuid}", opt=PAYERS)
    async def receipt(self, principal: Caller, payment_id: FromPath[UUID]) -> views.ReceiptView:
        return await views.get_receipt(principal, payment_id)

    @get("/receipts/{payment_id:uuid}/pdf", opt=PAYERS, media_type=PDF)
    async def receipt_pdf(self, principal: Caller, payment_id: FromPath[UUID]) -> Response[bytes]:
        """The receipt as a PDF: the unit's occupants and the FM team only."""
        row = await views.receipt_row(principal, payment_id)
        settings = await setup.ensure_site(principal.site_id)
        towards = []
        if row["invoice"] is not None:
            invoice = await Invoice.select(Invoice.number).where(Invoice.id == row["invoice"]).first()
            towards = [invoice["number"]] if invoice else []
        return _attachment(documents.receipt_pdf(row, settings, towards), _filename(row["receipt_number"]))

    @get("/units/{unit_id:uuid}/dues", opt=PAYERS)
    async def dues(self, principal: Caller, unit_id: FromPath[UUID]) -> views.Dues:
        return await views.dues(principal, unit_id, await setup.site_today(principal.site_id))

    @get("/units/{unit_id:uuid}/statement", opt=PAYERS)
    async def statement(
        self, principal: Caller, unit_id: FromPath[UUID], date_from: DateFrom = None, date_to: DateTo = None
    ) -> Any:
        _check_range(date_from, date_to)
        return await views.unit_statement(principal, unit_id, date_from, date_to)

    @get("/units/{unit_id:uuid}/statement.csv", opt=PAYERS, media_type=CSV)
    async def statement_csv(
        self, principal: Caller, unit_id: FromPath[UUID], date_from: DateFrom = None, date_to: DateTo = None
    ) -> Response[bytes]:
        _check_range(date_from, date_to)
        statement = await views.unit_statement(principal, unit_id, date_from, date_to)
        return Response(
            views.statement_csv(statement),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="statement-{statement.unit_label}.csv"'},
        )

    @post("/units/{unit_id:uuid}/pay", opt=PAYERS, status_code=201, dependencies=DEPENDENCIES)
    async def pay(
        self,
        principal: Caller,
        settings: SettingsDep,
        provider: ProviderDep,
        unit_id: FromPath[UUID],
        data: JSONBody[payments.PayRequest],
    ) -> payments.Checkout:
        """Start an online payment: the answer's ``checkout_url`` is the provider's hosted checkout."""
        return await payments.start_checkout(provider, settings, principal, unit_id, data)


class CollectionsController(Controller):
    path = "/api/billing"
    tags = ["billing"]

    @post("/payments", opt=MANAGERS, status_code=201)
    async def manual_payment(
        self, principal: Caller, redis: RedisDep, settings: SettingsDep, data: JSONBody[payments.ManualPayment]
    ) -> views.ReceiptView:
        """Record a payment received at the office (cash, cheque, bank transfer), with its receipt."""
        recorded = await payments.record_manual(principal, data)
        await payments.announce(redis, settings, recorded)
        assert recorded.payment_id is not None
        return await views.get_receipt(principal, recorded.payment_id)

    @post("/payments/{payment_id:uuid}/refund", opt=MANAGERS, status_code=200, dependencies=DEPENDENCIES)
    async def refund(
        self,
        principal: Caller,
        redis: RedisDep,
        settings: SettingsDep,
        provider: ProviderDep,
        payment_id: FromPath[UUID],
        data: JSONBody[payments.RefundRequest],
    ) -> views.ReceiptView:
        """Refund (part of) a payment through the provider; the ledger reverses exactly what is refunded."""
        recorded = await payments.refund_payment(provider, principal, payment_id, data)
        await payments.announce(redis, settings, recorded)
        return await views.get_receipt(principal, payment_id)

    @get("/collections", opt=MANAGERS)
    async def board(self, principal: Caller) -> collections.CollectionsBoard:
        """Collected this month, outstanding and overdue, ageing buckets and the top defaulters."""
        return await collections.board(principal.site_id)

    @get("/defaulters", opt=MANAGERS)
    async def defaulters(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[collections.Defaulter]:
        return await collections.defaulters(principal.site_id, limit=limit, offset=offset)

    @get("/reconciliations", opt=MANAGERS)
    async def reconciliations(
        self, principal: Caller, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Page[reconciliation.ReconciliationView]:
        return await reconciliation.list_reconciliations(principal.site_id, limit=limit, offset=offset)

    @post("/reconciliations", opt=MANAGERS, status_code=202, dependencies=DEPENDENCIES)
    async def reconcile_now(self, principal: Caller, jobs: JobQueueDep) -> ReconcileQueued:
        """Compare this site's payments of the last 3 days with the provider's list, in the background;
        the result is listed by ``GET /api/billing/reconciliations``."""
        try:
            pool = await jobs.pool()
            await pool.enqueue_job("billing_reconcile_site", str(principal.site_id))
        except Exception:
            logger.warning("could not enqueue a reconciliation of site %s", principal.site_id)
            return ReconcileQueued(enqueued=False)
        return ReconcileQueued(enqueued=True)


class ReconcileQueued(msgspec.Struct, frozen=True, kw_only=True):
    enqueued: bool  # false: the queue is unreachable; the daily reconciliation still runs


def _check_range(date_from: dt.date | None, date_to: dt.date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise InvalidInput.for_query("from", "must not be after to")


@post(
    "/api/webhooks/razorpay",
    opt=own_auth("razorpay_signature"),
    status_code=200,
    tags=["billing"],
    dependencies=DEPENDENCIES,
)
async def razorpay_webhook(
    request: Request[Any, Any, Any], redis: RedisDep, settings: SettingsDep, provider: ProviderDep
) -> webhooks.WebhookAnswer:
    """Razorpay's events (signed): payments captured, refunds processed. Idempotent on the event id."""
    return await webhooks.handle_webhook(
        provider,
        redis,
        settings,
        await request.body(),
        request.headers.get(webhooks.SIGNATURE_HEADER),
        request.headers.get(webhooks.EVENT_ID_HEADER),
    )


RETURN_PAGE = {**own_auth("razorpay_checkout"), PAGE_KEY: True}


async def _return_page(
    request: Request[Any, Any, Any], redis: Any, settings: Any, provider: PaymentProvider, fields: dict[str, str]
) -> Template:
    try:
        recorded = await webhooks.handle_return(
            provider,
            redis,
            settings,
            fields.get("razorpay_order_id", ""),
            fields.get("razorpay_payment_id", ""),
            fields.get("razorpay_signature", ""),
        )
    except AppError as exc:
        return _page("Payment not confirmed", exc.detail, exc.status)
    if recorded.outcome in ("recorded", "duplicate") and recorded.receipt_number:
        message = f"Payment received. Receipt {recorded.receipt_number}."
    elif recorded.outcome == "duplicate":
        message = "Payment received."
    else:
        message = "Payment received by the provider; your receipt appears in a moment."
    return _page("Payment received", message, 200, refresh="/app?section=bills")


def _page(title: str, message: str, status: int, refresh: str | None = None) -> Template:
    return Template(
        template_name="billing/return.html",
        context={
            "lang": "en",
            "csrf_token": "",
            "principal": None,
            "script_strings": {},
            "path": "",
            "title": title,
            "message": message,
            "refresh": refresh,
        },
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


@get("/billing/checkout/return", opt=RETURN_PAGE, tags=["billing"], dependencies=DEPENDENCIES)
async def checkout_return_get(
    request: Request[Any, Any, Any], redis: RedisDep, settings: SettingsDep, provider: ProviderDep
) -> Template:
    """Where the hosted checkout sends the payer back (GET variant): signed, then on to the occupant app."""
    fields = {k: str(v) for k, v in request.query_params.items()}
    return await _return_page(request, redis, settings, provider, fields)


@post("/billing/checkout/return", opt=RETURN_PAGE, status_code=200, tags=["billing"], dependencies=DEPENDENCIES)
async def checkout_return_post(
    request: Request[Any, Any, Any], redis: RedisDep, settings: SettingsDep, provider: ProviderDep
) -> Template:
    """Where the hosted checkout POSTs the payer back: signed, then on to the occupant app."""
    form = await request.form()
    fields = {k: str(v) for k, v in form.items()}
    return await _return_page(request, redis, settings, provider, fields)


ROUTES: list[ControllerRouterHandler] = [
    BillingSetupController,
    InvoiceController,
    CollectionsController,
    razorpay_webhook,
    checkout_return_get,
    checkout_return_post,
]
