from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from allcare.core.config import Settings
from tests.conftest import Api

PREDICTIONS = [
    {"label": "bcc", "confidence": 0.61},
    {"label": "bkl", "confidence": 0.22},
    {"label": "nv", "confidence": 0.17},
]


def app_decision(case_id: str, **extra: object) -> dict[str, object]:
    """The body the app's result screen sends on Confirm."""
    return {
        "case_id": case_id,
        "status": "Confirmed",
        "predictions": PREDICTIONS,
        "image_paths": ["gp1/b0000000-0000-4000-8000-000000000000.jpg", "/local/gallery.jpg"],
        "symptoms": ["Red marks", "Fair skin"],
        "gender": "W",
        "age": "47",
        "location": "Front Left Forearm",
        "created_at": "2026-02-15T13:32:30.805",
        "selected_prediction_index": 1,
        **extra,
    }


@pytest.fixture
def gp(api: Api):
    api.add_user("gp1", "gp")
    return api.as_user("gp1")


def test_next_id_is_a_digit_string_from_one_global_sequence(api: Api) -> None:
    api.add_user("gp1", "gp")
    api.add_user("gp2", "gp")
    first = api.as_user("gp1").post("/cases/next-id")
    assert first.status_code == 200
    assert first.json() == {"case_id": "10000"}
    assert api.as_user("gp2").post("/cases/next-id").json() == {"case_id": "10001"}
    assert api.as_user("gp1").post("/cases/next-id").json() == {"case_id": "10002"}


def test_case_id_start_is_configurable(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(case_id_start=500000))
    api.add_user("gp1", "gp")
    assert api.as_user("gp1").post("/cases/next-id").json() == {"case_id": "500000"}


def test_confirm_stores_every_field_verbatim(gp) -> None:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    body = app_decision(case_id, image_decisions={"image_1": "keep"}, notes="itchy")
    response = gp.post("/cases", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "message": "logged",
        "case_id": case_id,
        "case_status": "Confirmed",
    }
    [record] = gp.get("/cases", params={"limit": 100}).json()["cases"]
    for field in (
        "case_id",
        "status",
        "predictions",
        "image_paths",
        "symptoms",
        "gender",
        "age",
        "location",
        "created_at",
        "selected_prediction_index",
        "image_decisions",
        "notes",
    ):
        assert record[field] == body[field], field
    assert record["entry_type"] == "case"
    assert record["user_id"] == "gp1"
    assert record["user_role"] == "gp"
    assert record["isLabeled"] is False
    assert record["correct_label"] is None
    assert record["image_ids"] == []
    assert record["updated_at"] is None
    assert datetime.fromisoformat(record["received_at"]).utcoffset() == timedelta(0)
    assert isinstance(record["age"], str)


def test_defaults_and_server_created_at(gp) -> None:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    assert gp.post("/cases", json={"case_id": case_id}).status_code == 200
    [record] = gp.get("/cases").json()["cases"]
    assert record["status"] == "pending"
    assert record["predictions"] == []
    assert record["symptoms"] == []
    datetime.fromisoformat(record["created_at"])


def test_empty_case_id_allocates_one(gp) -> None:
    response = gp.post("/cases", json={"case_id": "", "status": "pending"})
    assert response.status_code == 200
    assert response.json()["case_id"].isdigit()


def test_relogging_replaces_the_decision_and_moves_the_case_to_the_top(gp) -> None:
    first = gp.post("/cases/next-id").json()["case_id"]
    second = gp.post("/cases/next-id").json()["case_id"]
    gp.post("/cases", json=app_decision(first, status="pending"))
    gp.post("/cases", json=app_decision(second))
    assert [c["case_id"] for c in gp.get("/cases").json()["cases"]] == [second, first]
    gp.post("/cases", json=app_decision(first))
    cases = gp.get("/cases").json()["cases"]
    assert [c["case_id"] for c in cases] == [first, second]
    assert cases[0]["status"] == "Confirmed"


