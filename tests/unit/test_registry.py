"""Workflow classes found by module and class name, as a PUT of a workflow names them: a
module that cannot be imported is a class not found (400), whatever it raises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stepline import WorkflowEntrypoint
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


class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return None


@pytest.mark.parametrize(
    ("registered", "reported"),
    [
        (Flow(), "an instance of 'Flow' is not a class"),
        (len, "'len' is not a WorkflowEntrypoint subclass"),
        ("Flow", "'Flow' is not a WorkflowEntrypoint subclass"),
    ],
    ids=["instance", "function", "text"],
)
def test_what_is_not_a_class_is_refused_in_so_many_words(registered: object, reported: str):
    # An instance (or text) has no __qualname__: an AttributeError, not the refusal.
    with pytest.raises(WorkflowClassNotFound, match=reported):
        WorkflowClasses().add(registered)  # type: ignore[arg-type]


def _made(result: str) -> type[WorkflowEntrypoint]:
    class Made(WorkflowEntrypoint):
        pass

    Made.result = result  # type: ignore[attr-defined]
    return Made


def test_two_classes_one_function_made_are_not_taken_for_one_another():
    """Both named ``_made.<locals>.Made`` in this module: the second replaced the first, and
    the first's workflow ran the second's code."""
    classes = WorkflowClasses()
    first, second = _made("first"), _made("second")
    key = classes.add(first)

    with pytest.raises(ValueError, match="register each with a script_name= of its own"):
        classes.add(second)
    assert classes.load(*key) is first
    assert classes.add(first) == key  # the same class again is no other
    apart = classes.add(second, script_name="second")
    assert classes.load(*apart) is second and classes.load(*key) is first


@pytest.mark.parametrize("script_name", ["venv.__main__", "__main__", "unittest.__main__"])
def test_a_programs_entry_point_is_not_imported(script_name: str):
    before = set(sys.modules)

    with pytest.raises(WorkflowClassNotFound, match="is a program, not a module"):
        WorkflowClasses().load(script_name, "Flow")
    assert set(sys.modules) - before == set()


def _flow(result: str, class_name: str = "Flow") -> str:
    return (
        "from stepline import WorkflowEntrypoint\n\n"
        f"class {class_name}(WorkflowEntrypoint):\n"
        f"    result = {result!r}\n"
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path``; modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_a_put_after_the_module_changed_imports_it_again(project: Path):
    """A PUT is the deploy (wrangler deploy): the code on disk then is what runs after it.
    The edit keeps the file's size and lands within the same second, as an edit in place
    does, which the bytecode cache alone would not tell from the code it holds."""
    (project / "edited_flows.py").write_text(_flow("v1"))
    classes = WorkflowClasses()
    assert classes.load("edited_flows", "Flow", requested=True).result == "v1"

    (project / "edited_flows.py").write_text(_flow("v2"))
    # Until a PUT, the process runs what it imported: a run is not a deploy.
    assert classes.load("edited_flows", "Flow").result == "v1"
    assert classes.load("edited_flows", "Flow", requested=True).result == "v2"
    assert classes.load("edited_flows", "Flow").result == "v2"
    assert sys.modules["edited_flows"].Flow.result == "v2"


def test_a_put_after_the_missing_class_was_added_finds_it(project: Path):
    (project / "fixed_flows.py").write_text(_flow("v1", class_name="Flwo"))
    classes = WorkflowClasses()
    with pytest.raises(WorkflowClassNotFound, match="has no class 'Flow'"):
        classes.load("fixed_flows", "Flow", requested=True)

    (project / "fixed_flows.py").write_text(_flow("v1"))
    assert classes.load("fixed_flows", "Flow", requested=True).result == "v1"


def test_a_change_that_does_not_import_keeps_the_code_that_runs(project: Path):
    (project / "broken_flows.py").write_text(_flow("v1"))
    classes = WorkflowClasses()
    loaded = classes.load("broken_flows", "Flow", requested=True)

    (project / "broken_flows.py").write_text(_flow("v2") + "result = 1 / 0\n")
    with pytest.raises(WorkflowClassNotFound, match="ZeroDivisionError"):
        classes.load("broken_flows", "Flow", requested=True)
    # Nothing of the failed import is left: the module and its class are those that ran.
    assert classes.load("broken_flows", "Flow") is loaded
    assert sys.modules["broken_flows"].Flow is loaded and loaded.result == "v1"


def test_a_package_submodule_imported_again_is_its_packages_attribute(project: Path):
    (project / "shop").mkdir()
    (project / "shop" / "__init__.py").write_text("")
    (project / "shop" / "flows.py").write_text(_flow("v1"))
    classes = WorkflowClasses()
    classes.load("shop.flows", "Flow", requested=True)

    (project / "shop" / "flows.py").write_text(_flow("v2"))
    assert classes.load("shop.flows", "Flow", requested=True).result == "v2"
    import shop  # type: ignore[import-not-found]

    assert shop.flows is sys.modules["shop.flows"]
    assert shop.flows.Flow.result == "v2"


def test_a_class_registered_directly_is_not_imported_again(project: Path):
    """Embedded use registers class objects: they are what runs, whatever the file says."""
    (project / "embedded_flows.py").write_text(_flow("v1"))
    import embedded_flows  # type: ignore[import-not-found]

    classes = WorkflowClasses()
    classes.add(embedded_flows.Flow)
    (project / "embedded_flows.py").write_text(_flow("v2"))
    assert classes.load("embedded_flows", "Flow", requested=True) is embedded_flows.Flow


def test_a_put_of_a_change_without_the_class_keeps_the_code_that_runs(project: Path):
    """A refused deploy deploys nothing: not even the module's other classes change."""
    (project / "renamed_flows.py").write_text(_flow("v1") + _flow("v1", class_name="Other"))
    classes = WorkflowClasses()
    loaded = classes.load("renamed_flows", "Flow", requested=True)
    other = classes.load("renamed_flows", "Other")

    (project / "renamed_flows.py").write_text(
        _flow("v2", class_name="Flwo") + _flow("v2", class_name="Other")
    )
    with pytest.raises(WorkflowClassNotFound, match="has no class 'Flow'"):
        classes.load("renamed_flows", "Flow", requested=True)
    assert classes.load("renamed_flows", "Flow") is loaded
    assert classes.load("renamed_flows", "Other") is other
    assert sys.modules["renamed_flows"].Other is other


