"""Printable QR codes (segno): one code as PNG or SVG, and an A4 PDF sheet of many with labels (fpdf2).

Error correction level Q (25 %): a sticker on a lift door gets scratched, and a little of it may be
covered by a logo or a thumb. The sheet draws each code as vector graphics (segno's SVG, placed by
fpdf2), so it prints sharp at any size. Labels use the PDF core font (Latin-1): characters outside it
are printed as "?" (the QR itself carries the URL, whatever the label says).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import segno
from fpdf import FPDF

ERROR_LEVEL: Final = "q"
BORDER: Final = 4  # the quiet zone the standard asks for, in modules
# A4 sheet: 3 columns x 4 rows of 55 mm codes with two label lines under each.
COLUMNS: Final = 3
ROWS: Final = 4
CELL_W: Final = 63.0
CELL_H: Final = 70.0
CODE_MM: Final = 50.0
MARGIN_X: Final = (210.0 - COLUMNS * CELL_W) / 2
MARGIN_Y: Final = 12.0
MAX_SHEET_CODES: Final = 240


@dataclass(frozen=True, slots=True)
class Label:
    url: str
    title: str  # the place's name
    subtitle: str  # where it is, and the code itself (to type when a camera fails)


def _qr(url: str) -> segno.QRCode:
    return segno.make_qr(url, error=ERROR_LEVEL, boost_error=False)


def png(url: str, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    _qr(url).save(buffer, kind="png", scale=scale, border=BORDER)
    return buffer.getvalue()


def svg(url: str, title: str | None = None, scale: int = 4, *, omit_size: bool = False) -> bytes:
    """The code as SVG; ``omit_size`` leaves width and height out for a viewBox (it scales to its box)."""
    buffer = io.BytesIO()
    _qr(url).save(buffer, kind="svg", scale=scale, border=BORDER, xmldecl=False, title=title, omitsize=omit_size)
    return buffer.getvalue()


_ASCII_PUNCTUATION: Final = str.maketrans(
    {"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "..."}
)


def _latin1(text: str, limit: int) -> str:
    clean = text.translate(_ASCII_PUNCTUATION).encode("latin-1", "replace").decode("latin-1")
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def sheet_pdf(labels: list[Label], heading: str) -> bytes:
    """An A4 sheet (or several) of codes with their labels, ready to print and cut."""
    pdf = FPDF(unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(_latin1(heading, 120))
    pdf.set_creator("opshub")
    per_page = COLUMNS * ROWS
    for index, label in enumerate(labels):
        if index % per_page == 0:
            pdf.add_page()
            pdf.set_font("Helvetica", size=8)
            pdf.set_text_color(90)
            pdf.set_xy(MARGIN_X, 4)
            pdf.cell(COLUMNS * CELL_W, 5, _latin1(heading, 120), align="C")
            pdf.set_text_color(0)
        slot = index % per_page
        x = MARGIN_X + (slot % COLUMNS) * CELL_W
        y = MARGIN_Y + (slot // COLUMNS) * CELL_H
        pdf.set_draw_color(200)
        pdf.rect(x + 1, y, CELL_W - 2, CELL_H - 2)  # a cutting guide
        pdf.image(
            io.BytesIO(svg(label.url, omit_size=True)), x=x + (CELL_W - CODE_MM) / 2, y=y + 2, w=CODE_MM, h=CODE_MM
        )
        pdf.set_font("Helvetica", style="B", size=10)
        pdf.set_xy(x + 2, y + CODE_MM + 3)
        pdf.cell(CELL_W - 4, 5, _latin1(label.title, 40), align="C")
        pdf.set_font("Helvetica", size=7)
        pdf.set_xy(x + 2, y + CODE_MM + 8.5)
        pdf.cell(CELL_W - 4, 4, _latin1(label.subtitle, 60), align="C")
    if not labels:
        pdf.add_page()
    return bytes(pdf.output())
