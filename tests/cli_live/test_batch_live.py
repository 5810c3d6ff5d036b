"""``stepline instances create-batch`` against a real server: formats, skips, errors, and 10,000
instances with the progress bar on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from .live import (
    Cli,
    LiveServer,
    clean_environment,
    start_server,
    stepline_command,
    table_ids,
)

# --- small batches on the shared server ----------------------------------------------------


def test_jsonl_file_then_again_skips_every_id(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "orders.jsonl"
    lines = [json.dumps({"instance_id": f"jl-{n}", "params": {"numbers": [n]}}) for n in range(5)]
    source.write_text("\n".join(lines) + "\n")

    first = cli.run("instances", "create-batch", "batch", str(source)).ok()
    second = cli.run("instances", "create-batch", "batch", str(source)).ok()

    assert first.stdout == '✅ Created 5 instances of "batch"; skipped 0 whose id already exists.\n'
    assert second.stdout == (
        '✅ Created 0 instances of "batch"; skipped 5 whose id already exists.\n'
    )
    # No terminal, no progress bar: stderr stays clean for scripts.
    assert first.stderr == second.stderr == ""


def test_json_array_on_stdin_with_json_output(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("batch", "arr-0")
    items = [{"instance_id": f"arr-{n}", "params": {"numbers": [n, n]}} for n in range(3)]

    created = cli.run("instances", "create-batch", "batch", "-", "--json", stdin=json.dumps(items))

    result = created.json()
    assert [item["id"] for item in result] == ["arr-1", "arr-2"]
    assert {item["status"] for item in result} == {"queued"}
    assert live_server.wait_for_status("batch", "arr-2")["output"] == {"total": 4}


def test_params_only_lets_the_server_choose_ids(cli: Cli, live_server: LiveServer) -> None:
    stdin = '{"numbers": [40, 2]}\n{"numbers": [1]}\n'

    result = cli.run(
        "instances", "create-batch", "batch", "--params-only", "--json", stdin=stdin
    ).json()

    assert len(result) == 2
    outputs = [live_server.wait_for_status("batch", item["id"])["output"] for item in result]
    assert sorted(o["total"] for o in outputs) == [1, 42]


def test_a_batch_made_in_one_millisecond_lists_in_the_servers_order(
    cli: Cli, live_server: LiveServer
) -> None:
    stdin = "".join(json.dumps({"instance_id": f"tie-{n}"}) + "\n" for n in range(6))
    cli.run("instances", "create-batch", "ties", "-", stdin=stdin).ok()
    with live_server.http() as http:
        served = [item["id"] for item in http.get("/workflows/ties/instances").json()["result"]]

    newest_first, oldest_first = cli.run_many(
        ("instances", "list", "ties"), ("instances", "list", "ties", "--reverse")
    )

    # Sorting by created_on alone must not shuffle instances that share a millisecond.
    assert sorted(served) == [f"tie-{n}" for n in range(6)]
    assert table_ids(newest_first.ok().stdout) == served
    assert table_ids(oldest_first.ok().stdout) == served[::-1]


def test_bad_input_is_refused_before_anything_is_sent(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"instance_id": "never-1"}\n{"instance_id": \n')

    bad_line, bad_id, missing = cli.run_many(
        ("instances", "create-batch", "batch", str(source)),
        ("instances", "create-batch", "batch", "-"),
        ("instances", "create-batch", "batch", str(tmp_path / "nope.jsonl")),
        stdin='{"instance_id": "has space"}\n',
    )
    listed = cli.run("instances", "list", "batch", "--per-page", "100", "--json").json()

    assert bad_line.failed().startswith("error: line 2 is not valid JSON")
    assert bad_id.failed().startswith("error: line 1: ")
    assert "cannot read" in missing.failed()
    assert "never-1" not in [item["id"] for item in listed]


def test_unknown_workflow(cli: Cli) -> None:
    ran = cli.run("instances", "create-batch", "no-such-workflow", "-", stdin='{"params": 1}\n')

    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert ran.stdout == ""  # nothing went through: no line that reads as a success
    assert ran.stderr == (
        "error: workflows.api.error.workflow.not_found [code: 10200] – "
        "workflow 'no-such-workflow' does not exist (1 of 1 items were not created)\n"
    )


# --- 10,000 instances ----------------------------------------------------------------------

BULK = 10_000


@pytest.fixture(scope="module")
def bulk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of its own, so the 10,000 instances neither slow nor crowd the other tests.

    The instances wait for an event (for an hour), as orders awaiting approval would: the
    engine starts each one, then it sits, and the time measured is the creating.
    """
    yield from start_server(tmp_path_factory.mktemp("cli-live-bulk"), {"bulk": "ApprovalWorkflow"})


def run_in_terminal(
    args: list[str], env: Mapping[str, str], *, timeout: float = 120
) -> tuple[int, str]:
    """Run ``args`` with stdin/stdout/stderr on a pseudo-terminal 120 columns wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=dict(env))
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"{args} did not finish in {timeout} s")
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                break
            if not data:
                break
            chunks.append(data)
    finally:
        returncode = proc.wait(timeout=30)
        os.close(master)
    return returncode, b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.slow
def test_ten_thousand_from_jsonl_then_as_a_json_array(
    bulk_server: LiveServer, tmp_path: Path
) -> None:
    items = [{"instance_id": f"bulk-{n:05d}", "params": {"n": n}} for n in range(BULK)]
    jsonl = tmp_path / "bulk.jsonl"
    jsonl.write_text("".join(json.dumps(item) + "\n" for item in items))
    array = tmp_path / "bulk.json"
    array.write_text(json.dumps(items))
    env = {**clean_environment(), **bulk_server.stepline_env, "TERM": "xterm-256color"}

    started = time.monotonic()
    returncode, screen = run_in_terminal(
        [*stepline_command(), "instances", "create-batch", "bulk", str(jsonl)], env
    )
    first_seconds = time.monotonic() - started

    assert returncode == 0, screen
    # Rich drew a live progress bar (it redraws in place with carriage returns and ends full).
    assert "Creating instances of bulk" in screen
    assert f"{BULK}/{BULK}" in screen
    assert "\r" in screen or "\x1b[" in screen
    assert f'✅ Created {BULK} instances of "bulk"; skipped 0 whose id already exists.' in screen

    started = time.monotonic()
    again = Cli(env=bulk_server.stepline_env).run(
        "instances", "create-batch", "bulk", str(array), timeout=120
    )
    second_seconds = time.monotonic() - started

    assert again.ok().stdout == (
        f'✅ Created 0 instances of "bulk"; skipped {BULK} whose id already exists.\n'
    )
    with bulk_server.http() as http:
        listed = http.get("/workflows/bulk/instances", params={"per_page": 1}).json()
    assert listed["result_info"]["total_count"] == BULK
    print(f"\ncreate-batch {BULK}: {first_seconds:.1f} s; all skipped: {second_seconds:.1f} s")
    # Generous bounds for a loaded 2-core CI machine; a quiet one takes a few seconds.
    assert first_seconds < 60
    assert second_seconds < 30
