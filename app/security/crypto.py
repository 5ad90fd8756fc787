"""Encryption at rest for personal fields, and keyed blind indexes for lookups.

Personal values (phone numbers, emails, plates, ID numbers) are stored encrypted
with Fernet; a MultiFernet over several keys lets a new key take over while data
written under older keys stays readable until a re-encrypt job rotates it.
Equality lookups use an HMAC-SHA256 "blind index" of the normalised value, so the
database never needs the plaintext to find a person by phone or plate.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def parse_fernet_keys(spec: str) -> list[Fernet]:
    keys = [part.strip() for part in spec.split(",") if part.strip()]
    if not keys:
        raise ValueError("at least one key is required")
    fernets: list[Fernet] = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise ValueError(f"key #{position} is not a url-safe base64 32-byte Fernet key") from None
    return fernets


class PiiCipher:
    def __init__(self, encryption_keys: str, blind_index_key: str) -> None:
        fernets = parse_fernet_keys(encryption_keys)
        self._primary = fernets[0]
        self._fernet = MultiFernet(fernets)
        self._index_key = blind_index_key.encode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("ciphertext cannot be decrypted with any configured key") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt under the primary (first) key; a no-op in meaning."""
        return self._fernet.rotate(token.encode()).decode()

    def is_current(self, token: str) -> bool:
        """Whether the primary (newest) key alone decrypts this value: nothing to rotate."""
        try:
            self._primary.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def rotate_if_needed(self, token: str) -> str | None:
        """The value re-encrypted under the primary key, or None when it already is.

        Raises ValueError when no configured key decrypts it (a key was dropped too early).
        """
        if self.is_current(token):
            return None
        try:
            return self.rotate(token)
        except InvalidToken:
            raise ValueError("ciphertext cannot be decrypted with any configured key") from None

    def blind_index(self, kind: str, normalised_value: str) -> str:
        # The kind is mixed in so an email and a plate with equal text never share an index.
        message = f"{kind}\x00{normalised_value}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()
