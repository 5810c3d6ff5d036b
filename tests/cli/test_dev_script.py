"""``scripts/dev`` refuses what it cannot serve on before it installs or prints anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

DEV = Path(__file__).resolve().parents[2] / "scripts" / "dev"


@pytest.mark.parametrize("port", ["abc", "0", "65536", "80 80"])
def test_a_port_that_is_no_port_is_refused_first(port: str) -> None:
    # It installed, printed how to call http://127.0.0.1:abc/client/v4, then failed in serve.
    done = subprocess.run(
        ["bash", str(DEV)],
        env={**os.environ, "STEPLINE_PORT": port},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"scripts/dev: STEPLINE_PORT={port} is not a port (1-65535)\n"
