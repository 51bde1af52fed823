"""Replay: a share of the founding data set beside the clinic's labels in every run.

A first model trained by ``allcare train`` remembers the folder and split it learnt from. A run
that descends from it mixes in a random sample of those photos (seeded by the run), so a few
hundred clinic labels refine the model instead of making it forget the thousands of photos it
was built on. The folder must still be where it was; if not, the run trains on the clinic's
labels alone and says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from allcare.services.errors import InvalidInput
from allcare.services.learning.first_model import FOUNDING, FolderSample, read_folder
from allcare.store.models import ModelVersion


@dataclass(frozen=True)
class Replay:
    samples: list[FolderSample]
    source: str | None
    note: str | None = None


def founding_of(session: Session, version: ModelVersion | None) -> dict[str, object] | None:
    """The founding data of the model a run starts from, following its ancestors."""
    seen = set()
    while version is not None and version.id not in seen:
        seen.add(version.id)
        founding = (version.training_config or {}).get(FOUNDING)
        if founding:
            return dict(founding)
        version = session.get(ModelVersion, version.base_version) if version.base_version else None
    return None


def replay_samples(
    founding: dict[str, object] | None, clinic_count: int, share: float, seed: int
) -> Replay:
    """``share`` of the training mix from the founding set (0 turns replay off)."""
    if not founding or share <= 0 or clinic_count == 0:
        return Replay([], None)
    data_dir = Path(str(founding["data_dir"]))
    limit = founding.get("limit")
    try:
        pool, _ = read_folder(
            data_dir,
            str(founding.get("eval_split", "val")),
            mini=bool(founding.get("mini", False)),
            limit=int(limit) if isinstance(limit, int) else None,
            seed=int(founding.get("seed", 0) or 0),  # type: ignore[call-overload]
        )
    except InvalidInput as exc:
        return Replay([], None, f"no replay: the founding data is gone ({exc.detail})")
    wanted = min(len(pool), round(clinic_count * share / (1.0 - share)))
    chosen = random.Random(seed).sample(pool, wanted)  # noqa: S311 - sampling, not security
    return Replay(chosen, str(data_dir))
