"""``stepline serve`` stopped by SIGTERM or Ctrl-C (SIGINT) stops as Stepline, not only as
uvicorn: the step executing at the signal finishes and is recorded, the store is closed, and
the process exits 0. (Uvicorn raises the signal again once it has shut down; the default
handler would end the process there, before the engine's stop.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepline import Stepline
from tests.cli_live.live import free_port, stepline_command

FLOWS = """\
import asyncio
import os
from pathlib import Path

from stepline import WorkflowEntrypoint


class Slow(WorkflowEntrypoint):
    async def run(self, event, step):
        async def work():
            Path(os.environ["SLOW_STARTED"]).touch()
            await asyncio.sleep(1.5)
            return "done"

        return await step.do("slow", work)
"""

CONFIG = """\
[[workflows]]
name = "slow"
class_name = "Slow"
script_name = "signal_flows"
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_lets_the_executing_step_finish_and_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    (tmp_path / "signal_flows.py").write_text(FLOWS)
    (tmp_path / "stepline.toml").write_text(CONFIG)
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"
    started = tmp_path / "started"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
    env |= {
        "STEPLINE_ACCOUNT_ID": "acct",
        "STEPLINE_API_TOKEN": "tok-signals",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")])),
        "SLOW_STARTED": str(started),
    }
    command = [*stepline_command(), "serve", "--config", str(tmp_path / "stepline.toml")]
    command += ["--database", database, "--port", str(port), "--log-level", "warning"]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}/client/v4/accounts/acct/workflows/slow/instances"
        headers = {"Authorization": "Bearer tok-signals"}
        start_slow_instance(server, log_path, base, headers, "s1", started)
        server.send_signal(signum)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    assert code == 0, log_path.read_text()[-3000:]
    assert "Traceback" not in log_path.read_text()
    view = asyncio.run(_describe(database, "s1"))
    [step] = view["steps"]
    assert step["success"] is True, view  # finished and recorded before the process ended
    assert step["output"] == "done"


def start_slow_instance(
    server: subprocess.Popen[bytes],
    log_path: Path,
    base: str,
    headers: dict[str, str],
    instance_id: str,
    started: Path,
) -> None:
    """Create ``instance_id`` at ``base`` once the server answers, and wait until its slow
    step has started (it touches ``started``); the server's log says why if it never does."""
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, log_path.read_text()
        try:
            created = httpx.post(base, json={"instance_id": instance_id}, headers=headers)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    assert created.status_code == 200, created.text
    while not started.exists():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.02)


async def _describe(database: str, instance_id: str) -> dict[str, Any]:
    async with Stepline(database, account_id="acct", run_engine=False) as look:
        return await (await look.workflow("slow").get(instance_id)).status()
