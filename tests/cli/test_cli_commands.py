"""Every command through Typer's runner: what it prints, what it sends, and its --json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepline.client.http import HttpClient, ServerUnreachable

from .conftest import CliInvoker, FakeServer
from .fake_api import ACCOUNT_ID, failure_text

PREFIX = f"/accounts/{ACCOUNT_ID}/workflows"


def last_request(api: FakeServer) -> tuple[str, str, dict[str, str], object]:
    request = api.state.requests[-1]
    return request.method, request.path, request.query, request.body


# --- workflows ------------------------------------------------------------------------------


def test_workflows_list_shows_a_table_newest_first(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("workflows", "list")

    assert result.exit_code == 0, result.output
    assert "Showing 2 workflows from page 1:" in result.stdout
    assert result.stdout.index("nightly-report") < result.stdout.index("checkout")
    assert "1 complete, 1 errored, 1 running" in result.stdout
    assert last_request(api)[2] == {"page": "1", "per_page": "10"}


def test_workflows_list_in_80_columns_cuts_no_name_short(cli: CliInvoker, api: FakeServer) -> None:
    # Names are what the next command is given: they were cut to "QuarterlyRe…".
    api.state.add_workflow("quarterly-revenue-reconciliation", created_at=120)

    result = cli("workflows", "list", COLUMNS="80")

    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    rows = [line.split("│")[1:4] for line in result.stdout.splitlines() if line.startswith("│")]
    columns = ["".join(cell.strip() for cell in cells) for cells in zip(*rows, strict=True)]
    for whole in (
        "quarterly-revenue-reconciliation",
        "quarterly-revenue-reconciliation-script",
        "QuarterlyRevenueReconciliation",
    ):
        assert any(whole in column for column in columns), columns


def test_workflows_list_json_prints_the_result(cli: CliInvoker) -> None:
    result = cli("workflows", "list", "--json", "--per-page", "1", "--page", "2")

    assert result.exit_code == 0, result.output
    assert [w["name"] for w in json.loads(result.stdout)] == ["nightly-report"]


def test_workflows_list_past_the_end_warns(cli: CliInvoker) -> None:
    result = cli("workflows", "list", "--page", "9")

    assert result.exit_code == 0
    assert "No workflows found on page 9." in result.stderr
    assert result.stdout == ""


def test_workflows_describe_shows_the_latest_version(cli: CliInvoker) -> None:
    result = cli("workflows", "describe", "checkout")

    assert result.exit_code == 0, result.output
    assert "checkout-script" in result.stdout
    assert "Latest Version" in result.stdout
    assert "ee2560fb-c4cf-4510-8b42-b4f1960cc467" in result.stdout


def test_workflows_describe_shows_schedules_and_settings(cli: CliInvoker, api: FakeServer) -> None:
    api.state.workflows["checkout"]["schedules"] = [
        {"cron": "0 * * * *", "next_instance": "2026-11-22T22:00:00.000Z"}
    ]
    api.state.version_settings["checkout"] = {
        "limits": {"steps": 500},
        "concurrency": {"limit": 5},
        "default_retention": {"success_retention": 172_800_000, "error_retention": 90_000},
    }

    result = cli("workflows", "describe", "checkout")

    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert any(line.startswith("Schedules 0 * * * * next 2026-11-22") for line in lines)
    assert "Step Limit 500" in lines
    assert "Concurrency at most 5 running" in lines
    assert "Keeps complete 2 days" in lines
    assert "Keeps errored 90,000 ms" in lines


def test_workflows_describe_json_adds_latest_version(cli: CliInvoker) -> None:
    result = cli("workflows", "describe", "checkout", "--json")

    described = json.loads(result.stdout)
    assert described["name"] == "checkout"
    assert described["latest_version"]["id"] == "ee2560fb-c4cf-4510-8b42-b4f1960cc467"


def test_workflows_delete(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("workflows", "delete", "nightly-report")

    assert result.exit_code == 0
    assert 'Workflow "nightly-report" removed successfully' in result.stdout
    assert "nightly-report" not in api.state.workflows


def test_trigger_sends_parsed_params_and_the_id(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("workflows", "trigger", "checkout", '{"cart": 7}', "--id", "order-7")

    assert result.exit_code == 0, result.output
    assert '🚀 Workflow instance "order-7" has been queued successfully' in result.stdout
    assert last_request(api) == (
        "POST",
        f"{PREFIX}/checkout/instances",
        {},
        {"instance_id": "order-7", "params": {"cart": 7}},
    )


def test_trigger_without_params_sends_an_empty_body(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("workflows", "trigger", "checkout", "--json")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "queued"
    assert last_request(api)[3] == {}


# --- instances: reading -----------------------------------------------------------------------


def test_instances_list_table_and_query(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("instances", "list", "checkout", "--status", "errored", "--per-page", "5")

    assert result.exit_code == 0, result.output
    assert "Showing 1 instance from page 1:" in result.stdout
    assert "order-2" in result.stdout
    assert "❌ Errored" in result.stdout
    assert last_request(api)[2] == {"status": "errored", "per_page": "5", "page": "1"}


def test_instances_list_reverse_and_json(cli: CliInvoker) -> None:
    newest_first = json.loads(cli("instances", "list", "checkout", "--json").stdout)
    oldest_first = json.loads(cli("instances", "list", "checkout", "--json", "--reverse").stdout)

    assert [i["id"] for i in newest_first] == ["order-3", "order-2", "order-1"]
    assert [i["id"] for i in oldest_first] == ["order-1", "order-2", "order-3"]


def test_instances_list_reverse_starts_from_the_oldest(cli: CliInvoker, api: FakeServer) -> None:
    # The newest page, turned round, was shown as "oldest first".
    result = cli("instances", "list", "checkout", "--json", "--reverse", "--per-page", "2")

    assert [i["id"] for i in json.loads(result.stdout)] == ["order-1", "order-2"]
    assert last_request(api)[2]["direction"] == "asc"


def test_instances_list_dates_go_out_as_utc_milliseconds(cli: CliInvoker, api: FakeServer) -> None:
    result = cli(
        "instances",
        "list",
        "checkout",
        "--date-start",
        "2026-01-01",
        "--date-end",
        "2026-12-31",
    )

    assert result.exit_code == 0, result.output
    query = last_request(api)[2]
    assert query["date_start"] == "2026-01-01T00:00:00.000Z"
    assert query["date_end"] == "2026-12-31T23:59:59.999Z"


@pytest.mark.parametrize(
    ("date_end", "sent"),
    [
        ("2026-05-04T12:30:05", "2026-05-04T12:30:05.999Z"),
        ("2026-05-04 12:30", "2026-05-04T12:30:59.999Z"),
        ("2026-05-04T12:30:05+02:00", "2026-05-04T10:30:05.999Z"),
        ("2026-05-04T12:30:05.250Z", "2026-05-04T12:30:05.250Z"),
        ("0999-05-04T12:30:05", "0999-05-04T12:30:05.999Z"),  # strftime gave "999-05-04"
    ],
)
def test_instances_list_date_end_takes_in_the_whole_second_or_minute_it_names(
    cli: CliInvoker, api: FakeServer, date_end: str, sent: str
) -> None:
    # A time copied from the table (to the second) left out what was created in that second.
    result = cli("instances", "list", "checkout", "--date-end", date_end)

    assert result.exit_code == 0, result.output
    assert last_request(api)[2]["date_end"] == sent


def test_instances_list_date_times_without_an_offset_are_utc_wherever_the_machine_is(
    cli: CliInvoker, api: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As wrangler 4.164 reads them (it appends "Z"), though the tables print local time.
    monkeypatch.setenv("TZ", "XYZ-2")  # two hours ahead of UTC, no summer time
    time.tzset()  # (the fixture sets UTC back)
    result = cli("instances", "list", "checkout", "--date-end", "2026-05-04T12:30:05", TZ="XYZ-2")

    assert result.exit_code == 0, result.output
    assert last_request(api)[2]["date_end"] == "2026-05-04T12:30:05.999Z"


def test_instances_list_empty_page_warns(cli: CliInvoker) -> None:
    result = cli("instances", "list", "checkout", "--page", "4")

    assert result.exit_code == 0
    assert "No instances found on page 4" in result.stderr


def test_describe_shows_header_and_step_timeline(cli: CliInvoker) -> None:
    result = cli("instances", "describe", "checkout", "order-2")

    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "Instance Id",
        "order-2",
        "❌ Errored",
        "🌎 API",
        "2026-11-22 21:03:20",  # queued, in the pinned UTC zone
        "30.0s",
        "Error: card declined",
        "Steps (1):",
        "charge card-1",
        "2/2",  # two attempts of the two allowed (limit 1 retry)
        "attempt 1: Error: gateway timeout",
    ):
        assert expected in out, expected


def test_describe_shows_outputs_unless_told_not_to(cli: CliInvoker) -> None:
    shown = cli("instances", "describe", "checkout", "order-1").stdout
    hidden = cli("instances", "describe", "checkout", "order-1", "--no-step-output").stdout

    assert '{"charge_id": "ch_1"}' in shown
    assert "charge_id" not in hidden
    assert "complete" in hidden and "cool off-1" in hidden


def test_describe_truncates_long_outputs(cli: CliInvoker, api: FakeServer) -> None:
    api.state.instances["checkout"]["order-1"]["steps"][0]["output"] = "x" * 50

    result = cli("instances", "describe", "checkout", "order-1", "--truncate-output-limit", "10")

    assert "x" * 10 + "… [truncated 40 characters]" in result.stdout
    assert "x" * 11 not in result.stdout


def test_describe_latest_resolves_the_newest_instance(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("instances", "describe", "checkout", "--json")

    assert json.loads(result.stdout)["id"] == "order-3"
    assert api.state.paths()[-2:] == [
        f"GET {PREFIX}/checkout/instances",
        f"GET {PREFIX}/checkout/instances/order-3",
    ]


def test_describe_waiting_step_shows_its_event_type(cli: CliInvoker) -> None:
    result = cli("instances", "describe", "checkout", "order-3")

    assert "waiting" in result.stdout
    assert "event type: approved" in result.stdout


def test_watch_polls_until_the_instance_finishes(cli: CliInvoker, api: FakeServer) -> None:
    api.state.polls_until_complete["order-3"] = 3

    result = cli("instances", "describe", "checkout", "order-3", "--watch", "--interval", "0.1")

    assert result.exit_code == 0, result.output
    assert "✅ Completed" in result.stdout
    describes = [p for p in api.state.paths() if p.endswith("/instances/order-3")]
    assert len(describes) == 3


def test_watch_into_a_file_or_pipe_ends_its_last_line(cli: CliInvoker, api: FakeServer) -> None:
    # Without a terminal there is nothing to redraw: the final screen is printed once, its
    # last line ended, as without --watch (rich's live view left it open, and `| tail` or a
    # shell prompt ran on from the last step's output).
    api.state.polls_until_complete["order-3"] = 2

    result = cli("instances", "describe", "checkout", "order-3", "--watch", "--interval", "0.1")
    once = cli("instances", "describe", "checkout", "order-3")

    assert result.exit_code == 0, result.output
    assert result.stdout == once.stdout
    assert result.stdout.endswith("\n")


def test_watch_with_json_prints_only_the_final_state(cli: CliInvoker, api: FakeServer) -> None:
    api.state.polls_until_complete["order-3"] = 2

    result = cli(
        "instances", "describe", "checkout", "order-3", "--watch", "--interval", "0.1", "--json"
    )

    assert json.loads(result.stdout)["status"] == "complete"


# --- instances: steering ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status_sent", "said"),
    [
        ("pause", "pause", '⏸️ The instance "order-3" from checkout was paused successfully'),
        ("resume", "resume", '🔄 The instance "order-3" from checkout was resumed successfully'),
        ("terminate", "terminate", "was terminated successfully"),
        ("restart", "restart", "was restarted successfully"),
    ],
)
def test_status_changes(
    cli: CliInvoker, api: FakeServer, action: str, status_sent: str, said: str
) -> None:
    result = cli("instances", action, "checkout", "order-3")

    assert result.exit_code == 0, result.output
    assert said in result.stdout
    assert last_request(api)[1] == f"{PREFIX}/checkout/instances/order-3/status"
    assert last_request(api)[3] == {"status": status_sent}


def test_pause_latest_and_json(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("instances", "pause", "checkout", "latest", "--json")

    assert json.loads(result.stdout)["status"] == "paused"
    assert api.state.instances["checkout"]["order-3"]["status"] == "paused"


def test_terminate_with_rollback(cli: CliInvoker, api: FakeServer) -> None:
    cli("instances", "terminate", "checkout", "order-3", "--rollback")

    assert last_request(api)[3] == {"status": "terminate", "rollback": True}


def test_terminate_help_says_rollback_does_nothing_on_stepline(cli: CliInvoker) -> None:
    # It said "Run the instance's rollback steps first.", and a Stepline server runs none.
    result = cli("instances", "terminate", "--help", COLUMNS="200")

    assert "Run the instance's rollback steps first on Cloudflare;" in result.stdout
    assert "a Stepline server accepts it and has none to run." in result.stdout


def test_restart_from_a_step(cli: CliInvoker, api: FakeServer) -> None:
    result = cli(
        "instances",
        "restart",
        "checkout",
        "order-2",
        "--from-step-name",
        "charge card",
        "--from-step-count",
        "2",
        "--from-step-type",
        "do",
    )

    assert result.exit_code == 0, result.output
    assert last_request(api)[3] == {
        "status": "restart",
        "from": {"name": "charge card", "count": 2, "type": "do"},
    }


def test_send_event_sends_the_payload(cli: CliInvoker, api: FakeServer) -> None:
    result = cli(
        "instances", "send-event", "checkout", "order-3", "--type", "approved", "--payload", "[1]"
    )

    assert result.exit_code == 0, result.output
    assert 'The event with type "approved" and payload "[1]" was sent' in result.stdout
    assert last_request(api)[1:] == (
        f"{PREFIX}/checkout/instances/order-3/events/approved",
        {},
        [1],
    )


def test_send_event_defaults_to_an_empty_object(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("instances", "send-event", "checkout", "order-3", "--type", "ping", "--json")

    assert json.loads(result.stdout)["instanceId"] == "order-3"
    assert last_request(api)[3] == {}


def test_delete_reports_deleted_and_failed_ids(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("instances", "delete", "checkout", "order-1", "nope")

    assert result.exit_code == 1
    assert 'Deleted workflow instances from "checkout": "order-1"' in result.stdout
    assert "failed to delete 1 workflow instance(s)" in result.stderr
    assert "nope: workflows.api.error.instance.not_found" in result.stderr
    assert "order-1" not in api.state.instances["checkout"]


def test_delete_reads_ids_from_a_file_and_chunks_them(
    cli: CliInvoker, api: FakeServer, tmp_path: Path
) -> None:
    for number in range(150):
        api.state.add_instance("checkout", f"bulk-{number}")
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps([f"bulk-{n}" for n in range(150)]))

    result = cli("instances", "delete", "checkout", "--filename", str(ids_file), "--json")

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["deleted"]) == 150
    sizes = [len(r.body["instances"]) for r in api.state.requests if r.path.endswith("/delete")]
    assert sizes == [100, 50]


def test_delete_says_what_went_before_a_request_that_failed(
    cli: CliInvoker, api: FakeServer, tmp_path: Path
) -> None:
    """The second request of 100 failed: only its error was said, not the 100 deleted by
    the first, which a second run then found missing."""
    for number in range(150):
        api.state.add_instance("checkout", f"bulk-{number}")
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps([f"bulk-{n}" for n in range(150)]))
    api.state.canned_failures = [None, (500, failure_text(10001, "internal_server"))]

    result = cli("instances", "delete", "checkout", "--filename", str(ids_file))

    assert result.exit_code == 1
    assert '"bulk-0"' in result.stdout and '"bulk-99"' in result.stdout
    assert "failed to delete 50 workflow instance(s)" in result.stderr
    said = "not deleted, its request failed: workflows.api.error.internal_server [code: 10001]"
    assert f"bulk-100: {said}" in result.stderr and f"bulk-149: {said}" in result.stderr
    left = [i for i in api.state.instances["checkout"] if i.startswith("bulk-")]
    assert left == [f"bulk-{n}" for n in range(100, 150)]


def test_delete_does_not_say_not_deleted_of_ids_whose_answer_was_lost(
    cli: CliInvoker, api: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second request of three reached the server, which deleted its 100, and its answer
    never came (a read timeout): they were said "not deleted", and a second run found them
    missing; the third request, never sent, was said to have failed."""
    for number in range(250):
        api.state.add_instance("checkout", f"bulk-{number}")
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps([f"bulk-{n}" for n in range(250)]))
    requests = []
    delete_batch = HttpClient.delete_batch

    async def answer_lost_the_second_time(self: HttpClient, *args: Any) -> Any:
        requests.append(args)
        result = await delete_batch(self, *args)
        if len(requests) == 2:
            lost = httpx.ReadTimeout("timed out")
            raise ServerUnreachable(f"{self.api_url} did not answer in time") from lost
        return result

    monkeypatch.setattr(HttpClient, "delete_batch", answer_lost_the_second_time)

    result = cli("instances", "delete", "checkout", "--filename", str(ids_file))

    assert result.exit_code == 1
    assert len(requests) == 2
    assert [i for i in api.state.instances["checkout"] if i.startswith("bulk-")] == [
        f"bulk-{n}" for n in range(200, 250)
    ]
    sent = next(line for line in result.stderr.splitlines() if "bulk-100:" in line)
    assert "not deleted" not in sent and "did not answer in time" in sent
    unsent = next(line for line in result.stderr.splitlines() if "bulk-200:" in line)
    assert "not deleted" in unsent and "its request failed" not in unsent


