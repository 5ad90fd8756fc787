"""Uploaded photos: checked by content (not by the name or type the client claims), stored
under ``settings.upload_path`` by an opaque key, deleted with the record that owns them.

Keys look like ``{site_id}/{kind}/{uuid}.{ext}``; only this module turns a key into a path,
and it refuses any key that would leave the upload directory.
"""

from __future__ import annotations

import errno
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, UnidentifiedImageError

from app.config import Settings
from app.errors import AppError, FieldError, InvalidInput

# Pillow format name -> (file extension, media type). Only formats phones and cameras produce.
ACCEPTED_FORMATS: Final = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
MAX_PIXELS: Final = 40_000_000  # refuses decompression bombs long before they cost memory
# The disk (or the process's file-size limit or quota) has no room: the client should try later.
_NO_ROOM: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class StorageFull(AppError):
    status = 507
    slug = "insufficient-storage"
    title = "Insufficient storage"

    @classmethod
    def for_field(cls, field: str) -> StorageFull:
        message = "could not be stored: the server's storage is full; nothing was saved, try again later"
        return cls(
            f"{field}: {message}",
            errors=[FieldError(field=field, message=message, source="body")],
            headers={"Retry-After": "60"},
        )


@dataclass(frozen=True, slots=True)
class StoredUpload:
    key: str
    media_type: str
    size: int


def check_image(content: bytes, settings: Settings, field: str = "photo") -> tuple[str, str]:
    """The (extension, media type) of an acceptable image, or a problem naming ``field``."""
    if not content:
        raise InvalidInput.for_field(field, "is empty")
    if len(content) > settings.upload_max_bytes:
        raise InvalidInput.for_field(field, f"is larger than {settings.upload_max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(content)) as image:
            image_format = image.format or ""
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidInput.for_field(field, "is not a JPEG, PNG or WebP image") from None
    if image_format not in ACCEPTED_FORMATS:
        raise InvalidInput.for_field(field, "is not a JPEG, PNG or WebP image")
    if width * height > MAX_PIXELS:
        raise InvalidInput.for_field(field, "has too many pixels")
    return ACCEPTED_FORMATS[image_format]


def store_image(
    content: bytes, settings: Settings, *, site_id: uuid.UUID, kind: str, field: str = "photo"
) -> StoredUpload:
    """Check and store an image; returns its key. Written to a temporary name, then renamed,
    so a crash never leaves a half-written photo under a real key."""
    extension, media_type = check_image(content, settings, field)
    key = f"{site_id}/{kind}/{uuid.uuid4()}.{extension}"
    path = path_for(key, settings)
    partial = path.with_suffix(path.suffix + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        partial.unlink(missing_ok=True)  # a partial file would only take more of the space left
        if exc.errno in _NO_ROOM:
            raise StorageFull.for_field(field) from exc
        raise
    os.replace(partial, path)
    return StoredUpload(key=key, media_type=media_type, size=len(content))


def path_for(key: str, settings: Settings) -> Path:
    root = settings.upload_path.resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError(f"upload key {key!r} leaves the upload directory")
    return path


def read_upload(key: str, settings: Settings) -> bytes:
    return path_for(key, settings).read_bytes()


def delete_upload(key: str, settings: Settings) -> bool:
    """Delete a stored file; True if it existed. Safe to repeat (retention jobs re-run)."""
    try:
        path_for(key, settings).unlink()
    except FileNotFoundError:
        return False
    return True


def media_type_for(key: str) -> str:
    extension = key.rsplit(".", 1)[-1]
    for ext, media_type in ACCEPTED_FORMATS.values():
        if ext == extension:
            return media_type
    return "application/octet-stream"
