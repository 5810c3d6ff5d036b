"""User errors: one line on stderr, exit status 1, no traceback. And help that shows examples."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from typer.main import get_command

from stepline.cli.main import app

from .conftest import CliInvoker, FakeServer
from .fake_api import failure_text


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_api_error_prints_key_code_and_detail(cli: CliInvoker) -> None:
    result = cli("instances", "describe", "checkout", "nope")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert_one_line_error(
        result.stderr,
        "error: workflows.api.error.instance.not_found [code: 10400] \u2013 "
        'instance "nope" does not exist',
    )


def test_bad_json_in_payload(cli: CliInvoker, api: FakeServer) -> None:
    requests_before = len(api.state.requests)

    result = cli("instances", "send-event", "checkout", "order-3", "--type", "t", "--payload", "{x")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "--payload is not valid JSON")
    assert len(api.state.requests) == requests_before


def test_bad_json_in_trigger_params(cli: CliInvoker) -> None:
    result = cli("workflows", "trigger", "checkout", "not json")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "PARAMS is not valid JSON")


def test_unreachable_server(cli: CliInvoker) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = cli("workflows", "list", "--api-url", f"http://127.0.0.1:{port}/client/v4")

    assert result.exit_code == 1
    # httpx's own words for a refused connection were "All connection attempts failed".
    assert_one_line_error(
        result.stderr,
        f"cannot reach http://127.0.0.1:{port}/client/v4: connection refused",
        "is a server running there?",
    )


def test_https_to_a_server_of_plain_http(cli: CliInvoker) -> None:
    # A server that answers what any plain HTTP server answers a TLS hello.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    answering = threading.Thread(target=answer, daemon=True)
    answering.start()
    with server:
        result = cli("workflows", "list", "--api-url", f"https://127.0.0.1:{port}/client/v4")
        answering.join(5)

    assert result.exit_code == 1
    # It said "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)".
    assert_one_line_error(
        result.stderr,
        f"cannot reach https://127.0.0.1:{port}/client/v4: it does not answer TLS",
        "then use http://",
    )


def test_missing_account_id(cli: CliInvoker) -> None:
    result = cli("workflows", "list", STEPLINE_ACCOUNT_ID="")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "no account id")


def test_wrong_token(cli: CliInvoker) -> None:
    result = cli("workflows", "list", "--token", "wrong")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "Authentication error [code: 10000]")


def test_malformed_answer(cli: CliInvoker, api: FakeServer) -> None:
    api.state.canned_failures.append((502, "<html>bad gateway</html>"))

    result = cli("workflows", "list")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "malformed response", "502", "bad gateway")


def test_server_error_with_success_false(cli: CliInvoker, api: FakeServer) -> None:
    body = failure_text(10001, "workflows.api.error.internal_server")
    api.state.canned_failures.append((500, body))

    result = cli("workflows", "describe", "checkout")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "workflows.api.error.internal_server [code: 10001]")


def test_bad_date(cli: CliInvoker) -> None:
    result = cli("instances", "list", "checkout", "--date-start", "yesterday")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "--date-start 'yesterday' is not a date")


def test_a_date_start_after_the_date_end(cli: CliInvoker, api: FakeServer) -> None:
    # Sent, the server found nothing, and "No instances found" was all the user was told.
    requests_before = len(api.state.requests)

    result = cli(
        "instances", "list", "checkout", "--date-start", "2026-02-01", "--date-end", "2026-01-31"
    )

    assert result.exit_code == 1
    assert_one_line_error(
        result.stderr,
        "--date-start (2026-02-01T00:00:00.000Z) is after --date-end (2026-01-31T23:59:59.999Z)",
    )
    assert len(api.state.requests) == requests_before
    same_day = cli(
        "instances", "list", "checkout", "--date-start", "2026-01-31", "--date-end", "2026-01-31"
    )
    assert same_day.exit_code == 0, same_day.output


def test_latest_of_a_workflow_without_instances(cli: CliInvoker) -> None:
    result = cli("instances", "pause", "nightly-report", "latest")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, 'workflow "nightly-report" has no instances')


def test_restart_step_flags_need_a_step_name(cli: CliInvoker) -> None:
    result = cli("instances", "restart", "checkout", "order-2", "--from-step-count", "2")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "need --from-step-name")


def test_delete_without_ids(cli: CliInvoker) -> None:
    result = cli("instances", "delete", "checkout")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "at least one instance id")


def _leaf_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # Typer ships its own copy of Click, so groups are recognised by having subcommands.
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return [path]
    return [
        leaf for name, sub in subcommands.items() for leaf in _leaf_commands(sub, (*path, name))
    ]


LEAVES = _leaf_commands(get_command(app))


def test_every_wrangler_command_is_there() -> None:
    paths = {" ".join(path) for path in LEAVES}

    assert {
        "workflows list",
        "workflows describe",
        "workflows delete",
        "workflows trigger",
        "instances list",
        "instances describe",
        "instances send-event",
        "instances pause",
        "instances resume",
        "instances terminate",
        "instances restart",
        "instances delete",
        "instances terminate-all",
        "instances create-batch",
    } <= paths


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_help_shows_an_example_and_the_connection_options(
    cli: CliInvoker, path: tuple[str, ...]
) -> None:
    result = cli(*path, "--help")

    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout
    examples = [line.strip() for line in result.stdout.splitlines()]
    assert any(f"stepline {' '.join(path)}" in line for line in examples)
    if path[0] in ("workflows", "instances"):
        for option in ("--api-url", "--token", "--account-id", "--json"):
            assert option in result.stdout


def test_completion_is_offered(cli: CliInvoker) -> None:
    result = cli("--help")

    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_help_names_the_config_files_table_as_written(cli: CliInvoker, command: str) -> None:
    # Rich markup took "[[workflows]]" for a style tag and showed "[]".
    result = cli(command, "--help")

    assert result.exit_code == 0, result.output
    assert "[[workflows]]" in " ".join(result.stdout.split())


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize(
    ("limit", "fragment"), [("lots", "is not a size"), ("0", "must be at least 1 byte")]
)
def test_a_storage_limit_that_is_not_a_size(
    cli: CliInvoker, command: str, limit: str, fragment: str
) -> None:
    result = cli(command, "--storage-limit", limit)

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "--storage-limit", repr(limit), fragment)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_log_level_that_is_not_one(cli: CliInvoker, command: str) -> None:
    result = cli(command, "--log-level", "loud")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "--log-level must be one of", "'loud'")


def test_a_token_made_in_a_new_database_says_so(cli: CliInvoker, tmp_path: Any) -> None:
    database = f"sqlite:///{tmp_path}/not-the-servers.sqlite3"

    made = cli("tokens", "create", "--account", "acct", "--database", database)
    again = cli("tokens", "create", "--account", "acct", "--database", database)

    assert made.exit_code == 0 and again.exit_code == 0
    assert len(made.stdout.split()) == 1 and made.stdout != again.stdout  # the token alone
    assert made.stderr.startswith(f"note: {tmp_path}/not-the-servers.sqlite3 did not exist")
    assert again.stderr == ""  # the database was there: nothing to say


def test_a_request_without_a_token_says_how_to_give_one(cli: CliInvoker, api: FakeServer) -> None:
    missing = "Missing X-Auth-Key, X-Auth-Email or Authorization headers"
    api.state.canned_failures.append((400, failure_text(9106, missing)))

    result = cli("workflows", "list", STEPLINE_API_TOKEN="")

    assert result.exit_code == 1
    assert_one_line_error(
        result.stderr, f"{missing} [code: 9106]", "pass --token or set STEPLINE_API_TOKEN"
    )


def test_a_synchronous_mode_that_is_not_one(cli: CliInvoker) -> None:
    # SqliteStore's ValueError came out of serve as a traceback.
    result = cli("serve", "--synchronous", "fast")

    assert result.exit_code == 1
    assert_one_line_error(
        result.stderr, "--synchronous must be one of FULL, NORMAL, EXTRA, OFF, not 'fast'"
    )


@pytest.mark.parametrize("port", ["0", "83737"])
def test_a_port_that_is_not_one(cli: CliInvoker, port: str, tmp_path: Any) -> None:
    # 83737 was taken modulo 65536: the server listened on 18201 and said 83737. (The missing
    # config ends a serve that took the port at once.)
    result = cli("serve", "--port", port, "--config", f"{tmp_path}/missing.toml")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"--port must be 1 to 65535, not {port}")


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("concurrency", ["0", "-1"])
def test_a_concurrency_below_one(
    cli: CliInvoker, command: str, concurrency: str, tmp_path: Any
) -> None:
    # Taken, it started an engine that ran no instance: every one stayed queued.
    result = cli(command, "--concurrency", concurrency, "--config", f"{tmp_path}/missing.toml")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"--concurrency must be at least 1, not {concurrency}")


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("lease", ["0", "50 ms"])
def test_a_lease_that_lapses_at_once(
    cli: CliInvoker, command: str, lease: str, tmp_path: Any
) -> None:
    # Taken, it was a traceback (the engine's ValueError); before that check, an engine whose
    # runs stopped as they started and whose scheduler read the database without a pause.
    result = cli(command, "--lease", lease, "--config", f"{tmp_path}/missing.toml")

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"--lease must be at least 100 ms, not {lease!r}")


@pytest.mark.parametrize(
    ("api_url", "fragment"),
    [
        ("http://127.0.0.1:87877/client/v4", "Port out of range 0-65535"),
        ("http://127.0.0.1:8787x/client/v4", "Port could not be cast to integer"),
        ("http://[::1/client/v4", "Invalid IPv6 URL"),
        ("http:///client/v4", "names no host"),
    ],
)
def test_an_api_url_that_is_not_one(cli: CliInvoker, api_url: str, fragment: str) -> None:
    # httpx's InvalidURL and the socket's OverflowError came out as tracebacks.
    result = cli("workflows", "list", "--api-url", api_url)

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"--api-url {api_url!r}", fragment)


@pytest.mark.parametrize(
    "api_url",
    [
        "http://admin:s3cret@127.0.0.1:87877/client/v4",
        "ftp://admin:s3cret@127.0.0.1/client/v4",
        # Cut at the "/", the parser took "s3c" for a port and said so.
        "http://admin:s3c/ret@127.0.0.1:8787/client/v4",
    ],
)
def test_an_api_url_error_hides_its_password(cli: CliInvoker, api_url: str) -> None:
    result = cli("workflows", "list", "--api-url", api_url)

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "--api-url", "admin:***@127.0.0.1")
    assert "s3c" not in result.stderr


@pytest.mark.parametrize("token", ["t\u00f6ken", "token\n"])
def test_a_token_no_header_can_carry(cli: CliInvoker, api: FakeServer, token: str) -> None:
    # A non-ASCII one was a UnicodeEncodeError traceback; a line break, "cannot reach".
    requests_before = len(api.state.requests)

    result = cli("workflows", "list", "--token", token)

    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "the API token holds a character", "--token")
    assert token not in result.stderr
    assert len(api.state.requests) == requests_before
