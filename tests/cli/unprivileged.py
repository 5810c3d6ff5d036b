"""Run a command as the file permissions see it, even when the tests run as root.

Root ignores a file's mode, so a read-only database would be no obstacle to it, and CI runs
as root. Creating a user to run as would need the checkout to be readable by that user;
instead the command keeps its user (root, the owner of every file the test makes) and loses
the capabilities that override permissions, so the owner's mode bits decide, as for anyone.
"""

from __future__ import annotations

import os
import sys

import pytest

__all__ = ["unprivileged"]

_DROP_OVERRIDES = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
    # PR_CAPBSET_DROP: from the bounding set, so the program exec'd below never has it.
    if libc.prctl(24, capability, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot drop root's file-permission override")
os.execv(sys.argv[1], sys.argv[1:])
"""


def unprivileged(command: list[str]) -> list[str]:
    """``command``, run so that file permissions bind it: as it is for another user than
    root; for root, through a wrapper that drops the overriding capabilities, then execs."""
    if os.geteuid() != 0:
        return command
    if not sys.platform.startswith("linux"):
        pytest.skip("root ignores file permissions here, and only Linux lets it drop that")
    return [sys.executable, "-c", _DROP_OVERRIDES, *command]
