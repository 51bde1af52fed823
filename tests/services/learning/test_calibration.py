from allcare.services.labels.pool import LabelledImage
from allcare.services.learning.calibration import MIN_CALIBRATION_PHOTOS, split_for_calibration


def _samples(cases: int, photos_per_case: int = 2) -> list[LabelledImage]:
    return [
        LabelledImage(f"i{case}-{photo}", f"b{case}-{photo}", case, case, "nv")
        for case in range(cases)
        for photo in range(photos_per_case)
    ]


def test_whole_cases_are_held_back_seeded_and_never_trained_on() -> None:
    samples = _samples(200)
    split = split_for_calibration(samples, share=0.1, seed=7)
    held = {s.case_id for s in split.calibration}
    assert len(held) == 20
    assert len(split.calibration) == 40
    assert held.isdisjoint({s.case_id for s in split.train})
    assert len(split.train) + len(split.calibration) == len(samples)
    assert split == split_for_calibration(samples, share=0.1, seed=7)
    assert split != split_for_calibration(samples, share=0.1, seed=8)


def test_too_few_calibration_photos_hold_nothing_back() -> None:
    samples = _samples(MIN_CALIBRATION_PHOTOS, photos_per_case=1)
    split = split_for_calibration(samples, share=0.5, seed=0)
    assert (split.train, split.calibration) == (samples, [])
    assert split_for_calibration(_samples(400), share=0.0, seed=0).calibration == []
