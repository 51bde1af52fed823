"""The access audit: every read or change of patient data, refusals included, queryable by the
admin and exportable; never a body, a password or a token."""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from allcare.api.audit import ACTIONS, ADMIN_PREFIXES
from allcare.cli import app
from allcare.core.config import Settings
from allcare.services.audit import access_log
from allcare.services.audit.access_log import AccessEntry
from allcare.store.models import AccessEvent
from tests.conftest import PASSWORD, Api
from tests.photos import sharp_photo
from tests.uploads import camera, stored_counts, upload


def trail(api: Api) -> list[dict[str, object]]:
    with api.container.db.session() as session:
        rows = session.scalars(select(AccessEvent).order_by(AccessEvent.id))
        return [
            {
                "action": r.action,
                "actor": r.actor_id,
                "kind": r.actor_kind,
                "resource": r.resource,
                "owner": r.owner_id,
                "outcome": r.outcome,
                "status": r.status_code,
                "client": r.client,
            }
            for r in rows
        ]


def test_a_gps_journey_is_recorded_step_by_step(clinic: Api) -> None:
    gp = clinic.as_user("gp1")
    before = len(trail(clinic))
    case_id = gp.post("/cases/next-id").json()["case_id"]
    image_id = upload(clinic.client, camera("gp1"), sharp_photo(), case_id=case_id).json()[
        "image_id"
    ]
    gp.post("/cases", json={"case_id": case_id, "image_paths": [f"gp1/{image_id}.jpg"]})
    gp.get("/cases")
    clinic.client.get(f"/images/gp1/{image_id}.jpg")
    steps = trail(clinic)[before:]
    assert [(s["action"], s["actor"], s["resource"], s["owner"], s["outcome"]) for s in steps] == [
        ("case.allocate", "gp1", f"case:{case_id}", "gp1", "ok"),
        ("image.upload", "gp1", f"image:{image_id}", "gp1", "ok"),
        ("case.decide", "gp1", f"case:{case_id}", "gp1", "ok"),
        ("cases.list", "gp1", "cases:1", "gp1", "ok"),
        ("image.view", None, f"image:{image_id}", "gp1", "ok"),
    ]
    assert steps[1]["kind"] == "legacy"  # the camera screen's header identity
    assert steps[0]["kind"] == "token"
    assert steps[4]["kind"] == "anonymous_url"
    assert all(s["client"] == "testclient" for s in steps)


def test_refused_attempts_are_recorded_with_who_tried(clinic: Api) -> None:
    gp1, gp2 = clinic.as_user("gp1"), clinic.as_user("gp2")
    case_id = gp1.post("/cases/next-id").json()["case_id"]
    gp1.post("/cases", json={"case_id": case_id})
    before = len(trail(clinic))
    assert gp2.put(f"/cases/{case_id}", json={"age": "3"}).status_code == 404
    assert clinic.client.get("/cases").status_code == 401
    assert gp2.post(f"/cases/{case_id}/label", json={"correct_label": "nv"}).status_code == 403
    clinic.client.post("/auth/login", json={"username": "gp1", "password": "wrong-password"})
    clinic.client.post("/auth/login", json={"username": "../etc", "password": "x"})
    assert gp1.post("/cases", json={"case_id": "nonsense"}).status_code == 400
    steps = trail(clinic)[before:]
    assert [(s["action"], s["actor"], s["resource"], s["outcome"], s["status"]) for s in steps] == [
        ("case.update", "gp2", f"case:{case_id}", "not_found", 404),
        ("cases.list", None, "cases", "denied", 401),
        ("case.label", "gp2", f"case:{case_id}", "denied", 403),
        ("auth.login", "gp1", "user:gp1", "denied", 401),
        ("auth.login", None, "user:?", "denied", 401),
        ("case.decide", "gp1", "case:nonsense", "invalid", 400),
    ]
    with clinic.container.db.session() as session:
        everything = " ".join(
            " ".join(str(v) for v in (r.resource, r.actor_id, r.client, r.action))
            for r in session.scalars(select(AccessEvent))
        )
    assert "wrong-password" not in everything
    assert PASSWORD not in everything
    assert "Bearer" not in everything


