"""How the default BLUR_THRESHOLD was chosen, on real dermatoscopic images (ham10000-dev).

Sharp photos are the real images as stored (all 600x450 originals, and a random sample of the
200x150 set); blurry photos are the same images with a Gaussian blur whose radius is a fixed
share of the shorter side (1 % and 2 %), re-encoded as JPEG like a phone would. Every score
comes from the server's own path (``allcare.ml.photo.check_photo``: reduced-size decode, grey,
downscale to a 256 px shorter side, variance of the Laplacian).

The threshold is the geometric middle of the gap between the lowest score of a sharp original
and the highest score of a 1 %-blurred original (600x450, above the 256 px working scale like
every phone photo), rounded to a whole number. The 200x150 set, below the working scale and so
scored at its own resolution, is the check: how many of its sharp images pass and blurred ones
fail.

    .venv/bin/python bench/blur_calibration.py [--sample 2000]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).parent))
from _common import HAM

from allcare.ml.photo import PhotoLimits, check_photo

LIMITS = PhotoLimits(max_pixels=50_000_000, min_side=64)
BLUR_SHARES = (0.01, 0.02)
PERCENTILES = (0, 1, 5, 50, 95, 99, 100)


def score(data: bytes) -> float:
    return check_photo(data, LIMITS).blur_score


def blurred(path: Path, share: float) -> bytes:
    image = Image.open(path)
    soft = image.filter(ImageFilter.GaussianBlur(share * min(image.size)))
    buffer = io.BytesIO()
    soft.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def scores_of(files: list[Path]) -> dict[str, np.ndarray]:
    result = {"sharp": np.array([score(path.read_bytes()) for path in files])}
    for share in BLUR_SHARES:
        result[f"blur {share:.0%}"] = np.array([score(blurred(path, share)) for path in files])
    return result


def gap_middle(sharp: np.ndarray, soft: np.ndarray) -> float:
    low, high = float(sharp.min()), float(soft.max())
    if low <= high:
        raise SystemExit(f"sharp and blurred originals overlap ({low:.1f} <= {high:.1f})")
    return float(round(np.sqrt(low * high)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=2000, help="200x150 images to use")
    args = parser.parse_args()
    if not HAM.exists():
        raise SystemExit(f"{HAM} not found")
    fullres = sorted((HAM / "fullres" / "images").glob("*.jpg"))
    small = sorted((HAM / "images").glob("*.jpg"))
    small = random.Random(0).sample(small, min(args.sample, len(small)))
    sets = {"600x450": scores_of(fullres), "200x150": scores_of(small)}

    print(f"Blur scores, percentiles {PERCENTILES}")
    for size, by_kind in sets.items():
        for kind, values in by_kind.items():
            cells = " ".join(f"{np.percentile(values, q):7.1f}" for q in PERCENTILES)
            print(f"{size:<8} {kind:<9} n={len(values):<5} {cells}")

    originals = sets["600x450"]
    threshold = gap_middle(originals["sharp"], originals[f"blur {BLUR_SHARES[0]:.0%}"])
    print(f"\nChosen threshold: {threshold} (middle of the sharp / 1 % blur gap of the originals)")
    print(f"{'threshold':>9} {'set':<8} {'sharp pass':>10}", end="")
    print("".join(f" {kind + ' fail':>13}" for kind in list(sets["600x450"])[1:]))
    for candidate in sorted({threshold, 5.0, 8.0, 15.0, 50.0}):
        for size, by_kind in sets.items():
            line = f"{candidate:>9} {size:<8} {(by_kind['sharp'] >= candidate).mean():>10.1%}"
            for values in list(by_kind.values())[1:]:
                line += f" {(values < candidate).mean():>13.1%}"
            print(line)


if __name__ == "__main__":
    main()
