from allcare.store.db import Database
from tests.conftest import Api


def test_health_needs_no_auth_and_reports_database_and_model(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["model"] == {"loaded": False, "version": None}


def test_health_is_503_when_database_is_gone(api: Api) -> None:
    api.container.db.dispose()
    api.container.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/unreachable")
    response = api.client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
