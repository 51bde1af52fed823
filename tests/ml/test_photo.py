import io
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from allcare.ml.jpeg_structure import image_only, read_layout
from allcare.ml.photo import PhotoLimits, PhotoRejected, RejectReason, check_photo
from tests.photos import jpeg_bytes, png_bomb

LIMITS = PhotoLimits(max_pixels=50_000_000, min_side=64)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def test_decompression_bomb_is_refused_fast_with_bounded_memory() -> None:
    bomb = png_bomb()
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(PhotoRejected) as refused:
        check_photo(bomb, LIMITS)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert refused.value.reason == RejectReason.TOO_MANY_PIXELS
    assert "20000x20000" in refused.value.detail or "too many pixels" in refused.value.detail
    assert elapsed < 0.5
    assert peak < 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", RejectReason.INVALID),
        (b"just some text, not an image\n" * 10, RejectReason.INVALID),
        (jpeg_bytes()[:2000], RejectReason.INVALID),
        (encode(Image.new("RGB", (1, 1)), "PNG"), RejectReason.TOO_SMALL),
        (encode(Image.new("RGB", (300, 40)), "JPEG"), RejectReason.TOO_SMALL),
        (encode(Image.new("RGB", (100, 100)), "GIF"), RejectReason.UNSUPPORTED),
        (encode(Image.new("RGB", (100, 100)), "BMP"), RejectReason.UNSUPPORTED),
    ],
    ids=["empty", "text", "truncated-jpeg", "1x1", "thin", "gif", "bmp"],
)
def test_bad_photos_are_refused_with_a_reason(data: bytes, reason: RejectReason) -> None:
    with pytest.raises(PhotoRejected) as refused:
        check_photo(data, LIMITS)
    assert refused.value.reason == reason


def _textured(mode: str, size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return rgb.convert(mode) if mode != "RGB" else rgb


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("jpeg", jpeg_bytes()),
        ("grey-jpeg", encode(_textured("L"), "JPEG")),
        ("cmyk-jpeg", encode(_textured("CMYK"), "JPEG")),
        ("png-alpha", encode(_textured("RGBA"), "PNG")),
        ("palette-png", encode(_textured("P"), "PNG")),
        ("webp", encode(_textured("RGB"), "WEBP")),
        ("heic", encode(_textured("RGB"), "HEIF")),
        (
            "png-16-bit",
            encode(
                Image.fromarray(
                    np.random.default_rng(4).integers(0, 65535, (240, 320), dtype=np.uint16)
                ),
                "PNG",
            ),
        ),
    ],
)
def test_accepted_formats_become_rgb_model_input_and_a_stored_jpeg(label: str, data: bytes) -> None:
    photo = check_photo(data, LIMITS)
    assert photo.model_input.shape == (3, 224, 224)
    assert np.isfinite(photo.model_input).all()
    assert photo.blur_score > 0
    stored = Image.open(io.BytesIO(photo.stored_bytes))
    assert stored.format == "JPEG"
    assert stored.mode in ("RGB", "L")
    assert stored.size == (photo.width, photo.height) == (320, 240)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    ramp = (np.arange(320, dtype=np.uint32)[None, :].repeat(240, 0) * 200).astype(np.uint16)
    photo = check_photo(encode(Image.fromarray(ramp), "PNG"), LIMITS)
    stored = np.asarray(Image.open(io.BytesIO(photo.stored_bytes)).convert("L"))
    assert 0 < stored.mean() < 255
    assert stored[:, -1].mean() > 200


def test_exif_orientation_is_applied_and_gps_never_stored() -> None:
    image = _textured("RGB", (320, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 0.0)  # GPS latitude
    photo = check_photo(encode(image, "JPEG", exif=exif.tobytes()), LIMITS)
    assert (photo.width, photo.height) == (200, 320)
    stored = Image.open(io.BytesIO(photo.stored_bytes))
    assert stored.size == (200, 320)
    assert not stored.getexif()


def test_upright_jpeg_is_stored_losslessly_without_metadata() -> None:
    original = jpeg_bytes()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0132] = "2026:01:01 10:00:00"
    with_exif = encode(Image.open(io.BytesIO(original)), "JPEG", quality=90, exif=exif.tobytes())
    photo = check_photo(with_exif, LIMITS)
    assert b"PhoneMaker" in with_exif
    assert b"PhoneMaker" not in photo.stored_bytes
    decoded = np.asarray(Image.open(io.BytesIO(photo.stored_bytes)))
    assert np.array_equal(decoded, np.asarray(Image.open(io.BytesIO(with_exif))))
    stored = photo.stored_bytes
    assert image_only(stored, read_layout(stored, max_segments=100)) == stored


def test_large_jpeg_is_decoded_at_reduced_size_with_the_same_result() -> None:
    image = _textured("RGB", (600, 450)).resize((4032, 3024), Image.Resampling.BICUBIC)
    data = encode(image, "JPEG", quality=90)
    photo = check_photo(data, LIMITS)
    assert (photo.width, photo.height) == (4032, 3024)
    small = check_photo(encode(image.resize((1008, 756)), "JPEG", quality=90), LIMITS)
    assert abs(photo.blur_score - small.blur_score) / small.blur_score < 0.25
