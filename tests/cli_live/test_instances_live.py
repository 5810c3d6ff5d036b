"""``stepline instances ...`` against a real ``stepline serve``: every command, human and JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .live import Cli, LiveServer, table_ids

# --- list ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paged(live_server: LiveServer) -> list[str]:
    """Seven instances of ``pages``, created one after another; newest first."""
    ids = [f"page-{n}" for n in range(1, 8)]
    for instance_id in ids:
        live_server.create("pages", instance_id)
        time.sleep(0.003)  # distinct created_on milliseconds
    live_server.create("broken", "page-broken")
    for instance_id in ids:
        live_server.wait_for_status("pages", instance_id)
    return ids[::-1]


def test_list_is_newest_first_with_statuses(cli: Cli, paged: list[str]) -> None:
    ran = cli.run("instances", "list", "pages").ok()

    assert ran.lines()[0] == "Showing 7 instances from page 1:"
    assert table_ids(ran.stdout) == paged
    assert ran.stdout.count("✅ Completed") == 7


def test_list_reverse_pages_and_json(cli: Cli, paged: list[str]) -> None:
    reverse, page_2, page_3 = cli.run_many(
        ("instances", "list", "pages", "--reverse"),
        ("instances", "list", "pages", "--page", "2", "--per-page", "3", "--json"),
        ("instances", "list", "pages", "--page", "3", "--per-page", "3"),
    )

    assert table_ids(reverse.ok().stdout) == paged[::-1]
    items = page_2.json()
    assert [item["id"] for item in items] == paged[3:6]
    assert {item["status"] for item in items} == {"complete"}
    assert all(item["version_id"] and item["created_on"] for item in items)
    assert page_3.ok().lines()[0] == "Showing 1 instance from page 3:"
    assert table_ids(page_3.stdout) == paged[6:]


def test_list_status_filter(cli: Cli, paged: list[str]) -> None:
    errored_ran, none = cli.run_many(
        ("instances", "list", "broken", "--status", "errored", "--json"),
        ("instances", "list", "pages", "--status", "errored"),
    )
    errored = errored_ran.json()

    assert "page-broken" in [item["id"] for item in errored]
    assert {item["status"] for item in errored} == {"errored"}
    assert none.ok().stdout == ""
    assert 'No instances found for workflow "pages".' in none.stderr


def test_list_past_the_last_page_warns(cli: Cli, paged: list[str]) -> None:
    ran = cli.run("instances", "list", "pages", "--page", "9", "--per-page", "3").ok()

    assert "No instances found on page 9. Please try a smaller page number." in ran.stderr


def test_list_of_a_missing_workflow(cli: Cli) -> None:
    cli.run("instances", "list", "no-such-workflow").failed(10200)


# --- describe ------------------------------------------------------------------------------


def test_describe_a_completed_instance(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("quick", "desc-1", {"numbers": [10, 20]})
    live_server.wait_for_status("quick", "desc-1")

    ran, quiet = cli.run_many(
        ("instances", "describe", "quick", "desc-1"),
        ("instances", "describe", "quick", "desc-1", "--no-step-output"),
    )

    text = ran.ok().stdout
    assert "Instance Id  desc-1" in text
    assert "✅ Completed" in text
    assert 'Output       {"total": 30}' in text
    assert "Steps (2):" in text
    assert "🎯 Step  fetch numbers-1  complete" in text
    assert '         output: {"numbers": [10, 20]}' in text
    assert "🎯 Step  add up-1  complete" in text
    assert "         output: 30" in text
    assert "output:" not in quiet.ok().stdout
    assert "add up-1" in quiet.stdout


def test_describe_latest_and_json(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("quick", "desc-latest", {"numbers": [2]})
    live_server.wait_for_status("quick", "desc-latest")

    details_ran, default = cli.run_many(
        ("instances", "describe", "quick", "latest", "--json"), ("instances", "describe", "quick")
    )
    details = details_ran.json()

    assert details["status"] == "complete"
    assert details["output"] == {"total": 2}
    assert details["trigger"] == {"source": "api"}
    assert [step["name"] for step in details["steps"]] == ["fetch numbers-1", "add up-1"]
    assert details["steps"][1]["output"] == 2
    assert "Instance Id  desc-latest" in default.ok().stdout


def test_describe_an_errored_instance(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("broken", "desc-broken")
    live_server.wait_for_status("broken", "desc-broken")

    ran = cli.run("instances", "describe", "broken", "desc-broken").ok()

    assert "❌ Errored" in ran.stdout
    assert "🎯 Step  explode-1  errored" in ran.stdout
    assert "boom" in ran.stdout


def test_describe_missing_instance(cli: Cli) -> None:
    line = cli.run("instances", "describe", "quick", "no-such-instance").failed(10400)

    assert "instance.not_found" in line


def test_describe_watch_follows_the_instance_until_it_ends(
    cli: Cli, live_server: LiveServer
) -> None:
    live_server.create("nap", "watched")
    started = time.monotonic()

    ran = cli.run("instances", "describe", "nap", "watched", "--watch", "--interval", "0.2")

    elapsed = time.monotonic() - started
    ran.ok()
    # It kept polling through the 1.5 s sleep and stopped once the instance completed.
    assert elapsed >= 1.4
    assert live_server.describe("nap", "watched")["status"] == "complete"
    assert "✅ Completed" in ran.stdout
    assert "💤 Sleep  short nap-1  complete" in ran.stdout
    assert "🎯 Step  after-1  complete" in ran.stdout
    assert "output: rested" in ran.stdout


def test_describe_watch_json_prints_the_final_state(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("nap", "watched-json")

    details = cli.run(
        "instances", "describe", "nap", "latest", "--watch", "--interval", "0.2", "--json"
    ).json()

    assert details["status"] == "complete"
    assert details["output"] == "rested"
    assert [step["type"] for step in details["steps"]] == ["step", "sleep", "step"]


# --- send-event ----------------------------------------------------------------------------


def test_send_event_completes_the_waiting_instance(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("approval", "appr-1")
    live_server.wait_for_status("approval", "appr-1", "waiting")

    ran = cli.run(
        "instances",
        "send-event",
        "approval",
        "appr-1",
        "--type",
        "approved",
        "--payload",
        '{"by": "ada"}',
    ).ok()

    assert ran.stdout == (
        '📤 The event with type "approved" and payload "{"by": "ada"}" was sent to the '
        'instance "appr-1" from approval\n'
    )
    done = live_server.wait_for_status("approval", "appr-1")
    assert done["output"] == {"approved_by": {"by": "ada"}}


def test_send_event_to_latest_json_and_default_payload(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("approval", "appr-2")
    live_server.wait_for_status("approval", "appr-2", "waiting")

    result = cli.run(
        "instances", "send-event", "approval", "latest", "--type", "approved", "--json"
    ).json()

    assert result["instanceId"] == "appr-2"
    assert result["timestamp"]
    assert live_server.wait_for_status("approval", "appr-2")["output"] == {"approved_by": {}}


def test_send_event_errors(cli: Cli, live_server: LiveServer) -> None:
    bad_json, missing = cli.run_many(
        ("instances", "send-event", "approval", "x", "--type", "approved", "--payload", "{"),
        ("instances", "send-event", "approval", "nope", "--type", "approved"),
    )

    assert "--payload is not valid JSON" in bad_json.failed()
    assert "instance.not_found" in missing.failed(10400)


# --- pause, resume, terminate, restart -----------------------------------------------------


def test_pause_and_resume(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("sleepy", "steer-1")
    live_server.wait_for_status("sleepy", "steer-1", "waiting")

    paused = cli.run("instances", "pause", "sleepy", "steer-1").ok()
    assert paused.stdout == '⏸️ The instance "steer-1" from sleepy was paused successfully\n'
    assert live_server.wait_for_status("sleepy", "steer-1", "paused")["status"] == "paused"

    resumed = cli.run("instances", "resume", "sleepy", "latest", "--json").json()
    assert set(resumed) == {"status", "timestamp"}
    assert live_server.wait_for_status("sleepy", "steer-1", "waiting")["status"] == "waiting"

    again = cli.run("instances", "resume", "sleepy", "steer-1").ok()
    assert again.stdout == '🔄 The instance "steer-1" from sleepy was resumed successfully\n'


def test_pause_or_resume_a_finished_instance_says_nothing_changed(
    cli: Cli, live_server: LiveServer
) -> None:
    live_server.create("quick", "steer-done")
    live_server.wait_for_status("quick", "steer-done")

    pause, resume = cli.run_many(
        ("instances", "pause", "quick", "steer-done"),
        ("instances", "resume", "quick", "steer-done"),
    )

    assert pause.ok().stdout == (
        '⏸️ The instance "steer-done" from quick is already complete; there is nothing to pause\n'
    )
    assert resume.ok().stdout == (
        '🔄 The instance "steer-done" from quick is already complete; there is nothing to resume\n'
    )
    assert live_server.describe("quick", "steer-done")["status"] == "complete"


def test_terminate_then_terminating_again_fails(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("sleepy", "steer-2")
    live_server.wait_for_status("sleepy", "steer-2", "waiting")

    ran = cli.run("instances", "terminate", "sleepy", "steer-2").ok()
    described = cli.run("instances", "describe", "sleepy", "steer-2").ok()
    again = cli.run("instances", "terminate", "sleepy", "steer-2")

    assert ran.stdout == '🥷 The instance "steer-2" from sleepy was terminated successfully\n'
    assert live_server.describe("sleepy", "steer-2")["status"] == "terminated"
    assert "🚫 Terminated" in described.stdout
    # The hour-long sleep was cut short: shown as stopped, not as still sleeping.
    assert "💤 Sleep  nap-1  stopped" in described.stdout
    assert "wakes at" not in described.stdout
    assert "🚫 Termination    terminated" in described.stdout
    assert "cannot_terminate" in again.failed(10401)


def test_terminate_with_rollback_json(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("sleepy", "steer-3")
    live_server.wait_for_status("sleepy", "steer-3", "waiting")

    result = cli.run("instances", "terminate", "sleepy", "steer-3", "--rollback", "--json").json()

    assert set(result) == {"status", "timestamp"}
    assert live_server.wait_for_status("sleepy", "steer-3", "terminated")


def test_restart_from_the_start(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("quick", "again-1", {"numbers": [7]})
    first = live_server.wait_for_status("quick", "again-1")

    ran = cli.run("instances", "restart", "quick", "again-1").ok()

    assert ran.stdout == '🥷 The instance "again-1" from quick was restarted successfully\n'
    deadline = time.monotonic() + 15
    while True:
        details = live_server.describe("quick", "again-1")
        if details["status"] == "complete" and details["start"] != first["start"]:
            break
        assert time.monotonic() < deadline, details
        time.sleep(0.05)
    assert details["output"] == {"total": 7}


def test_restart_from_a_step(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("sleepy", "again-2")
    before = live_server.wait_for_status("sleepy", "again-2", "waiting")
    prepare_start = before["steps"][0]["start"]

    result = cli.run(
        "instances",
        "restart",
        "sleepy",
        "again-2",
        "--from-step-name",
        "nap",
        "--from-step-count",
        "1",
        "--from-step-type",
        "sleep",
        "--json",
    ).json()

    assert set(result) == {"status", "timestamp"}
    deadline = time.monotonic() + 15
    while True:
        details = live_server.describe("sleepy", "again-2")
        steps = details["steps"]
        restarted = len(steps) == 2 and steps[1]["start"] != before["steps"][1]["start"]
        if details["status"] == "waiting" and restarted:
            break
        assert time.monotonic() < deadline, details
        time.sleep(0.05)
    # The step before "nap" kept its result; only the sleep ran again.
    assert steps[0]["start"] == prepare_start
    assert steps[0]["output"] == "prepared"


def test_restart_from_a_step_named_as_the_timeline_shows_it(
    cli: Cli, live_server: LiveServer
) -> None:
    # describe shows "prepare-1" and "nap-1"; given as names, they were "not found" alone.
    live_server.create("sleepy", "again-3")
    live_server.wait_for_status("sleepy", "again-3", "waiting")

    do_step, sleep_step = cli.run_many(
        ("instances", "restart", "sleepy", "again-3", "--from-step-name", "prepare-1"),
        ("instances", "restart", "sleepy", "again-3", "--from-step-name", "nap-1"),
    )

    assert do_step.failed(10402).endswith(
        'Step "prepare-1" not found in execution history; the timeline shows step "prepare" '
        'of count 1 as "prepare-1": restart from name "prepare", count 1, type do'
    )
    assert sleep_step.failed(10402).endswith(
        'Step "nap-1" not found in execution history; the timeline shows step "nap" '
        'of count 1 as "nap-1": restart from name "nap", count 1, type sleep'
    )


def test_restart_errors(cli: Cli) -> None:
    no_name, missing, pause_missing = cli.run_many(
        ("instances", "restart", "sleepy", "x", "--from-step-count", "2"),
        ("instances", "restart", "sleepy", "no-such-instance"),
        ("instances", "pause", "sleepy", "no-such-instance"),
    )

    assert "--from-step-count and --from-step-type need --from-step-name" in no_name.failed()
    assert "instance.not_found" in missing.failed(10400)
    assert "instance.not_found" in pause_missing.failed(10400)


# --- delete and terminate-all --------------------------------------------------------------


def test_delete_by_id_latest_and_file(cli: Cli, live_server: LiveServer, tmp_path: Path) -> None:
    for n in range(1, 6):
        live_server.create("removal", f"rm-{n}")
        time.sleep(0.003)
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(["rm-3", "rm-4"]))

    ran = cli.run("instances", "delete", "removal", "rm-1", "latest").ok()
    from_file = cli.run("instances", "delete", "removal", "--filename", str(ids_file), "--json")

    assert ran.stdout == '🗑️  Deleted workflow instances from "removal": "rm-1", "rm-5"\n'
    assert from_file.json() == {"deleted": [{"id": "rm-3"}, {"id": "rm-4"}], "errors": []}
    remaining = cli.run("instances", "list", "removal", "--json").json()
    assert [item["id"] for item in remaining] == ["rm-2"]


def test_delete_reports_ids_it_could_not_delete(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("removal", "rm-partial")

    ran = cli.run("instances", "delete", "removal", "rm-partial", "rm-ghost")

    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert ran.stdout == '🗑️  Deleted workflow instances from "removal": "rm-partial"\n'
    assert ran.stderr.splitlines() == [
        "error: failed to delete 1 workflow instance(s):",
        "  - rm-ghost: workflows.api.error.instance.not_found [code: 10400]",
    ]


def test_terminate_all_with_status(cli: Cli, live_server: LiveServer) -> None:
    ids = [f"sleeper-{n}" for n in range(4)]
    for instance_id in ids:
        live_server.create("sleepers", instance_id)
    for instance_id in ids:
        live_server.wait_for_status("sleepers", instance_id, "waiting")

    ran = cli.run("instances", "terminate-all", "sleepers", "--status", "waiting").ok()

    assert ran.stdout == (
        '🥷 A job to terminate instances from Workflow "sleepers" with status "waiting" has '
        "been started. It might take a few minutes to complete.\n"
    )
    for instance_id in ids:
        assert live_server.wait_for_status("sleepers", instance_id, "terminated")
    again = cli.run("instances", "terminate-all", "sleepers", "--json").json()
    assert again["status"] in ("ok", "already_running")


def test_terminate_all_rejects_a_finished_status(cli: Cli) -> None:
    ran = cli.run("instances", "terminate-all", "sleepers", "--status", "complete")

    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    assert "'complete' is not one of" in ran.stderr
