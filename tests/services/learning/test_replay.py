"""Replay of the founding data beside the clinic's labels."""

from pathlib import Path

from allcare.services.learning.replay import replay_samples
from tests.learning import colour_folder


def test_replay_draws_its_share_of_the_founding_photos(tmp_path: Path) -> None:
    founding = {"data_dir": str(colour_folder(tmp_path / "data")), "eval_split": "val"}
    half = replay_samples(founding, clinic_count=6, share=0.5, seed=1)
    assert len(half.samples) == 6
    assert half.source == founding["data_dir"]
    assert half.samples == replay_samples(founding, 6, 0.5, seed=1).samples
    assert len(replay_samples(founding, 6, 0.75, seed=1).samples) == 14  # all 14 it has
    assert replay_samples(founding, 6, 0.0, seed=1).samples == []
    assert replay_samples(None, 6, 0.5, seed=1).samples == []


def test_a_founding_folder_that_is_gone_is_a_note_not_a_failure(tmp_path: Path) -> None:
    gone = replay_samples({"data_dir": str(tmp_path / "moved")}, 6, 0.5, seed=0)
    assert gone.samples == []
    assert gone.note is not None
    assert "founding data is gone" in gone.note