def test_terminate_all_with_status(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("instances", "terminate-all", "checkout", "--status", "running")

    assert result.exit_code == 0, result.output
    assert 'with status "running" has been started' in result.stdout
    assert last_request(api)[:3] == (
        "PUT",
        f"{PREFIX}/checkout/instances/terminate",
        {"status": "running"},
    )


def test_wrangler_spelling_works_too(cli: CliInvoker) -> None:
    result = cli("workflows", "instances", "list", "checkout", "--json")

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3


# --- connection settings ------------------------------------------------------------------------


def test_cloudflare_variables_are_honoured(cli: CliInvoker, api: FakeServer) -> None:
    result = cli(
        "workflows",
        "list",
        "--json",
        STEPLINE_API_URL="",
        STEPLINE_API_TOKEN="",
        STEPLINE_ACCOUNT_ID="",
        CLOUDFLARE_API_BASE_URL=api.api_url,
        CLOUDFLARE_API_TOKEN="test-token",
        CLOUDFLARE_ACCOUNT_ID=ACCOUNT_ID,
    )

    assert result.exit_code == 0, result.output


def test_stepline_variables_win_over_cloudflare_ones(cli: CliInvoker) -> None:
    result = cli(
        "workflows",
        "list",
        CLOUDFLARE_API_BASE_URL="http://127.0.0.1:9/client/v4",
        CLOUDFLARE_ACCOUNT_ID="someone-else",
        CLOUDFLARE_API_TOKEN="wrong",
    )

    assert result.exit_code == 0, result.output


def test_flags_win_over_the_environment(cli: CliInvoker, api: FakeServer) -> None:
    result = cli("workflows", "list", "--account-id", "someone-else")

    assert result.exit_code == 1
    assert "Authentication error [code: 10000]" in result.stderr
    assert api.state.requests[-1].path == "/accounts/someone-else/workflows"
