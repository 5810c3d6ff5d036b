"""A process that cannot start says so to the person who started it: one line with what
failed, why and what to do; not the REST envelope's label and code, which mean something in
an API response, and not a traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

from tests.cli_live.live import clean_environment, free_port, stepline_command
from tests.store.databases import (
    blocking,
    create_database,
    database_url,
    drop_database,
    postgres_url,
    unique_name,
)

FLOWS = """\
from stepline import WorkflowEntrypoint


class Present(WorkflowEntrypoint):
    async def run(self, event, step):
        return None
"""


def _stepline(
    *args: str, cwd: Path | None = None, port: int | None = None
) -> subprocess.CompletedProcess[str]:
    if args[0] == "serve":
        args = (*args, "--port", str(port or free_port()))
    return subprocess.run(
        [*stepline_command(), *args],
        capture_output=True,
        text=True,
        env=clean_environment(),
        cwd=cwd,
        timeout=60,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The error line, once it is known to be the only output and no API label."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    assert "[code:" not in line
    assert "workflows.api.error" not in line
    return line


@pytest.mark.parametrize(
    "command", [("serve",), ("worker",), ("tokens", "create", "--account", "acct")]
)
def test_a_file_that_is_not_a_database(tmp_path: Path, command: tuple[str, ...]) -> None:
    path = tmp_path / "notes.sqlite3"
    path.write_bytes(b"not a database, just notes\n" * 200)

    line = _one_line(_stepline(*command, "--database", f"sqlite:///{path}"))

    assert line.startswith(f"error: cannot open the SQLite database {path}: ")
    assert "file is not a database" in line
    assert "a path with no file yet to start a new one" in line  # what to do


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_postgresql_that_does_not_answer(command: str) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://stepline:s3cret@127.0.0.1:{port}/stepline"

    line = _one_line(_stepline(command, "--database", url))

    assert f"cannot connect to PostgreSQL at postgresql://stepline:***@127.0.0.1:{port}/" in line
    assert "connection refused" in line.lower()
    assert "check that PostgreSQL is running" in line
    assert "s3cret" not in line


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
@pytest.mark.parametrize("password", ["pa/ss", "p?w", "p#w", "p@w", "12/34"])
def test_a_postgresql_password_that_is_not_percent_encoded(command: str, password: str) -> None:
    """asyncpg read a part of it as the port (a traceback with it in the message) or as the
    host (``12/34``: host stepline, port 12), and the URL shown held part of it."""
    url = f"postgresql://stepline:{password}@127.0.0.1:{free_port()}/stepline"

    line = _one_line(_stepline(command, "--database", url))

    assert line.startswith(
        "error: cannot use the PostgreSQL URL postgresql://stepline:***@127.0.0.1:"
    )
    assert "must be percent-encoded in the URL" in line
    assert password not in line
    assert "/ss" not in line and "w@" not in line and "/34" not in line


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_a_postgresql_port_past_65535(command: str) -> None:
    # The socket's OverflowError came out of migrate as a traceback; serve and worker, on
    # uvloop, tried port 463 (65999 modulo 65536).
    url = "postgresql://stepline:s3cret@127.0.0.1:65999/stepline"

    line = _one_line(_stepline(command, "--database", url))

    assert line == (
        "error: cannot use the PostgreSQL URL postgresql://stepline:***@127.0.0.1:65999/stepline: "
        "port 65999 is past 65535; correct the URL"
    )


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("pool_sise=5", 'unrecognized configuration parameter "pool_sise"'),
        ("statement_timeout=soon", 'invalid value for parameter "statement_timeout"'),
    ],
)
def test_a_postgresql_query_parameter_refused_as_a_setting(
    command: str, query: str, said: str
) -> None:
    # asyncpg sends what it does not know as a server setting; PostgreSQL's refusal at login
    # came out as a traceback.
    url = urlunparse(urlparse(postgres_url())._replace(query=query))

    line = _one_line(_stepline(command, "--database", url))

    assert line.startswith("error: cannot use the PostgreSQL URL postgresql://")
    assert f"PostgreSQL refused a parameter of its query as a server setting ({said}" in line
    assert line.endswith("; correct the URL")


@pytest.mark.postgres
def test_postgresql_that_does_not_let_the_user_create_the_tables() -> None:
    server = postgres_url()
    name = unique_name("stepline_ro")
    blocking(create_database(server, name))
    blocking(_as_server(server, f"CREATE ROLE {name} LOGIN PASSWORD 'pw-{name}'"))
    try:
        at = urlparse(database_url(server, name))
        url = urlunparse(at._replace(netloc=f"{name}:pw-{name}@{at.hostname}:{at.port or 5432}"))

        line = _one_line(_stepline("serve", "--database", url))
    finally:
        blocking(drop_database(server, name))
        blocking(_as_server(server, f"DROP ROLE IF EXISTS {name}"))

    assert "cannot set up Stepline's tables in PostgreSQL database" in line
    assert "permission denied for schema public" in line
    assert f"with stepline migrate --database postgresql://<owner>@{at.hostname}:" in line
    assert f"GRANT CREATE ON SCHEMA public TO {name}" in line
    assert f"pw-{name}" not in line


async def _as_server(server: str, sql: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_declared_class_that_does_not_exist(tmp_path: Path, command: str) -> None:
    (tmp_path / "present_flows.py").write_text(FLOWS)
    config = tmp_path / "stepline.toml"
    config.write_text(
        '[[workflows]]\nname = "absent"\nclass_name = "Absent"\nscript_name = "present_flows"\n'
    )
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"

    line = _one_line(_stepline(command, "--config", str(config), "--database", database))

    assert line == (
        f"error: {config}: workflow 'absent': module 'present_flows' has no class 'Absent'"
    )


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_declared_schedules_past_the_account_limit_name_the_file(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "present_flows.py").write_text(FLOWS)
    crons = ", ".join(f'"{minute} {hour} * * *"' for minute in range(51) for hour in (1, 2))
    config = tmp_path / "stepline.toml"
    config.write_text(
        '[[workflows]]\nname = "present"\nclass_name = "Present"\n'
        f'script_name = "present_flows"\nschedules = [{crons}]\n'
    )
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"

    line = _one_line(_stepline(command, "--config", str(config), "--database", database))

    assert line == f"error: {config}: workflow 'present': an account may have at most 100 schedules"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_config_that_is_a_folder_or_not_text(tmp_path: Path, command: str) -> None:
    # --config . (the folder of the stepline.toml) was an IsADirectoryError traceback.
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"
    binary = tmp_path / "stepline.sqlite3.toml"
    binary.write_bytes(b"\xff\xfe not text")

    folder = _one_line(_stepline(command, "--config", str(tmp_path), "--database", database))
    not_text = _one_line(_stepline(command, "--config", str(binary), "--database", database))

    assert folder == (f"error: {tmp_path}: is a folder (pass --config path/to/stepline.toml)")
    assert not_text.startswith(f"error: {binary}: not valid TOML: not UTF-8 text")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        # Two slashes: "data" was read as a host and dropped, and /s.sqlite3 made at the root.
        (
            "sqlite://data/s.sqlite3",
            "error: 'sqlite://data/s.sqlite3' names a host, 'data', and SQLite has none: "
            "did you mean sqlite:///data/s.sqlite3 (three slashes before a relative path, "
            "four before an absolute one)?",
        ),
        # A query was made part of the file's name, "s.sqlite3?mode=ro".
        (
            "sqlite:///s.sqlite3?mode=ro",
            "error: a SQLite URL takes no query (what follows its '?'): name the file alone, "
            "sqlite:///s.sqlite3",
        ),
    ],
)
def test_a_sqlite_url_misread_as_another_file_is_refused(
    tmp_path: Path, url: str, said: str
) -> None:
    line = _one_line(_stepline("migrate", "--database", url, cwd=tmp_path))

    assert line == said
    assert list(tmp_path.iterdir()) == []
    assert not Path("/s.sqlite3").exists()


def test_an_unknown_key_of_a_declared_workflow_is_said_with_the_keys_it_takes(
    tmp_path: Path,
) -> None:
    # The README shows five keys; the other three (step_limit, the retentions) were found
    # only in the source.
    config = tmp_path / "stepline.toml"
    config.write_text(
        '[[workflows]]\nname = "c"\nclass_name = "C"\nscript_name = "flows"\nretention = "1 day"\n'
    )

    line = _one_line(_stepline("serve", "--config", str(config), cwd=tmp_path))

    assert line == (
        f"error: {config}: workflow #1: unknown key(s) retention (a workflow takes name, "
        "class_name, script_name, concurrency, schedules, step_limit, success_retention, "
        "error_retention)"
    )


def test_a_bad_account_for_a_token_is_said_without_the_api_label(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"

    line = _one_line(_stepline("tokens", "create", "--account", "bad name", "--database", database))

    assert line == "error: account id 'bad name' must be 1-64 letters, digits, '-' or '_'"


def _serve_on_a_port_taken(
    database: str, host: str = "127.0.0.1"
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``stepline serve`` on a port that another socket listens on; and that port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    taken = socket.create_server((host, 0), family=family)
    port = taken.getsockname()[1]
    try:
        return _stepline("serve", "--database", database, "--host", host, port=port), port
    finally:
        taken.close()


@pytest.mark.parametrize(("host", "shown"), [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")])
def test_a_port_another_server_listens_on(tmp_path: Path, host: str, shown: str) -> None:
    """Uvicorn found it once Stepline had opened the database and registered the workflows:
    its two log lines, and its own exit status (3). An IPv6 address is in brackets, as in a
    URL: "::1:8787" read as an address of its own."""
    database = tmp_path / "stepline.sqlite3"

    done, port = _serve_on_a_port_taken(f"sqlite:///{database}", host)

    line = _one_line(done)
    assert line == (
        f"error: cannot listen on {shown}:{port}: Address already in use: another server "
        "listens there (stop it, or give another --port)"
    )
    assert not database.exists()


def test_a_database_url_refused_is_said_before_a_port_taken(tmp_path: Path) -> None:
    """As before the port was tried ahead of uvicorn: the URL is refused without opening
    anything, and the address, found taken, hid it."""
    done, _ = _serve_on_a_port_taken("mysql://db/app")

    assert _one_line(done) == (
        "error: unsupported database URL 'mysql://db/app': use sqlite:///path or "
        "postgresql://host/database"
    )
