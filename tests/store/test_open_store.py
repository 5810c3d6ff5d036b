"""``open_store``: which database a URL names, and the URLs it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepline.errors import ConfigError
from stepline.store.open import open_store
from stepline.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/s.sqlite3", "data/s.sqlite3"),
        ("sqlite:////tmp/s.sqlite3", "/tmp/s.sqlite3"),
        ("data/s.sqlite3", "data/s.sqlite3"),
        ("/tmp/s.sqlite3", "/tmp/s.sqlite3"),
    ],
)
def test_sqlite_urls_and_plain_paths_name_a_file(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.path == Path(path)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("sqlite:r3.sqlite3", "is not a database URL"),
        ("postgresql:host/db", "is not a database URL"),
        ("sqlite://", "names no file"),
        ("mysql://host/db", "unsupported database URL"),
        ("postgresql://host/db?pool_size=0", "pool_size must be a whole number above 0"),
    ],
)
def test_urls_that_name_no_database_are_refused(url: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        open_store(url)


def test_a_sqlite_url_with_a_query_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as refused:
        open_store("sqlite:///app.sqlite3?key=s3cret")
    assert "s3cret" not in str(refused.value)
    assert str(refused.value).endswith("name the file alone, sqlite:///app.sqlite3")


def test_a_sqlite_url_on_localhost_is_refused_with_the_absolute_path_meant() -> None:
    # As in a file:// URL, localhost is this machine: it was told sqlite:///localhost/...
    with pytest.raises(ConfigError, match=r"did you mean sqlite:////tmp/x\.sqlite3 "):
        open_store("sqlite://localhost/tmp/x.sqlite3")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresq://app:s3cret@db/x", "'postgresq://***@db/x'"),  # a scheme's typo
        ("mysql://root:s3cret@db:3306/x", "'mysql://***@db:3306/x'"),
        ("postgresql:app:s3cret@db/x", "'postgresql:***@db/x'"),  # the slashes left out
        ("sqlite:app:s3cret@db", "'sqlite:***@db'"),
        ("postgresq://db/x?password=s3cret", "'postgresq://db/x'"),  # a password in the query
        ("postgresql:db/x?password=s3cret", "'postgresql:db/x'"),
        ("mysql://app@db/x?password=p@s3cret", "'mysql://***'"),  # its "@" is not the user's
    ],
)
def test_a_refused_url_is_shown_without_its_password(url: str, shown: str) -> None:
    """These were said whole, password and all, in a message that goes to the log."""
    with pytest.raises(ConfigError) as refused:
        open_store(url)
    assert shown in str(refused.value)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "dsn"),
    [
        (  # a Unix socket's directory: parsed and put together again, it lost its "//"
            "postgresql:///flows?host=/run/postgresql&pool_size=3&search_path=s",
            "postgresql:///flows?host=/run/postgresql&search_path=s",
        ),
        (
            "postgres://app:p%40ss@h1:5432,h2:5433/flows?sslmode=require&options=-c%20a%3Db",
            "postgres://app:p%40ss@h1:5432,h2:5433/flows?sslmode=require&options=-c%20a%3Db",
        ),
        ("postgresql://app@[::1]/flows?pool_size=2", "postgresql://app@[::1]/flows"),
        ("postgresql://db/flows?sslmode", "postgresql://db/flows?sslmode="),
    ],
)
def test_a_postgresql_url_goes_to_the_store_as_written_but_its_pool_size(
    url: str, dsn: str
) -> None:
    from stepline.store.postgres import PostgresStore

    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.dsn == dsn


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cret@db:70968/flows",
        "postgresql://app:s3cret@[::1]:70968/flows",
        "postgresql://app:s3cret@h1:5432,h2:70968/flows",
    ],
)
def test_a_postgresql_port_past_65535_is_refused(url: str) -> None:
    # A socket refused it with OverflowError; uvloop's connected to 70968 modulo 65536: 5432.
    with pytest.raises(ConfigError, match="port 70968 is past 65535") as refused:
        open_store(url)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cret@/flows?port=70968",
        "postgresql:///flows?host=db&port=5432,70968",
    ],
)
def test_a_port_past_65535_in_the_query_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="port 70968 is past 65535; correct the URL") as refused:
        open_store(url)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("query", ["port=70968", "port=5433", "port=abc", "host=db2"])
def test_a_query_host_or_port_beside_a_host_is_refused(query: str) -> None:
    # asyncpg reads no ?port= or ?host= when the URL names a host: with port 70968, 5433 or
    # abc, it connected to 5432 (or to PGPORT's); with host db2, to db.
    url = f"postgresql://app:s3cret@db/flows?sslmode=prefer&{query}"
    name = query.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"its \?{name}= is not read when the URL names a host"):
        open_store(url)


def test_a_pgport_past_65535_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from stepline.store.postgres import PostgresStore

    monkeypatch.setenv("PGPORT", "70968")
    with pytest.raises(ConfigError, match="cannot use PGPORT: port 70968 is past 65535"):
        open_store("postgresql://db/flows")
    assert isinstance(open_store("postgresql://db:5433/flows"), PostgresStore)  # not read
