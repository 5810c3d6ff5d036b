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


def readme_code(heading: str) -> str:
    """The first Python block of the README's section ``heading``."""
    section = (ROOT / "README.md").read_text().split(heading, 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    return code.group(1)


def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_code("## A 30-second example"))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "complete {'receipt': {'charge_id': 'ch_1', 'attempt': 1}, 'approved_by': 'ada'}"
    )


def test_readme_testing_example_passes_as_written(tmp_path: Path) -> None:
    """The test of "Testing your workflows", run by pytest against the checkout of the
    30-second example, kept in ``shop/flows.py`` as that section says."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    # The whole example, its demo too: importing it must not run the demo.
    (tmp_path / "shop" / "flows.py").write_text(readme_code("## A 30-second example"))
    imported = subprocess.run(
        [sys.executable, "-c", "import shop.flows"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (imported.returncode, imported.stdout) == (0, ""), imported.stderr
    (tmp_path / "test_checkout.py").write_text(readme_code("## Testing your workflows"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
         "--rootdir", str(tmp_path), "test_checkout.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
