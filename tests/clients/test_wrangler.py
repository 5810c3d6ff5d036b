"""wrangler 4.86.0 (the newest that runs on Node 20) against a running ``stepline serve``.

Every ``wrangler workflows`` command of clients.md §4 that 4.86 has, pointed at the server with
``CLOUDFLARE_API_BASE_URL`` only. Each assertion is on what wrangler prints, the way a person
reads it: ids, statuses, step names, outputs. Independent commands run side by side, since
each wrangler start costs a second or two.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .node_tools import WRANGLER, clean_env, ensure_node_clients
from .server import TERMINAL, RunningServer, wait_for_status

pytestmark = pytest.mark.clients

PER_2_PAGE_2 = ("--per-page", "2", "--page", "2")
APPROVE = ("--type", "approved", "--payload", '{"by":"linus"}')
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def ok(self) -> str:
        assert self.code == 0, f"wrangler {' '.join(self.args)} exited {self.code}:\n{self}"
        return self.out

    def __str__(self) -> str:
        return f"--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Wrangler:
    """Runs ``wrangler`` as a person would, with the server as its API."""

    def __init__(self, server: RunningServer, home: Path) -> None:
        self.server = server
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self, *, account: bool = True, **extra: str) -> dict[str, str]:
        env = clean_env()
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            TZ="UTC",
            FORCE_COLOR="0",
            NO_COLOR="1",
            WRANGLER_SEND_METRICS="false",
            CLOUDFLARE_API_BASE_URL=self.server.base_url,
            CLOUDFLARE_API_TOKEN=self.server.token,
        )
        if account:
            env["CLOUDFLARE_ACCOUNT_ID"] = self.server.account_id
        env.update(extra)
        return env

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Ran:
        workdir = cwd or self.home / "cwd"
        workdir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [str(WRANGLER), *args],
            cwd=workdir,
            env=env or self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Ran(tuple(args), done.returncode, done.stdout, done.stderr)

    def many(self, *commands: Sequence[str]) -> list[Ran]:
        """Run independent commands side by side; results in the order given."""
        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(lambda args: self.run(*args), commands))


@pytest.fixture(scope="module")
def wrangler(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Wrangler:
    ensure_node_clients()
    return Wrangler(server, tmp_path_factory.mktemp("wrangler-home"))


def api_get(server: RunningServer, path: str, **params: Any) -> Any:
    with server.http() as http:
        answer = http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def api_post(server: RunningServer, path: str, body: Any) -> Any:
    with server.http() as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def field(output: str, label: str) -> str:
    """The value printed after ``Label:`` on its own line."""
    found = re.search(rf"^\s*{re.escape(label)}:[ \t]*(.*?)\s*$", output, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{output}"
    return found.group(1)


def table_ids(output: str) -> list[str]:
    """The first column of every row of wrangler's table, top to bottom."""
    rows = [line for line in output.splitlines() if line.startswith("│")]
    return [row.split("│")[1].strip() for row in rows[1:]]


# -- workflows ---------------------------------------------------------------------------


def test_workflows_list_describe_and_delete(wrangler: Wrangler, server: RunningServer) -> None:
    everything = api_get(server, "/workflows", per_page=100)
    page_two = [w["name"] for w in api_get(server, "/workflows", per_page=2, page=2)]
    versions = api_get(server, "/workflows/wr-quick/versions")
    quick = api_get(server, "/workflows/wr-quick")

    listed, second, described, missing = wrangler.many(
        ["workflows", "list", "--per-page", "100"],
        ["workflows", "list", "--page", "2", "--per-page", "2"],
        ["workflows", "describe", "wr-quick"],
        ["workflows", "describe", "wr-missing"],
    )

    out = listed.ok()
    assert f"Showing {len(everything)} workflows from page 1:" in out
    for name, class_name in [
        ("wr-quick", "QuickWorkflow"),
        ("wr-sleepy", "SleepyWorkflow"),
        ("wr-broken", "BrokenWorkflow"),
    ]:
        assert re.search(rf"│ {name}\s+│ client_flows\s+│ {class_name}\s+│", out), out
    assert sorted(table_ids(out)) == sorted(w["name"] for w in everything)

    out = second.ok()
    assert "Showing 2 workflows from page 2:" in out
    assert sorted(table_ids(out)) == sorted(page_two)

    out = described.ok()
    assert field(out, "Name") == "wr-quick"
    assert field(out, "Script Name") == "client_flows"
    assert field(out, "Class Name") == "QuickWorkflow"
    assert field(out, "Created On") == quick["created_on"]
    assert "Latest Version:" in out
    # "Id:" appears twice: the workflow's, then (indented) the latest version's.
    ids = re.findall(r"^\s*Id:\s+(\S+)", out, re.MULTILINE)
    assert ids == [quick["id"], versions[0]["id"]]

    assert missing.code == 1, str(missing)
    assert "workflows.api.error.workflow.not_found [code: 10200]" in missing.err
    assert "/workflows/wr-missing) failed." in missing.err

    removed = wrangler.run("workflows", "delete", "wr-doomed").ok()
    assert 'Workflow "wr-doomed" removed successfully' in removed
    with server.http() as http:
        assert http.get("/workflows/wr-doomed").status_code == 404


