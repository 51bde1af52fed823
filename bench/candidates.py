"""POST /active-learning/candidates at clinic scale: 100,000 unlabelled cases with one to three
photos each (stored probabilities and embeddings), ranked by every strategy, with encryption at
rest off and on. Target: under 1 s.

    .venv/bin/python bench/candidates.py [--cases 100000] [--top-k 50]

Builds its own SQLite database in a temporary folder (a minute or so), then times the service
the route calls (the HTTP layer adds about a millisecond).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from allcare.container import open_store
from allcare.core.config import Settings
from allcare.ml.active_learning import StrategyName
from allcare.ml.classes import NUM_CLASSES
from allcare.ml.embeddings import EMBEDDING_DIM
from allcare.services.learning.active_learning import ActiveLearningService, OpenedProbabilities
from allcare.services.learning.candidate_query import CandidateQuery, Candidates
from allcare.services.principal import Principal, Role
from allcare.store import vectors
from allcare.store.crypto import Sealer
from allcare.store.models import Case, Image, User

KEY = "q1bYBCpY7l2SEqSDcLYtKtpi7lrvSUPkwwGtbkTqq4k="
GPS = 20
CHUNK = 5000


def populate(settings: Settings, cases: int, seed: int = 0) -> tuple[Sealer, int]:
    db, sealer = open_store(settings)
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    images = 0
    with db.engine.begin() as connection:
        connection.execute(
            insert(User),
            [
                {
                    "id": f"gp{i}",
                    "password_hash": "x",
                    "role": "gp",
                    "first_name": "",
                    "last_name": "",
                }
                for i in range(GPS)
            ],
        )
        for first in range(0, cases, CHUNK):
            case_rows, image_rows = [], []
            for offset in range(min(CHUNK, cases - first)):
                case_id = 10_000 + first + offset
                owner = f"gp{case_id % GPS}"
                case_rows.append(
                    {
                        "id": case_id,
                        "owner_id": owner,
                        "state": "decided",
                        "entry_type": "case",
                        "status": "pending",
                        "owner_role": "gp",
                        "details": sealer.seal(b'{"image_paths": []}', f"case:{case_id}"),
                        "decided_at": start + timedelta(minutes=case_id),
                    }
                )
                for _ in range(rng.integers(1, 4)):
                    image_id = f"{case_id:08x}-0000-4000-8000-{images:012x}"
                    logits = rng.normal(0, 2, NUM_CLASSES)
                    p = np.exp(logits) / np.exp(logits).sum()
                    embedding = rng.normal(0, 1, EMBEDDING_DIM).astype(np.float16)
                    image_rows.append(
                        {
                            "id": image_id,
                            "owner_id": owner,
                            "case_id": case_id,
                            "blob_key": f"images/{image_id}.jpg",
                            "sha256": "0" * 64,
                            "size_bytes": 1,
                            "content_type": "image/jpeg",
                            "probabilities": sealer.seal(
                                vectors.pack(p.astype(np.float32)),
                                f"image-probabilities:{image_id}",
                            ),
                            "embedding": sealer.seal(
                                vectors.pack(embedding), f"image-embedding:{image_id}"
                            ),
                            "model_version": "v20260101_001",
                        }
                    )
                    images += 1
            connection.execute(insert(Case), case_rows)
            connection.execute(insert(Image), image_rows)
    db.dispose()
    return sealer, images


def time_strategies(settings: Settings, top_k: int, repeat: int) -> dict[str, float]:
    """The first call of a server process opens every sealed value ("first call"); later ones
    find them in the process's cache of opened probabilities."""
    db, sealer = open_store(settings)
    doctor = Principal("doc1", Role.DOCTOR, "", "")
    opened = OpenedProbabilities()
    results = {}
    with db.session() as session:
        started = time.perf_counter()
        ActiveLearningService(session, sealer, opened).candidates(doctor, CandidateQuery(top_k))
        results["margin, first call"] = time.perf_counter() - started
    for strategy in StrategyName:
        samples = []
        for _ in range(repeat):
            with db.session() as session:
                started = time.perf_counter()
                answer = ActiveLearningService(session, sealer, opened).candidates(
                    doctor, CandidateQuery(top_k=top_k, strategy=strategy)
                )
                samples.append(time.perf_counter() - started)
        assert isinstance(answer, Candidates)
        assert len(answer.candidates) == top_k
        results[strategy] = statistics.median(samples)
    db.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = {}
    for encrypted in (False, True):
        root = Path(tempfile.mkdtemp(prefix="allcare-bench-al-"))
        settings = Settings(
            storage_root=root,
            jwt_secret_key="bench-" + "x" * 40,
            encrypt_storage=encrypted,
            data_encryption_key=KEY if encrypted else None,
        )
        started = time.perf_counter()
        _, images = populate(settings, args.cases)
        print(
            f"{args.cases} cases, {images} photos (encryption {'on' if encrypted else 'off'}) "
            f"built in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        rows["on" if encrypted else "off"] = time_strategies(settings, args.top_k, args.repeat)
    print(f"\nPOST /active-learning/candidates, top_k {args.top_k}, median of {args.repeat} (s)")
    print(f"{'strategy':<20} {'encryption off':>15} {'encryption on':>14}")
    for strategy in rows["off"]:
        print(f"{strategy:<20} {rows['off'][strategy]:>15.3f} {rows['on'][strategy]:>14.3f}")
    print("target: under 1 s for 100,000 cases")


if __name__ == "__main__":
    main()