def test_admins_query_the_audit_by_user_case_action_and_time(clinic: Api) -> None:
    gp, doctor, admin = (clinic.as_user(u) for u in ("gp1", "doc1", "admin1"))
    case_id = gp.post("/cases/next-id").json()["case_id"]
    gp.post("/cases", json={"case_id": case_id})
    doctor.get("/cases")
    doctor.post(f"/cases/{case_id}/label", json={"correct_label": "bcc"})
    doctor.post("/active-learning/candidates", json={"top_k": 5})

    by_doctor = admin.get("/admin/audit", params={"user": "doc1"}).json()["events"]
    assert [e["action"] for e in by_doctor] == [
        "candidates.list",
        "case.label",
        "cases.list",
        "auth.login",
    ]
    assert by_doctor[2]["owner_id"] is None  # a doctor's list shows every GP's cases
    about_case = admin.get("/admin/audit", params={"case_id": case_id}).json()["events"]
    assert [e["action"] for e in about_case] == ["case.label", "case.decide", "case.allocate"]
    owner = admin.get("/admin/audit", params={"owner": "gp1", "action": "case.label"}).json()
    assert [e["actor_id"] for e in owner["events"]] == ["doc1"]
    assert admin.get("/admin/audit", params={"since": "2999-01-01T00:00:00"}).json()["events"] == []
    gp1 = {"user": "gp1", "until": "2999-01-01T00:00:00"}
    everything = admin.get("/admin/audit", params=gp1).json()["events"]
    first = admin.get("/admin/audit", params=gp1 | {"limit": 2}).json()
    second = admin.get(
        "/admin/audit", params=gp1 | {"limit": 2, "before": first["next_before"]}
    ).json()
    assert len(everything) == 3  # login, allocate, decide
    assert [e["id"] for e in first["events"] + second["events"]] == [e["id"] for e in everything]
    assert second["next_before"] is None
    refused = doctor.get("/admin/audit")
    assert refused.status_code == 403
    reads = admin.get("/admin/audit", params={"action": "audit.read"}).json()["events"]
    assert {e["actor_id"] for e in reads} == {"admin1", "doc1"}  # reading it is audited too
    denied = admin.get("/admin/audit", params={"action": "audit.read", "outcome": "denied"}).json()[
        "events"
    ]
    assert [e["actor_id"] for e in denied] == ["doc1"]


