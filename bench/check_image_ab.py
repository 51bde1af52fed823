"""POST /check-image in this tree against another tree, paired: is a refactor slower?

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/check_image_ab.py /tmp/before/src

Both servers run at once from the same model and photo, each on its own data folder; rounds of
sequential (concurrency 1) or concurrent requests alternate between them, A then B then B then
A, so the machine's drift (up to 25 % between runs of bench/check_image.py) falls on both
alike. It prints each tree's p50 per round, the median of the per-round ratios B/A and a
bootstrap 95 % interval of that median over rounds (seeded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import model_file, photos, rss_mb
from check_image import run_level, start_server

SEED = 0
BOOTSTRAP_ROUNDS = 2000


def median_interval(values: list[float], seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    data = np.array(values)
    medians = np.median(rng.choice(data, size=(BOOTSTRAP_ROUNDS, len(data))), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other_src", type=Path, help="the other tree's src/ folder (A)")
    parser.add_argument("--photo", default="600x450", choices=["600x450", "4032x3024"])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20, help="requests per round")
    parser.add_argument("--rounds", type=int, default=12, help="rounds per tree (even)")
    args = parser.parse_args()
    photo = photos()[args.photo]
    with tempfile.TemporaryDirectory(prefix="allcare-ab-") as scratch:
        root = Path(scratch)
        model = model_file(root)
        servers = {}
        for name, src in (("A", args.other_src.resolve()), ("B", None)):
            saved = os.environ.get("PYTHONPATH")
            if src is not None:
                os.environ["PYTHONPATH"] = str(src)
            try:
                servers[name] = start_server(model, root / name, "bench")
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
        try:
            p50: dict[str, list[float]] = {"A": [], "B": []}
            for server, url in servers.values():  # warm-up, not counted
                asyncio.run(run_level(url, "bench", photo, args.concurrency, 10, server.pid))
            for round_ in range(args.rounds):
                order = ("A", "B") if round_ % 2 == 0 else ("B", "A")
                for name in order:
                    server, url = servers[name]
                    level = asyncio.run(
                        run_level(url, "bench", photo, args.concurrency, args.requests, server.pid)
                    )
                    assert level["errors"] == 0, f"{name}: {level['errors']} failed requests"
                    p50[name].append(level["p50"])
                print(
                    f"round {round_ + 1:2d}: A {p50['A'][-1]:6.1f} ms   B {p50['B'][-1]:6.1f} ms",
                    flush=True,
                )
            ratios = [b / a for a, b in zip(p50["A"], p50["B"], strict=True)]
            low, high = median_interval(ratios, SEED)
            print(
                f"\n{args.photo}, concurrency {args.concurrency}, {args.rounds} rounds of "
                f"{args.requests} requests each"
            )
            for name in ("A", "B"):
                server, _ = servers[name]
                print(
                    f"  {name}: p50 median {statistics.median(p50[name]):.1f} ms "
                    f"(rounds {min(p50[name]):.1f}-{max(p50[name]):.1f}), "
                    f"RSS {rss_mb(server.pid)[0]:.0f} MB"
                )
            print(
                f"  B/A p50 ratio: median {statistics.median(ratios):.3f}, 95 % bootstrap "
                f"interval {low:.3f}-{high:.3f} (seed {SEED}; 1.0 inside: no difference shown)"
            )
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
