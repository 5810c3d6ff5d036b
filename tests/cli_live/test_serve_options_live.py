"""Engine options of a real ``stepline serve`` reach its engine."""

from __future__ import annotations

import json
from pathlib import Path

from .live import start_server

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
