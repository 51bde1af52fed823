"""Decoding photos to upright 8-bit images with bounded memory.

JPEGs decode at a reduced scale (libjpeg's DCT scaling through Pillow's ``draft``) whenever a
smaller image serves. PNG, WebP and HEIC have no reduced decoding, so the caller caps their
pixels before this runs; here every conversion avoids whole-image copies beyond one 8-bit
image of the result (no float buffers, no RGBA compositing), because a 190 KB PNG can hold 49
million pixels.
"""

from __future__ import annotations

import ctypes
import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps

STORED_JPEG_QUALITY = 92
JPEG_FORMATS = ("JPEG", "MPO")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I", "F")
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
_TRIM_AFTER_BYTES = 32 * 1024 * 1024
_BAND_ROWS = 256


class UndecodableImage(ValueError):
    pass


def decode_jpeg(
    image: Image.Image, *, shorter_at_least: int = 0, max_pixels: int = 0
) -> Image.Image:
    """Upright 8-bit RGB or L. ``shorter_at_least``: the smallest DCT scale that keeps the
    shorter side at or above it; ``max_pixels``: the largest scale with at most that many."""
    width, height = image.size
    if shorter_at_least:
        scale = shorter_at_least / min(width, height)
        if scale < 0.5:
            image.draft("RGB", (int(width * scale) + 1, int(height * scale) + 1))
    elif max_pixels:
        denominator = next((d for d in (1, 2, 4, 8) if (width / d) * (height / d) <= max_pixels), 8)
        if denominator > 1:
            image.draft("RGB", (math.ceil(width / denominator), math.ceil(height / denominator)))
    return upright(_eight_bit(_loaded(image)))


def decode_whole(data: bytes) -> Image.Image:
    """Upright 8-bit RGB or L, at full size, from an accepted non-JPEG photo (PNG, WebP, HEIC),
    keeping its ICC profile. Opens the bytes itself so no caller holds the decoded source."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        loaded = _loaded(Image.open(io.BytesIO(data)))
    _release_decoder(loaded)
    icc = loaded.info.get("icc_profile")
    big = loaded.width * loaded.height * len(loaded.getbands()) > _TRIM_AFTER_BYTES
    result = upright(_eight_bit(loaded))
    del loaded
    if big and _malloc_trim is not None:
        # The decoders' buffers are freed, but glibc keeps freed heap pages mapped: without
        # this the server stayed a gigabyte larger after one such photo (WebP, measured).
        _malloc_trim(0)
    if icc:
        result.info["icc_profile"] = icc
    return result


def upright(image: Image.Image) -> Image.Image:
    """EXIF orientation applied in place (without ``in_place`` Pillow copies even an upright
    image: one more full-size buffer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        ImageOps.exif_transpose(image, in_place=True)
    return image


def reduced(image: Image.Image, shorter_at_least: int) -> Image.Image:
    """An integer box-filter reduction keeping the shorter side at or above the given size;
    the image itself when it is not at least twice as large."""
    factor = min(image.size) // shorter_at_least
    return image.reduce(factor) if factor >= 2 else image


def as_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def encode_jpeg(image: Image.Image) -> bytes:
    """A new JPEG holding the pixels and, when the source had one, its ICC colour profile;
    never a comment, EXIF or anything else carried in ``info``."""
    buffer = io.BytesIO()
    icc = image.info.get("icc_profile")
    image.info = {}
    params: dict[str, object] = {"quality": STORED_JPEG_QUALITY}
    if isinstance(icc, bytes) and len(icc) <= 60_000:
        params["icc_profile"] = icc
    image.save(buffer, format="JPEG", **params)
    return buffer.getvalue()


def _loaded(image: Image.Image) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UndecodableImage(f"Invalid image file: {exc}") from exc
    return image


def _release_decoder(image: Image.Image) -> None:
    """Pillow's WebP reader keeps libwebp's decoder, with its own copy of every pixel, as long
    as the image lives; once the pixels are loaded it is no longer needed."""
    if getattr(image, "_decoder", None) is not None:
        image._decoder = None  # type: ignore[attr-defined]
    source = getattr(image, "fp", None)  # only images read from a file have one
    if source is not None:
        source.close()


def _eight_bit(image: Image.Image) -> Image.Image:
    """Grey stays grey (L), colour becomes RGB; alpha is laid over white; 16-bit is scaled."""
    if image.mode in _SIXTEEN_BIT:
        return _grey_from_wide(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("PA", "RGBa", "La"):
        image = image.convert("LA" if image.mode == "La" else "RGBA")
    if image.mode in ("RGBA", "LA"):
        return _over_white(image)
    if image.mode in ("RGB", "L"):
        return image
    return image.convert("RGB")


def _grey_from_wide(image: Image.Image) -> Image.Image:
    """16- or 32-bit grey to 8 bits, scaled (not clipped), in integer arithmetic and in bands
    of rows, so no wide temporary of the whole image is made."""
    wide = np.asarray(image)
    peak = 65535 if image.mode.startswith("I;16") or int(wide.max(initial=0)) > 255 else 255
    narrow = np.empty(wide.shape, dtype=np.uint8)
    for top in range(0, wide.shape[0], _BAND_ROWS):
        band = wide[top : top + _BAND_ROWS].astype(np.int64)
        # x * 255 / peak, rounded, for x clipped to 0..peak
        narrow[top : top + _BAND_ROWS] = (np.clip(band, 0, peak) * 255 + peak // 2) // peak
    return Image.fromarray(narrow, "L")


def _over_white(image: Image.Image) -> Image.Image:
    """Alpha laid over white. An RGBA source is pasted straight into the RGB result (Pillow
    blends it without an RGB copy): one 3-byte image besides the decoded 4-byte one."""
    if image.mode == "LA":
        base = Image.new("L", image.size, 255)
        base.paste(image.convert("L"), mask=image.getchannel("A"))
        return base
    base = Image.new("RGB", image.size, (255, 255, 255))
    base.paste(image, mask=image)
    return base
