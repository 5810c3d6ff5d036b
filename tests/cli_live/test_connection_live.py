"""How the CLI finds the server: flags, ``STEPLINE_*``, wrangler's ``CLOUDFLARE_*``; and the
one-line errors when it cannot, or may not."""

from __future__ import annotations

from .live import Cli, LiveServer, free_port


def test_flags_alone(live_server: LiveServer) -> None:
    ran = Cli().run(
        "workflows",
        "trigger",
        "connect",
        '{"numbers": [1]}',
        "--id",
        "via-flags",
        "--api-url",
        live_server.api_url,
        "--token",
        live_server.token,
        "--account-id",
        live_server.account_id,
    )

    assert ran.ok().stdout == '🚀 Workflow instance "via-flags" has been queued successfully\n'


def test_stepline_variables(live_server: LiveServer) -> None:
    live_server.create("connect", "via-stepline-env")

    details = Cli(env=live_server.stepline_env).run(
        "instances", "describe", "connect", "via-stepline-env", "--json"
    )

    assert details.json()["trigger"] == {"source": "api"}


def test_cloudflare_variables_as_wrangler_reads_them(live_server: LiveServer) -> None:
    env = {
        "CLOUDFLARE_API_BASE_URL": live_server.api_url,
        "CLOUDFLARE_API_TOKEN": live_server.token,
        "CLOUDFLARE_ACCOUNT_ID": live_server.account_id,
    }

    ran = Cli(env=env).run("workflows", "trigger", "connect", "--id", "via-cloudflare-env")
    # wrangler's spelling of the instances commands works too.
    listed = Cli(env=env).run("workflows", "instances", "list", "connect", "--json")

    assert ran.ok().stdout == (
        '🚀 Workflow instance "via-cloudflare-env" has been queued successfully\n'
    )
    assert "via-cloudflare-env" in [item["id"] for item in listed.json()]


def test_flags_win_over_variables(live_server: LiveServer) -> None:
    wrong = {
        "STEPLINE_API_URL": f"http://127.0.0.1:{free_port()}/client/v4",
        "STEPLINE_API_TOKEN": "wrong-token",
        "STEPLINE_ACCOUNT_ID": "wrong-account",
    }

    ran = Cli(env=wrong).run(
        "workflows",
        "describe",
        "connect",
        "--json",
        "--api-url",
        live_server.api_url,
        "--token",
        live_server.token,
        "--account-id",
        live_server.account_id,
    )

    assert ran.json()["name"] == "connect"


def test_wrong_token(live_server: LiveServer) -> None:
    env = {**live_server.stepline_env, "STEPLINE_API_TOKEN": "not-the-token"}

    line = Cli(env=env).run("workflows", "list").failed(10000)

    assert line == "error: Authentication error [code: 10000]"


def test_no_token(live_server: LiveServer) -> None:
    env = {k: v for k, v in live_server.stepline_env.items() if k != "STEPLINE_API_TOKEN"}

    Cli(env=env).run("workflows", "list").failed(9106)


def test_no_account(live_server: LiveServer) -> None:
    env = {k: v for k, v in live_server.stepline_env.items() if k != "STEPLINE_ACCOUNT_ID"}

    line = Cli(env=env).run("workflows", "list").failed()

    assert "no account id" in line


def test_nobody_listening() -> None:
    url = f"http://127.0.0.1:{free_port()}/client/v4"

    line = Cli().run("workflows", "list", "--api-url", url, "--account-id", "a").failed()

    assert line.startswith(f"error: cannot reach {url}")


def test_url_without_the_api_prefix_says_what_is_missing(live_server: LiveServer) -> None:
    env = {**live_server.stepline_env, "STEPLINE_API_URL": f"http://127.0.0.1:{live_server.port}"}

    line = Cli(env=env).run("workflows", "list").failed(7003)

    assert "/client/v4" in line
