"""Workflow classes found by module and class name, as a PUT of a workflow names them: a
module that cannot be imported is a class not found (400), whatever it raises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stepline.engine.registry import WorkflowClasses
from stepline.errors import WorkflowClassNotFound


@pytest.mark.parametrize(
    ("source", "reported"),
    [
        # SystemExit is no Exception: let out, it ended the server's event loop.
        ("import sys\n\nsys.exit(3)\n", "SystemExit: 3"),
        ("raise RuntimeError('no config')\n", "RuntimeError: no config"),
    ],
    ids=["exits", "raises"],
)
def test_a_module_that_fails_as_it_is_imported_is_a_class_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, reported: str
):
    (tmp_path / "fails_when_imported.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(WorkflowClassNotFound, match=reported):
        WorkflowClasses().load("fails_when_imported", "Flow")


@pytest.mark.parametrize("script_name", ["venv.__main__", "__main__", "unittest.__main__"])
def test_a_programs_entry_point_is_not_imported(script_name: str):
    before = set(sys.modules)

    with pytest.raises(WorkflowClassNotFound, match="is a program, not a module"):
        WorkflowClasses().load(script_name, "Flow")
    assert set(sys.modules) - before == set()
