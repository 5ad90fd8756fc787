"""Reading Piccolo JSON columns, which come back as text unless a query asks to load them."""

from __future__ import annotations

from typing import Any

import msgspec


def as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        value = msgspec.json.decode(value or "{}")
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if isinstance(value, str | bytes):
        value = msgspec.json.decode(value or "[]")
    return value if isinstance(value, list) else []
