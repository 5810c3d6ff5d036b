"""What a REST PUT may have the server import (``engine/import_scope.py``): the packages that
``stepline.toml`` lists under ``modules``, those of the workflows it declares and the modules
in its folder. Anything else, from the standard library to an installed package, is refused
before it is imported, as its import would run its top-level code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stepline import WorkflowEntrypoint
from stepline.config import ConfigError, load_config
from stepline.declared import import_scope
from stepline.engine.import_scope import ImportScope
from stepline.engine.registry import WorkflowClasses
from stepline.errors import WorkflowClassNotFound

FLOW = "from stepline import WorkflowEntrypoint\n\nclass Flow(WorkflowEntrypoint):\n    pass\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a config, a module and a package of its own, and a virtualenv
    inside it whose installed packages say when they are imported."""
    folder = tmp_path / "project"
    (folder / "shop").mkdir(parents=True)
    (folder / "local_flows.py").write_text(FLOW)
    (folder / "shop" / "__init__.py").write_text("")
    (folder / "shop" / "flows.py").write_text(FLOW)
    installed = folder / ".venv" / "lib" / "site-packages"  # inside, yet not the project's
    for package in ("declared_pkg", "listed_pkg", "other_pkg"):
        (installed / package).mkdir(parents=True)
        (installed / package / "__init__.py").write_text(
            f"import pathlib\npathlib.Path({str(folder)!r}, '{package}.imported').touch()\n"
        )
        (installed / package / "flows.py").write_text(FLOW)
    monkeypatch.syspath_prepend(str(installed))
    (folder / "stepline.toml").write_text(
        'modules = ["listed_pkg"]\n\n[[workflows]]\nname = "declared"\n'
        'class_name = "Flow"\nscript_name = "declared_pkg.flows"\n'
    )
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_config puts the folder on it
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        del sys.modules[name]


def scope_of(folder: Path) -> ImportScope:
    return import_scope(load_config(folder / "stepline.toml"))


@pytest.mark.parametrize(
    "script_name", ["local_flows", "shop.flows", "declared_pkg.flows", "listed_pkg.flows"]
)
def test_the_projects_own_modules_may_be_imported_on_request(project: Path, script_name: str):
    classes = WorkflowClasses(scope_of(project))
    assert classes.load(script_name, "Flow", requested=True).__name__ == "Flow"


@pytest.mark.parametrize(
    "script_name",
    ["other_pkg", "other_pkg.flows", "json", "os", "sys", "antigravity", "stepline.app"],
    ids=["installed", "installed submodule", "stdlib", "frozen", "built-in", "side effects", "own"],
)
def test_a_module_outside_the_project_is_refused_unimported(project: Path, script_name: str):
    classes = WorkflowClasses(scope_of(project))
    before = set(sys.modules)

    with pytest.raises(WorkflowClassNotFound, match="outside the modules this server imports"):
        classes.load(script_name, "Flow", requested=True)
    assert set(sys.modules) - before == set()
    assert not list(project.glob("*.imported"))


def test_the_process_itself_loads_outside_the_scope(project: Path):
    """A declared workflow's class, or a version this engine runs, is the operator's choice."""
    classes = WorkflowClasses(scope_of(project))
    assert classes.load("other_pkg.flows", "Flow").__name__ == "Flow"
    assert (project / "other_pkg.imported").exists()


class Registered(WorkflowEntrypoint):
    pass


def test_a_registered_class_is_found_whatever_its_module():
    classes = WorkflowClasses(ImportScope())
    script, name = classes.add(Registered, script_name="anywhere")
    assert classes.load(script, name, requested=True) is Registered


def test_without_a_config_a_request_imports_nothing(project: Path):
    classes = WorkflowClasses(import_scope(None))
    with pytest.raises(WorkflowClassNotFound, match=r"no module \(there is no stepline.toml\)"):
        classes.load("listed_pkg.flows", "Flow", requested=True)


def test_embedded_a_request_may_import_anything(project: Path):
    assert WorkflowClasses().load("other_pkg.flows", "Flow", requested=True).__name__ == "Flow"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('modules = "shop"\n', "modules must be a list of module names"),
        ('modules = ["shop", "../etc"]\n', "modules: '../etc' is not a Python module name"),
        ("modules = [3]\n", "modules: 3 is not a Python module name"),
    ],
)
def test_a_bad_modules_list_is_refused(tmp_path: Path, text: str, message: str):
    (tmp_path / "stepline.toml").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(tmp_path / "stepline.toml")


def test_a_config_that_is_a_symlink_scopes_the_folder_it_is_in_really(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A config mounted as a link (a Kubernetes ConfigMap, ``app/stepline.toml ->
    ../conf/stepline.toml``): its folder on sys.path is the real one, and so is the scope's."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "conf" / "stepline.toml").write_text("")
    (tmp_path / "conf" / "conf_flows.py").write_text(FLOW)
    (tmp_path / "app" / "stepline.toml").symlink_to(tmp_path / "conf" / "stepline.toml")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))

    classes = WorkflowClasses(import_scope(load_config(tmp_path / "app" / "stepline.toml")))
    assert classes.load("conf_flows", "Flow", requested=True).__name__ == "Flow"


def test_a_module_the_project_links_in_is_the_projects(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "shared_flows.py").write_text(FLOW)
    (project / "linked_flows.py").symlink_to(tmp_path / "shared" / "shared_flows.py")
    classes = WorkflowClasses(scope_of(project))
    assert classes.load("linked_flows", "Flow", requested=True).__name__ == "Flow"


def test_the_refusal_names_no_path_of_the_server(project: Path):
    with pytest.raises(WorkflowClassNotFound) as refused:
        WorkflowClasses(scope_of(project)).load("json", "JSONDecoder", requested=True)
    assert str(project) not in str(refused.value)
    assert "the modules beside stepline.toml" in str(refused.value)
