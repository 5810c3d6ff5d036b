"""A PostgreSQL role that may only read and write Stepline's tables, as production grants an
application: it starts and runs instances once the schema is current (a start does no DDL,
which PostgreSQL refuses to such a role even as ``CREATE TABLE IF NOT EXISTS`` of a table
that exists), and while migrations are pending it is refused in one line that says how to
apply them, with nothing created or half-applied."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import ConfigError, DatabaseNotWritable
from stepline.store import postgres_migrations
from stepline.store.migrations import load_migrations
from stepline.store.postgres import PostgresStore
from stepline.store.postgres_access import public_url
from stepline.testing import wait_for_status

from .databases import create_database, drop_database, postgres_url, unique_name

pytestmark = pytest.mark.postgres

DML_ONLY = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
)
"""What an application role gets: its tables' rows, nothing to create or alter with."""

AsRole = Callable[[str], Awaitable[str]]


class Checkout(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("charge")
        async def charge() -> dict[str, str]:
            return {"charge_id": "ch_1"}

        receipt = await charge()
        approval = await step.wait_for_event("approval", "approved", timeout="1 minute")
        return {"receipt": receipt, "by": approval["payload"]["by"]}


async def as_owner(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run ``statements`` on ``url`` as the test server's user; the last one's rows."""
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = []
        for sql in statements:
            rows = await conn.fetch(sql)
        return [tuple(row) for row in rows]
    finally:
        await conn.close()


async def tables(url: str, *, schema: str = "public") -> list[str]:
    rows = await as_owner(
        url, f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"
    )
    return [row[0] for row in rows]


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A database of this test's own, with no tables."""
    server = postgres_url()
    name = unique_name("stepline_role_db")
    yield await create_database(server, name)
    await drop_database(server, name)


@pytest.fixture
async def as_app_role(empty_database: str) -> AsyncIterator[AsRole]:
    """``await as_app_role(url)``: the URL of a new role that may only read and write the
    tables ``url``'s database has now. Roles are the whole server's: each has a name of its
    own and is dropped at the end, after what it was granted, which DROP ROLE requires."""
    role = unique_name("stepline_app")
    granted: list[str] = []
    await as_owner(empty_database, f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")

    async def grant(url: str) -> str:
        await as_owner(url, *(sql.format(role=role) for sql in DML_ONLY))
        granted.append(url)
        at = urlparse(url)
        netloc = f"{role}:pw-{role}@{at.hostname}:{at.port or 5432}"
        return urlunparse(at._replace(netloc=netloc))

    yield grant
    for url in granted:
        await as_owner(url, f"DROP OWNED BY {role}")  # its privileges there
    await as_owner(empty_database, f"DROP ROLE {role}")


async def start_once(url: str) -> None:
    """Open a store on ``url`` and close it: a start, which applies pending migrations."""
    store = PostgresStore(url)
    await store.open()
    await store.close()


async def test_a_role_that_may_only_read_and_write_runs_instances_on_a_current_schema(
    empty_database: str, as_app_role: AsRole
) -> None:
    await start_once(empty_database)
    app = await as_app_role(empty_database)

    async with Stepline(app, account_id="acct") as stepline:
        checkout = await stepline.register("checkout", Checkout)
        instance = await checkout.create(params={"sku": "book"})
        await wait_for_status(instance, "waiting", timeout=10)
        await instance.send_event("approved", {"by": "ada"})
        await wait_for_status(instance, "complete", timeout=10)
        status = await instance.status()

    assert status["output"] == {"receipt": {"charge_id": "ch_1"}, "by": "ada"}


async def test_a_role_that_may_only_read_and_write_is_refused_on_an_empty_database(
    empty_database: str, as_app_role: AsRole
) -> None:
    app = await as_app_role(empty_database)
    role = urlparse(app).username

    with pytest.raises(DatabaseNotWritable) as refused:
        await PostgresStore(app).open()

    said = str(refused.value)
    assert "\n" not in said
    assert said.startswith(
        f"cannot set up Stepline's tables in PostgreSQL database postgresql://{role}:***@"
    )
    assert "permission denied for schema public" in said
    assert "create them with stepline migrate --database postgresql://<owner>@" in said
    assert f"GRANT CREATE ON SCHEMA public TO {role}" in said
    assert f"pw-{role}" not in said
    assert await tables(empty_database) == []


async def test_a_role_that_may_only_read_and_write_is_refused_while_a_migration_is_pending(
    empty_database: str, as_app_role: AsRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = load_migrations("postgres")
    with monkeypatch.context() as older:  # the release before the last migration
        older.setattr(postgres_migrations, "load_migrations", lambda _backend: known[:-1])
        await start_once(empty_database)
    app = await as_app_role(empty_database)
    catalog = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    before = await as_owner(empty_database, catalog)

    with pytest.raises(DatabaseNotWritable) as refused:
        await PostgresStore(app).open()

    said = str(refused.value)
    last = f"{known[-1].number:04d}_{known[-1].name}"
    assert "\n" not in said
    assert said.startswith(f"cannot apply Stepline's pending schema migrations ({last}) to ")
    assert "apply them with stepline migrate --database postgresql://<owner>@" in said
    recorded = await as_owner(empty_database, "SELECT version FROM schema_migrations ORDER BY 1")
    assert [row[0] for row in recorded] == [m.number for m in known[:-1]]
    assert await as_owner(empty_database, catalog) == before  # nothing of it applied

    await start_once(empty_database)  # the deploy step, as the owner; then the role starts
    await start_once(app)


async def test_a_role_without_privileges_on_the_tables_is_told_what_to_grant(
    empty_database: str, as_app_role: AsRole
) -> None:
    app = await as_app_role(empty_database)  # granted on no tables: there were none yet
    role = urlparse(app).username
    await start_once(empty_database)

    with pytest.raises(DatabaseNotWritable) as refused:
        await PostgresStore(app).open()

    said = str(refused.value)
    assert said.startswith(
        f"cannot use Stepline's tables in PostgreSQL database postgresql://{role}"
    )
    assert "permission denied for table schema_migrations" in said
    assert f"IN SCHEMA public TO {role};" in said


async def test_a_read_only_server_is_still_refused_at_start_on_a_current_schema(
    empty_database: str,
) -> None:
    """Every start used to find this out with its CREATE TABLE; one that does no DDL asks."""
    await start_once(empty_database)
    name = urlparse(empty_database).path.lstrip("/")
    await as_owner(empty_database, f"ALTER DATABASE {name} SET default_transaction_read_only = on")

    with pytest.raises(DatabaseNotWritable) as refused:
        await asyncio.wait_for(PostgresStore(empty_database).open(), 30)

    assert "point Stepline at the primary server, not a standby" in str(refused.value)


def with_query(url: str, query: str) -> str:
    return urlunparse(urlparse(url)._replace(query=query))


async def test_a_role_whose_own_schema_comes_first_is_refused_when_the_tables_are_in_public(
    empty_database: str, as_app_role: AsRole
) -> None:
    """PostgreSQL's default search_path is ``"$user", public``: a role with a schema of its
    name would create a second, empty Stepline there, beside the one the owner migrated."""
    await start_once(empty_database)
    app = await as_app_role(empty_database)
    role = urlparse(app).username
    await as_owner(empty_database, f"CREATE SCHEMA AUTHORIZATION {role}")

    with pytest.raises(ConfigError) as refused:
        await PostgresStore(app).open()

    said = str(refused.value)
    assert "\n" not in said
    assert said.startswith(f"Stepline's tables in PostgreSQL database postgresql://{role}:***@")
    assert f"are in schema public, but this user's search_path puts schema {role} first" in said
    assert f"search_path=public in the URL's query, or ALTER ROLE {role} SET search_path" in said
    assert await tables(empty_database, schema=role) == []

    await start_once(with_query(app, "search_path=public"))  # as the refusal says


async def test_another_tools_schema_migrations_further_down_the_path_is_not_stepline(
    empty_database: str, as_app_role: AsRole
) -> None:
    """Rails, Ecto, golang-migrate and dbmate keep a ``schema_migrations`` of their own (no
    ``applied_on``): one in ``public`` is not Stepline's tables elsewhere, and a role with a
    schema of its own makes Stepline's there."""
    await as_owner(empty_database, "CREATE TABLE schema_migrations (version varchar PRIMARY KEY)")
    app = await as_app_role(empty_database)
    role = urlparse(app).username
    await as_owner(empty_database, f"CREATE SCHEMA AUTHORIZATION {role}")

    await start_once(app)

    assert "instances" in await tables(empty_database, schema=role)
    assert await tables(empty_database) == ["schema_migrations"]  # the other tool's, as it was


async def refused_at_start_and_by_migrate(url: str) -> list[str]:
    """What a start and ``stepline migrate``'s migrating refuse ``url`` with: each one line,
    naming the database."""
    said = []
    for start in (start_once, lambda url: PostgresStore(url).apply_migrations()):
        with pytest.raises(ConfigError) as refused:
            await start(url)
        said.append(str(refused.value))
        assert "\n" not in said[-1]
        assert said[-1].startswith(f"cannot use PostgreSQL database {public_url(url)}: ")
    return said


OTHER_TOOLS = {
    "rails": (
        "CREATE TABLE schema_migrations (version varchar PRIMARY KEY)",
        "INSERT INTO schema_migrations VALUES ('20240101120000')",
    ),
    "golang-migrate": (
        "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)",
        "INSERT INTO schema_migrations VALUES (3, false)",
    ),
    "ecto": (
        "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, inserted_at timestamp(0))",
        "INSERT INTO schema_migrations VALUES (20240101120000, now())",
    ),
    "a version and a name": (  # read as Stepline's: its migration 1 taken as applied
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text)",
        "INSERT INTO schema_migrations VALUES (1, 'create_users')",
    ),
}


@pytest.mark.parametrize("tool", sorted(OTHER_TOOLS))
async def test_another_tools_schema_migrations_where_stepline_would_keep_its_own_is_refused(
    empty_database: str, tool: str
) -> None:
    """It was read as Stepline's record of its migrations: a traceback (column "name" does
    not exist), or, with that column, another tool's versions taken for Stepline's (a
    traceback from a later migration on tables that are not there)."""
    await as_owner(empty_database, *OTHER_TOOLS[tool])
    user = urlparse(empty_database).username or "<user>"
    before = await as_owner(empty_database, "SELECT * FROM schema_migrations")

    for said in await refused_at_start_and_by_migrate(empty_database):
        assert "table public.schema_migrations is not Stepline's" in said
        assert "give Stepline a schema of its own" in said
        assert f"search_path=stepline in the URL's query, or ALTER ROLE {user} SET" in said
    assert await tables(empty_database) == ["schema_migrations"]
    assert await as_owner(empty_database, "SELECT * FROM schema_migrations") == before

    await as_owner(empty_database, "CREATE SCHEMA stepline")  # as the refusal says
    await start_once(with_query(empty_database, "search_path=stepline"))
    assert "instances" in await tables(empty_database, schema="stepline")


async def test_a_start_with_no_schema_on_its_search_path_is_refused_in_one_line(
    empty_database: str,
) -> None:
    nowhere = with_query(empty_database, "search_path=nowhere")

    with pytest.raises(ConfigError) as refused:
        await PostgresStore(nowhere).open()

    said = str(refused.value)
    assert "\n" not in said
    assert "no schema on this user's search_path (nowhere) exists or may be used" in said
    assert await tables(empty_database) == []


async def test_a_role_without_privileges_is_told_to_grant_them_in_the_schema_of_the_tables(
    empty_database: str, as_app_role: AsRole
) -> None:
    app = with_query(await as_app_role(empty_database), "search_path=flows")
    role = urlparse(app).username
    await as_owner(empty_database, "CREATE SCHEMA flows", f"GRANT USAGE ON SCHEMA flows TO {role}")
    await start_once(with_query(empty_database, "search_path=flows"))

    with pytest.raises(DatabaseNotWritable) as refused:
        await PostgresStore(app).open()

    said = str(refused.value)
    assert "permission denied for table schema_migrations" in said
    assert f"ON ALL TABLES IN SCHEMA flows TO {role};" in said
    assert "public" not in said


@pytest.mark.parametrize(
    ("theirs", "migration", "taken"),
    [
        (
            "CREATE TABLE workflows (id serial PRIMARY KEY, title text)",
            "0001_initial",
            'relation "workflows" already exists',
        ),
        (
            "CREATE FUNCTION stepline_count_buffered() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NULL; END $$",
            "0004_buffered_bytes",
            'function "stepline_count_buffered" already exists',
        ),
    ],
)
async def test_another_applications_table_of_a_name_stepline_creates_is_refused_in_one_line(
    empty_database: str, theirs: str, migration: str, taken: str
) -> None:
    """Another application's ``workflows`` table where Stepline would create its own: the
    first migration failed with PostgreSQL's DuplicateTableError as a traceback, and left
    Stepline's (empty) record of migrations behind in the other application's schema. A
    function of a name a later migration creates was a DuplicateFunctionError's traceback."""
    await as_owner(empty_database, theirs)

    for said in await refused_at_start_and_by_migrate(empty_database):
        assert f"schema migration {migration} found a name it creates already taken" in said
        assert taken in said
        assert "give Stepline a schema of its own" in said
    if migration == "0001_initial":
        assert await tables(empty_database) == ["workflows"]  # nothing of Stepline's left

    await as_owner(empty_database, "CREATE SCHEMA stepline")  # as the refusal says
    await start_once(with_query(empty_database, "search_path=stepline"))
    assert "instances" in await tables(empty_database, schema="stepline")


async def test_a_role_without_the_right_to_connect_is_told_to_grant_it(
    empty_database: str, as_app_role: AsRole
) -> None:
    """Told apart by where it came, at login: it was by PostgreSQL's English words, and in
    another language (``lc_messages``) the advice was to grant rights on the tables."""
    await start_once(empty_database)
    app = await as_app_role(empty_database)
    database = urlparse(empty_database).path.lstrip("/")
    await as_owner(empty_database, f"REVOKE CONNECT ON DATABASE {database} FROM PUBLIC")

    with pytest.raises(DatabaseNotWritable) as refused:
        await start_once(app)

    said = str(refused.value)
    assert said.startswith(f"cannot connect to PostgreSQL database {public_url(app)}: ")
    role = urlparse(app).username
    assert said.endswith(f"(GRANT CONNECT ON DATABASE {database} TO {role})")


async def test_a_role_that_may_not_read_the_servers_settings_still_starts(
    empty_database: str, as_app_role: AsRole
) -> None:
    """A database hardened with ``REVOKE SELECT ON pg_settings FROM PUBLIC``: the statement
    that turns the server's keepalive on reads it, and failed every connection, so the start
    was refused as a role that may not use Stepline's tables."""
    await start_once(empty_database)
    await as_owner(empty_database, "REVOKE SELECT ON pg_catalog.pg_settings FROM PUBLIC")
    app = await as_app_role(empty_database)

    await start_once(app)
