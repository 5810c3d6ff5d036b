"""``stepline.toml``: the workflows a server runs, the counterpart of wrangler's
``[[workflows]]``::

    [[workflows]]
    name = "checkout"            # the API name
    class_name = "Checkout"
    script_name = "shop.flows"   # an importable module (the file's folder is on sys.path)

Optional per workflow: ``step_limit``, ``success_retention``, ``error_retention``,
``concurrency`` (instances of this workflow running at once) and ``schedules``
(cron expressions, e.g. ``["0 * * * *"]``).

Optional at the top, before any ``[[workflows]]``: ``modules = ["shop", "billing.flows"]``,
the packages a REST ``PUT`` may name as ``script_name`` besides those of the declared
workflows and the modules in this file's folder (``engine/import_scope.py``).
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepline.cron import check_cron
from stepline.durations import parse_duration_ms
from stepline.engine.import_scope import MODULE_NAME
from stepline.errors import ConfigError, InvalidRequest
from stepline.validation import check_workflow_name

__all__ = ["DeclaredWorkflow", "ProjectConfig", "load_config"]


@dataclass(frozen=True, slots=True)
class DeclaredWorkflow:
    name: str
    class_name: str
    script_name: str
    step_limit: int = 10_000
    success_retention_ms: int | None = None
    error_retention_ms: int | None = None
    concurrency_limit: int | None = None
    schedules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    path: Path
    workflows: tuple[DeclaredWorkflow, ...]
    folder: Path
    """Where the file really is (a symlink followed): on ``sys.path``, for its modules."""
    modules: tuple[str, ...] = ()
    """Packages a REST PUT may import, besides the declared workflows' and the folder's."""


def load_config(path: str | Path) -> ProjectConfig:
    """Read ``path`` and put its folder on ``sys.path`` so ``script_name`` modules import."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file (pass --config path/to/stepline.toml)") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a folder (pass --config path/to/stepline.toml)") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"workflows", "modules"}
    if unknown:
        hint = " (workflows are declared as [[workflows]])" if "workflow" in unknown else ""
        raise ConfigError(f"{file}: unknown key(s) {', '.join(sorted(unknown))}{hint}")
    entries = raw.get("workflows", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{file}: [[workflows]] must be an array of tables")
    workflows = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        declared = _declared(entry, f"{file}: workflow #{index}")
        if declared.name in seen:
            raise ConfigError(f"{file}: workflow {declared.name!r} is declared twice")
        seen.add(declared.name)
        workflows.append(declared)
    modules = _modules(raw.get("modules", []), f"{file}: modules")
    folder = file.resolve().parent
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return ProjectConfig(file, tuple(workflows), folder, modules)


def _modules(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f'{where} must be a list of module names, such as ["shop"]')
    for name in raw:
        if not isinstance(name, str) or MODULE_NAME.fullmatch(name) is None:
            raise ConfigError(f"{where}: {name!r} is not a Python module name")
    return tuple(raw)


_WORKFLOW_KEYS = (
    "name",
    "class_name",
    "script_name",
    "concurrency",
    "schedules",
    "step_limit",
    "success_retention",
    "error_retention",
)
"""The keys of a ``[[workflows]]`` table, in the order a refusal lists them."""


def _declared(entry: Any, where: str) -> DeclaredWorkflow:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(entry) - set(_WORKFLOW_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} (a workflow takes "
            f"{', '.join(_WORKFLOW_KEYS)})"
        )
    try:
        for key in ("name", "class_name", "script_name"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"{where}: {key} must be a non-empty string")
        check_workflow_name(entry["name"])
        step_limit = entry.get("step_limit", 10_000)
        if isinstance(step_limit, bool) or not isinstance(step_limit, int):
            raise ConfigError(f"{where}: step_limit must be a whole number")
        concurrency = entry.get("concurrency")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ConfigError(f"{where}: concurrency must be a whole number of at least 1")
        schedules = entry.get("schedules", [])
        if not isinstance(schedules, list):
            raise ConfigError(f"{where}: schedules must be a list of cron expressions")
        return DeclaredWorkflow(
            name=entry["name"],
            class_name=entry["class_name"],
            script_name=entry["script_name"],
            step_limit=step_limit,
            success_retention_ms=_optional_ms(entry.get("success_retention")),
            error_retention_ms=_optional_ms(entry.get("error_retention")),
            concurrency_limit=concurrency,
            schedules=tuple(check_cron(s) for s in schedules),
        )
    except InvalidRequest as exc:
        raise ConfigError(f"{where}: {exc.detail}") from None


def _optional_ms(value: object) -> int | None:
    return None if value is None else parse_duration_ms(value, what="retention")
