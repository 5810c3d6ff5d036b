"""The URL a start-up failure shows keeps no secret: its password and its query go; a command
it says to run keeps the query but a password; what it says to grant fits the refusal."""

from __future__ import annotations

import asyncpg
import pytest

from stepline.store.migrations import Migration
from stepline.store.postgres_access import (
    cannot_migrate,
    cannot_open,
    cannot_use_tables,
    public_url,
)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cret@db:5433/flows", "postgresql://app:***@db:5433/flows"),
        ("postgresql://app@db/flows", "postgresql://app@db/flows"),
        ("postgres://db/flows?password=s3cret&sslmode=require", "postgres://db/flows"),
        ("postgresql://app:@db/flows", "postgresql://app:***@db/flows"),
        (  # several hosts, as asyncpg takes them
            "postgresql://app:s3cret@h1:5432,h2:5433/flows",
            "postgresql://app:***@h1:5432,h2:5433/flows",
        ),
        ("postgresql://app:p@ss@[::1]:5432/flows", "postgresql://app:***@[::1]:5432/flows"),
    ],
)
def test_the_url_shown_hides_the_password(dsn: str, shown: str) -> None:
    assert public_url(dsn) == shown


LAST = Migration(6, "status_index_in_list_order", "")


def test_the_migrate_hint_keeps_the_query_but_a_password() -> None:
    dsn = (
        "postgresql://app:s3cret@/flows?host=/run/postgresql&search_path=stepline"
        "&password=s3cret&sslmode=require"
    )

    said = str(cannot_migrate(dsn, Exception("permission denied"), [LAST], schema=None))

    hint = "postgresql://<owner>@/flows?host=/run/postgresql&search_path=stepline&sslmode=require"
    assert f"stepline migrate --database {hint}, run as" in said
    assert "s3cret" not in said


def test_a_user_without_connect_is_told_to_grant_connect() -> None:
    error = asyncpg.InsufficientPrivilegeError('permission denied for database "flows"')

    said = str(cannot_open("postgresql://app@db/flows", error))

    assert said == (
        "cannot connect to PostgreSQL database postgresql://app@db/flows: permission denied for "
        'database "flows"; grant this user the right to connect (GRANT CONNECT ON DATABASE '
        "flows TO app)"
    )


def test_a_user_without_rights_on_the_tables_is_told_what_to_grant_where_they_are() -> None:
    error = asyncpg.InsufficientPrivilegeError("permission denied for table schema_migrations")

    said = str(cannot_use_tables("postgresql://app@db/flows", error, schema="Flows"))

    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "Flows" TO app;' in said
    assert 'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "Flows" TO app)' in said
    assert (  # the tables a later migration creates
        'ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA "Flows" GRANT SELECT, INSERT, '
        "UPDATE, DELETE ON TABLES TO app;"
    ) in said
    assert (
        'ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA "Flows" GRANT USAGE, SELECT ON '
        "SEQUENCES TO app)"
    ) in said
    assert "public" not in said


def test_a_table_refused_where_the_schema_is_not_known_names_no_schema() -> None:
    error = asyncpg.InsufficientPrivilegeError("permission denied for table instances")

    said = str(cannot_open("postgresql://app@db/flows", error))

    assert said.startswith("cannot use Stepline's tables in PostgreSQL database ")
    assert "ON ALL TABLES IN SCHEMA <schema> TO app;" in said
