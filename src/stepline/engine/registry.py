"""Which Python class runs a workflow, and the hash that tells one version from the next.

A REST PUT is a deploy: when the module it names was loaded here and its file has changed
since, it is imported again, so that what runs after the PUT is the code on disk at the PUT
(and the version records that code). Only that module: the modules it imports stay as they
were imported. An import that fails, or lacks the class, leaves the module as it was.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from types import ModuleType

from stepline.authoring.entrypoint import WorkflowEntrypoint
from stepline.engine.import_scope import MODULE_NAME, ImportScope
from stepline.errors import WorkflowClassNotFound

__all__ = ["WorkflowClasses", "code_hash"]


class WorkflowClasses:
    """Finds workflow classes by (script_name, class_name): ``script_name`` is an importable
    module, ``class_name`` a ``WorkflowEntrypoint`` subclass in it. Classes registered
    directly (tests, embedded use) are found without importing.

    ``scope`` bounds what a request (a REST PUT) may import; None, as embedded, is no bound.
    What the process itself loads (declared workflows, versions it runs) is not bounded."""

    def __init__(self, scope: ImportScope | None = None) -> None:
        self._classes: dict[tuple[str, str], type[WorkflowEntrypoint]] = {}
        """By (script_name, class_name): a plain tuple, as every run looks its class up."""
        self.scope = scope
        self._imported: dict[str, bytes] = {}
        """Modules this registry loaded classes from, each with its source's digest then."""

    def add(
        self, cls: type[WorkflowEntrypoint], *, script_name: str | None = None
    ) -> tuple[str, str]:
        """Register ``cls``; returns its (script_name, class_name)."""
        if isinstance(cls, WorkflowEntrypoint):
            raise WorkflowClassNotFound(
                f"an instance of {type(cls).__qualname__!r} is not a class: register the "
                "WorkflowEntrypoint subclass itself"
            )
        _check_class(cls, getattr(cls, "__qualname__", str(cls)))
        key = (script_name or cls.__module__, cls.__qualname__)
        known = self._classes.get(key)
        if known is not None and known is not cls and "<locals>" in cls.__qualname__:
            # Made by one function more than once: the second would run the first's
            # workflows too. A class redefined at a module's top (a REPL) replaces the old.
            raise ValueError(
                f"another class named {cls.__qualname__!r} in module {key[0]!r} is registered "
                "already (both defined inside a function): register each with a "
                "script_name= of its own"
            )
        self._classes[key] = cls
        return key

    def load(
        self, script_name: str, class_name: str, *, requested: bool = False
    ) -> type[WorkflowEntrypoint]:
        """The class; ``requested`` when a request names it, so :attr:`scope` applies."""
        key = (script_name, class_name)
        if requested and script_name in self._imported and self._in_scope(script_name):
            self._import_again_if_changed(script_name, class_name)
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
        if requested and not self._in_scope(script_name):
            assert self.scope is not None
            raise WorkflowClassNotFound(
                f"script_name {script_name!r} is outside the modules this server imports on "
                f"request ({self.scope.describe()}); list its package under modules in "
                "stepline.toml"
            )
        try:
            module = importlib.import_module(script_name)
        except (Exception, SystemExit) as exc:  # missing, or failing (or exiting) as imported
            raise _cannot_import(script_name, exc) from exc
        if script_name not in self._imported:
            # Whoever imported it (another workflow's module, say), it is the code that runs.
            source = _source(module)
            if source is not None:
                self._imported[script_name] = _digest(source)
        cls = getattr(module, class_name, None)
        _check_class(cls, class_name, script_name)
        assert isinstance(cls, type)
        self._classes[key] = cls
        return cls

    def _in_scope(self, script_name: str) -> bool:
        """Whether a request may have ``script_name`` imported (and so its code run)."""
        return self.scope is None or self.scope.allows(script_name)

    def _import_again_if_changed(self, name: str, class_name: str) -> None:
        """Import module ``name`` again if its file changed since this registry first saw it.
        The new module replaces the old one only once its code has run to the end and has
        the class the request names: else the request is refused, and what runs stays."""
        old = sys.modules.get(name)
        source = None if old is None else _source(old)
        if old is None or source is None or _digest(source) == self._imported[name]:
            return
        spec = old.__spec__
        assert spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader)
        module = importlib.util.module_from_spec(spec)
        # From the source read, not through the bytecode cache: an edit of the same size in
        # the same second as the cached code would pass for it.
        try:
            code = spec.loader.source_to_code(source, spec.origin or name)
        except (SyntaxError, ValueError) as exc:  # ValueError: a null byte in the source
            raise _cannot_import(name, exc) from exc
        sys.modules[name] = module
        try:
            exec(code, module.__dict__)
            _check_class(getattr(module, class_name, None), class_name, name)
        except BaseException as exc:
            sys.modules[name] = old
            if isinstance(exc, WorkflowClassNotFound) or not isinstance(
                exc, Exception | SystemExit
            ):
                raise
            raise _cannot_import(name, exc) from exc
        prefix = f"{name}."
        for full_name, submodule in list(sys.modules.items()):
            child = full_name.removeprefix(prefix)
            if child != full_name and "." not in child and not hasattr(module, child):
                setattr(module, child, submodule)  # a package keeps its imported submodules
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        self._imported[name] = _digest(source)
        for (script_name, class_name), cls in list(self._classes.items()):
            if script_name == name and getattr(old, class_name, None) is cls:
                # The old module's: the next load takes the new one's.
                del self._classes[(script_name, class_name)]


def _source(module: ModuleType) -> bytes | None:
    """The source file of ``module`` as it is now; None when it was not imported from one."""
    spec = module.__spec__
    if spec is None or spec.origin is None:
        return None
    if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
        return None
    try:
        with open(spec.origin, "rb") as file:
            return file.read()
    except OSError:
        return None


def _digest(source: bytes) -> bytes:
    return hashlib.sha256(source).digest()


def _cannot_import(script_name: str, exc: BaseException) -> WorkflowClassNotFound:
    return WorkflowClassNotFound(
        f"cannot import module {script_name!r}: {type(exc).__name__}: {exc}"
    )


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
