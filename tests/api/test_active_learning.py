"""POST /active-learning/candidates through the API, checked against margins computed by hand
from what /check-image answered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Api
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.uploads import camera, upload


@pytest.fixture
def clinic(make_clinic: Callable[..., Api]) -> Api:
    """Without the evaluation share: these tests check each strategy's ranking over every case
    (test_evaluation_sampling.py checks the share)."""
    return make_clinic(al_evaluation_share=0.0)


def margin(predictions: list[dict[str, float]]) -> float:
    top = sorted((p["confidence"] for p in predictions), reverse=True)
    return top[0] - top[1]


def case_with_photos(api: Api, gp: TestClient, user: str, seeds: list[int], route: str = "/cases"):
    """A decided case with camera photos; returns its id and its hand-computed margin."""
    case_id = gp.post("/cases/next-id").json()["case_id"]
    paths, margins = [], []
    for seed in seeds:
        body = upload(api.client, camera(user), sharp_photo(seed=seed), case_id=case_id).json()
        paths.append(f"{user}/{body['image_id']}.jpg")
        margins.append(margin(body["predictions"]))
    assert gp.post(route, json={"case_id": case_id, "image_paths": paths}).status_code == 200
    return case_id, min(margins)


def candidates(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/active-learning/candidates", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_ranking_follows_hand_computed_minimum_margins(clinic: Api) -> None:
    gp, doctor = clinic.as_user("gp1"), clinic.as_user("doc1")
    expected = dict(case_with_photos(clinic, gp, "gp1", [3 * i, 3 * i + 1]) for i in range(6))
    answer = candidates(doctor, top_k=50, include_labeled=False)
    assert answer["selection_method"] == "minimum_margin_case_sampling"
    assert answer["total_candidates"] == 6
    got = [(c["case_id"], c["prediction_margin"]) for c in answer["candidates"]]
    assert [case for case, _ in got] == sorted(expected, key=expected.__getitem__)
    for case_id, value in got:
        assert value == pytest.approx(expected[case_id], abs=1e-6)
    first = answer["candidates"][0]
    assert first["margin"] == pytest.approx(first["prediction_margin"])
    assert first["uncertainty_score"] == pytest.approx(1 - first["prediction_margin"])
    assert isinstance(first["case_id"], str)
    assert len(first["images"]) == 2
    image = first["images"][0]
    assert image["path"] == f"gp1/{image['image_id']}.jpg"
    assert image["status"] == "success"
    assert len(image["predictions"]) == 7
    assert candidates(doctor)["total_candidates"] == 5  # AL_CANDIDATES_TOP_K


def test_scope_labels_and_filters(clinic: Api) -> None:
    gp1, gp2, doctor = (clinic.as_user(u) for u in ("gp1", "gp2", "doc1"))
    assert candidates(gp1, top_k=5) == {
        "candidates": [],
        "total_candidates": 0,
        "message": "No cases available",
    }
    own, _ = case_with_photos(clinic, gp1, "gp1", [1])
    rejected, _ = case_with_photos(clinic, gp1, "gp1", [2], route="/cases/reject")
    other, _ = case_with_photos(clinic, gp2, "gp2", [3])
    ids = lambda answer: {c["case_id"] for c in answer["candidates"]}  # noqa: E731
    assert ids(candidates(gp1, top_k=0)) == {own, rejected}
    assert ids(candidates(gp2, top_k=0)) == {other}
    assert ids(candidates(doctor, top_k=0)) == {own, rejected, other}
    assert ids(candidates(doctor, top_k=0, entry_type="REJECT")) == {rejected}
    assert ids(candidates(doctor, top_k=0, status="rejected")) == {rejected}
    doctor.post(f"/cases/{own}/label", json={"correct_label": "nv"})
    assert ids(candidates(doctor, top_k=0)) == {rejected, other}
    assert ids(candidates(doctor, top_k=0, include_labeled=True)) == {own, rejected, other}
    assert candidates(gp2, entry_type="uncertain")["message"] == "No cases with images available"


def test_bad_bodies_are_422(clinic: Api) -> None:
    doctor = clinic.as_user("doc1")
    for body in ([1, 2], "text", {"top_k": "many"}, {"top_k": 1001}, {"strategy": "magic"}):
        assert doctor.post("/active-learning/candidates", json=body).status_code == 422
    assert doctor.post("/active-learning/candidates").status_code == 422


def test_strategies_and_gallery_only_cases(clinic: Api) -> None:
    gp, doctor = clinic.as_user("gp1"), clinic.as_user("doc1")
    for i in range(4):
        case_with_photos(clinic, gp, "gp1", [10 + i])
    gallery = gp.post("/cases/next-id").json()["case_id"]
    gp.post(
        "/cases",
        json={
            "case_id": gallery,
            "image_paths": ["/data/user/0/app/cache/photo.jpg"],
            "predictions": [
                {"label": "bcc", "confidence": 0.5},
                {"label": "nv", "confidence": 0.49},
            ],
        },
    )
    answer = candidates(doctor, top_k=0)
    by_id = {c["case_id"]: c for c in answer["candidates"]}
    assert by_id[gallery]["prediction_margin"] == pytest.approx(0.01)
    assert "images" not in by_id[gallery]
    assert answer["candidates"][0]["case_id"] == gallery
    for strategy in ("entropy", "least_confidence", "diversity", "random"):
        ranked = candidates(doctor, top_k=3, strategy=strategy)
        assert ranked["strategy"] == strategy
        assert ranked["total_candidates"] == 3
        margins = [c["margin"] for c in ranked["candidates"]]
        assert margins == sorted(margins)  # the app sorts by margin: the order survives


def test_confident_melanoma_suspicions_are_not_starved(clinic: Api, tmp_path: Path) -> None:
    """Cases the model is sure are melanoma never win on margin; every fifth slot is theirs,
    oldest first, and the margins the app sorts by keep that order."""
    gp, doctor = clinic.as_user("gp1"), clinic.as_user("doc1")
    clinic.container.engine.replace(tiny_torchscript(tmp_path / "mel.pt", favour=4), "mel-lover")
    suspicions = [case_with_photos(clinic, gp, "gp1", [50 + i])[0] for i in range(2)]
    clinic.container.engine.replace(tiny_torchscript(tmp_path / "plain.pt", seed=1), "plain")
    for i in range(8):
        case_with_photos(clinic, gp, "gp1", [60 + i])
    answer = candidates(doctor, top_k=5)
    order = [c["case_id"] for c in answer["candidates"]]
    assert order[4] == suspicions[0]
    last = answer["candidates"][4]
    assert last["selection_reason"] == "melanoma_safeguard"
    assert last["mel_probability"] > 0.9
    assert last["prediction_margin"] > answer["candidates"][3]["prediction_margin"]
    margins = [c["margin"] for c in answer["candidates"]]
    assert margins == sorted(margins)
    assert answer["melanoma_safeguard"]["added"] == 1