def test_uncertain_and_reject_routes(gp) -> None:
    uncertain = gp.post("/cases/next-id").json()["case_id"]
    rejected = gp.post("/cases/next-id").json()["case_id"]
    response = gp.post("/cases/uncertain", json=app_decision(uncertain, status="pending"))
    assert response.json() == {
        "status": "ok",
        "message": "uncertain_logged",
        "case_id": uncertain,
        "case_status": "pending",
    }
    reject_body = app_decision(rejected, reason="User rejected prediction", notes="wrong class")
    del reject_body["status"]
    response = gp.post("/cases/reject", json=reject_body)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["message"] == "rejected_logged"
    records = {c["case_id"]: c for c in gp.get("/cases").json()["cases"]}
    assert records[uncertain]["entry_type"] == "uncertain"
    assert records[rejected]["entry_type"] == "reject"
    assert records[rejected]["status"] == "rejected"
    assert records[rejected]["reason"] == "User rejected prediction"
    assert records[rejected]["notes"] == "wrong class"


def test_list_filters_limit_and_order(gp) -> None:
    ids = [gp.post("/cases/next-id").json()["case_id"] for _ in range(4)]
    gp.post("/cases", json=app_decision(ids[0]))
    gp.post("/cases", json=app_decision(ids[1], status="pending"))
    gp.post("/cases/uncertain", json=app_decision(ids[2], status="pending"))
    gp.post("/cases/reject", json={"case_id": ids[3]})

    def listed(**params: object) -> list[str]:
        response = gp.get("/cases", params=params)
        assert response.status_code == 200
        return [c["case_id"] for c in response.json()["cases"]]

    assert listed() == ids[::-1]
    assert listed(limit=2) == [ids[3], ids[2]]
    assert listed(status="confirmed") == [ids[0]]
    assert listed(status="PENDING") == [ids[2], ids[1]]
    assert listed(include_uncertain="false") == [ids[3], ids[1], ids[0]]
    assert listed(include_rejected="false") == [ids[2], ids[1], ids[0]]


def test_allocated_ids_without_decision_are_not_listed(gp) -> None:
    gp.post("/cases/next-id")
    assert gp.get("/cases").json() == {"cases": []}


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
def test_limit_out_of_range_is_422(gp, limit: str) -> None:
    response = gp.get("/cases", params={"limit": limit})
    assert response.status_code == 422


def test_release_id(gp, api: Api) -> None:
    assert gp.post("/cases/release-id", json={"case_id": "10000"}).json() == {
        "status": "skipped",
        "reason": "missing_counter",
    }
    first = gp.post("/cases/next-id").json()["case_id"]
    second = gp.post("/cases/next-id").json()["case_id"]
    assert gp.post("/cases/release-id", json={"case_id": "99999"}).json() == {
        "status": "skipped",
        "reason": "out_of_range",
    }
    gp.post("/cases", json=app_decision(first))
    assert gp.post("/cases/release-id", json={"case_id": first}).json() == {
        "status": "skipped",
        "reason": "case_in_use",
    }
    assert gp.post("/cases/release-id", json={"case_id": second}).json() == {
        "status": "ok",
        "case_id": second,
    }
    assert gp.post("/cases/release-id", json={"case_id": second}).json()["status"] == "skipped"
    # The released id comes back to its owner first, not to anybody else.
    api.add_user("gp2", "gp")
    assert api.as_user("gp2").post("/cases/next-id").json()["case_id"] != second
    assert gp.post("/cases/next-id").json()["case_id"] == second


@pytest.mark.parametrize("case_id", ["", "abc", "12a", "../1", "\uff11\uff12\uff13"])
def test_release_invalid_id_is_400(gp, case_id: str) -> None:
    response = gp.post("/cases/release-id", json={"case_id": case_id})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid case_id"}


def test_put_updates_present_fields_only(gp) -> None:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    gp.post("/cases", json=app_decision(case_id))
    response = gp.put(f"/cases/{case_id}", json={"age": "48", "symptoms": [], "gender": None})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "case_id": case_id}
    [record] = gp.get("/cases").json()["cases"]
    assert record["age"] == "48"
    assert record["symptoms"] == []
    assert record["gender"] == "W"
    assert record["location"] == "Front Left Forearm"
    datetime.fromisoformat(record["updated_at"])


