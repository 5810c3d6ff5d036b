"""``instances create-batch``: input formats, chunks of 100, created versus skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepline.cli import batch

from .conftest import CliInvoker, FakeServer
from .fake_api import failure_text


def batch_requests(api: FakeServer) -> list[list[dict[str, object]]]:
    return [r.body for r in api.state.requests if r.path.endswith("/instances/batch")]


def test_jsonl_file_is_sent_in_chunks_of_100(
    cli: CliInvoker, api: FakeServer, tmp_path: Path
) -> None:
    source = tmp_path / "orders.jsonl"
    lines = [json.dumps({"instance_id": f"bulk-{n}", "params": {"n": n}}) for n in range(250)]
    source.write_text("\n".join(lines) + "\n\n")

    result = cli("instances", "create-batch", "checkout", str(source))

    assert result.exit_code == 0, result.output
    assert 'Created 250 instances of "checkout"; skipped 0' in result.stdout
    sent = batch_requests(api)
    assert sorted(len(chunk) for chunk in sent) == [50, 100, 100]
    assert {item["instance_id"] for chunk in sent for item in chunk} == {
        f"bulk-{n}" for n in range(250)
    }
    assert api.state.instances["checkout"]["bulk-249"]["params"] == {"n": 249}


def test_json_array_from_stdin_counts_existing_ids_as_skipped(
    cli: CliInvoker, api: FakeServer
) -> None:
    items = [{"instance_id": "order-1"}, {"instance_id": "order-2"}, {"instance_id": "new-1"}]

    result = cli("instances", "create-batch", "checkout", "-", input=json.dumps(items))

    assert result.exit_code == 0, result.output
    assert 'Created 1 instance of "checkout"; skipped 2 whose id already exists.' in result.stdout


def test_json_output_lists_what_was_created(cli: CliInvoker) -> None:
    items = "\n".join(json.dumps({"instance_id": i}) for i in ("order-1", "a", "b"))

    result = cli("instances", "create-batch", "checkout", "--json", input=items)

    assert result.exit_code == 0, result.output
    assert [i["id"] for i in json.loads(result.stdout)] == ["a", "b"]


def test_params_only_wraps_each_item(cli: CliInvoker, api: FakeServer) -> None:
    result = cli(
        "instances",
        "create-batch",
        "checkout",
        "--params-only",
        input='[{"params": "is just a key here"}, 7]',
    )

    assert result.exit_code == 0, result.output
    assert batch_requests(api) == [[{"params": {"params": "is just a key here"}}, {"params": 7}]]


def test_an_item_that_is_not_a_create_body_is_refused_before_sending(
    cli: CliInvoker, api: FakeServer
) -> None:
    result = cli(
        "instances", "create-batch", "checkout", input='{"instance_id": "a"}\n{"cart": 1}\n'
    )

    assert result.exit_code == 1
    assert "line 2: 'cart' is not a create-body key" in result.stderr
    assert "--params-only" in result.stderr
    assert batch_requests(api) == []


def test_a_bad_instance_id_is_refused_before_sending(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("instances", "create-batch", "checkout", input='[{"instance_id": "-bad"}]')

    assert result.exit_code == 1
    assert "item 1: instance id '-bad'" in result.stderr
    assert batch_requests(api) == []


def test_bad_json_names_the_line(cli: CliInvoker) -> None:
    result = cli("instances", "create-batch", "checkout", input='{"instance_id": "a"}\n{oops\n')

    assert result.exit_code == 1
    assert result.stderr.startswith("error: line 2 is not valid JSON")


def test_empty_input_is_an_error(cli: CliInvoker) -> None:
    result = cli("instances", "create-batch", "checkout", input="\n")

    assert result.exit_code == 1
    assert "no instances to create" in result.stderr


def test_missing_file_is_an_error(cli: CliInvoker, tmp_path: Path) -> None:
    result = cli("instances", "create-batch", "checkout", str(tmp_path / "absent.jsonl"))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read")


def test_rate_limited_chunks_are_retried(
    cli: CliInvoker, api: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "RATE_LIMIT_BACKOFF_SECONDS", 0.01)
    slow_down = failure_text(971, "rate limited")
    api.state.canned_failures.append((429, slow_down))

    result = cli("instances", "create-batch", "checkout", input='{"instance_id": "r-1"}')

    assert result.exit_code == 0, result.output
    assert "Created 1 instance" in result.stdout
    assert len(batch_requests(api)) == 2


def test_a_failed_chunk_stops_the_batch_and_says_how_far_it_got(
    cli: CliInvoker, api: FakeServer
) -> None:
    lines = "\n".join(json.dumps({"instance_id": f"f-{n}"}) for n in range(300))
    broken = failure_text(10001, "workflows.api.error.internal_server")
    api.state.canned_failures.append((500, broken))

    result = cli("instances", "create-batch", "checkout", "--concurrency", "1", input=lines)

    assert result.exit_code == 1
    assert result.stdout == ""  # nothing went through: no line that reads as a success
    # One line: the error with its code, then how much of the batch it cost.
    [line] = result.stderr.splitlines()
    assert line.startswith("error: workflows.api.error.internal_server [code: 10001]")
    assert line.endswith("(300 of 300 items were not created)")
    assert len(batch_requests(api)) == 1


def test_read_create_bodies_accepts_both_formats() -> None:
    as_array = batch.read_create_bodies('[{"params": 1}, {"instance_id": "x"}]')
    as_lines = batch.read_create_bodies('{"params": 1}\n\n{"instance_id": "x"}\n')

    assert as_array == as_lines == [{"params": 1}, {"instance_id": "x"}]
