"""Checks an uploaded photo before any model work, and prepares what is classified and stored.

Order matters for safety: the format and the pixel count come from the header alone, so a
decompression bomb is refused before a single pixel is decoded; a JPEG's marker structure is
read next, so a file that asks for disproportionate decoding work (thousands of progressive
scans) is refused before decoding too. What is stored holds nothing but the image.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from PIL import Image, UnidentifiedImageError

from allcare.ml.blur import BLUR_SCALE_SHORTER, blur_score
from allcare.ml.decoding import (
    JPEG_FORMATS,
    UndecodableImage,
    as_rgb,
    decode_jpeg,
    decode_whole,
    encode_jpeg,
    reduced,
)
from allcare.ml.jpeg_structure import (
    CorruptJpeg,
    JpegLayout,
    TooManySegments,
    image_only,
    read_layout,
)
from allcare.ml.preprocess import RESIZE_SHORTER, to_model_input

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_FORMATS = {"HEIF"}
except ImportError:  # pragma: no cover - optional wheel
    HEIF_FORMATS = set()

ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", *HEIF_FORMATS}
EXIF_ORIENTATION = 0x0112
MAX_JPEG_SEGMENTS = 1024  # a photo has a few dozen; more is a file built to cost time
_WORKING_SHORTER = max(RESIZE_SHORTER, BLUR_SCALE_SHORTER)


class RejectReason(StrEnum):
    INVALID = "invalid"
    UNSUPPORTED = "unsupported"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"
    TOO_COSTLY = "too_costly"


class PhotoRejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PhotoLimits:
    max_pixels: int
    min_side: int
    # PNG, WebP and HEIC decode at full size (no reduced decoding): their own, lower cap.
    max_decoded_pixels: int = 12_000_000
    max_jpeg_scans: int = 64
    max_jpeg_decode_passes: float = 16.0


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
    image_format = image.format
    jpeg = image_format in JPEG_FORMATS
    _check_size(image.size, limits, jpeg)
    layout = _checked_layout(data, limits) if jpeg else None
    try:
        if jpeg:
            assert layout is not None
            working, stored, stored_size = _jpeg(data, image, layout, limits)
        else:
            del image  # decode_whole reopens the bytes, so the decoded source can be freed
            full = decode_whole(data)
            stored, stored_size = encode_jpeg(full), full.size
            working = reduced(full, _WORKING_SHORTER)
            del full
    except UndecodableImage as exc:
        raise PhotoRejected(RejectReason.INVALID, str(exc)) from exc
    return CheckedPhoto(
        model_input=to_model_input(as_rgb(working)),
        blur_score=blur_score(working),
        width=stored_size[0],
        height=stored_size[1],
        stored_bytes=stored,
        stored_content_type="image/jpeg",
    )


def decode_photo(data: bytes) -> Image.Image:
    """A stored photo decoded as an upload is (reduced-size, upright RGB), for training."""
    image = _open_header(data)
    try:
        if image.format in JPEG_FORMATS:
            return as_rgb(decode_jpeg(image, shorter_at_least=_WORKING_SHORTER))
        return as_rgb(decode_whole(data))
    except UndecodableImage as exc:
        raise PhotoRejected(RejectReason.INVALID, str(exc)) from exc


def model_input_of(data: bytes) -> np.ndarray:
    """A stored photo as the model saw it at upload, for evaluation."""
    return to_model_input(decode_photo(data))


def _check_size(size: tuple[int, int], limits: PhotoLimits, jpeg: bool) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise PhotoRejected(
            RejectReason.TOO_MANY_PIXELS,
            f"Image is {width}x{height} ({width * height / 1e6:.1f} MP); "
            f"the limit is {limits.max_pixels / 1e6:.1f} MP",
        )
    if not jpeg and width * height > limits.max_decoded_pixels:
        raise PhotoRejected(
            RejectReason.TOO_MANY_PIXELS,
            f"Image is {width}x{height} ({width * height / 1e6:.1f} MP); PNG, WebP and HEIC "
            f"photos may have at most {limits.max_decoded_pixels / 1e6:.1f} MP (send a JPEG)",
        )
    if min(width, height) < limits.min_side:
        raise PhotoRejected(
            RejectReason.TOO_SMALL,
            f"Image is {width}x{height}; each side must be at least {limits.min_side} px",
        )


def _checked_layout(data: bytes, limits: PhotoLimits) -> JpegLayout:
    try:
        layout = read_layout(data, max_segments=MAX_JPEG_SEGMENTS)
    except TooManySegments as exc:
        raise PhotoRejected(RejectReason.TOO_COSTLY, f"Invalid image file: {exc}") from exc
    except CorruptJpeg as exc:
        raise PhotoRejected(RejectReason.INVALID, f"Invalid image file: {exc}") from exc
    if layout.scans > limits.max_jpeg_scans:
        raise PhotoRejected(
            RejectReason.TOO_COSTLY,
            f"JPEG has {layout.scans} scans; the limit is {limits.max_jpeg_scans} "
            "(save the photo again as an ordinary JPEG)",
        )
    if layout.decode_passes > limits.max_jpeg_decode_passes:
        raise PhotoRejected(
            RejectReason.TOO_COSTLY,
            f"JPEG asks the decoder for {layout.decode_passes:.0f} passes over the image; the "
            f"limit is {limits.max_jpeg_decode_passes:.0f} (save the photo again as an "
            "ordinary JPEG)",
        )
    return layout


def _jpeg(
    data: bytes, image: Image.Image, layout: JpegLayout, limits: PhotoLimits
) -> tuple[Image.Image, bytes, tuple[int, int]]:
    """An upright JPEG keeps its compressed image data byte for byte (metadata dropped); a
    rotated one is decoded upright and encoded again, at a DCT-reduced scale past
    ``max_decoded_pixels``, so memory stays bounded."""
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    lossless = image.format == "JPEG" and image.mode in ("RGB", "L") and orientation == 1
    size = image.size
    working = decode_jpeg(image, shorter_at_least=_WORKING_SHORTER)
    if lossless:
        return working, image_only(data, layout), size
    full = decode_jpeg(_open_header(data), max_pixels=limits.max_decoded_pixels)
    return working, encode_jpeg(full), full.size


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file's header, or None when it is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError):
        return None


def _open_header(data: bytes) -> Image.Image:
    if not data:
        raise PhotoRejected(RejectReason.INVALID, "Invalid image file: the upload is empty")
    try:
        with warnings.catch_warnings():
            # Pillow's warnings about a hostile or malformed file (a bomb's size, a broken MPO
            # index) are verdicts made here instead, not lines for the server's stderr.
            warnings.simplefilter("ignore")
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