def test_put_errors(gp) -> None:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    assert gp.put(f"/cases/{case_id}", json={"age": "3"}).status_code == 404
    gp.post("/cases/reject", json={"case_id": case_id})
    assert gp.put(f"/cases/{case_id}", json={}).json() == {"detail": "No fields to update"}
    assert gp.put(f"/cases/{case_id}", json={"gender": None}).status_code == 400
    # Rejected cases can be edited (the legacy server refused, losing the GP's correction).
    assert gp.put(f"/cases/{case_id}", json={"notes": "seen again"}).status_code == 200
    assert gp.put("/cases/99999", json={"age": "3"}).json() == {"detail": "Case not found"}
    assert gp.put("/cases/abc", json={"age": "3"}).status_code == 400


def test_unknown_case_id_is_refused(gp) -> None:
    response = gp.post("/cases", json=app_decision("123456"))
    assert response.status_code == 404
    assert "next-id" in response.json()["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"case_id": 10000},
        {"age": 47},
        {"status": ["Confirmed"]},
        {"predictions": [{"label": "nv", "confidence": 7}]},
        {"predictions": "nv"},
        {"symptoms": [1, 2]},
        {"created_at": "yesterday"},
        {"selected_prediction_index": -1},
        {"image_decisions": ["keep"]},
        {"notes": "x" * 10_001},
        {"symptoms": ["a"] * 65},
    ],
)
def test_wrong_types_and_oversized_fields_are_422_and_store_nothing(gp, change) -> None:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    response = gp.post("/cases", json=app_decision(case_id) | change)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert gp.get("/cases").json() == {"cases": []}


