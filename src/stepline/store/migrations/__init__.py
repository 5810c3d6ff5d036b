"""Numbered SQL migrations, one folder per backend: ``NNNN_name.sql`` applied in order.

Each store applies the ones its database lacks when it opens, and first refuses a database
that records a migration this code does not have (:func:`refuse_newer_schema`): a newer
Stepline migrated it, and this one would run on tables it does not know. The check is at open
only: for what that means in a rolling deploy on PostgreSQL, see :mod:`stepline.store.postgres`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from stepline.errors import SchemaTooNew

__all__ = ["Migration", "load_migrations", "refuse_newer_schema"]


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        """As its file is named, less ``.sql``, and as messages name it: ``0004_buffered_bytes``."""
        return f"{self.number:04d}_{self.name}"


def load_migrations(backend: str) -> list[Migration]:
    """The migrations of ``backend`` ("sqlite" or "postgres"), in order."""
    folder = resources.files(__package__).joinpath(backend)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations are not numbered 1..n: {numbers}")
    return found


def refuse_newer_schema(recorded: Mapping[int, str], known: Sequence[Migration]) -> None:
    """Raise :class:`SchemaTooNew` when ``recorded`` (number to name, as ``schema_migrations``
    holds them) has a migration that ``known`` lacks; call it before applying any."""
    unknown = set(recorded) - {m.number for m in known}
    if not unknown:
        return
    newest = max(unknown)
    last = known[-1]
    raise SchemaTooNew(
        "this database was last migrated by a newer Stepline (schema migration "
        f"{newest:04d}_{recorded[newest]}; this Stepline knows up to "
        f"{last.label}): upgrade Stepline to use it"
    )
