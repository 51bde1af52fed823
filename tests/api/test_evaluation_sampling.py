"""The evaluation share of the labelling work: randomly chosen held-out cases, marked in the
candidates list, whose side of the split follows the lesion, not the case."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from allcare.services.labels.pool import Split, split_for
from tests.conftest import Api
from tests.photos import sharp_photo
from tests.uploads import camera, upload

HOLDOUT_SHARE = 0.5


def decided_case(api: Api, gp: TestClient, seed: int, **record: object) -> str:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    body = upload(api.client, camera("gp1"), sharp_photo(seed=seed), case_id=case_id).json()
    path = f"gp1/{body['image_id']}.jpg"
    logged = gp.post("/cases", json={"case_id": case_id, "image_paths": [path], **record})
    assert logged.status_code == 200, logged.text
    return case_id


def splits(admin: TestClient) -> dict[str, str]:
    entries = admin.get("/admin/labels", params={"limit": 1000}).json()["labels"]
    return {entry["case_id"]: entry["split"] for entry in entries}


def test_a_share_of_candidates_are_random_held_out_cases(
    make_clinic: Callable[..., Api],
) -> None:
    api = make_clinic(eval_holdout_share=HOLDOUT_SHARE, al_evaluation_share=0.2)
    gp, doctor = api.as_user("gp1"), api.as_user("doc1")
    cases = [decided_case(api, gp, seed) for seed in range(16)]
    held_out = {c for c in cases if split_for(int(c), HOLDOUT_SHARE) == Split.HOLDOUT}
    assert 2 <= len(held_out) <= 14
    answer = doctor.post("/active-learning/candidates", json={"top_k": 10}).json()
    assert answer["evaluation_candidates"] == 2
    marked = [c for c in answer["candidates"] if c["evaluation_case"]]
    ranked = [c for c in answer["candidates"] if not c["evaluation_case"]]
    assert len(marked) == 2
    assert len(ranked) == 8
    assert {c["case_id"] for c in marked} <= held_out
    assert not {c["case_id"] for c in ranked} & held_out
    assert all(c["selection_reason"] == "evaluation_sample" for c in marked)
    margins = [c["margin"] for c in answer["candidates"]]
    assert margins == sorted(margins), "the app sorts by margin: the order must survive it"
    again = doctor.post("/active-learning/candidates", json={"top_k": 10}).json()
    assert [c["case_id"] for c in again["candidates"] if c["evaluation_case"]] == [
        c["case_id"] for c in marked
    ], "the same held-out cases stay proposed until labelled"

    pick = marked[0]["case_id"]
    assert doctor.post(f"/cases/{pick}/label", json={"correct_label": "nv"}).status_code == 200
    assert splits(api.as_user("admin1"))[pick] == Split.HOLDOUT
    later = doctor.post("/active-learning/candidates", json={"top_k": 10}).json()
    assert pick not in {c["case_id"] for c in later["candidates"]}


def test_photos_of_one_lesion_never_sit_on_both_sides(make_clinic: Callable[..., Api]) -> None:
    api = make_clinic(eval_holdout_share=HOLDOUT_SHARE)
    gp, doctor = api.as_user("gp1"), api.as_user("doc1")
    lesions = {}
    for index in range(8):
        lesions[index] = [
            decided_case(api, gp, 10 * index + n, lesion_id=f"lesion-{index}") for n in range(2)
        ]
    for case_ids in lesions.values():
        for case_id in case_ids:
            labelled = doctor.post(f"/cases/{case_id}/label", json={"correct_label": "bkl"})
            assert labelled.status_code == 200
    sides = splits(api.as_user("admin1"))
    for case_ids in lesions.values():
        assert len({sides[case_id] for case_id in case_ids}) == 1, lesions
    assert {sides[c] for ids in lesions.values() for c in ids} == {Split.TRAIN, Split.HOLDOUT}


def test_an_oversized_or_malformed_lesion_id_is_a_clear_422(clinic: Api) -> None:
    gp = clinic.as_user("gp1")
    for bad in ("x" * 65, 42, ["lesion"]):
        case_id = gp.post("/cases/next-id").json()["case_id"]
        refused = gp.post("/cases", json={"case_id": case_id, "lesion_id": bad})
        assert refused.status_code == 422, refused.text
        assert "lesion_id" in refused.text
