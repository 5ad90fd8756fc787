"""Uploaded photos: checked by content (not by the name or type the client claims), re-encoded,
stored under ``settings.upload_path`` by an opaque key, deleted with the record that owns them.

Only the pixels are kept. Each image is decoded in full, turned upright by its EXIF orientation,
converted to sRGB from an embedded colour profile, scaled down to ``MAX_SIDE`` on its long side, and
saved afresh: as JPEG, or as PNG when it has transparency. Nothing else survives: no EXIF (GPS
position, camera serial, time), no ICC profile, no comments or text chunks, no bytes appended after
the image (a polyglot file), no further animation frames. Downloads carry ``download_headers``.

Keys look like ``{site_id}/{kind}/{uuid}.{ext}``; only this module turns a key into a path,
and it refuses any key that would leave the upload directory.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import re
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from app.config import Settings
from app.errors import AppError, FieldError, InvalidInput

# Pillow format name -> (file extension, media type). Only formats phones and cameras produce.
ACCEPTED_FORMATS: Final = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
MAX_PIXELS: Final = 40_000_000  # refuses decompression bombs long before they cost memory
MAX_SIDE: Final = 2048  # px on the long side: plenty to see a leak or a visitor, a fraction of the bytes
JPEG_QUALITY: Final = 85
_NOT_AN_IMAGE: Final = "is not a JPEG, PNG or WebP image"
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
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
    """The (extension, media type) of an acceptable image as sent, or a problem naming ``field``."""
    if not content:
        raise InvalidInput.for_field(field, "is empty")
    if len(content) > settings.upload_max_bytes:
        raise InvalidInput.for_field(field, f"is larger than {settings.upload_max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(content)) as image:
            image_format = image.format or ""
            width, height = image.size
            image.verify()
    except Image.DecompressionBombError:
        raise InvalidInput.for_field(field, "has too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidInput.for_field(field, _NOT_AN_IMAGE) from None
    if image_format not in ACCEPTED_FORMATS:
        raise InvalidInput.for_field(field, _NOT_AN_IMAGE)
    if width * height > MAX_PIXELS:
        raise InvalidInput.for_field(field, "has too many pixels")
    return ACCEPTED_FORMATS[image_format]


@dataclass(frozen=True, slots=True)
class CleanImage:
    content: bytes
    extension: str
    media_type: str


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError):  # unreadable EXIF: keep it as drawn
        return image


def _has_transparency(image: Image.Image) -> bool:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        return alpha.getextrema() != (255, 255)
    return False


def _in_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """Pixels in sRGB, so dropping the profile keeps the colours (phones shoot in Display P3)."""
    if not profile or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):  # a broken profile: keep the pixels as they are
        return image
    return converted if converted is not None else image


def clean_image(content: bytes, settings: Settings, field: str = "photo") -> CleanImage:
    """Check an image and re-encode its pixels alone (see the module docstring); a problem naming
    ``field`` if it is not an acceptable image or does not decode in full."""
    check_image(content, settings, field)
    try:
        with Image.open(io.BytesIO(content)) as source:
            source.load()  # the whole image: a truncated or corrupt one fails here
            profile = source.info.get("icc_profile")
            image = _upright(source)
            transparent = _has_transparency(image)
            image = image.convert("RGBA" if transparent else ("L" if image.mode in ("1", "L") else "RGB"))
            image = _in_srgb(image, profile if isinstance(profile, bytes) else None)
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            image.info.clear()  # Pillow writes some of these (comment, icc_profile) back if left
            buffer = io.BytesIO()
            if transparent:
                image.save(buffer, format="PNG", optimize=True)
            else:
                image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    except Image.DecompressionBombError:
        raise InvalidInput.for_field(field, "has too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidInput.for_field(field, _NOT_AN_IMAGE) from None
    extension, media_type = ACCEPTED_FORMATS["PNG" if transparent else "JPEG"]
    return CleanImage(content=buffer.getvalue(), extension=extension, media_type=media_type)


def store_image(
    content: bytes, settings: Settings, *, site_id: uuid.UUID, kind: str, field: str = "photo"
) -> StoredUpload:
    """Check, re-encode and store an image; returns its key."""
    image = clean_image(content, settings, field)
    return _store(image.content, image.extension, image.media_type, settings, site_id=site_id, kind=kind, field=field)


def _store(
    content: bytes, extension: str, media_type: str, settings: Settings, *, site_id: uuid.UUID, kind: str, field: str
) -> StoredUpload:
    """Written to a temporary name, then renamed, so a crash never leaves a half-written file under a real key."""
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


async def save_image(
    content: bytes, settings: Settings, *, site_id: uuid.UUID, kind: str, field: str = "photo"
) -> StoredUpload:
    """``store_image`` off the event loop: decoding and re-encoding a phone photo takes a while."""
    return await asyncio.to_thread(store_image, content, settings, site_id=site_id, kind=kind, field=field)


# ------------------------------------------------------------------------------ PDF documents
#
# A PDF cannot be re-encoded the way a photo is without a PDF library that renders it, so it is checked
# instead, and served so that a browser never runs it: as a download (``attachment``), never sniffed,
# under ``Content-Security-Policy: sandbox``. Refused: anything that does not start as a PDF and end
# with ``%%EOF``; encrypted files (they cannot be checked); and any file naming active content (scripts,
# launch actions, embedded files, forms that submit, rich media), looked for in the file's own bytes and
# inside every compressed stream (where object streams hide dictionaries), names' ``#xx`` escapes undone.

PDF_MEDIA_TYPE: Final = "application/pdf"
_NOT_A_PDF: Final = "is not a PDF document"
_ACTIVE_NAMES: Final = frozenset(
    {
        b"JavaScript",
        b"JS",
        b"Launch",
        b"EmbeddedFile",
        b"EmbeddedFiles",
        b"RichMedia",
        b"XFA",
        b"SubmitForm",
        b"ImportData",
        b"GoToE",
    }
)
_PDF_NAME: Final = re.compile(rb"/([^\s/<>\[\]()%{}]+)")
_PDF_STREAM: Final = re.compile(rb"(?<!end)stream\r?\n")
_INFLATED_LIMIT: Final = 64 * 1024 * 1024  # in all: a compression bomb stops here


def _names(data: bytes) -> set[bytes]:
    found = set()
    for match in _PDF_NAME.finditer(data):
        name = match.group(1)
        if b"#" in name:
            name = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), name)
        found.add(name)
    return found


def _streams(content: bytes) -> list[tuple[bytes, bytes]]:
    """(the dictionary before it, its raw bytes) for each stream of the file."""
    result = []
    for match in _PDF_STREAM.finditer(content):
        end = content.find(b"endstream", match.end())
        if end < 0:
            break
        head = content[max(0, match.start() - 2048) : match.start()]
        # From the object's start: a nested dictionary (DecodeParms) must not hide its Filter.
        result.append((head[head.rfind(b"obj") :] if b"obj" in head else head, content[match.end() : end]))
    return result


def check_pdf(content: bytes, settings: Settings, field: str = "file") -> None:
    """A problem naming ``field`` unless ``content`` is a PDF without active content (see above)."""
    if not content:
        raise InvalidInput.for_field(field, "is empty")
    if len(content) > settings.upload_max_bytes:
        raise InvalidInput.for_field(field, f"is larger than {settings.upload_max_bytes} bytes")
    if not content.startswith(b"%PDF-") or b"%%EOF" not in content[-1024:]:
        raise InvalidInput.for_field(field, _NOT_A_PDF)
    names = _names(content)
    if b"Encrypt" in names:
        raise InvalidInput.for_field(field, "is a password-protected PDF, which cannot be checked: send it unlocked")
    inflated = 0
    for head, raw in _streams(content):
        head_names = _names(head)
        filters = head_names & {
            b"FlateDecode",
            b"Fl",
            b"LZWDecode",
            b"ASCII85Decode",
            b"ASCIIHexDecode",
            b"RunLengthDecode",
        }
        if b"ObjStm" in head_names and filters - {b"FlateDecode", b"Fl"}:
            raise InvalidInput.for_field(field, "uses a compression of objects that cannot be checked")
        if not filters & {b"FlateDecode", b"Fl"}:
            continue
        try:
            data = zlib.decompressobj().decompress(raw.rstrip(b"\r\n"), _INFLATED_LIMIT - inflated)
        except zlib.error:
            if b"ObjStm" in head_names:
                raise InvalidInput.for_field(field, _NOT_A_PDF) from None
            continue  # a broken image stream shows as a broken image, and runs nothing
        inflated += len(data)
        if inflated >= _INFLATED_LIMIT:
            raise InvalidInput.for_field(field, "expands to too much data")
        names |= _names(data)
    active = sorted(name.decode("latin-1") for name in names & _ACTIVE_NAMES)
    if active:
        raise InvalidInput.for_field(
            field, f"holds active content ({', '.join(active)}); send a plain PDF (print it to PDF again)"
        )


def store_pdf(
    content: bytes, settings: Settings, *, site_id: uuid.UUID, kind: str, field: str = "file"
) -> StoredUpload:
    check_pdf(content, settings, field)
    return _store(content, "pdf", PDF_MEDIA_TYPE, settings, site_id=site_id, kind=kind, field=field)


def looks_like_pdf(content: bytes) -> bool:
    return content.startswith(b"%PDF-")


async def save_document(
    content: bytes, settings: Settings, *, site_id: uuid.UUID, kind: str, accept: str = "any", field: str = "file"
) -> StoredUpload:
    """An image (re-encoded) or a PDF (checked), as ``accept`` allows (image | pdf | any), off the event loop."""
    if looks_like_pdf(content):
        if accept == "image":
            raise InvalidInput.for_field(field, "must be a photo (JPEG, PNG or WebP), not a PDF")
        return await asyncio.to_thread(store_pdf, content, settings, site_id=site_id, kind=kind, field=field)
    if accept == "pdf":
        raise InvalidInput.for_field(field, _NOT_A_PDF)
    return await save_image(content, settings, site_id=site_id, kind=kind, field=field)


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
    if extension == "pdf":
        return PDF_MEDIA_TYPE
    return "application/octet-stream"


def download_headers(media_type: str, name: str) -> dict[str, str]:
    """Headers for serving a stored file of ``media_type`` (recorded from its stored format, never the
    client's word): never sniffed, shown inline when it is an image we store, under a safe file name
    (RFC 6266: an ASCII ``filename`` and the exact ``filename*``). A PDF is always a download, and
    sandboxed should a browser open it anyway."""
    extension = next((ext for ext, known in ACCEPTED_FORMATS.values() if known == media_type), None)
    is_pdf = media_type == PDF_MEDIA_TYPE
    filename = f"{name}.{extension}" if extension else (f"{name}.pdf" if is_pdf else name)
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in filename)
    disposition = "inline" if extension else "attachment"
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}",
    }
    if is_pdf:
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return headers
