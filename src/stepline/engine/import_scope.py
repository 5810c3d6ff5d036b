"""Which modules a request may have this process import.

A REST ``PUT`` of a workflow names its class by ``script_name``, and the process imports that
module, running its top-level code. A server therefore imports, on request, only the project's
own code: the packages ``stepline.toml`` lists under ``modules``, the packages of the workflows
it declares, and the modules that sit in the config's own folder. An installed or standard
library module outside those (``antigravity``, ``os``) is refused before it is imported.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODULE_NAME", "ImportScope"]

MODULE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII)
"""A module's dotted name: never a path, nor a relative import."""


@dataclass(frozen=True, slots=True)
class ImportScope:
    packages: frozenset[str] = frozenset()
    """Dotted names a request may import, with everything under them."""
    folders: tuple[Path, ...] = ()
    """Folders whose own modules and packages (not those of folders inside) a request may
    import."""

    @classmethod
    def of(cls, packages: Iterable[str], folders: Iterable[Path] = ()) -> ImportScope:
        return cls(frozenset(packages), tuple(f.resolve() for f in folders))

    def allows(self, script_name: str) -> bool:
        """Whether ``script_name`` (a dotted module name, already checked as one) is in scope.
        Looking it up imports nothing: only its top-level name is searched for."""
        parts = script_name.split(".")
        if any(".".join(parts[:n]) in self.packages for n in range(1, len(parts) + 1)):
            return True
        return bool(self.folders) and self._in_folders(parts[0])

    def describe(self) -> str:
        """The scope in words, for the error that refuses a module outside it."""
        where = [f"the packages {', '.join(sorted(self.packages))}"] if self.packages else []
        where += ["the modules beside stepline.toml"] if self.folders else []
        return " and ".join(where) if where else "no module (there is no stepline.toml)"

    def _in_folders(self, top: str) -> bool:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        # A package is its folder, a module its file; a built-in or frozen module's origin
        # is a word ("built-in"), not a place. Each must sit right in one of the folders: a
        # virtualenv's site-packages inside the project folder is not the project's code.
        if spec.submodule_search_locations is not None:
            places = list(spec.submodule_search_locations)
        else:
            places = [spec.origin] if spec.has_location and spec.origin else []
        # The place as found on sys.path: a module the project links in is the project's.
        return bool(places) and all(
            Path(place).parent.resolve() in self.folders for place in places
        )
