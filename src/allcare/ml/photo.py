"""Checks an uploaded photo before any model work, and prepares what is classified and stored.

Order matters for safety: the format and the pixel count come from the header alone, so a
decompression bomb is refused before a single pixel is decoded. JPEGs are decoded at a reduced
scale (libjpeg DCT scaling via Pillow's ``draft``) when they are much larger than the model input.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from allcare.ml.blur import BLUR_SCALE_SHORTER, blur_score
from allcare.ml.jpeg_metadata import strip_jpeg_metadata
from allcare.ml.preprocess import RESIZE_SHORTER, to_model_input

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_FORMATS = {"HEIF"}
except ImportError:  # pragma: no cover - optional wheel
    HEIF_FORMATS = set()

ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", *HEIF_FORMATS}
STORED_JPEG_QUALITY = 92
EXIF_ORIENTATION = 0x0112


class RejectReason(StrEnum):
    INVALID = "invalid"
    UNSUPPORTED = "unsupported"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"


class PhotoRejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PhotoLimits:
    max_pixels: int
    min_side: int


@dataclass(frozen=True)
class CheckedPhoto:
    model_input: np.ndarray
    blur_score: float
    width: int
    height: int
    stored_bytes: bytes
    stored_content_type: str


def check_photo(data: bytes, limits: PhotoLimits) -> CheckedPhoto:
    image = _open_header(data)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise PhotoRejected(
            RejectReason.TOO_MANY_PIXELS,
            f"Image is {width}x{height} ({width * height / 1e6:.1f} MP); "
            f"the limit is {limits.max_pixels / 1e6:.1f} MP",
        )
    if min(width, height) < limits.min_side:
        raise PhotoRejected(
            RejectReason.TOO_SMALL,
            f"Image is {width}x{height}; each side must be at least {limits.min_side} px",
        )
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    upright_jpeg = image.format == "JPEG" and image.mode in ("RGB", "L") and orientation == 1
    image_format = image.format
    working = _decode(image, reduce=True)
    stored_bytes, (stored_width, stored_height) = _stored_copy(
        data, image_format, working, lossless_size=(width, height) if upright_jpeg else None
    )
    return CheckedPhoto(
        model_input=to_model_input(working),
        blur_score=blur_score(working),
        width=stored_width,
        height=stored_height,
        stored_bytes=stored_bytes,
        stored_content_type="image/jpeg",
    )


def decode_photo(data: bytes) -> Image.Image:
    """A stored photo decoded as an upload is (reduced-size, upright RGB), for training."""
    return _decode(_open_header(data), reduce=True)


def model_input_of(data: bytes) -> np.ndarray:
    """A stored photo as the model saw it at upload, for evaluation."""
    return to_model_input(decode_photo(data))


def _stored_copy(
    data: bytes,
    image_format: str | None,
    working: Image.Image,
    *,
    lossless_size: tuple[int, int] | None,
) -> tuple[bytes, tuple[int, int]]:
    """Upright JPEGs keep their compressed bytes (metadata stripped losslessly); anything else
    is re-encoded at full resolution, upright, without metadata, as the old server did."""
    if lossless_size is not None:
        try:
            return strip_jpeg_metadata(data), lossless_size
        except ValueError:
            pass
    full = _decode(_open_header(data), reduce=False) if image_format in ("JPEG", "MPO") else working
    return _encode_jpeg(full), full.size


def _open_header(data: bytes) -> Image.Image:
    if not data:
        raise PhotoRejected(RejectReason.INVALID, "Invalid image file: the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PhotoRejected(
            RejectReason.TOO_MANY_PIXELS, f"Image has too many pixels: {exc}"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PhotoRejected(RejectReason.INVALID, "Invalid image file") from exc
    if image.format not in ACCEPTED_FORMATS:
        raise PhotoRejected(
            RejectReason.UNSUPPORTED,
            f"Unsupported image format {image.format}; send JPEG, PNG, WebP or HEIC",
        )
    return image


def _decode(image: Image.Image, *, reduce: bool) -> Image.Image:
    """Decode to upright 8-bit RGB; with ``reduce``, JPEGs decode at the smallest DCT scale that
    keeps the shorter side at or above what preprocessing and the blur check need."""
    if reduce and image.format in ("JPEG", "MPO"):
        needed = max(RESIZE_SHORTER, BLUR_SCALE_SHORTER)
        scale = needed / min(image.size)
        if scale < 0.5:
            image.draft("RGB", (int(image.width * scale) + 1, int(image.height * scale) + 1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise PhotoRejected(RejectReason.INVALID, f"Invalid image file: {exc}") from exc
    return _to_rgb(upright)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Grey, CMYK, palette, 16-bit and alpha images become 8-bit RGB (alpha over white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=STORED_JPEG_QUALITY)
    return buffer.getvalue()
