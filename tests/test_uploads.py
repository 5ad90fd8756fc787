"""Photo uploads are judged by their content, bounded in size, and never escape their directory."""

from __future__ import annotations

import io
import uuid
from typing import Any

import msgspec
import pytest
from PIL import Image

from app.errors import InvalidInput
from app.uploads import check_image, delete_upload, path_for, read_upload, store_image


def image_bytes(image_format: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(("image_format", "extension"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_accepted_formats_are_recognised_by_content(settings: Any, image_format: str, extension: str) -> None:
    assert check_image(image_bytes(image_format), settings)[0] == extension


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty"),
        (b"GIF89a" + b"\x00" * 40, "is not a JPEG, PNG or WebP image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "is not a JPEG, PNG or WebP image"),
        (b"\x89PNG\r\n\x1a\n" + b"truncated", "is not a JPEG, PNG or WebP image"),
    ],
)
def test_non_images_are_refused_naming_the_field(settings: Any, content: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_image(content, settings, field="photo")
    assert refused.value.errors is not None
    assert refused.value.errors[0].field == "photo" and refused.value.errors[0].message == reason


def test_oversized_images_are_refused(settings: Any) -> None:
    small = msgspec.structs.replace(settings, upload_max_bytes=1024)
    with pytest.raises(InvalidInput):
        check_image(image_bytes("PNG", (400, 400)) + b"\x00" * 2048, small)


def test_store_read_delete_round_trip(settings: Any) -> None:
    content = image_bytes("JPEG")
    stored = store_image(content, settings, site_id=uuid.uuid4(), kind="visitor")
    assert stored.media_type == "image/jpeg" and stored.key.endswith(".jpg")
    assert read_upload(stored.key, settings) == content
    assert delete_upload(stored.key, settings) is True
    assert delete_upload(stored.key, settings) is False  # safe to repeat
    assert not path_for(stored.key, settings).exists()


def test_keys_cannot_leave_the_upload_directory(settings: Any) -> None:
    with pytest.raises(ValueError):
        path_for("../../etc/passwd", settings)
