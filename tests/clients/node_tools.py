"""The Node clients (wrangler 4.86.0 and the cloudflare TypeScript SDK 7.3.0) of tests/clients/node.

``scripts/test`` installs them with ``npm install``; when they are missing here the first test
that needs them installs them the same way. Without Node the tests are skipped, except under CI,
where a missing client is a failure rather than a silent gap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
WRANGLER = NODE_DIR / "node_modules" / ".bin" / "wrangler"
TS_SDK = NODE_DIR / "node_modules" / "cloudflare" / "package.json"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the client tests)")
    pytest.skip(reason)


def ensure_node_clients() -> str:
    """The path of ``node``, after making sure ``npm install`` has run in tests/clients/node."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed")
        raise AssertionError("unreachable")
    if not (WRANGLER.exists() and TS_SDK.exists()):
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("npm is not installed")
            raise AssertionError("unreachable")
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            _unavailable(f"npm install failed in {NODE_DIR}: {done.stderr[-2000:]}")
    return node


def clean_env() -> dict[str, str]:
    """The environment without any Cloudflare or Stepline settings of the person running."""
    prefixes = ("CLOUDFLARE_", "CF_", "WRANGLER_", "STEPLINE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