def test_trigger_and_describe_instances(wrangler: Wrangler, server: RunningServer) -> None:
    api_post(server, "/workflows/wr-broken/instances", {"instance_id": "wr-boom"})
    with_id = wrangler.run(
        "workflows", "trigger", "wr-quick", '{"numbers":[2,3],"label":"wr"}', "--id", "wr-one"
    ).ok()
    assert '🚀 Workflow instance "wr-one" has been queued successfully' in with_id
    params_only = wrangler.run("workflows", "trigger", "wr-quick", '{"numbers":[40]}').ok()
    generated = UUID.search(params_only)
    assert generated, params_only
    bare = wrangler.run("workflows", "trigger", "wr-quick").ok()
    newest = UUID.search(bare)
    assert newest, bare

    # params arrived as JSON values (Q3), not strings.
    done = wait_for_status(server, "wr-quick", generated.group(0), TERMINAL)
    assert done["params"] == {"numbers": [40]} and done["output"] == {"total": 40, "label": "none"}
    assert wait_for_status(server, "wr-quick", newest.group(0), TERMINAL)["params"] is None
    one = wait_for_status(server, "wr-quick", "wr-one", TERMINAL)
    wait_for_status(server, "wr-broken", "wr-boom", TERMINAL)

    described, latest, broken = wrangler.many(
        ["workflows", "instances", "describe", "wr-quick", "wr-one"],
        ["workflows", "instances", "describe", "wr-quick", "latest"],
        ["workflows", "instances", "describe", "wr-broken", "wr-boom"],
    )
    out = described.ok()
    assert field(out, "Instance Id") == "wr-one"
    assert field(out, "Workflow Name") == "wr-quick"
    assert field(out, "Version Id") == one["versionId"]
    assert field(out, "Status") == "✅ Completed"
    assert field(out, "Trigger") == "🌎 API"
    assert field(out, "Success") == "✅ Yes"
    assert field(out, "Last Successful Step") == "add up-1"
    steps = re.findall(r"^\s*Name:\s+(.+?)\s*$", out, re.MULTILINE)
    assert steps == ["fetch data-1", "add up-1"]
    outputs = re.findall(r"^\s*Output:\s+(.+?)\s*$", out, re.MULTILINE)
    assert [json.loads(o) for o in outputs] == [{"numbers": [2, 3]}, 5]

    # "latest" is the newest created_on on the first page of GET .../instances/ (Q1).
    assert field(latest.ok(), "Instance Id") == newest.group(0)

    out = broken.ok()
    assert field(out, "Status") == "❌ Errored"
    assert field(out, "Success") == "❌ No"
    assert field(out, "Error") == "ValueError: boom"
    assert re.search(r"│ ❌ Error\s+│ ValueError: boom\s+│", out), out


def test_instances_list_filters_and_cursor_pages(wrangler: Wrangler, server: RunningServer) -> None:
    ids = [f"wr-page-{n}" for n in range(7)]
    for instance_id in ids:  # one by one, so every created_on differs
        api_post(server, "/workflows/wr-pages/instances", {"instance_id": instance_id})
        time.sleep(0.005)
    for instance_id in ids:
        wait_for_status(server, "wr-pages", instance_id, TERMINAL)
    newest_first = list(reversed(ids))

    default, third, filtered, reverse, empty, beyond = wrangler.many(
        ["workflows", "instances", "list", "wr-pages"],
        ["workflows", "instances", "list", "wr-pages", "--per-page", "3", "--page", "3"],
        ["workflows", "instances", "list", "wr-pages", "--status", "complete", *PER_2_PAGE_2],
        ["workflows", "instances", "list", "wr-pages", "--reverse", "--per-page", "3"],
        ["workflows", "instances", "list", "wr-pages", "--status", "errored"],
        ["workflows", "instances", "list", "wr-pages", "--per-page", "3", "--page", "4"],
    )
    out = default.ok()
    assert "Showing 7 instances from page 1:" in out
    assert table_ids(out) == newest_first
    assert out.count("✅ Completed") == 7

    # --page 3 walks result_info.cursor twice (wrangler never sends page).
    out = third.ok()
    assert "Showing 1 instance from page 3:" in out
    assert table_ids(out) == newest_first[6:]

    out = filtered.ok()
    assert "Showing 2 instances from page 2:" in out
    assert table_ids(out) == newest_first[2:4]

    out = reverse.ok()
    assert table_ids(out) == list(reversed(newest_first[:3]))

    assert empty.ok().strip() == "" or table_ids(empty.out) == []
    assert 'There are no instances in workflow "wr-pages"' in empty.err

    assert table_ids(beyond.ok()) == []
    assert "No instances found on page 4" in beyond.err


