"""Photo uploads are judged by their content, bounded in size, re-encoded so only the pixels are kept
(no EXIF position, no profile, no comment, no bytes after the image), served never sniffed under a safe
name, and never escape their directory."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from typing import Any

import msgspec
import pytest
from PIL import Image, ImageCms

from app.errors import InvalidInput
from app.uploads import MAX_SIDE, check_image, clean_image, delete_upload, path_for, read_upload, store_image
from schema.complaints import ComplaintPhoto
from schema.visitors import Visit
from tests.support import complaints as complaint_support
from tests.support.world import World

GPS_INFO = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F
ROTATED_CLOCKWISE = 6  # the camera was turned: show the stored pixels turned 90 degrees clockwise
APPENDED = b"PK\x03\x04<html><script>alert('polyglot')</script>"


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
    kept = read_upload(stored.key, settings)
    assert stored.size == len(kept)
    with Image.open(io.BytesIO(kept)) as back:
        assert back.format == "JPEG" and back.size == (8, 8)
    assert delete_upload(stored.key, settings) is True
    assert delete_upload(stored.key, settings) is False  # safe to repeat
    assert not path_for(stored.key, settings).exists()


def test_keys_cannot_leave_the_upload_directory(settings: Any) -> None:
    with pytest.raises(ValueError):
        path_for("../../etc/passwd", settings)


def camera_jpeg(size: tuple[int, int] = (40, 20)) -> bytes:
    """A phone photo as phones send them: taken sideways (EXIF orientation), with the GPS position,
    the camera's make, a comment and an ICC profile, and bytes appended after the image."""
    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, size[0] // 2, size[1]))  # left half blue: shows which way is up
    exif = Image.Exif()
    exif[ORIENTATION] = ROTATED_CLOCKWISE
    exif[MAKE] = "PhoneMaker"
    exif[GPS_INFO] = {1: "N", 2: (12.0, 58.0, 20.0), 3: "E", 4: (77.0, 35.0, 40.0)}
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, comment=b"flat 4B, back door key under the mat", icc_profile=icc)
    content = buffer.getvalue() + APPENDED
    with Image.open(io.BytesIO(content)) as sent:  # the test image really holds what it should
        assert sent.getexif().get_ifd(GPS_INFO)[2] == (12.0, 58.0, 20.0) and "icc_profile" in sent.info
    return content


