"""Engine options of a real ``stepline serve`` reach its engine."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from tests.clients.server import stop_server

from .live import clean_environment, free_port, start_server, stepline_command

NUMBERS = list(range(600))
"""Params of ~2.4 kB, and a first step that returns as much: the two pass 4 KiB together."""


def test_storage_limit_fails_an_instance_past_it(tmp_path: Path) -> None:
    size = len(json.dumps({"numbers": NUMBERS}, separators=(",", ":")))
    assert size < 4096 < 2 * size
    for server in start_server(tmp_path, {"quick": "QuickWorkflow"}, "--storage-limit", "4KiB"):
        server.create("quick", "small", {"numbers": [1, 2]})
        server.create("quick", "large", {"numbers": NUMBERS})
        small = server.wait_for_status("quick", "small")
        large = server.wait_for_status("quick", "large")

    assert small["status"] == "complete", small
    assert large["status"] == "errored", large
    assert large["error"] == {
        "name": "WorkflowFatalError",
        "message": "The Workflow instance exceeded the 4KiB storage limit",
    }


def test_at_the_info_level_an_errored_instance_is_logged(tmp_path: Path) -> None:
    for server in start_server(tmp_path, {"quick": "QuickWorkflow"}, "--storage-limit", "4KiB",
                               "--log-level", "info"):  # fmt: skip
        server.create("quick", "large", {"numbers": NUMBERS})
        assert server.wait_for_status("quick", "large")["status"] == "errored"
    log = (tmp_path / "server.log").read_text()
    assert (
        "INFO stepline.engine: instance large of quick errored: WorkflowFatalError: "
        "The Workflow instance exceeded the 4KiB storage limit"
    ) in log


def _serve_until_up_and_stop(folder: Path, env: dict[str, str]) -> str:
    """Start ``stepline serve`` in ``folder`` with ``env``, stop it once it answers; its log."""
    port = free_port()
    log_path = folder / "server.log"
    command = [*stepline_command(), "serve", "--port", str(port), "--database",
               f"sqlite:///{folder / 'stepline.sqlite3'}"]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        stop_server(proc)
    return log_path.read_text()


def test_a_server_without_a_token_in_its_environment_says_which_it_accepts(
    tmp_path: Path,
) -> None:
    # Started so, it answered each request with a 401 and had said nothing of it.
    without = _serve_until_up_and_stop(tmp_path, clean_environment())
    (tmp_path / "with").mkdir()
    env = {**clean_environment(), "STEPLINE_ACCOUNT_ID": "local", "STEPLINE_API_TOKEN": "t"}
    with_token = _serve_until_up_and_stop(tmp_path / "with", env)

    assert (
        "INFO stepline.server: no STEPLINE_API_TOKEN is set: only tokens made with "
        "`stepline tokens create` on this database are accepted"
    ) in without
    assert "STEPLINE_API_TOKEN" not in with_token
