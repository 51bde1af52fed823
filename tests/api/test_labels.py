"""Expert labels and annotations through the API (contract 2.11, 2.12, 2.32, 2.33)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from allcare.core.config import Settings
from allcare.store.crypto import is_sealed
from allcare.store.models import CaseLabel
from tests.conftest import ENCRYPTION_KEY, Api

STROKE = {
    "points": [[10.5, 20.0], [11.0, 21.5]],
    "color": 4294198070,
    "size": 4.0,
    "isEraser": False,
}
BOX = {"left": 5.0, "top": 6.0, "width": 40.0, "height": 30.0}


@pytest.fixture
def clinic(api: Api) -> Api:
    for user, role in (("gp1", "gp"), ("gp2", "gp"), ("doc1", "doctor"), ("admin1", "admin")):
        api.add_user(user, role)
    return api


def decided_case(gp: TestClient, route: str = "/cases", **fields: object) -> str:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    body = {"case_id": case_id, "image_paths": ["gp1/a.jpg", "gp1/b.jpg"]} | fields
    assert gp.post(route, json=body).status_code == 200
    return case_id


def record(client: TestClient, case_id: str) -> dict[str, object]:
    return next(c for c in client.get("/cases").json()["cases"] if c["case_id"] == case_id)


def test_doctor_labels_a_gps_case_newest_wins_history_kept(clinic: Api) -> None:
    gp, doctor, admin = (clinic.as_user(u) for u in ("gp1", "doc1", "admin1"))
    case_id = decided_case(gp, status="Confirmed")
    first = doctor.post(f"/cases/{case_id}/label", json={"correct_label": "bcc", "notes": "n1"})
    assert first.json() == {
        "status": "ok",
        "message": "Label submitted successfully",
        "case_id": case_id,
        "correct_label": "bcc",
    }
    admin.post(f"/cases/{case_id}/label", json={"correct_label": "mel"})
    seen = record(gp, case_id)
    assert seen["correct_label"] == "mel"
    assert seen["labeled_by"] == "admin1"
    assert seen["status"] == "Confirmed"  # the GP's decision stays as it was
    assert seen["updated_at"] is not None
    with clinic.container.db.session() as session:
        history = list(session.scalars(select(CaseLabel).where(CaseLabel.case_id == int(case_id))))
    assert [row.labeller_id for row in history] == ["doc1", "admin1"]
    events = admin.get("/admin/events", params={"event_type": "label_added"}).json()["events"]
    assert len(events) == 2
    assert events[0]["metadata"]["case_id"] == case_id
    assert "mel" not in str(events[0]["metadata"])  # no diagnosis in the audit log


@pytest.mark.parametrize(
    ("route", "detail"),
    [
        ("label", "GP role is not allowed to label cases: a doctor or an admin labels them"),
        (
            "annotations",
            "GP role is not allowed to annotate cases: a doctor or an admin annotates them",
        ),
    ],
)
def test_gps_are_refused_before_any_lookup(clinic: Api, route: str, detail: str) -> None:
    gp = clinic.as_user("gp1")
    body = {"correct_label": "nv", "image_index": 0}
    for case_id in (decided_case(gp), "99999"):
        response = gp.post(f"/cases/{case_id}/{route}", json=body)
        assert response.status_code == 403
        assert response.json() == {"detail": detail}


def test_label_values_and_targets_are_checked(clinic: Api) -> None:
    gp, doctor = clinic.as_user("gp1"), clinic.as_user("doc1")
    case_id = decided_case(gp)
    assert (
        doctor.post(f"/cases/{case_id}/label", json={"correct_label": "melanoma"}).status_code
        == 422
    )
    assert doctor.post(f"/cases/{case_id}/label", json={}).status_code == 422
    assert doctor.post("/cases/99999/label", json={"correct_label": "nv"}).json() == {
        "detail": "Case not found"
    }
    assert doctor.post("/cases/1x/label", json={"correct_label": "nv"}).status_code == 400
    unallocated = gp.post("/cases/next-id").json()["case_id"]
    assert (
        doctor.post(f"/cases/{unallocated}/label", json={"correct_label": "nv"}).status_code == 404
    )
    assert (
        doctor.post(f"/cases/{case_id}/label", json={"correct_label": "unknown"}).status_code == 200
    )
    assert record(gp, case_id)["correct_label"] == "unknown"


def test_annotations_are_validated_and_kept_verbatim(clinic: Api) -> None:
    gp, doctor = clinic.as_user("gp1"), clinic.as_user("doc1")
    case_id = decided_case(gp)
    body = {
        "image_index": 1,
        "correct_label": "bcc",
        "annotations": {"strokes": [STROKE], "boxes": [BOX]},
        "annotated_at": "2026-02-15T13:12:33.943",
    }
    saved = doctor.post(f"/cases/{case_id}/annotations", json=body)
    assert saved.json() == {
        "status": "ok",
        "message": "Annotations saved successfully",
        "case_id": case_id,
        "correct_label": "bcc",
    }
    seen = record(gp, case_id)
    assert seen["annotations"] == {"strokes": [STROKE], "boxes": [BOX]}
    assert seen["annotation_image_index"] == 1
    assert seen["annotated_by"] == "doc1"
    assert seen["annotated_at"] == "2026-02-15T13:12:33.943"
    assert seen["correct_label"] == "bcc"

    out_of_range = doctor.post(f"/cases/{case_id}/annotations", json=body | {"image_index": 2})
    assert out_of_range.status_code == 400
    assert "out of range" in out_of_range.json()["detail"]
    bad_shapes = [
        {"strokes": [STROKE | {"points": [[1.0]]}], "boxes": []},
        {"strokes": [STROKE | {"points": [[1.0, 20000.0]]}], "boxes": []},
        {"strokes": [STROKE | {"size": -1}], "boxes": []},
        {"strokes": [], "boxes": [BOX | {"width": 0}]},
        {"strokes": [], "boxes": [BOX | {"left": 9990.0}]},
        {"strokes": [], "boxes": [BOX] * 201},
        {"strokes": [STROKE | {"points": [[1.0, 1.0]] * 10001}], "boxes": []},
    ]
    for drawing in bad_shapes:
        response = doctor.post(
            f"/cases/{case_id}/annotations", json=body | {"annotations": drawing}
        )
        assert response.status_code == 422, drawing
    nan = doctor.post(
        f"/cases/{case_id}/annotations",
        content=b'{"image_index": 0, "correct_label": "nv", "annotations": '
        b'{"strokes": [{"points": [[NaN, 1]]}], "boxes": []}}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 422


def test_annotation_targets_follow_the_legacy_rules(clinic: Api) -> None:
    gp, doctor = clinic.as_user("gp1"), clinic.as_user("doc1")
    uncertain = decided_case(gp, route="/cases/uncertain")
    rejected = decided_case(gp, route="/cases/reject")
    body = {"image_index": 0, "correct_label": "nv"}
    assert doctor.post(f"/cases/{uncertain}/annotations", json=body).json() == {
        "detail": "Case not found for annotation"
    }
    assert doctor.post(f"/cases/{rejected}/annotations", json=body).status_code == 200
    wrong_owner = body | {"case_user_id": "gp2"}
    assert doctor.post(f"/cases/{rejected}/annotations", json=wrong_owner).status_code == 404
    owner = body | {"case_user_id": "gp1"}
    assert doctor.post(f"/cases/{rejected}/annotations", json=owner).status_code == 200
    traversal = body | {"case_user_id": "../gp1"}
    assert doctor.post(f"/cases/{rejected}/annotations", json=traversal).status_code == 422


def test_label_counts_and_pool_for_the_admin_screen(clinic: Api) -> None:
    gp, doctor, admin = (clinic.as_user(u) for u in ("gp1", "doc1", "admin1"))
    cases = [decided_case(gp) for _ in range(12)]
    for case_id in cases[:10]:
        doctor.post(f"/cases/{case_id}/label", json={"correct_label": "nv"})
    doctor.post(f"/cases/{cases[10]}/label", json={"correct_label": "unknown"})
    counts = admin.get("/admin/labels/count").json()
    assert counts["total_labels"] == 11
    assert counts["unknown_labels"] == 1
    assert counts["unused_labels"] + counts["held_out_labels"] == 10
    assert counts["used_labels"] == 0
    assert counts["retrain_threshold"] == 20
    assert counts["ready_for_retrain"] is False
    pool = admin.get("/admin/labels", params={"limit": 3}).json()
    assert pool["total"] == 11
    assert [entry["case_id"] for entry in pool["labels"]] == [cases[10], cases[9], cases[8]]
    assert pool["labels"][0] | {"created_at": None, "updated_at": None} == {
        "case_id": cases[10],
        "case_owner": "gp1",
        "correct_label": "unknown",
        "user_id": "doc1",
        "source": "label",
        "split": pool["labels"][0]["split"],
        "created_at": None,
        "updated_at": None,
        "used_in_models": [],
    }
    unused = admin.get("/admin/labels", params={"unused_only": "true"}).json()
    assert unused["total"] == counts["unused_labels"]
    for user in ("gp1", "doc1"):
        refused = clinic.as_user(user).get("/admin/labels/count")
        assert refused.status_code == 403
        assert refused.json() == {"detail": "Admin role required"}


def test_labels_are_sealed_at_rest(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(encrypt_storage=True, data_encryption_key=ENCRYPTION_KEY))
    api.add_user("gp1", "gp")
    api.add_user("doc1", "doctor")
    case_id = decided_case(api.as_user("gp1"))
    note = "secret-label-note-4711"
    api.as_user("doc1").post(f"/cases/{case_id}/label", json={"correct_label": "df", "notes": note})
    with api.container.db.session() as session:
        [row] = session.scalars(select(CaseLabel))
    assert is_sealed(row.details)
    assert note.encode() not in row.details
    assert record(api.as_user("gp1"), case_id)["label_notes"] == note
