"""The URL a start-up failure shows keeps no secret: its password and its query go, whatever
the password holds; a command it says to run keeps the query but a password; what it says to
grant fits the refusal; a password that a URL parser would read as part of the host, the
port or the database is refused before any connection, in one line."""

from __future__ import annotations

import traceback

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepline import Stepline
from stepline.errors import ConfigError
from stepline.store.migrations import Migration
from stepline.store.open import open_store
from stepline.store.postgres import PostgresStore
from stepline.store.postgres_access import (
    cannot_migrate,
    cannot_open,
    cannot_use_tables,
    no_connect_right,
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
        # A password written with a character that ends a URL's authority: everything up to
        # the last "@" is the user and the password.
        ("postgresql://app:pa/ss@db/x", "postgresql://app:***@db/x"),
        ("postgresql://app:p?w@db/x", "postgresql://app:***@db/x"),
        ("postgresql://app:p#w@db/x", "postgresql://app:***@db/x"),
        ("postgresql://app:p[1]@db/x", "postgresql://app:***@db/x"),
        ("postgresql://app:a/b@c/d@db:5433/x?sslmode=require", "postgresql://app:***@db:5433/x"),
        ("postgresql://app:pa/ss@h1:5432,h2:5433/x", "postgresql://app:***@h1:5432,h2:5433/x"),
        ("postgresql://app:pw@db/x?w", "postgresql://app:***@db/x"),
        # An "@" in a query: a value that holds one (a password there), or a password that
        # holds "?name=": either way, what follows it may be a password.
        ("postgresql://db/x?password=p@ss", "postgresql://***"),
        ("postgresql://app@db/x?sslmode=require&password=p@ss", "postgresql://***"),
        ("postgresql://app:k9?Qw=z@db/x", "postgresql://***"),
    ],
)
def test_the_url_shown_hides_the_password(dsn: str, shown: str) -> None:
    assert public_url(dsn) == shown


SECRET = "KMNUVWYZ"
"""Characters that the rest of the URLs below never hold: any of them shown is a leak."""


@given(
    password=st.text(alphabet=SECRET + "/?#@[]=&:%", min_size=1, max_size=16),
    form=st.sampled_from(
        [
            "postgresql://app:{}@db/x",
            "postgresql://app:{}@db/x?sslmode=require",
            "postgresql://app:{}@h1:5432,h2:5433/x",
            "postgresql://app:{}@[::1]/x",
            "postgresql://db/x?password={}",
            "postgresql://app@db/x?sslmode=require&password={}",
        ]
    ),
)
def test_no_character_of_a_password_is_shown_whatever_it_holds(password: str, form: str) -> None:
    shown = public_url(form.format(password))

    assert not set(shown) & set(SECRET), shown


@given(
    password=st.text(alphabet=SECRET + "/?#@[]=&:%", min_size=1, max_size=16),
    form=st.sampled_from(
        [
            "postgresql://app:{}@db/x",
            "postgresql://app:{}@db/x?sslmode=require&pool_size=2",
            "postgresql://db/x?password={}",
            "postgresql:///x?host=/run/postgresql&password={}",
        ]
    ),
)
def test_no_character_of_a_password_is_shown_for_a_url_that_open_store_takes(
    password: str, form: str
) -> None:
    """What a store opened by ``open_store`` shows is its DSN's public URL: the query that
    ``open_store`` passes on (all but ``pool_size``) must not make it show more."""
    try:
        shown = public_url(open_store(form.format(password)).dsn)  # type: ignore[attr-defined]
    except ConfigError as refused:  # not percent-encoded: the URL it shows
        shown = str(refused).partition("PostgreSQL URL ")[2].partition(": ")[0]
        assert shown.startswith("postgresql://")

    assert not set(shown) & set(SECRET), shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pa/ss@db/x",
        "postgresql://app:p?w@db/x",
        "postgresql://app:p#w@db/x",
        "postgresql://app:p@ss@db/x",
        "postgresql://app:p[1]@db/x",
        "postgresql://app:12/34@db/x",  # read as host app, port 12, database 34@db/x
        "postgresql://me@srv:pw@db/x",  # a user with an "@"
    ],
)
def test_a_password_that_is_not_percent_encoded_is_refused_in_one_line(url: str) -> None:
    for start in (open_store, PostgresStore, Stepline):
        with pytest.raises(ConfigError) as refused:
            start(url)

        said = str(refused.value)
        assert "\n" not in said
        assert said.startswith("cannot use the PostgreSQL URL postgresql://")
        assert "must be percent-encoded" in said
        assert "%40" in said and "%2F" in said  # how
        password = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
        assert password not in said


def test_a_percent_encoded_password_is_taken() -> None:
    store = open_store("postgresql://app:p%2Fa%3Fs%23s%40w@db/x?pool_size=3")

    assert isinstance(store, PostgresStore)
    assert store.dsn.startswith("postgresql://app:p%2Fa%3Fs%23s%40w@db/x")


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

    said = str(no_connect_right("postgresql://app@db/flows", error))

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


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://app:s3cret@127.0.0.1:abc/x", "invalid literal for int()"),
        ("postgresql://app:s3cret@127.0.0.1:5432/x?sslmode=bogus", "`sslmode` parameter"),
        # The password holds "?Qw=": the URL cannot be told apart from one with a query, and
        # asyncpg's words quote a piece of the password ("k9") as the port.
        ("postgresql://app:k9?Qw=z@127.0.0.1/x", ""),
    ],
)
async def test_a_url_asyncpg_cannot_read_is_refused_in_one_line_without_its_password(
    url: str, said: str
) -> None:
    """Each was a traceback (a port that is no number), or taken for a server that could not
    be reached ("check that PostgreSQL is running", for an unknown sslmode)."""
    with pytest.raises(ConfigError) as refused:
        await PostgresStore(url).open()
    text = str(refused.value)
    assert text.startswith(f"cannot use the PostgreSQL URL {public_url(url)}")
    assert text.endswith("; correct the URL")
    assert said in text
    assert "\n" not in text
    assert "s3cret" not in text and "k9" not in text


async def test_a_url_refused_without_asyncpgs_words_is_not_raised_from_them() -> None:
    """They quoted the password (invalid literal for int(): 's3cret'), and the traceback of
    an embedding program that does not catch the refusal showed its cause."""
    store = PostgresStore("postgresql://app:s3cret?x=1@127.0.0.1/flows")

    with pytest.raises(ConfigError) as refused:
        await store.open()

    assert "s3cret" not in "".join(traceback.format_exception(refused.value))
