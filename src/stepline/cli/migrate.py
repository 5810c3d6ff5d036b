"""``stepline migrate``: apply the database's pending schema migrations, then exit."""

from __future__ import annotations

import asyncio

from stepline.cli.output import report_errors, say
from stepline.cli.serve import DatabaseOption
from stepline.store.open import DEFAULT_DATABASE
from stepline.store.schema_upgrade import upgrade_schema

__all__ = ["MIGRATE_EPILOG", "migrate_command"]

MIGRATE_EPILOG = (
    "Example:\n\n"
    "  stepline migrate --database postgresql://owner@db/stepline\n\n"
    "Run it at each deploy as a role that may create and alter tables (the database's owner); "
    "serve and worker can then run as one that may only read and write them."
)


def migrate_command(database: DatabaseOption = DEFAULT_DATABASE) -> None:
    """Apply pending schema migrations to the database and exit (a deploy step)."""
    with report_errors(local=True):
        upgrade = asyncio.run(upgrade_schema(database))
        if upgrade.created:
            say(f"created a new SQLite database at {upgrade.database} (there was no file)")
        for migration in upgrade.applied:
            say(f"applied {migration.label}")
        current = upgrade.current.label
        if upgrade.applied:
            say(f"the schema of {upgrade.database} is current ({current})")
        else:
            say(f"the schema of {upgrade.database} is current ({current}): nothing to apply")
