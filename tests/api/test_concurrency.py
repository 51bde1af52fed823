"""16 clients at once against a real uvicorn server: unique case ids, nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import PASSWORD, Api, live_server

CLIENTS = 16
CASES_PER_CLIENT = 6


@pytest.fixture
def server_url(api: Api) -> Iterator[str]:
    for n in range(CLIENTS):
        api.add_user(f"gp{n}", "gp")
    with live_server(api.client.app) as url:
        yield url


def _gp_session(base: str, n: int) -> list[str]:
    with httpx.Client(base_url=base, timeout=30) as client:
        login = client.post("/auth/login", json={"username": f"gp{n}", "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        ids = []
        for _ in range(CASES_PER_CLIENT):
            case_id = client.post("/cases/next-id").json()["case_id"]
            logged = client.post("/cases", json={"case_id": case_id, "status": "Confirmed"})
            assert logged.status_code == 200, logged.text
            ids.append(case_id)
        return ids


def test_sixteen_clients_creating_cases_get_unique_ids_and_lose_nothing(
    server_url: str, api: Api
) -> None:
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda n: _gp_session(server_url, n), range(CLIENTS)))
    issued = [case_id for ids in results for case_id in ids]
    assert len(issued) == CLIENTS * CASES_PER_CLIENT
    assert len(set(issued)) == len(issued)
    for n, ids in enumerate(results):
        listed = [
            c["case_id"] for c in api.as_user(f"gp{n}").get("/cases?limit=500").json()["cases"]
        ]
        assert sorted(listed) == sorted(ids)
