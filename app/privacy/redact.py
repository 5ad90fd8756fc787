"""Removing a person's identifiers from free text and JSON that other people's records keep."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[erased]"
MIN_NEEDLE = 4  # shorter strings would match inside unrelated words


def _pattern(needles: Iterable[str]) -> re.Pattern[str] | None:
    usable = sorted({n for n in needles if n and len(n) >= MIN_NEEDLE}, key=len, reverse=True)
    if not usable:
        return None
    return re.compile("|".join(re.escape(n) for n in usable), re.IGNORECASE)


def redact(text: str | None, needles: Iterable[str], replacement: str = REDACTED) -> str | None:
    if not text:
        return text
    pattern = _pattern(needles)
    return pattern.sub(replacement, text) if pattern else text


def contains_any(text: str | bytes | None, needles: Iterable[str]) -> bool:
    if not text:
        return False
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    pattern = _pattern(needles)
    return bool(pattern and pattern.search(text))


def redact_json(value: Any, needles: Iterable[str], replacement: str | None = REDACTED) -> Any:
    """The same JSON value with every string containing a needle redacted; with ``replacement=None``
    such strings are dropped from lists (an audience's person ids) and set to null elsewhere.

    Accepts the value as stored (a JSON string on SQLite) and returns the same form."""
    needles = list(needles)
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return redact(value, needles, replacement or REDACTED)
        cleaned = _clean(decoded, needles, replacement)
        return value if cleaned == decoded else json.dumps(cleaned)
    return _clean(value, needles, replacement)


def _clean(value: Any, needles: list[str], replacement: str | None) -> Any:
    if isinstance(value, str):
        if not contains_any(value, needles):
            return value
        return None if replacement is None else redact(value, needles, replacement)
    if isinstance(value, list):
        items = [_clean(v, needles, replacement) for v in value]
        if replacement is None:
            return [v for v, original in zip(items, value, strict=True) if not (v is None and original is not None)]
        return items
    if isinstance(value, dict):
        return {k: _clean(v, needles, replacement) for k, v in value.items()}
    return value
