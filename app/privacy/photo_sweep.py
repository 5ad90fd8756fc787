"""Photos stored before uploads were re-encoded still carry what the camera wrote: EXIF with the GPS
position, the device's serial, colour profiles, comments, bytes appended after the image. New uploads
keep only the pixels (app.uploads); this sweep gives the old ones the same treatment, once each.

A stored file needs cleaning unless it is exactly what ``app.uploads.clean_image`` writes: a JPEG or
PNG no larger than ``MAX_SIDE``, one frame, no metadata but JFIF's own, nothing after the image's end
marker. A clean file is never re-encoded again (JPEG would lose a little each time), so the sweep is
safe to re-run, and a crash between rewriting a photo and updating its row only leaves a new file
that the next run finds clean and adopts, or the old one to clean again.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

from app.config import Settings
from app.errors import InvalidInput
from app.uploads import MAX_SIDE, clean_image, delete_upload, path_for, read_upload
from schema.complaints import ComplaintPhoto
from schema.visitors import Visit

logger = logging.getLogger("opshub.privacy.photo_sweep")

# What Pillow reports for a JPEG that clean_image wrote: JFIF's version and density, nothing else.
_CLEAN_JPEG_INFO: Final = frozenset({"jfif", "jfif_version", "jfif_unit", "jfif_density"})
_IMAGE_END: Final = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


@dataclass(frozen=True)
class SweepResult:
    checked: int = 0
    cleaned: int = 0
    unreadable: int = 0


def needs_cleaning(content: bytes) -> bool:
    """Whether a stored image holds anything but the pixels that clean_image would keep."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            kind = image.format or ""
            if kind not in _IMAGE_END or max(image.size) > MAX_SIDE or getattr(image, "n_frames", 1) > 1:
                return True
            allowed = _CLEAN_JPEG_INFO if kind == "JPEG" else frozenset()
            return bool(set(image.info) - allowed) or not content.endswith(_IMAGE_END[kind])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return True


def _rewrite(key: str, settings: Settings) -> tuple[str, str, int] | None:
    """Clean one stored file: (new key, media type, size), or None when it is clean already.

    The cleaned file is written beside the old one (a new name when the format changes), then the old
    one goes only after the caller has pointed its row at the new key."""
    content = read_upload(key, settings)
    if not needs_cleaning(content):
        return None
    image = clean_image(content, settings)
    stem = key.rsplit(".", 1)[0]
    new_key = f"{stem}.{image.extension}" if not key.endswith(f".{image.extension}") else key
    path = path_for(new_key, settings)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(image.content)
    partial.replace(path)
    return new_key, image.media_type, len(image.content)


async def _clean_one(key: str, settings: Settings) -> tuple[str, str, int] | Exception | None:
    try:
        return await asyncio.to_thread(_rewrite, key, settings)
    except (InvalidInput, OSError) as error:  # a file that is gone or no image at all: say so, go on
        return error


Repoint = Callable[[Any, str, str, int], Awaitable[Any]]


async def _repoint_complaint_photo(row_id: Any, key: str, media_type: str, size: int) -> None:
    await ComplaintPhoto.update(
        {ComplaintPhoto.key: key, ComplaintPhoto.media_type: media_type, ComplaintPhoto.size: size}
    ).where(ComplaintPhoto.id == row_id)


async def _repoint_visit_photo(row_id: Any, key: str, media_type: str, size: int) -> None:
    await Visit.update({Visit.photo_key: key}).where(Visit.id == row_id)  # its type follows from the key


async def sweep_stored_photos(settings: Settings) -> SweepResult:
    """Re-encode every stored complaint and visitor photo that still carries more than its pixels."""
    photos = await ComplaintPhoto.select(ComplaintPhoto.id, ComplaintPhoto.key)
    visits = await Visit.select(Visit.id, Visit.photo_key).where(Visit.photo_key.is_not_null())
    stored: list[tuple[str, Any, str, Repoint]] = [
        *(("complaint photo", p["id"], p["key"], _repoint_complaint_photo) for p in photos),
        *(("photo of visit", v["id"], v["photo_key"], _repoint_visit_photo) for v in visits),
    ]
    cleaned = unreadable = 0
    for what, row_id, key, repoint in stored:
        outcome = await _clean_one(key, settings)
        if isinstance(outcome, Exception):
            unreadable += 1
            logger.warning("%s %s could not be cleaned: %s", what, row_id, outcome)
        elif outcome is not None:
            new_key, media_type, size = outcome
            await repoint(row_id, new_key, media_type, size)
            if new_key != key:
                delete_upload(key, settings)
            cleaned += 1
    return SweepResult(checked=len(stored), cleaned=cleaned, unreadable=unreadable)