def test_a_module_that_another_imported_first_is_imported_again_after_a_change(project: Path):
    (project / "first_flows.py").write_text(_flow("v1"))
    (project / "imports_first.py").write_text("import first_flows\n")
    import imports_first  # type: ignore[import-not-found]  # noqa: F401

    classes = WorkflowClasses()
    assert classes.load("first_flows", "Flow", requested=True).result == "v1"
    (project / "first_flows.py").write_text(_flow("v2"))
    assert classes.load("first_flows", "Flow", requested=True).result == "v2"


def test_a_package_imported_again_keeps_its_submodules(project: Path):
    (project / "kit").mkdir()
    (project / "kit" / "__init__.py").write_text(_flow("v1"))
    (project / "kit" / "parts.py").write_text("PART = 1\n")
    classes = WorkflowClasses()
    classes.load("kit", "Flow", requested=True)
    import kit.parts  # type: ignore[import-not-found]

    (project / "kit" / "__init__.py").write_text(_flow("v2"))
    assert classes.load("kit", "Flow", requested=True).result == "v2"
    assert sys.modules["kit"].parts is sys.modules["kit.parts"] and kit.parts.PART == 1


def test_a_put_does_not_run_a_changed_module_outside_the_scope(project: Path):
    """Loaded by the process itself (a version it runs), a module outside what requests may
    import is not imported again, whatever its file says now."""
    from stepline.engine.import_scope import ImportScope

    (project / "outside_flows.py").write_text(_flow("v1"))
    classes = WorkflowClasses(ImportScope.of(["elsewhere"]))
    loaded = classes.load("outside_flows", "Flow")

    (project / "outside_flows.py").write_text(_flow("v2") + "raise SystemExit('ran')\n")
    assert classes.load("outside_flows", "Flow", requested=True) is loaded
    assert sys.modules["outside_flows"].Flow is loaded
