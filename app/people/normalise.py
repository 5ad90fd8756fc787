"""Normalisation of personal identifiers before they are indexed or stored."""

from __future__ import annotations

import re

import phonenumbers

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PLATE_NOISE = re.compile(r"[^A-Z0-9]")


def normalise_phone(raw: str, default_region: str = "IN") -> str:
    """E.164 form, e.g. '+919876543210'. Raises ValueError with a reason."""
    text = raw.strip()
    if not text:
        raise ValueError("phone number is empty")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"'{raw}' is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"'{raw}' is not a valid phone number for its region")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    text = raw.strip().lower()
    if not _EMAIL.match(text) or len(text) > 254:
        raise ValueError(f"'{raw}' is not an email address")
    return text


def normalise_plate(raw: str) -> str:
    """Upper-case letters and digits only: 'ka 01-ab 1234' -> 'KA01AB1234'."""
    plate = _PLATE_NOISE.sub("", raw.upper())
    if not 4 <= len(plate) <= 12:
        raise ValueError(f"'{raw}' is not a vehicle plate")
    return plate
