"""Which Python class runs a workflow, and the hash that tells one version from the next."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from dataclasses import dataclass

from stepline.authoring.entrypoint import WorkflowEntrypoint
from stepline.engine.import_scope import MODULE_NAME, ImportScope
from stepline.errors import WorkflowClassNotFound

__all__ = ["WorkflowClasses", "code_hash"]


@dataclass(frozen=True, slots=True)
class _Key:
    script_name: str
    class_name: str


class WorkflowClasses:
    """Finds workflow classes by (script_name, class_name): ``script_name`` is an importable
    module, ``class_name`` a ``WorkflowEntrypoint`` subclass in it. Classes registered
    directly (tests, embedded use) are found without importing.

    ``scope`` bounds what a request (a REST PUT) may import; None, as embedded, is no bound.
    What the process itself loads (declared workflows, versions it runs) is not bounded."""

    def __init__(self, scope: ImportScope | None = None) -> None:
        self._classes: dict[_Key, type[WorkflowEntrypoint]] = {}
        self.scope = scope

    def add(
        self, cls: type[WorkflowEntrypoint], *, script_name: str | None = None
    ) -> tuple[str, str]:
        """Register ``cls``; returns its (script_name, class_name)."""
        _check_class(cls, cls.__qualname__)
        key = _Key(script_name or cls.__module__, cls.__qualname__)
        self._classes[key] = cls
        return key.script_name, key.class_name

    def load(
        self, script_name: str, class_name: str, *, requested: bool = False
    ) -> type[WorkflowEntrypoint]:
        """The class; ``requested`` when a request names it, so :attr:`scope` applies."""
        key = _Key(script_name, class_name)
        found = self._classes.get(key)
        if found is not None:
            return found
        if MODULE_NAME.fullmatch(script_name) is None:
            raise WorkflowClassNotFound(
                f"script_name {script_name!r} is not a Python module name (such as 'orders' "
                "or 'app.workflows')"
            )
        if "__main__" in script_name.split("."):
            # A program's entry point, which runs (and may exit) as it is imported.
            raise WorkflowClassNotFound(f"script_name {script_name!r} is a program, not a module")
        if requested and self.scope is not None and not self.scope.allows(script_name):
            raise WorkflowClassNotFound(
                f"script_name {script_name!r} is outside the modules this server imports on "
                f"request ({self.scope.describe()}); list its package under modules in "
                "stepline.toml"
            )
        try:
            module = importlib.import_module(script_name)
        except (Exception, SystemExit) as exc:  # missing, or failing (or exiting) as imported
            raise WorkflowClassNotFound(
                f"cannot import module {script_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        cls = getattr(module, class_name, None)
        _check_class(cls, class_name, script_name)
        assert isinstance(cls, type)
        self._classes[key] = cls
        return cls


def _check_class(cls: object, class_name: str, script_name: str = "") -> None:
    if cls is None and script_name:
        raise WorkflowClassNotFound(f"module {script_name!r} has no class {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, WorkflowEntrypoint)):
        where = f" in {script_name!r}" if script_name else ""
        raise WorkflowClassNotFound(f"{class_name!r}{where} is not a WorkflowEntrypoint subclass")


def code_hash(cls: type[WorkflowEntrypoint]) -> str:
    """A digest of the source of the module that defines ``cls``: a code change, a new version."""
    module = sys.modules.get(cls.__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        source = ""
    if not source:
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            source = cls.__module__ + ":" + cls.__qualname__
    return hashlib.sha256(source.encode()).hexdigest()