def test_malformed_json_is_422(gp) -> None:
    response = gp.post(
        "/cases", content=b'{"case_id": "1', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "detail" in response.json()


def test_oversized_json_body_is_413(gp) -> None:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    body = app_decision(case_id, notes="x" * 2_000_000)
    response = gp.post("/cases", json=body)
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert gp.get("/cases").json() == {"cases": []}


def test_gps_never_see_or_change_each_others_cases(api: Api) -> None:
    for user_id, role in [("gp1", "gp"), ("gp2", "gp"), ("doc", "doctor"), ("boss", "admin")]:
        api.add_user(user_id, role)
    gp1, gp2 = api.as_user("gp1"), api.as_user("gp2")
    mine = gp1.post("/cases/next-id").json()["case_id"]
    gp1.post("/cases", json=app_decision(mine, notes="private"))
    spare = gp1.post("/cases/next-id").json()["case_id"]

    assert gp2.get("/cases").json() == {"cases": []}
    assert gp2.get("/cases", params={"status": "Confirmed"}).json() == {"cases": []}
    assert gp2.put(f"/cases/{mine}", json={"notes": "mine now"}).status_code == 404
    assert gp2.post("/cases", json=app_decision(mine, status="pending")).status_code == 404
    assert gp2.post("/cases/reject", json={"case_id": mine}).status_code == 404
    assert gp2.post("/cases/uncertain", json={"case_id": mine}).status_code == 404
    assert gp2.post("/cases/release-id", json={"case_id": spare}).json()["status"] == "skipped"
    assert gp2.post("/cases", json=app_decision(spare)).status_code == 404

    [record] = gp1.get("/cases").json()["cases"]
    assert record["notes"] == "private"
    assert record["status"] == "Confirmed"
    for reviewer in ("doc", "boss"):
        [seen] = api.as_user(reviewer).get("/cases").json()["cases"]
        assert seen["case_id"] == mine
        assert seen["user_id"] == "gp1"


def test_doctors_cannot_overwrite_a_gps_record_and_a_refusal_changes_nothing(api: Api) -> None:
    """Contract 1.3: changes to another user's case are admin-only; doctors label instead."""
    api.add_user("gp1", "gp")
    api.add_user("doc", "doctor")
    gp1 = api.as_user("gp1")
    case_id = gp1.post("/cases/next-id").json()["case_id"]
    gp1.post("/cases", json=app_decision(case_id, status="pending", notes="the GP's note"))
    [before] = gp1.get("/cases").json()["cases"]
    doctor = api.as_user("doc")
    attempts = [
        doctor.put(f"/cases/{case_id}", json={"notes": "reviewed"}),
        doctor.post("/cases", json={"case_id": case_id, "status": "Confirmed"}),
        doctor.post("/cases/uncertain", json={"case_id": case_id}),
        doctor.post("/cases/reject", json={"case_id": case_id, "notes": "no"}),
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert "admin" in response.json()["detail"]
    assert gp1.get("/cases").json()["cases"] == [before]
    assert doctor.post(f"/cases/{case_id}/label", json={"correct_label": "nv"}).status_code == 200


def test_an_admin_may_edit_any_case_and_the_owner_stays(api: Api) -> None:
    api.add_user("gp1", "gp")
    api.add_user("boss", "admin")
    gp1 = api.as_user("gp1")
    case_id = gp1.post("/cases/next-id").json()["case_id"]
    gp1.post("/cases", json=app_decision(case_id, status="pending"))
    admin = api.as_user("boss")
    assert admin.put(f"/cases/{case_id}", json={"notes": "corrected"}).status_code == 200
    [record] = gp1.get("/cases").json()["cases"]
    assert record["user_id"] == "gp1"
    assert record["user_role"] == "gp"
    assert record["notes"] == "corrected"


def test_unknown_and_not_yours_get_the_same_answer(api: Api) -> None:
    api.add_user("gp1", "gp")
    api.add_user("gp2", "gp")
    theirs = api.as_user("gp2").post("/cases/next-id").json()["case_id"]
    gp1 = api.as_user("gp1")
    for body_id in (theirs, "987654"):
        decided = gp1.post("/cases", json=app_decision(body_id))
        edited = gp1.put(f"/cases/{body_id}", json={"notes": "x"})
        assert (decided.status_code, decided.json()) == (
            404,
            {"detail": "Unknown case_id; request one from POST /cases/next-id"},
        )
        assert (edited.status_code, edited.json()) == (404, {"detail": "Case not found"})


def test_a_record_is_capped_so_a_case_list_stays_small(gp) -> None:
    """64 symptoms of 10,000 characters made a 713 KB record (a 71 MB list of 100)."""
    case_id = gp.post("/cases/next-id").json()["case_id"]
    huge = app_decision(case_id, symptoms=["s" * 10_000] * 64)
    response = gp.post("/cases", json=huge)
    assert response.status_code == 413
    assert "MAX_CASE_RECORD_BYTES" in response.json()["detail"]
    assert gp.get("/cases").json() == {"cases": []}
    gp.post("/cases", json=app_decision(case_id))
    grown = gp.put(f"/cases/{case_id}", json={"symptoms": ["s" * 10_000] * 64})
    assert grown.status_code == 413
    [record] = gp.get("/cases").json()["cases"]
    assert record["symptoms"] == ["Red marks", "Fair skin"]


def test_a_case_names_only_its_owners_photos(api: Api) -> None:
    api.add_user("gp1", "gp")
    api.add_user("gp2", "gp")
    gp1 = api.as_user("gp1")
    case_id = gp1.post("/cases/next-id").json()["case_id"]
    theirs = "gp2/c0000000-0000-4000-8000-000000000000.jpg"
    for route in ("/cases", "/cases/reject", "/cases/uncertain"):
        response = gp1.post(route, json=app_decision(case_id, image_paths=[theirs]))
        assert response.status_code == 400, route
        assert "image_paths[0] names a photo of another user" in response.json()["detail"]
    assert gp1.get("/cases").json() == {"cases": []}
    own = ["gp1/c0000000-0000-4000-8000-000000000000.jpg", "/data/user/0/gallery/1.jpg"]
    assert gp1.post("/cases", json=app_decision(case_id, image_paths=own)).status_code == 200
    assert gp1.put(f"/cases/{case_id}", json={"image_paths": [theirs]}).status_code == 400
    assert gp1.get("/cases").json()["cases"][0]["image_paths"] == own


@pytest.mark.parametrize("label", ["not_a_class", "unavailable", "MEL", "class_7"])
def test_a_prediction_that_no_model_makes_is_refused(gp, label: str) -> None:
    case_id = gp.post("/cases/next-id").json()["case_id"]
    predictions = [{"label": label, "confidence": 0.9}]
    response = gp.post("/cases", json=app_decision(case_id, predictions=predictions))
    assert response.status_code == 422
    assert "label must be a class of the model" in response.text
    assert gp.get("/cases").json() == {"cases": []}
