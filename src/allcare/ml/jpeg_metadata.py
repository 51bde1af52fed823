"""Lossless removal of JPEG metadata (EXIF with GPS, XMP, IPTC, comments, maker notes).

The compressed image data is copied byte for byte; only marker segments are dropped. Kept: JFIF
(APP0), ICC colour profiles (APP2, colour matters in dermatology) and Adobe (APP14, needed to
decode some colour transforms). Callers only use this for upright images (no EXIF rotation).
"""

from __future__ import annotations

KEPT_APP_MARKERS = {0xE0, 0xE2, 0xEE}
_START_OF_SCAN = 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD9)}


def strip_jpeg_metadata(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out = bytearray(b"\xff\xd8")
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError("corrupt JPEG marker stream")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            out += data[pos : pos + 2]
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if marker == _START_OF_SCAN:
            out += data[pos:]
            return bytes(out)
        is_metadata = (0xE0 <= marker <= 0xEF and marker not in KEPT_APP_MARKERS) or marker == 0xFE
        if not is_metadata:
            out += data[pos:end]
        pos = end
    raise ValueError("JPEG has no image data")
