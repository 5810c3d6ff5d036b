"""stepline.toml: what it declares, and what it refuses with a line naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepline.config import ConfigError, load_config

ENTRY = 'name = "order"\nclass_name = "OrderWorkflow"\nscript_name = "orders"\n'


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stepline.toml"
    path.write_text(text)
    return path


def test_workflows_are_read_in_order(tmp_path: Path) -> None:
    second = ENTRY.replace('"order"', '"fanout"', 1)
    project = load_config(config(tmp_path, f"[[workflows]]\n{ENTRY}\n[[workflows]]\n{second}"))
    assert [w.name for w in project.workflows] == ["order", "fanout"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The singular, as a typo: it used to start a server with nothing declared.
        (f"[[workflow]]\n{ENTRY}", "unknown key(s) workflow (workflows are declared as"),
        (f"name = 'app'\n[[workflows]]\n{ENTRY}", "unknown key(s) name"),
        (f"[[workflows]]\n{ENTRY}clas_name = 'x'\n", "workflow #1: unknown key(s) clas_name"),
        (f"[[workflows]]\n{ENTRY}[[workflows]]\n{ENTRY}", "workflow 'order' is declared twice"),
    ],
)
def test_a_mistake_is_refused_with_what_it_is(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(config(tmp_path, text))
    assert message in str(refused.value)