def assert_only_pixels(stored: bytes, *, size: tuple[int, int]) -> None:
    for leak in (b"Exif", b"PhoneMaker", b"back door", b"ICC_PROFILE", APPENDED[:8], b"<script"):
        assert leak not in stored, leak
    assert stored.endswith(b"\xff\xd9")  # the JPEG ends where its image ends
    with Image.open(io.BytesIO(stored)) as kept:
        assert kept.format == "JPEG" and kept.size == size
        assert dict(kept.getexif()) == {} and kept.getexif().get_ifd(GPS_INFO) == {}
        assert not {"exif", "icc_profile", "comment"} & set(kept.info)
        # Turned upright: what was the left (blue) half is now the top.
        top, bottom = (
            kept.convert("RGB").getpixel((size[0] // 2, 2)),
            kept.convert("RGB").getpixel((size[0] // 2, size[1] - 3)),
        )
        assert top[2] > 150 > top[0] and bottom[0] > 150 > bottom[2], (top, bottom)


async def test_a_complaint_photo_with_gps_exif_is_stored_and_served_without_it(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    await complaint_support.configure(world)
    complaint = await complaint_support.raise_one(world, settings, redis)
    uploaded = await client.post(
        f"/api/complaints/{complaint.id}/photos",
        files={"file": ("IMG_0001.jpg", camera_jpeg(), "image/jpeg")},
        data={"stage": "before"},
        headers=world.headers("occupant"),
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["media_type"] == "image/jpeg"
    row = await ComplaintPhoto.select().where(ComplaintPhoto.id == uploaded.json()["id"]).first()
    assert row is not None
    stored = read_upload(row["key"], settings)
    assert_only_pixels(stored, size=(20, 40))
    assert row["size"] == len(stored) == uploaded.json()["size"]

    photo_id = uploaded.json()["id"]
    served = await client.get(f"/api/complaints/{complaint.id}/photos/{photo_id}", headers=world.headers("occupant"))
    assert served.status_code == 200 and served.content == stored
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"] == (
        f"inline; filename=\"complaint-photo-{photo_id}.jpg\"; filename*=UTF-8''complaint-photo-{photo_id}.jpg"
    )


async def test_a_walk_in_photo_with_gps_exif_is_stored_and_served_without_it(
    client: Any, world: World, settings: Any
) -> None:
    walk = await client.post(
        "/api/visitors/walk-ins",
        files={
            "unit_id": (None, str(world.unit_ids[0])),
            "name": (None, "Ravi Kumar"),
            "photo": ("visitor.jpg", camera_jpeg(), "image/jpeg"),
        },
        headers=world.headers("guard"),
    )
    assert walk.status_code == 201, walk.text
    visit_id = walk.json()["visit"]["id"]
    row = await Visit.select(Visit.photo_key).where(Visit.id == visit_id).first()
    assert row is not None and row["photo_key"].endswith(".jpg")
    stored = read_upload(row["photo_key"], settings)
    assert_only_pixels(stored, size=(20, 40))
    served = await client.get(f"/api/visitors/visits/{visit_id}/photo", headers=world.headers("occupant"))
    assert served.status_code == 200 and served.content == stored
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith(f'inline; filename="visitor-{visit_id}.jpg"')


async def test_a_non_image_upload_is_refused_naming_the_field(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    await complaint_support.configure(world)
    complaint = await complaint_support.raise_one(world, settings, redis)
    for name, content in [("note.jpg", b"<html><script>alert(1)</script></html>"), ("cut.jpg", camera_jpeg()[:300])]:
        refused = await client.post(
            f"/api/complaints/{complaint.id}/photos",
            files={"file": (name, content, "image/jpeg")},
            headers=world.headers("occupant"),
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["errors"] == [
            {"field": "file", "message": "is not a JPEG, PNG or WebP image", "source": "body"}
        ]
    assert await ComplaintPhoto.count().where(ComplaintPhoto.complaint == complaint.id) == 0


def test_transparency_is_kept_as_png_and_everything_else_becomes_jpeg(settings: Any) -> None:
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    clear.paste((255, 0, 0, 255), (0, 0, 5, 10))
    buffer = io.BytesIO()
    clear.save(buffer, format="PNG")
    kept = clean_image(buffer.getvalue(), settings)
    assert (kept.extension, kept.media_type) == ("png", "image/png")
    with Image.open(io.BytesIO(kept.content)) as back:
        assert back.mode == "RGBA" and back.getpixel((8, 5))[3] == 0 and back.getpixel((1, 5)) == (255, 0, 0, 255)
    for image_format in ("PNG", "WEBP"):  # opaque: no reason to keep the bigger format
        assert clean_image(image_bytes(image_format), settings).media_type == "image/jpeg"


def test_large_photos_are_scaled_down_to_the_long_side_limit(settings: Any) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (MAX_SIDE * 2, MAX_SIDE), (90, 90, 90)).save(buffer, format="JPEG", quality=30)
    with Image.open(io.BytesIO(clean_image(buffer.getvalue(), settings).content)) as back:
        assert back.size == (MAX_SIDE, MAX_SIDE // 2)


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height`` pixels and holds almost none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(7000, 6000), (100_000, 100_000)])
def test_decompression_bombs_are_refused_before_they_are_decoded(settings: Any, width: int, height: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        clean_image(_png_claiming(width, height), settings, field="photo")
    assert refused.value.errors is not None
    assert (refused.value.errors[0].field, refused.value.errors[0].message) == ("photo", "has too many pixels")