def test_the_audit_exports_as_csv_and_json_lines(
    clinic: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gp = clinic.as_user("gp1")
    gp.get("/cases")
    monkeypatch.setenv("STORAGE_ROOT", str(settings.storage_root))
    monkeypatch.setenv("DATABASE_URL", settings.sqlalchemy_url)
    runner = CliRunner()
    out = tmp_path / "audit.csv"
    result = runner.invoke(app, ["audit", "export", "--since", "2000-01-01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[-1]["action"] == "cases.list"
    assert rows[-1]["actor_id"] == "gp1"
    assert [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)
    lines = runner.invoke(app, ["audit", "export", "--format", "jsonl", "--user", "gp1"])
    assert lines.exit_code == 0
    records = [json.loads(line) for line in lines.stdout.splitlines()]
    assert {r["actor_id"] for r in records} == {"gp1"}
    # Not a field the app parses: every time carries its offset (UTC).
    assert all(r["at"].endswith("+00:00") for r in records)
    assert all(row["at"].endswith("+00:00") for row in rows)
    later = runner.invoke(app, ["audit", "export", "--since", "2999-01-01"])
    assert later.stdout.strip().splitlines() == [",".join(next(csv.reader([rows_header(out)])))]
    assert runner.invoke(app, ["audit", "export", "--since", "soon"]).exit_code == 1


def rows_header(path: Path) -> str:
    return path.read_text().splitlines()[0]


def test_a_cancelled_waiter_loses_no_record_and_never_stops_the_writer(
    clinic: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that goes away cancels its wait for the audit; the record is still written
    and the writer thread goes on (it died on the cancelled future, silently losing every
    later record)."""
    writer = clinic.container.access_writer
    entered, gate = threading.Event(), threading.Event()
    real_begin = access_log.begin_write

    def held_begin(session) -> None:
        if not gate.is_set():
            entered.set()
            gate.wait(10)
        real_begin(session)

    monkeypatch.setattr(access_log, "begin_write", held_begin)
    entry = AccessEntry(action="case.decide", resource="case:1", outcome="ok", actor_kind="x")
    first = writer.submit(replace(entry, resource="case:held"))
    assert entered.wait(10)
    abandoned = [writer.submit(replace(entry, resource=f"case:gone{n}")) for n in range(3)]
    assert all(future.cancel() for future in abandoned)
    gate.set()
    first.result(timeout=10)
    writer.submit(replace(entry, resource="case:after")).result(timeout=10)
    assert clinic.as_user("gp1").get("/cases").status_code == 200
    resources = [row["resource"] for row in trail(clinic)]
    assert {"case:held", "case:gone0", "case:gone1", "case:gone2", "case:after"} <= set(resources)
    assert resources[-1] == "cases:0"  # the HTTP request after it was audited too
    assert writer.failures == 0


@pytest.mark.parametrize("value", ["1", "yes", "on", "TRUE"])
def test_a_classification_only_upload_is_audited_as_such_however_spelled(
    clinic: Api, value: str
) -> None:
    response = upload(clinic.client, camera("gp1"), sharp_photo(), predict_only=value)
    assert response.status_code == 200
    assert stored_counts(clinic) == (0, 0)
    assert trail(clinic)[-1]["action"] == "image.classify"


def test_every_refusal_names_its_target_and_the_datas_owner(clinic: Api) -> None:
    """Refused attempts on another user's case, by any route and any identity, record which
    case and whose it is; refusals on the admin and model routes are recorded too."""
    gp1, gp2 = clinic.as_user("gp1"), clinic.as_user("gp2")
    case_id = gp1.post("/cases/next-id").json()["case_id"]
    gp1.post("/cases", json={"case_id": case_id})
    before = len(trail(clinic))
    assert gp2.post("/cases", json={"case_id": case_id}).status_code == 404
    assert gp2.post("/cases/reject", json={"case_id": case_id}).status_code == 404
    assert upload(clinic.client, camera("gp2"), sharp_photo(), case_id=case_id).status_code == 404
    ghost = upload(clinic.client, camera("nobody"), sharp_photo(), case_id=case_id)
    assert ghost.status_code == 401
    assert clinic.as_user("doc1").put(f"/cases/{case_id}", json={"age": "9"}).status_code == 403
    assert gp2.get("/admin/models").status_code == 403
    assert gp2.post("/model/retrain", json={}).status_code == 403
    assert clinic.client.post("/admin/models/v20260101_001/promote", json={}).status_code == 401
    steps = trail(clinic)[before:]
    steps = [s for s in steps if s["action"] != "auth.login"]  # doc1's sign-in
    assert [(s["action"], s["resource"], s["owner"], s["outcome"]) for s in steps] == [
        ("case.decide", f"case:{case_id}", "gp1", "not_found"),
        ("case.reject", f"case:{case_id}", "gp1", "not_found"),
        ("image.upload", f"case:{case_id}", "gp1", "not_found"),
        ("image.upload", f"case:{case_id}", "gp1", "denied"),
        ("case.update", f"case:{case_id}", "gp1", "denied"),
        ("admin.request", "route:GET /admin/models", None, "denied"),
        ("admin.request", "route:POST /model/retrain", None, "denied"),
        ("admin.request", "version:v20260101_001", None, "denied"),
    ]
    assert [s["actor"] for s in steps] == ["gp2", "gp2", "gp2", None, "doc1", "gp2", "gp2", None]


def test_every_route_that_touches_patient_data_is_in_the_audits_table(clinic: Api) -> None:
    """The audit names its routes in a table: a new signed-in route (or one with a case or user
    in its path) must be added to it or be an admin route (audited wholesale), or this fails."""
    spec = clinic.client.get("/openapi.json").json()
    missing, checked = [], 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            touches = bool(operation.get("security")) or "{case_id}" in path or "{user_id}" in path
            if touches and not path.startswith(ADMIN_PREFIXES):
                checked += 1
                if key not in ACTIONS:
                    missing.append(key)
    assert missing == []
    assert checked >= 12  # cases, labels, annotations, uploads, candidates, image views
