"""The package's public surface is exactly what it declares, and the README example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import stepline

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(stepline).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert set(stepline.__all__) == public
    for name in stepline.__all__:
        assert getattr(stepline, name) is not None


def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A 30-second example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "complete {'receipt': {'charge_id': 'ch_1', 'attempt': 1}, 'approved_by': 'ada'}"
    )
