"""Tables of the billing module (migrations: see schema/piccolo_migrations/README.md).

Money is integer minor units (paise) in every column; nothing here is a float.

- ``BillingSettings``: one row per site (supplier details, invoice prefix, due days, rounding, late
  fee, reminder days).
- ``ChargeType`` (per site: tax rate, HSN/SAC, CGST+SGST or IGST), ``Rate`` (recurring maintenance per
  unit type: per unit or per square foot), ``UnitProfile`` (a unit's area, a fixed amount agreed for it,
  a customer GSTIN).
- ``Charge``: what a unit owes and has not been invoiced yet (maintenance of a month, a booking fee
  from SLOTS, a one-off charge, a credit); ``source_key`` makes each of them exist once.
- ``Counter``: the last number of each series (invoice, credit note, receipt) per site and financial
  year, taken in the transaction that inserts the document, so numbers are gap-free.
- ``Invoice`` / ``InvoiceLine``, ``CreditNote``: the documents (never edited; ``settled_minor``,
  ``status`` and ``paid_at`` are a cache of what the ledger says, recomputed with every entry).
- ``LedgerEntry``: the unit's account, one immutable row per invoice, payment, credit note, late fee,
  refund (and balance carried forward by the retention purge). A trigger refuses UPDATE.
- ``PaymentOrder``, ``Payment``, ``Refund``, ``WebhookEvent``: the provider side, each keyed on the
  provider's own id so a replay or a second delivery changes nothing.
- ``Reminder``, ``Run``, ``Reconciliation``: collections and the jobs' records.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from schema.tables import Person, Site, Unit


class BillingSettings(Table, tablename="billing_settings"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, unique=True)
    legal_name = Varchar(length=200, default="")
    address = Varchar(length=500, default="")
    gstin = Varchar(length=15, default="")
    state_code = Varchar(length=2, default="")  # GST state code of the supplier ("29": Karnataka)
    invoice_prefix = Varchar(length=4, default="INV")
    fy_start_month = Integer(default=4)  # India: April-March
    due_days = Integer(default=15)
    rounding = Varchar(length=8, default="rupee")  # rupee: total to the nearest rupee | paise: none
    late_fee_kind = Varchar(length=8, default="none")  # none | flat | percent
    late_fee_value = Integer(default=0)  # flat: paise; percent: basis points of the amount overdue
    late_fee_grace_days = Integer(default=0)
    reminder_days_before = JSON(default="[3]")
    reminder_days_after = JSON(default="[1, 7, 15]")
    run_day = Integer(default=1)  # day of the month the monthly run issues invoices (site time)
    updated_at = Timestamptz()


class ChargeType(Table, tablename="billing_charge_type"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    code = Varchar(length=32)  # unique per site (index uq_billing_charge_type_site_code)
    name = Varchar(length=100)
    hsn_sac = Varchar(length=8, default="")
    tax_rate_bp = Integer(default=0)  # basis points: 1800 = 18 %
    tax_kind = Varchar(length=12, default="cgst_sgst")  # cgst_sgst | igst | exempt
    created_at = Timestamptz()


class Rate(Table, tablename="billing_rate"):
    """Recurring (monthly) maintenance for one unit type of a site."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit_kind = Varchar(length=16)  # Unit.kind: residential | commercial | ...
    charge_type = ForeignKey(references=ChargeType, on_delete=OnDelete.no_action, null=False)
    basis = Varchar(length=8)  # per_unit | per_sqft
    amount_minor = Integer()  # per unit per month, or per square foot per month
    description = Varchar(length=200, default="Maintenance")
    updated_at = Timestamptz()


class UnitProfile(Table, tablename="billing_unit_profile"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.cascade, null=False, unique=True)
    area_sqft_centi = Integer(default=0)  # hundredths of a square foot
    fixed_minor = Integer(null=True, default=None)  # a monthly amount agreed for this unit (basis "fixed")
    customer_gstin = Varchar(length=15, default="")  # a business occupant's GSTIN (B2B invoice)
    updated_at = Timestamptz()