def test_send_event_and_status_changes(wrangler: Wrangler, server: RunningServer) -> None:
    for workflow, instance_id in [
        ("wr-approval", "wr-wait-1"),
        ("wr-sleepy", "wr-nap-1"),
        ("wr-sleepy", "wr-nap-2"),
        ("wr-sleepy", "wr-nap-3"),
    ]:
        api_post(server, f"/workflows/{workflow}/instances", {"instance_id": instance_id})
        time.sleep(0.005)
    for instance_id in ("wr-nap-1", "wr-nap-2", "wr-nap-3"):
        wait_for_status(server, "wr-sleepy", instance_id, ("waiting",))
    wait_for_status(server, "wr-approval", "wr-wait-1", ("waiting", "running"))

    sent, paused = wrangler.many(
        ["workflows", "instances", "send-event", "wr-approval", "wr-wait-1", *APPROVE],
        ["workflows", "instances", "pause", "wr-sleepy", "wr-nap-1"],
    )
    assert 'The event with type "approved"' in sent.ok()
    assert 'was sent to the instance "wr-wait-1"' in sent.out
    approved = wait_for_status(server, "wr-approval", "wr-wait-1", TERMINAL)
    assert approved["status"] == "complete"
    assert approved["output"] == {"approved_by": {"by": "linus"}}

    assert 'The instance "wr-nap-1" from wr-sleepy was paused successfully' in paused.ok()
    assert api_get(server, "/workflows/wr-sleepy/instances/wr-nap-1")["status"] == "paused"

    resumed = wrangler.run("workflows", "instances", "resume", "wr-sleepy", "wr-nap-1").ok()
    assert 'The instance "wr-nap-1" from wr-sleepy was resumed successfully' in resumed
    wait_for_status(server, "wr-sleepy", "wr-nap-1", ("waiting",))

    ended = wrangler.run("workflows", "instances", "terminate", "wr-sleepy", "wr-nap-1").ok()
    assert 'The instance "wr-nap-1" from wr-sleepy was terminated successfully' in ended
    assert api_get(server, "/workflows/wr-sleepy/instances/wr-nap-1")["status"] == "terminated"

    again = wrangler.run("workflows", "instances", "restart", "wr-sleepy", "wr-nap-1").ok()
    assert 'The instance "wr-nap-1" from wr-sleepy was restarted successfully' in again
    wait_for_status(server, "wr-sleepy", "wr-nap-1", ("waiting",))

    # "latest" is wr-nap-3, the newest; terminate-all then stops every one still waiting.
    latest = wrangler.run("workflows", "instances", "pause", "wr-sleepy", "latest").ok()
    assert 'The instance "wr-nap-3" from wr-sleepy was paused successfully' in latest
    assert api_get(server, "/workflows/wr-sleepy/instances/wr-nap-3")["status"] == "paused"

    job = wrangler.run(
        "workflows", "instances", "terminate-all", "wr-sleepy", "--status", "waiting"
    ).ok()
    assert 'A job to terminate instances from Workflow "wr-sleepy" with status "waiting"' in job
    for instance_id in ("wr-nap-1", "wr-nap-2"):
        wait_for_status(server, "wr-sleepy", instance_id, ("terminated",))
    assert api_get(server, "/workflows/wr-sleepy/instances/wr-nap-3")["status"] == "paused"


def test_account_discovery_and_key_auth(
    wrangler: Wrangler, server: RunningServer, tmp_path: Path
) -> None:
    discovery_cwd = tmp_path / "discovery"
    discovery_cwd.mkdir()
    key_env = wrangler.env()
    del key_env["CLOUDFLARE_API_TOKEN"]
    key_env.update(CLOUDFLARE_API_KEY=server.token, CLOUDFLARE_EMAIL="ops@example.com")
    with ThreadPoolExecutor(max_workers=2) as pool:
        discovered_job = pool.submit(
            wrangler.run,
            "workflows",
            "list",
            "--per-page",
            "100",
            cwd=discovery_cwd,
            env=wrangler.env(account=False),
        )
        keyed_job = pool.submit(wrangler.run, "workflows", "describe", "wr-quick", env=key_env)
        discovered, keyed = discovered_job.result(), keyed_job.result()

    # Without CLOUDFLARE_ACCOUNT_ID wrangler asks GET /memberships and, with one account,
    # picks it and caches the choice.
    assert "wr-quick" in table_ids(discovered.ok())
    cache = discovery_cwd / ".wrangler" / "cache" / "wrangler-account.json"
    assert json.loads(cache.read_text())["account"]["id"] == server.account_id

    assert field(keyed.ok(), "Name") == "wr-quick"
