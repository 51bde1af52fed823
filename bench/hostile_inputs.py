"""What hostile input costs the server now: a JPEG of thousands of progressive scans, small PNG,
WebP and HEIC files of many pixels, and a parallel burst of login guesses.

    .venv/bin/python bench/hostile_inputs.py

Each photo is checked in a fresh process (as the decode thread checks it) and its peak resident
memory above that process's idle size is read from /proc (VmHWM after clear_refs). The login
burst runs against a real ``allcare serve`` with a production-cost bcrypt hash.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from _common import add_account, free_port
from tests.photos import progressive_with_repeated_scans

PYTHON = sys.executable

CHECK_IN_A_FRESH_PROCESS = """
import sys, threading, time
from pathlib import Path
from allcare.ml.photo import PhotoLimits, PhotoRejected, check_photo
def status(key):
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
data = Path(sys.argv[1]).read_bytes()
limits = PhotoLimits(max_pixels=50_000_000, min_side=64)
idle = status('VmRSS')
Path('/proc/self/clear_refs').write_text('5')
outcome = {}
def run():
    started = time.perf_counter()
    try:
        check_photo(data, limits)
        outcome['verdict'] = 'accepted'
    except PhotoRejected as exc:
        outcome['verdict'] = f'refused ({exc.reason})'
    outcome['seconds'] = time.perf_counter() - started
thread = threading.Thread(target=run)
thread.start()
thread.join()
print(outcome['verdict'], outcome['seconds'], status('VmHWM') - idle, status('VmRSS') - idle)
"""


def encoded(pixels: np.ndarray, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **params)
    return buffer.getvalue()


def rgba(side: int) -> np.ndarray:
    pixels = np.zeros((side, side, 4), np.uint8)
    pixels[..., 3] = 255
    pixels[::7, ::7, :3] = 90
    return pixels


def grey16(side: int) -> np.ndarray:
    pixels = np.zeros((side, side), np.uint16)
    pixels[::5, ::5] = 40000
    return pixels


def photos() -> dict[str, bytes]:
    import pillow_heif

    pillow_heif.register_heif_opener()
    noise = np.random.default_rng(0).integers(0, 256, (3464, 3464, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = np.random.default_rng(1).integers(0, 256, (6000, 8000, 3), dtype=np.uint8)
    return {
        "JPEG 4000x3000, 2,000 repeated scans": progressive_with_repeated_scans(
            4000, 3000, 2000, component=1
        ),
        "JPEG 8000x6000, 1,000 repeated scans": progressive_with_repeated_scans(
            8000, 6000, 1000, component=1
        ),
        "JPEG 8000x6000 at the work limit": progressive_with_repeated_scans(
            8000, 6000, 15, component=1
        ),
        "PNG RGBA 7000x7000": encoded(rgba(7000), "PNG", compress_level=9),
        "PNG 16-bit grey 7000x7000": encoded(grey16(7000), "PNG"),
        "WebP RGBA 7000x7000": encoded(rgba(7000), "WEBP", lossless=True),
        "PNG RGBA 12 MP (the cap)": encoded(rgba(3464), "PNG", compress_level=9),
        "PNG 16-bit grey 12 MP": encoded(grey16(3464), "PNG"),
        "WebP RGBA 12 MP": encoded(rgba(3464), "WEBP", lossless=True),
        "HEIC 12 MP of noise": encoded(noise, "HEIF", quality=50),
        "JPEG 48 MP rotated (EXIF 6)": encoded(rotated, "JPEG", quality=80, exif=exif.tobytes()),
    }


def photo_table(folder: Path) -> None:
    print("| photo | file | verdict | time | peak memory above idle | kept after |")
    print("|---|---|---|---|---|---|")
    for name, data in photos().items():
        path = folder / "photo.bin"
        path.write_bytes(data)
        out = subprocess.run(
            [PYTHON, "-c", CHECK_IN_A_FRESH_PROCESS, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        ).stdout.split()
        verdict = " ".join(out[:-3])
        seconds, peak, kept = (float(v) for v in out[-3:])
        print(
            f"| {name} | {len(data) / 1000:.0f} KB | {verdict} | {seconds * 1000:.0f} ms "
            f"| {peak:.0f} MB | {kept:.0f} MB |"
        )


def login_burst(folder: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "STORAGE_ROOT": str(folder / "storage"),
        "BACKSERVER_HOST": "127.0.0.1",
        "BACKSERVER_PORT": str(port),
        "LOG_LEVEL": "warning",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LOGIN_MAX_FAILURES_PER_ADDRESS": "40",
    }
    for user in ("gp1", "gp2"):  # gp1 is the account guessed at, gp2 logs in meanwhile
        add_account(env, user, "right-password-1")
    server = subprocess.Popen([PYTHON, "-m", "allcare", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health/live").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)

        def attempt(user: str, password: str, address: str) -> tuple[int, float]:
            started = time.monotonic()
            response = httpx.post(
                f"{url}/auth/login",
                json={"username": user, "password": password},
                headers={"X-Forwarded-For": address},
                timeout=60,
            )
            return response.status_code, time.monotonic() - started

        with ThreadPoolExecutor(61) as pool:
            guesses = [pool.submit(attempt, "gp1", f"guess-{n}", f"10.0.1.{n}") for n in range(60)]
            time.sleep(0.3)
            right = attempt("gp1", "right-password-1", "10.0.9.9")
            outcomes = [future.result()[0] for future in guesses]
        print(
            f"60 parallel wrong guesses for one account: {outcomes.count(401)} checked (401), "
            f"{outcomes.count(429)} refused without a check (429); the right password sent "
            f"meanwhile: {right[0]} in {right[1]:.2f} s"
        )
        with ThreadPoolExecutor(41) as pool:
            bogus = [pool.submit(attempt, f"nobody{n}", "wrong", "10.6.6.6") for n in range(40)]
            time.sleep(0.3)
            other = attempt("gp2", "right-password-1", "10.0.0.7")
            slowest = max(future.result()[1] for future in bogus)
        print(
            f"a GP's login from another address behind 40 queued bogus logins: {other[0]} in "
            f"{other[1]:.2f} s (the burst's last answer after {slowest:.2f} s)"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="allcare-hostile-") as folder:
        photo_table(Path(folder))
        print()
        login_burst(Path(folder))
    print(json.dumps({"cores": len(os.sched_getaffinity(0))}))


if __name__ == "__main__":
    main()
