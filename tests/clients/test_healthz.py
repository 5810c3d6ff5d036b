"""``GET /healthz`` tells a load balancer whether the server can serve."""

from __future__ import annotations

import httpx
import pytest

from tests.clients.server import RunningServer

pytestmark = pytest.mark.clients


def test_healthz_reports_the_database_and_the_engine(server: RunningServer) -> None:
    answer = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)

    assert answer.status_code == 200
    report = answer.json()
    assert report["status"] == "ok"
    assert report["database"]["reachable"] is True
    scheme = server.database.split(":", 1)[0]
    assert report["database"]["backend"] == {"sqlite": "sqlite", "postgresql": "postgres"}[scheme]
    assert report["engine"]["running"] is True