class Run(Table, tablename="billing_run"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    period = Varchar(length=7)  # YYYY-MM
    issue_date = Date()
    status = Varchar(length=12)  # queued | running | completed | failed
    invoices = Integer(default=0)
    total_minor = Integer(default=0)
    skipped = JSON(default="[]")  # [{"unit_id", "reason"}]
    error = Varchar(length=200, null=True, default=None)
    created_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)


class Counter(Table, tablename="billing_counter"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    series = Varchar(length=12)  # invoice | credit_note | receipt
    fy = Varchar(length=7)  # 2026-27
    last_seq = Integer(default=0)


class Invoice(Table, tablename="billing_invoice"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.no_action, null=False, index=True)
    run = ForeignKey(references=Run, on_delete=OnDelete.set_null, null=True, default=None)
    number = Varchar(length=16)
    fy = Varchar(length=7)
    seq = Integer()
    issue_date = Date()
    due_date = Date()
    period = Varchar(length=7, null=True, default=None)
    billed_to_name = Varchar(length=300, default="")
    customer_gstin = Varchar(length=15, default="")
    place_of_supply = Varchar(length=2, default="")
    currency = Varchar(length=3, default="INR")
    subtotal_minor = Integer()
    cgst_minor = Integer()
    sgst_minor = Integer()
    igst_minor = Integer()
    round_off_minor = Integer()
    total_minor = Integer()
    # A cache of what the ledger says (recomputed with every entry of the unit).
    credited_minor = Integer(default=0)
    settled_minor = Integer(default=0)
    status = Varchar(length=16, default="open")  # open | partially_paid | paid | credited
    paid_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class InvoiceLine(Table, tablename="billing_invoice_line"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    invoice = ForeignKey(references=Invoice, on_delete=OnDelete.cascade, null=False, index=True)
    line_no = Integer()
    charge_type_code = Varchar(length=32)
    description = Varchar(length=200)
    hsn_sac = Varchar(length=8, default="")
    quantity_milli = Integer()
    unit_price_minor = Integer()
    taxable_minor = Integer()
    tax_kind = Varchar(length=12)
    tax_rate_bp = Integer()
    cgst_minor = Integer()
    sgst_minor = Integer()
    igst_minor = Integer()
    total_minor = Integer()


class Charge(Table, tablename="billing_charge"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.cascade, null=False, index=True)
    charge_type = ForeignKey(references=ChargeType, on_delete=OnDelete.no_action, null=False)
    source = Varchar(length=12)  # maintenance | booking | one_off | credit
    source_key = Varchar(length=120)  # unique per site: maintenance:{unit}:{period}, slot:{charge}, ...
    description = Varchar(length=200)
    quantity_milli = Integer(default=1000)
    unit_price_minor = Integer()
    amount_minor = Integer()  # quantity x unit price, rounded once; negative for a credit
    period = Varchar(length=7, null=True, default=None)
    status = Varchar(length=12, default="pending")  # pending | invoiced | void
    invoice = ForeignKey(references=Invoice, on_delete=OnDelete.set_null, null=True, default=None)
    created_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()


class CreditNote(Table, tablename="billing_credit_note"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.no_action, null=False, index=True)
    invoice = ForeignKey(references=Invoice, on_delete=OnDelete.no_action, null=False, index=True)
    number = Varchar(length=16)
    fy = Varchar(length=7)
    seq = Integer()
    issue_date = Date()
    reason = Varchar(length=500)
    lines = JSON(
        default="[]"
    )  # [{"line_no", "taxable_minor", "cgst_minor", "sgst_minor", "igst_minor", "total_minor"}]
    taxable_minor = Integer()
    cgst_minor = Integer()
    sgst_minor = Integer()
    igst_minor = Integer()
    total_minor = Integer()
    created_by = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()


class PaymentOrder(Table, tablename="billing_payment_order"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.no_action, null=False, index=True)
    invoice = ForeignKey(references=Invoice, on_delete=OnDelete.set_null, null=True, default=None)
    person = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    provider = Varchar(length=16)
    provider_order_id = Varchar(length=64, unique=True)
    amount_minor = Integer()
    currency = Varchar(length=3, default="INR")
    status = Varchar(length=12, default="created")  # created | paid
    created_at = Timestamptz()


class Payment(Table, tablename="billing_payment"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.no_action, null=False, index=True)
    order = ForeignKey(references=PaymentOrder, on_delete=OnDelete.set_null, null=True, default=None)
    invoice = ForeignKey(references=Invoice, on_delete=OnDelete.set_null, null=True, default=None)
    person = ForeignKey(references=Person, on_delete=OnDelete.set_null, null=True, default=None)
    provider = Varchar(length=16)  # razorpay | cash | cheque | bank_transfer
    provider_payment_id = Varchar(length=64, unique=True)  # manual payments: manual:{uuid}
    method = Varchar(length=32, default="")
    reference = Varchar(length=100, default="")  # cheque or transfer reference (manual payments)
    amount_minor = Integer()
    refunded_minor = Integer(default=0)
    currency = Varchar(length=3, default="INR")
    status = Varchar(length=20)  # captured | partially_refunded | refunded
    receipt_number = Varchar(length=16)
    receipt_fy = Varchar(length=7)
    receipt_seq = Integer()
    captured_at = Timestamptz()
    created_at = Timestamptz()


class Refund(Table, tablename="billing_refund"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=True, default=None, index=True)
    payment = ForeignKey(references=Payment, on_delete=OnDelete.no_action, null=True, default=None)
    provider_refund_id = Varchar(length=64, unique=True)
    provider_payment_id = Varchar(length=64, index=True)
    amount_minor = Integer()
    # waiting: the refund arrived before the capture it refunds; applied: in the ledger
    status = Varchar(length=12)
    applied_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class LedgerEntry(Table, tablename="billing_ledger_entry"):
    """Immutable: a correction is a new entry (a credit note, a refund), never an edit."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    unit = ForeignKey(references=Unit, on_delete=OnDelete.no_action, null=False, index=True)
    # invoice | payment | credit_note | late_fee | refund | balance_forward
    kind = Varchar(length=16)
    entry_key = Varchar(length=120)  # unique per site: what this entry records, so it is recorded once
    amount_minor = Integer()  # positive: the unit owes more; negative: paid or credited
    entry_date = Date()
    due_date = Date(null=True, default=None)  # debits: when they fall due
    description = Varchar(length=200)
    invoice = ForeignKey(references=Invoice, on_delete=OnDelete.no_action, null=True, default=None)
    payment = ForeignKey(references=Payment, on_delete=OnDelete.no_action, null=True, default=None)
    credit_note = ForeignKey(references=CreditNote, on_delete=OnDelete.no_action, null=True, default=None)
    refund = ForeignKey(references=Refund, on_delete=OnDelete.no_action, null=True, default=None)
    created_at = Timestamptz()


class WebhookEvent(Table, tablename="billing_webhook_event"):
    id = UUID(primary_key=True)
    provider = Varchar(length=16)
    event_id = Varchar(length=64, unique=True)
    event_type = Varchar(length=64)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=True, default=None, index=True)
    outcome = Varchar(length=40)
    payload_sha256 = Varchar(length=64)
    received_at = Timestamptz()


class Reminder(Table, tablename="billing_reminder"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    invoice = ForeignKey(references=Invoice, on_delete=OnDelete.cascade, null=False, index=True)
    offset_days = Integer()  # negative: before the due date
    notification = UUID(null=True, default=None)
    status = Varchar(length=12)  # sent | skipped | cancelled
    created_at = Timestamptz()


class Reconciliation(Table, tablename="billing_reconciliation"):
    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=True, default=None, index=True)
    provider = Varchar(length=16)
    window_from = Timestamptz()
    window_to = Timestamptz()
    checked = Integer(default=0)
    recovered = Integer(default=0)
    mismatches = JSON(default="[]")  # [{"kind", "provider_payment_id", "ours_minor", "theirs_minor", ...}]
    ran_at = Timestamptz()


BILLING_TABLES: list[type[Table]] = [
    BillingSettings,
    ChargeType,
    Rate,
    UnitProfile,
    Run,
    Counter,
    Invoice,
    InvoiceLine,
    Charge,
    CreditNote,
    PaymentOrder,
    Payment,
    Refund,
    LedgerEntry,
    WebhookEvent,
    Reminder,
    Reconciliation,
]
