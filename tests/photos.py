"""Real image bytes made in the tests (ordinary photos and hostile ones), and storing them the
way /check-image does."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFilter

from allcare.ml.jpeg_structure import DHT, SOS, Segment, read_layout
from allcare.services.cases.images import ImageService, PhotoToStore
from allcare.services.cases.records import CaseService
from allcare.services.principal import Principal, Role
from allcare.store.models import Image, User


def jpeg_bytes(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    image = PILImage.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 7 + seed) % 256, (y * 5 + seed) % 256, (x * y) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def store_photo(container, user_id: str, case_id: int | None, data: bytes | None = None) -> Image:
    with container.db.session() as session:
        user = session.get(User, user_id)
        assert user is not None
        principal = Principal(user.id, Role(user.role), user.first_name, user.last_name)
        service = ImageService(
            session, container.blobs, container.sealer, CaseService(session, container.sealer)
        )
        photo = PhotoToStore(
            data=data or jpeg_bytes(), content_type="image/jpeg", width=320, height=240
        )
        upload = service.begin_upload(principal, case_id)
        service.write_blob(upload, photo.data)
        service.finish_upload(upload, principal, photo)
        image = session.get(Image, upload.image_id)
        assert image is not None
        return image


def _scan_component(data: bytes, scan: Segment) -> tuple[int, int, int]:
    """(number of components, first component id, first coefficient) of a scan header."""
    header = data[scan.start + 4 : scan.end]
    count = header[0]
    return count, header[1], header[1 + 2 * count]


def progressive_with_repeated_scans(
    width: int, height: int, copies: int, *, component: int = 3
) -> bytes:
    """A real progressive JPEG of a flat colour with one AC scan of ``component`` (1 = luma,
    3 = red chroma) repeated ``copies`` times before EOI: a few dozen bytes a scan, yet every
    scan makes the decoder visit all blocks of that component again (libjpeg decodes it,
    with a warning about the bogus progression)."""
    image = PILImage.new("RGB", (width, height), (200, 120, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, progressive=True)
    data = buffer.getvalue()
    layout = read_layout(data, max_segments=1000)
    scans = [s for s in layout.segments if s.marker == SOS]
    chosen = max(
        (s for s in scans if _scan_component(data, s)[:2] == (1, component)),
        key=lambda s: _scan_component(data, s)[2] > 0,
    )
    at = layout.segments.index(chosen)
    before = layout.segments[at - 1]
    table = data[before.start : before.end] if before.marker == DHT else b""
    repeated = (table + data[chosen.start : chosen.end]) * copies
    eoi = layout.segments[-1].start
    return data[:eoi] + repeated + data[eoi:]


def jpeg_with_hidden_data() -> tuple[bytes, list[bytes]]:
    """A progressive JPEG carrying what must never be stored: EXIF with GPS and a comment
    before the image, an APP1 and a comment between its scans, a multi-picture (MPF) segment,
    and a ZIP and an MP4 (an Android Motion Photo) after EOI. Returns it and the secrets."""
    exif = PILImage.Exif()
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 0.0)
    exif[0x010F] = "SecretMaker"
    buffer = io.BytesIO()
    PILImage.open(io.BytesIO(jpeg_bytes())).save(
        buffer,
        format="JPEG",
        quality=90,
        progressive=True,
        exif=exif.tobytes(),
        comment=b"COMMENT-BEFORE",
    )
    data = buffer.getvalue()
    layout = read_layout(data, max_segments=1000)
    second_scan = [s for s in layout.segments if s.marker == SOS][1]

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    between = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<GPS>BETWEEN</GPS>") + segment(
        0xFE, b"COMMENT-BETWEEN"
    )
    mpf = segment(0xE2, b"MPF\x00MPF-INDEX")
    zip_tail = b"PK\x03\x04ZIP-AFTER-EOI" + b"\x00" * 64
    mp4_tail = b"\x00\x00\x00\x18ftypmp42MP4-AFTER-EOI"
    hidden = (
        data[:2]
        + mpf
        + data[2 : second_scan.start]
        + between
        + data[second_scan.start :]
        + zip_tail
        + mp4_tail
    )
    secrets = [
        b"SecretMaker", b"COMMENT-BEFORE", b"BETWEEN", b"COMMENT-BETWEEN", b"MPF-INDEX",
        b"ZIP-AFTER-EOI", b"MP4-AFTER-EOI",
    ]  # fmt: skip
    return hidden, secrets


def sharp_photo(size: tuple[int, int] = (320, 240), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def blurry_photo() -> bytes:
    image = PILImage.open(io.BytesIO(sharp_photo())).filter(ImageFilter.GaussianBlur(8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A real PNG whose pixel data inflates to width*height*3 bytes (1.2 GB) from a few MB."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + width * 3)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
