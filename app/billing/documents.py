"""PDF invoices and receipts (fpdf2), made on request from the stored rows: nothing is stored as a file,
so a document always shows what the records say (and pseudonymised names stay pseudonymised).

An invoice shows the supplier (the site's legal name, address, GSTIN, state), the invoice's number and
dates, who it is billed to, each numbered line with its HSN/SAC, quantity, rate, taxable value, tax rate
and CGST/SGST/IGST, the totals with the round off, the tax breakdown per rate, and the amount in words.
A receipt shows the payment, what it was received for and its amount in words.

The PDF's built-in fonts hold Latin-1 only: other characters (a name in Devanagari, the rupee sign)
are written as '?' and amounts as "INR"; the records themselves keep every character.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from fpdf import FPDF

from app.billing.money import amount_in_words, format_money

MARGIN = 12


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _money(minor: int) -> str:
    return format_money(minor).removeprefix("INR ").replace("-INR ", "-")


def _quantity(milli: int) -> str:
    whole, part = divmod(milli, 1000)
    return f"{whole}" if not part else f"{milli / 1000:g}"


class _Document(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(title)
        self.set_creator("opshub")
        self.add_page()

    def text_line(self, text: str, size: float = 9, style: str = "", height: float = 5, align: str = "L") -> None:
        self.set_font("Helvetica", style, size)
        self.cell(0, height, _latin(text), new_x="LMARGIN", new_y="NEXT", align=align)

    def supplier(self, settings: dict[str, Any]) -> None:
        self.text_line(settings["legal_name"], 13, "B", 7)
        for part in str(settings["address"] or "").splitlines():
            self.text_line(part)
        if settings["gstin"]:
            self.text_line(f"GSTIN: {settings['gstin']}   State code: {settings['state_code']}")
        self.ln(3)


def invoice_pdf(invoice: dict[str, Any], lines: list[dict[str, Any]], settings: dict[str, Any]) -> bytes:
    pdf = _Document(f"Invoice {invoice['number']}")
    pdf.supplier(settings)
    pdf.text_line("TAX INVOICE", 14, "B", 8, align="C")
    pdf.text_line(f"Invoice number: {invoice['number']}", 10, "B")
    pdf.text_line(f"Invoice date: {invoice['issue_date']:%d %b %Y}    Due date: {invoice['due_date']:%d %b %Y}")
    if invoice.get("period"):
        pdf.text_line(f"Period: {invoice['period']}")
    pdf.text_line(f"Billed to: {invoice['billed_to_name'] or 'Occupant'}, unit {invoice['unit_label']}")
    if invoice["customer_gstin"]:
        pdf.text_line(f"Customer GSTIN: {invoice['customer_gstin']}")
    if invoice["place_of_supply"]:
        pdf.text_line(f"Place of supply (state code): {invoice['place_of_supply']}")
    pdf.ln(2)

    widths = (8, 52, 15, 14, 20, 21, 11, 17, 17, 17)
    heads = ("No", "Description", "HSN/SAC", "Qty", "Rate", "Taxable", "Tax %", "CGST", "SGST", "IGST")
    pdf.set_font("Helvetica", "B", 7.5)
    for width, head in zip(widths, heads, strict=True):
        pdf.cell(width, 6, head, border=1, align="C")
    pdf.ln()
    pdf.set_font("Helvetica", "", 7.5)
    for line in lines:
        cells = (
            str(line["line_no"]),
            _latin(line["description"])[:38],
            line["hsn_sac"],
            _quantity(line["quantity_milli"]),
            _money(line["unit_price_minor"]),
            _money(line["taxable_minor"]),
            f"{line['tax_rate_bp'] / 100:g}" if line["tax_kind"] != "exempt" else "exempt",
            _money(line["cgst_minor"]),
            _money(line["sgst_minor"]),
            _money(line["igst_minor"]),
        )
        for index, (width, cell) in enumerate(zip(widths, cells, strict=True)):
            pdf.cell(width, 6, cell, border=1, align="L" if index == 1 else "R")
        pdf.ln()
    pdf.ln(2)

    totals = (
        ("Taxable value", invoice["subtotal_minor"]),
        ("CGST", invoice["cgst_minor"]),
        ("SGST", invoice["sgst_minor"]),
        ("IGST", invoice["igst_minor"]),
        ("Round off", invoice["round_off_minor"]),
    )
    pdf.set_font("Helvetica", "", 9)
    for label, amount in totals:
        pdf.cell(150, 5, label, align="R")
        pdf.cell(0, 5, _money(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(150, 7, f"Total ({invoice['currency']})", align="R")
    pdf.cell(0, 7, _money(invoice["total_minor"]), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.text_line(f"Amount in words: {amount_in_words(invoice['total_minor'], invoice['currency'])}", 9, "I")
    pdf.ln(2)

    # The tax breakdown per rate, as GST invoices show it.
    pdf.text_line("Tax breakdown", 9, "B")
    groups: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for line in lines:
        group = groups[(line["tax_kind"], line["tax_rate_bp"])]
        for index, key in enumerate(("taxable_minor", "cgst_minor", "sgst_minor", "igst_minor")):
            group[index] += line[key]
    for (kind, rate), (taxable, cgst, sgst, igst) in sorted(groups.items()):
        if kind == "exempt" or rate == 0:
            pdf.text_line(f"Exempt / nil rated: taxable {_money(taxable)}")
        elif kind == "igst":
            pdf.text_line(f"IGST {rate / 100:g}% on {_money(taxable)}: IGST {_money(igst)}")
        else:
            half = f"{rate / 200:g}%"
            pdf.text_line(
                f"GST {rate / 100:g}% on {_money(taxable)}: CGST {half} {_money(cgst)}, SGST {half} {_money(sgst)}"
            )
    pdf.ln(2)
    status = {"paid": "Paid", "partially_paid": "Partly paid", "credited": "Credited", "open": "Due"}
    pdf.text_line(f"Status: {status.get(invoice['status'], invoice['status'])}", 9, "B")
    pdf.text_line("Computer-generated invoice; no signature required.", 7.5)
    return bytes(pdf.output())


def receipt_pdf(receipt: dict[str, Any], settings: dict[str, Any], invoices: list[str]) -> bytes:
    pdf = _Document(f"Receipt {receipt['receipt_number']}")
    pdf.supplier(settings)
    pdf.text_line("PAYMENT RECEIPT", 14, "B", 8, align="C")
    pdf.text_line(f"Receipt number: {receipt['receipt_number']}", 10, "B")
    captured: dt.datetime = receipt["captured_at"]
    pdf.text_line(f"Date: {captured:%d %b %Y}")
    pdf.text_line(f"Received for unit {receipt['unit_label']}")
    method = {"razorpay": "Online (Razorpay)", "cash": "Cash", "cheque": "Cheque", "bank_transfer": "Bank transfer"}
    how = method.get(receipt["provider"], receipt["provider"])
    if receipt["method"] and receipt["provider"] == "razorpay":
        how += f", {receipt['method']}"
    pdf.text_line(f"Paid by: {how}")
    pdf.text_line(f"Reference: {receipt['reference'] or receipt['provider_payment_id']}")
    if invoices:
        pdf.text_line(f"Towards: {', '.join(invoices)}")
    pdf.ln(2)
    pdf.text_line(f"Amount received ({receipt['currency']}): {_money(receipt['amount_minor'])}", 12, "B", 7)
    pdf.text_line(f"Amount in words: {amount_in_words(receipt['amount_minor'], receipt['currency'])}", 9, "I")
    if receipt["refunded_minor"]:
        pdf.text_line(f"Refunded: {_money(receipt['refunded_minor'])}", 9, "B")
    pdf.ln(2)
    pdf.text_line("Computer-generated receipt; no signature required.", 7.5)
    return bytes(pdf.output())
