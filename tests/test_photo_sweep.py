"""Photos stored byte for byte before uploads were re-encoded are cleaned by the worker's sweep, once."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from app.privacy.photo_sweep import needs_cleaning, sweep_stored_photos
from app.uploads import clean_image, path_for, read_upload
from schema.complaints import ComplaintPhoto
from schema.visitors import Visit
from tests.support import complaints as complaint_support
from tests.support.world import World
from tests.test_uploads import assert_only_pixels, camera_jpeg
from workers.privacy_jobs import privacy_photo_sweep


def transparent_png_with_text() -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "flat 4B, back door key under the mat")
    buffer = io.BytesIO()
    Image.new("RGBA", (30, 30), (0, 128, 0, 90)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_only_what_clean_image_writes_counts_as_clean(settings: Any) -> None:
    assert needs_cleaning(camera_jpeg())
    assert needs_cleaning(transparent_png_with_text())
    assert needs_cleaning(b"not an image at all")
    clean_jpeg = clean_image(camera_jpeg(), settings).content
    assert not needs_cleaning(clean_jpeg)
    assert needs_cleaning(clean_jpeg + b"<script>")  # bytes after the end marker
    assert not needs_cleaning(clean_image(transparent_png_with_text(), settings).content)


async def _stored_the_old_way(client: Any, world: World, settings: Any, redis: Any) -> tuple[str, str]:
    """A complaint photo and a walk-in photo, whose files then hold the camera's bytes as first stored."""
    await complaint_support.configure(world)
    complaint = await complaint_support.raise_one(world, settings, redis)
    uploaded = await client.post(
        f"/api/complaints/{complaint.id}/photos",
        files={"file": ("IMG_0001.jpg", camera_jpeg(), "image/jpeg")},
        data={"stage": "before"},
        headers=world.headers("occupant"),
    )
    assert uploaded.status_code == 201, uploaded.text
    walk = await client.post(
        "/api/visitors/walk-ins",
        files={
            "unit_id": (None, str(world.unit_ids[0])),
            "name": (None, "Ravi Kumar"),
            "photo": ("visitor.png", transparent_png_with_text(), "image/png"),
        },
        headers=world.headers("guard"),
    )
    assert walk.status_code == 201, walk.text
    photo = await ComplaintPhoto.select().where(ComplaintPhoto.id == uploaded.json()["id"]).first()
    visit = await Visit.select(Visit.photo_key).where(Visit.id == walk.json()["visit"]["id"]).first()
    assert photo is not None and visit is not None
    path_for(photo["key"], settings).write_bytes(camera_jpeg())
    # The old code kept the client's format: a PNG with a text chunk, under a .png key.
    path_for(visit["photo_key"], settings).write_bytes(transparent_png_with_text())
    await ComplaintPhoto.update({ComplaintPhoto.size: len(camera_jpeg())}).where(ComplaintPhoto.id == photo["id"])
    return str(photo["id"]), str(walk.json()["visit"]["id"])


async def test_the_sweep_strips_old_photos_once_and_keeps_their_rows_right(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    photo_id, visit_id = await _stored_the_old_way(client, world, settings, redis)
    first = await sweep_stored_photos(settings)
    assert first.cleaned >= 2  # other tests' photos may be in this database too

    photo = await ComplaintPhoto.select().where(ComplaintPhoto.id == photo_id).first()
    assert photo is not None
    stored = read_upload(photo["key"], settings)
    assert_only_pixels(stored, size=(20, 40))
    assert photo["size"] == len(stored) and photo["media_type"] == "image/jpeg"
    visit = await Visit.select(Visit.photo_key).where(Visit.id == visit_id).first()
    assert visit is not None
    kept = read_upload(visit["photo_key"], settings)
    assert b"back door" not in kept and not needs_cleaning(kept)

    # Clean now: a second sweep re-encodes nothing (JPEG would lose a little each time).
    again = await sweep_stored_photos(settings)
    assert again.cleaned == 0
    assert read_upload(photo["key"], settings) == stored

    url = f"/api/complaints/{photo['complaint']}/photos/{photo_id}"
    served = await client.get(url, headers=world.headers("occupant"))
    assert served.status_code == 200 and served.content == stored


async def test_the_worker_job_sweeps_until_done_then_stops_reading_photos(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    photo_id, _ = await _stored_the_old_way(client, world, settings, redis)
    ctx = {"settings": settings, "redis": redis}
    await redis.delete(f"{settings.redis_prefix}privacy:photo-sweep:v1")
    done = await privacy_photo_sweep(ctx)
    assert done["cleaned"] >= 2
    # Marked done: the next start does not read every photo again ...
    photo = await ComplaintPhoto.select(ComplaintPhoto.key).where(ComplaintPhoto.id == photo_id).first()
    assert photo is not None
    path_for(photo["key"], settings).write_bytes(camera_jpeg())
    assert await privacy_photo_sweep(ctx) == {"checked": 0, "cleaned": 0, "unreadable": 0}
    # ... unless asked to.
    assert (await privacy_photo_sweep(ctx, force=True))["cleaned"] == 1
