"""Offset pagination and the bounds of every integer a caller can send, shared by all endpoints.

An integer beyond what the database stores (``offset=2**64``) was a 500: the database refused it.
Every integer query parameter is declared with one of the types here, so each has a bound, and
``tests/test_robustness.py`` fails on any integer parameter in the OpenAPI document without one.
Every list endpoint answers a ``Page`` (``{items, total, limit, offset}``) built by ``page_of``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Final, Generic, TypeVar

import msgspec
from litestar.params import Parameter

# Both databases store 64-bit integers, but PostgreSQL's INTEGER columns hold 32 bits; no count, size
# or offset of the hub comes near this.
MAX_INT: Final = 2**31 - 1
# Seconds since the epoch in signed links: far beyond any expiry the hub hands out.
MAX_TIMESTAMP: Final = 2**40
MAX_LIMIT: Final = 500
DEFAULT_LIMIT: Final = 50

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Parameter(ge=0, le=MAX_INT, description="rows to skip")]
Timestamp = Annotated[int, Parameter(ge=0, le=MAX_TIMESTAMP, description="seconds since 1970-01-01 UTC")]
# For integer fields of request bodies that have no narrower bound of their own (versions, counts).
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a list: its rows, how many rows match in all, and the window asked for."""

    items: list[T]
    total: int
    limit: int
    offset: int


def page_of(items: Sequence[T], *, total: int, limit: int, offset: int) -> Page[T]:
    return Page(items=list(items), total=total, limit=limit, offset=offset)


def window(items: Sequence[T], *, limit: int, offset: int) -> Page[T]:
    """The page ``[offset, offset + limit)`` of a list the service computed whole (a matrix of defaults, a
    list ordered by a rule the database cannot sort by, a day's feed filtered by weekday in site time).
    Lists read straight from a table count and page in the query instead (``page_of``)."""
    return Page(items=list(items[offset : offset + limit]), total=len(items), limit=limit, offset=offset)
