"""``stepline workflows list|describe|delete|trigger`` against a real ``stepline serve``."""

from __future__ import annotations

import re
import uuid

from .live import WORKFLOWS, Cli, LiveServer, table_ids


def test_list_shows_every_declared_workflow(cli: Cli) -> None:
    ran = cli.run("workflows", "list", "--per-page", "100").ok()

    assert ran.lines()[0] == f"Showing {len(WORKFLOWS)} workflows from page 1:"
    assert set(table_ids(ran.stdout)) == set(WORKFLOWS)
    row = next(line for line in ran.lines() if line.startswith("│ sleepy "))
    assert "cli_live_flows" in row
    assert "SleepyWorkflow" in row


def test_list_json_and_pages(cli: Cli) -> None:
    everything, first, second = (
        ran.json()
        for ran in cli.run_many(
            ("workflows", "list", "--per-page", "100", "--json"),
            ("workflows", "list", "--per-page", "5", "--json"),
            ("workflows", "list", "--page", "2", "--per-page", "5", "--json"),
        )
    )

    assert {w["name"]: w["class_name"] for w in everything} == WORKFLOWS
    assert all(w["script_name"] == "cli_live_flows" for w in everything)
    assert len(first) == 5
    assert len(second) == 5
    assert not {w["name"] for w in first} & {w["name"] for w in second}
    created = [w["created_on"] for w in first]
    assert created == sorted(created, reverse=True)


def test_list_past_the_end_warns_and_succeeds(cli: Cli) -> None:
    ran = cli.run("workflows", "list", "--page", "99")

    assert ran.returncode == 0
    assert ran.stdout == ""
    assert "No workflows found on page 99." in ran.stderr


def test_describe_shows_the_workflow_and_its_latest_version(
    cli: Cli, live_server: LiveServer
) -> None:
    with live_server.http() as http:
        versions = http.get("/workflows/nap/versions").json()["result"]

    ran, as_json_ran = cli.run_many(
        ("workflows", "describe", "nap"), ("workflows", "describe", "nap", "--json")
    )
    ran.ok()
    as_json = as_json_ran.json()

    fields = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in ran.lines()[:9])
    assert fields["Name"] == "nap"
    assert fields["Class Name"] == "NapWorkflow"
    assert fields["Script Name"] == "cli_live_flows"
    assert fields["Latest Version"] == versions[0]["id"]
    assert as_json["name"] == "nap"
    assert as_json["id"] == fields["Id"]
    assert as_json["latest_version"]["id"] == versions[0]["id"]
    assert set(as_json["instances"]) >= {"queued", "running", "complete", "errored"}


def test_describe_a_missing_workflow_is_one_line_with_the_code(cli: Cli) -> None:
    line = cli.run("workflows", "describe", "no-such-workflow").failed(10200)

    assert "workflow.not_found" in line
    assert "no-such-workflow" in line


def test_trigger_with_params_and_id(cli: Cli, live_server: LiveServer) -> None:
    ran = cli.run("workflows", "trigger", "quick", '{"numbers": [4, 5, 6]}', "--id", "trig-1")

    assert ran.ok().stdout == '🚀 Workflow instance "trig-1" has been queued successfully\n'
    done = live_server.wait_for_status("quick", "trig-1")
    assert done["status"] == "complete"
    assert done["output"] == {"total": 15}


def test_trigger_without_params_json_gets_a_generated_id(cli: Cli, live_server: LiveServer) -> None:
    result = cli.run("workflows", "trigger", "quick", "--json").json()

    assert str(uuid.UUID(result["id"])) == result["id"]
    assert result["status"] == "queued"
    assert live_server.wait_for_status("quick", result["id"])["output"] == {"total": 6}


def test_trigger_errors(cli: Cli, live_server: LiveServer) -> None:
    live_server.create("quick", "trig-dup")

    bad_json, duplicate, missing = cli.run_many(
        ("workflows", "trigger", "quick", "{oops"),
        ("workflows", "trigger", "quick", "--id", "trig-dup"),
        ("workflows", "trigger", "no-such-workflow"),
    )

    assert "PARAMS is not valid JSON" in bad_json.failed()
    assert "already_exists" in duplicate.failed(10405)
    missing.failed(10200)


def test_delete_removes_the_workflow(cli: Cli) -> None:
    ran, json_ran = cli.run_many(
        ("workflows", "delete", "doomed"), ("workflows", "delete", "doomed-json", "--json")
    )

    assert ran.ok().stdout.startswith('✅ Workflow "doomed" removed successfully.')
    assert isinstance(json_ran.json(), dict)
    for gone in cli.run_many(
        ("workflows", "describe", "doomed"),
        ("workflows", "describe", "doomed-json"),
        ("workflows", "delete", "doomed"),
    ):
        gone.failed(10200)
