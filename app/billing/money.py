"""Money arithmetic in integer minor units (paise): lines, GST, rounding, words, financial years.

Pure functions, no database. Nothing here ever holds a float.

Rounding rules (stated once, applied once each):

1. A line's taxable value is quantity x unit price, rounded half away from zero to the paisa. Quantities
   are in thousandths (``quantity_milli``: 1000 = 1, an area of 1234.5 sq ft = 1234500), unit prices in
   whole paise.
2. A line's tax is computed on that line's taxable value, per component, rounded half away from zero to
   the paisa: CGST and SGST each at half the rate (so they are always equal), or IGST at the full rate.
3. The invoice's subtotal and taxes are plain sums of the lines' integers: nothing is rounded again.
4. With the site's rule ``rupee`` the total is rounded once, half away from zero, to the nearest rupee and
   the difference is shown as its own "round off" amount (at most 50 paise either way); with ``paise``
   there is no round off. So total = subtotal + CGST + SGST + IGST + round off, exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from num2words import num2words

QUANTITY_ONE: Final = 1000  # quantity_milli of one unit
BASIS_POINTS: Final = 10_000
RUPEE: Final = 100


class TaxKind(StrEnum):
    CGST_SGST = "cgst_sgst"  # supply within the supplier's state: half central, half state
    IGST = "igst"  # supply to another state
    EXEMPT = "exempt"


class Rounding(StrEnum):
    RUPEE = "rupee"
    PAISE = "paise"


def div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in integers (denominator > 0)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def line_amount(quantity_milli: int, unit_price_minor: int) -> int:
    """Rule 1: the taxable value of a line."""
    return div_round(quantity_milli * unit_price_minor, QUANTITY_ONE)


@dataclass(frozen=True, slots=True)
class LineTax:
    cgst_minor: int
    sgst_minor: int
    igst_minor: int

    @property
    def total(self) -> int:
        return self.cgst_minor + self.sgst_minor + self.igst_minor


def line_tax(taxable_minor: int, rate_bp: int, kind: TaxKind) -> LineTax:
    """Rule 2: the tax of one line, per component."""
    if kind is TaxKind.EXEMPT or rate_bp == 0:
        return LineTax(0, 0, 0)
    if kind is TaxKind.IGST:
        return LineTax(0, 0, div_round(taxable_minor * rate_bp, BASIS_POINTS))
    half = div_round(taxable_minor * rate_bp, 2 * BASIS_POINTS)
    return LineTax(half, half, 0)


def round_total(amount_minor: int, rounding: Rounding) -> int:
    """Rule 4: the round off that brings ``amount_minor`` to the site's rounding (0 for paise)."""
    if rounding is Rounding.PAISE:
        return 0
    return div_round(amount_minor, RUPEE) * RUPEE - amount_minor


@dataclass(frozen=True, slots=True)
class LineInput:
    description: str
    charge_type_code: str
    quantity_milli: int
    unit_price_minor: int
    tax_rate_bp: int
    tax_kind: TaxKind
    hsn_sac: str = ""
    # A charge whose amount was already rounded (rule 1) when it was recorded: used as is.
    amount_minor: int | None = None


@dataclass(frozen=True, slots=True)
class ComputedLine:
    line_no: int
    source: LineInput
    taxable_minor: int
    tax: LineTax

    @property
    def total_minor(self) -> int:
        return self.taxable_minor + self.tax.total


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    lines: list[ComputedLine]
    subtotal_minor: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int
    round_off_minor: int
    total_minor: int

    @property
    def tax_minor(self) -> int:
        return self.cgst_minor + self.sgst_minor + self.igst_minor


def compute_invoice(lines: Sequence[LineInput], rounding: Rounding) -> InvoiceTotals:
    """Every line numbered from 1 in the order given, its tax, and the invoice's sums and round off."""
    computed = []
    for number, line in enumerate(lines, start=1):
        taxable = (
            line.amount_minor
            if line.amount_minor is not None
            else line_amount(line.quantity_milli, line.unit_price_minor)
        )
        computed.append(ComputedLine(number, line, taxable, line_tax(taxable, line.tax_rate_bp, line.tax_kind)))
    subtotal = sum(c.taxable_minor for c in computed)
    cgst = sum(c.tax.cgst_minor for c in computed)
    sgst = sum(c.tax.sgst_minor for c in computed)
    igst = sum(c.tax.igst_minor for c in computed)
    before = subtotal + cgst + sgst + igst
    round_off = round_total(before, rounding)
    return InvoiceTotals(computed, subtotal, cgst, sgst, igst, round_off, before + round_off)


# ------------------------------------------------------------------------------ words and formats


def amount_in_words(amount_minor: int, currency: str = "INR") -> str:
    """'Rupees One Lakh Twenty-Three Thousand ... and Fifty Paise Only' (Indian numbering: lakh, crore)."""
    negative = amount_minor < 0
    rupees, paise = divmod(abs(amount_minor), RUPEE)
    major, minor = ("Rupees", "Paise") if currency == "INR" else (currency, "cents")
    words = f"{major} {_title(num2words(rupees, lang='en_IN'))}"
    if paise:
        words += f" and {_title(num2words(paise, lang='en_IN'))} {minor}"
    return ("Minus " if negative else "") + words + " Only"


def _title(words: str) -> str:
    return " ".join(part.capitalize() if part != "and" else part for part in words.replace(",", "").split(" "))


def format_money(amount_minor: int, currency: str = "INR") -> str:
    """12345678 -> 'INR 1,23,456.78' (Indian digit grouping for INR)."""
    sign = "-" if amount_minor < 0 else ""
    whole, paise = divmod(abs(amount_minor), RUPEE)
    digits = str(whole)
    if currency == "INR" and len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        groups: list[str] = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        if head:
            groups.insert(0, head)
        digits = ",".join([*groups, tail])
    elif len(digits) > 3:
        digits = f"{whole:,}"
    return f"{sign}{currency} {digits}.{paise:02d}"


# ------------------------------------------------------------------------------ financial years


def financial_year(day: dt.date, start_month: int = 4) -> str:
    """The financial year a date falls in: '2026-27' for India's April-March (start_month 4)."""
    first = day.year if day.month >= start_month else day.year - 1
    if start_month == 1:
        return str(first)
    return f"{first}-{(first + 1) % 100:02d}"


def document_number(prefix: str, fy: str, seq: int) -> str:
    """'INV/26-27/00042': at most 16 characters of letters, digits, '/' and '-' (GST invoice rule 46(b))."""
    short_fy = fy[2:] if len(fy) == 7 else fy
    number = f"{prefix}/{short_fy}/{seq:05d}"
    if len(number) > 16:
        raise ValueError(f"document number {number!r} is longer than 16 characters")
    return number
