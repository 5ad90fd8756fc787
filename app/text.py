"""Free text, in and out: what a request's text fields may hold, and matching text in queries.

**In.** Every free-text field of a request body refuses control characters: a NUL breaks
PostgreSQL text, and the others break CSV exports, SMS templates and the guard's screen, or hide
text from whoever reads it. Mark a field with one of the two constraints (they combine with the
field's own length limits)::

    Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200), ONE_LINE]
    Body = Annotated[str, msgspec.Meta(max_length=4000), MULTI_LINE]

- ``ONE_LINE`` (names, titles, locations, purposes): no C0 or C1 control character at all, no
  line or paragraph separator (U+2028, U+2029).
- ``MULTI_LINE`` (descriptions, comments, notes, reasons): line feeds, carriage returns and tabs,
  and U+2028/U+2029, but no other control character.

A refusal is a 422 problem naming the field with ``TEXT_MESSAGES``' words (``app.errors`` puts
them in place of the decoder's). Text that does not go through a typed body (multipart forms
checked by hand) uses ``text_error``.

**Out.** ``contains(column, query)`` matches a column against what a person typed, case-insensitively,
with ``%`` and ``_`` (and ``\\``) taken literally: unescaped, a search for ``%`` matched everything.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from piccolo.columns import Column
from piccolo.columns.combination import Where
from piccolo.columns.operators.comparison import ComparisonOperator

from app.db import is_sqlite

# C0 controls except tab, line feed and carriage return; DEL and the C1 controls.
_CONTROLS: Final = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# ``$(?!\n)``: Python's ``$`` also matches before a final line feed (the pattern is a JSON Schema
# pattern too, which has no ``\Z``).
ONE_LINE_PATTERN: Final = rf"^[^\t\n\r{_CONTROLS}\u2028\u2029]*$(?!\n)"
MULTI_LINE_PATTERN: Final = rf"^[^{_CONTROLS}]*$"
ONE_LINE: Final = msgspec.Meta(pattern=ONE_LINE_PATTERN, description="One line of text: no control characters.")
MULTI_LINE: Final = msgspec.Meta(
    pattern=MULTI_LINE_PATTERN, description="Text: line breaks and tabs allowed, no other control characters."
)
ONE_LINE_MESSAGE: Final = "must be a single line of text without control characters"
MULTI_LINE_MESSAGE: Final = "must not contain control characters (line breaks and tabs are fine)"
TEXT_MESSAGES: Final = {ONE_LINE_PATTERN: ONE_LINE_MESSAGE, MULTI_LINE_PATTERN: MULTI_LINE_MESSAGE}
_ONE_LINE: Final = re.compile(ONE_LINE_PATTERN)
_MULTI_LINE: Final = re.compile(MULTI_LINE_PATTERN)


def text_error(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be stored as free text, or None."""
    if multiline:
        return None if _MULTI_LINE.search(value) else MULTI_LINE_MESSAGE
    return None if _ONE_LINE.search(value) else ONE_LINE_MESSAGE


def decoder_message(message: str) -> str:
    """The decoder's words for a refused pattern, in ours when the pattern is one of the above."""
    for pattern, ours in TEXT_MESSAGES.items():
        if f"matching regex {pattern!r}" in message:
            return ours
    return message


# ------------------------------------------------------------------------------ matching in queries

LIKE_ESCAPE: Final = "\\"


def like_literal(text: str) -> str:
    """``text`` with LIKE's wildcards (and the escape character itself) taken literally."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


class _LikeEscaped(ComparisonOperator):
    # SQLite's LIKE has no escape character unless told; PostgreSQL's is a backslash, said anyway.
    template = "{name} LIKE {value} ESCAPE '\\'"


class _ILikeEscaped(ComparisonOperator):
    template = "{name} ILIKE {value} ESCAPE '\\'"


def contains(column: Column, text: str) -> Where:
    """``column`` holds ``text`` (case-insensitive; SQLite folds ASCII only), wildcards taken literally."""
    operator: Any = _LikeEscaped if is_sqlite() else _ILikeEscaped
    return Where(column=column, value=f"%{like_literal(text)}%", operator=operator)
